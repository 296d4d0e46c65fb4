//! Configuration: `$CODEX_HOME/config.toml` with upstream's keys, profiles,
//! `-c key=value` overrides and typed CLI overrides, resolved into one
//! [`Config`].
//!
//! Precedence, lowest first: built-in defaults, `config.toml`, the selected
//! profile, `-c` overrides, typed flags (`-m`, `-s`, ...).

pub mod context_shaping;
mod file;
mod overrides;
mod provider;
mod types;
pub mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use context_shaping::ContextShapingConfig;
pub use file::{ConfigProfile, ConfigToml};
pub use overrides::CliOverride;
pub use provider::*;
/// A parsed TOML table (`config.toml` and overrides applied to it).
pub use toml::Table as TomlTable;
pub use types::*;

pub const CONFIG_FILE_NAME: &str = "config.toml";
pub const DEFAULT_MODEL: &str = "gpt-6.1-sol";
pub const DEFAULT_PROJECT_DOC_MAX_BYTES: usize = 32 * 1024;
pub const DEFAULT_TURN_TIMEOUT_MS: u64 = 60 * 60 * 1000;
pub const DEFAULT_EXEC_TIMEOUT_MS: u64 = 10 * 60 * 1000;
pub const DEFAULT_TOOL_OUTPUT_TOKENS: u64 = 10_000;
pub const DEFAULT_APPROVAL_TIMEOUT_MS: u64 = 10 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: invalid TOML: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path}: key `{key}`: {reason}")]
    InvalidKey {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("invalid -c override `{arg}`: {reason}")]
    Override { arg: String, reason: String },
    #[error("config profile `{0}` not found (define [profiles.{0}] in config.toml)")]
    UnknownProfile(String),
    #[error("model provider `{id}` not found; known providers: {known}")]
    UnknownProvider { id: String, known: String },
    #[error(
        "approval_policy = \"untrusted\" is not supported; use on-request, on-failure or never"
    )]
    UntrustedPolicy,
    #[error("working directory {path}: {source}")]
    Cwd {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot determine CODEX_HOME: neither $CODEX_HOME nor $HOME is set")]
    NoHome,
}

/// Typed overrides from command-line flags; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    pub model: Option<String>,
    pub model_provider: Option<String>,
    pub profile: Option<String>,
    pub approval_policy: Option<AskForApproval>,
    /// Used when neither flags, profile nor config set an approval policy.
    pub default_approval_policy: Option<AskForApproval>,
    pub sandbox_mode: Option<SandboxMode>,
    pub cwd: Option<PathBuf>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
    pub additional_writable_roots: Vec<PathBuf>,
    /// Skip `config.toml` entirely (`--ignore-user-config`).
    pub ignore_user_config: bool,
}

/// Everything needed to resolve a [`Config`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Defaults to `$CODEX_HOME`, then `~/.codex`.
    pub codex_home: Option<PathBuf>,
    pub cli_overrides: Vec<CliOverride>,
    pub overrides: ConfigOverrides,
}

/// The effective configuration of a thread.
#[derive(Debug, Clone)]
pub struct Config {
    pub codex_home: PathBuf,
    pub cwd: PathBuf,
    pub model: String,
    pub model_provider_id: String,
    pub model_provider: ModelProviderInfo,
    pub model_providers: BTreeMap<String, ModelProviderInfo>,
    pub approval_policy: AskForApproval,
    pub sandbox_policy: SandboxPolicy,
    pub model_reasoning_effort: Option<ReasoningEffort>,
    pub model_reasoning_summary: ReasoningSummary,
    pub model_verbosity: Option<Verbosity>,
    pub model_context_window: Option<u64>,
    /// Compact the history when a response's token count reaches this
    /// (`model_auto_compact_token_limit`; none: never).
    pub model_auto_compact_token_limit: Option<u64>,
    /// Replacement for the built-in base instructions, if configured.
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
    /// `instructions` from config plus `$CODEX_HOME/AGENTS.md`.
    pub user_instructions: Option<String>,
    pub project_doc_max_bytes: usize,
    pub project_doc_fallback_filenames: Vec<String>,
    pub turn_timeout: Duration,
    pub exec_timeout: Duration,
    pub approval_timeout: Duration,
    /// `tool_timeout_ms` (ours): deadline of a call to a tool that is not
    /// built in; `None`: the thread's default.
    pub tool_timeout: Option<Duration>,
    pub tool_output_token_limit: u64,
    /// The ChatGPT backend (`chatgpt_base_url`); the built-in `openai`
    /// provider talks to `{chatgpt_base_url}codex` when signed in with
    /// ChatGPT.
    pub chatgpt_base_url: String,
    /// Where sign-in credentials are kept.
    pub cli_auth_credentials_store: crate::auth::CredentialsStoreMode,
    /// What environment tool commands get.
    pub shell_environment_policy: crate::exec::env::ShellEnvironmentPolicy,
    /// Local sockets sandboxed commands may reach.
    pub unix_sockets: UnixSocketPermissions,
    /// The raw `[codexd]` table (supervisor settings).
    pub codexd: toml::Table,
    /// `[mcp_servers]`: the servers that can be started (the others were
    /// named in `warnings`).
    pub mcp_servers: BTreeMap<String, crate::mcp::McpServerConfig>,
    /// `[features] memories` and `[memories]`.
    pub memories: crate::memory::MemoriesConfig,
    /// `[context_shaping]`: oversized tool outputs condensed by a local model.
    pub context_shaping: ContextShapingConfig,
    /// Where MCP OAuth tokens are kept (`mcp_oauth_credentials_store`).
    pub mcp_oauth_credentials_store: crate::mcp::oauth::McpOAuthStoreMode,
    /// `mcp_oauth_callback_port` / `mcp_oauth_callback_url`.
    pub mcp_oauth_callback_port: Option<u16>,
    pub mcp_oauth_callback_url: Option<String>,
    /// The GGUF file of the embedded `local` provider (`local_model_path`,
    /// else the default in [`default_local_model_path`]).
    pub local_model_path: PathBuf,
    /// Problems that did not stop loading (unknown keys, ...).
    pub warnings: Vec<String>,
}

/// `[permissions.network]` `allow_unix_sockets` and
/// `dangerously_allow_all_unix_sockets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixSocketPermissions {
    /// Absolute paths (relative ones are taken from `$CODEX_HOME`).
    pub allow: Vec<PathBuf>,
    pub allow_all: bool,
}

/// Upstream's default `chatgpt_base_url`.
pub const DEFAULT_CHATGPT_BASE_URL: &str = "https://chatgpt.com/backend-api/";

/// `$CODEX_HOME`, else `~/.codex`.
pub fn find_codex_home() -> Result<PathBuf, ConfigError> {
    if let Some(home) = std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::NoHome)?;
    Ok(PathBuf::from(home).join(".codex"))
}

impl Config {
    /// Whether turns run on the embedded model: provider `local` without a
    /// `base_url` (a `[model_providers.local]` with one is an HTTP server).
    pub fn uses_embedded_model(&self) -> bool {
        self.model_provider_id == LOCAL_PROVIDER_ID && self.model_provider.base_url.is_none()
    }

    pub fn load(opts: LoadOptions) -> Result<Config, ConfigError> {
        let codex_home = match opts.codex_home {
            Some(h) => h,
            None => find_codex_home()?,
        };
        let config_path = codex_home.join(CONFIG_FILE_NAME);
        let mut warnings = Vec::new();

        let mut table = if opts.overrides.ignore_user_config {
            toml::Table::new()
        } else {
            read_table(&config_path)?
        };
        // Validate the file on its own so errors name the file.
        let file_cfg = deserialize_config(toml::Value::Table(table.clone()), &config_path)?;
        warnings.extend(
            file_cfg
                .1
                .into_iter()
                .map(|k| format!("{}: unknown key `{k}` (ignored)", config_path.display())),
        );

        for o in &opts.cli_overrides {
            o.apply(&mut table);
        }
        let (cfg, unknown) = if opts.cli_overrides.is_empty() {
            (file_cfg.0, Vec::new())
        } else {
            deserialize_config(toml::Value::Table(table), Path::new("-c overrides")).map_err(
                |e| match e {
                    ConfigError::InvalidKey { key, reason, .. } => ConfigError::Override {
                        arg: opts
                            .cli_overrides
                            .iter()
                            .find(|o| key.starts_with(&o.path.join(".")))
                            .map(|o| o.raw.clone())
                            .unwrap_or(key),
                        reason,
                    },
                    other => other,
                },
            )?
        };
        for k in unknown {
            if !warnings.iter().any(|w| w.contains(&format!("`{k}`"))) {
                warnings.push(format!("-c override: unknown key `{k}` (ignored)"));
            }
        }
        let (mcp_servers, mcp_warnings) = match &cfg.mcp_servers {
            Some(t) => crate::mcp::config::parse_servers(t),
            None => Default::default(),
        };
        warnings.extend(mcp_warnings);
        let (memories, memory_warnings) =
            crate::memory::config::parse(cfg.features.as_ref(), cfg.memories.as_ref());
        warnings.extend(memory_warnings);
        let (context_shaping, shaping_warnings) =
            context_shaping::parse(cfg.context_shaping.as_ref(), &codex_home);
        warnings.extend(shaping_warnings);

        // `[profiles.<name>]`, else upstream's v2 profile file
        // `$CODEX_HOME/<name>.config.toml`.
        let profile_name = opts
            .overrides
            .profile
            .clone()
            .or_else(|| cfg.profile.clone());
        let profile = match &profile_name {
            None => ConfigProfile::default(),
            Some(name) => match cfg.profiles.get(name) {
                Some(p) => p.clone(),
                None => load_profile_file(&codex_home, name)?,
            },
        };

        let mut model_providers = built_in_providers(cfg.openai_base_url.clone());
        for (id, p) in &cfg.model_providers {
            model_providers.insert(id.clone(), p.clone());
        }
        let model_provider_id = opts
            .overrides
            .model_provider
            .clone()
            .or(profile.model_provider.clone())
            .or(cfg.model_provider.clone())
            .unwrap_or_else(|| OPENAI_PROVIDER_ID.to_string());
        let model_provider = model_providers
            .get(&model_provider_id)
            .cloned()
            .ok_or_else(|| ConfigError::UnknownProvider {
                id: model_provider_id.clone(),
                known: model_providers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;

        let approval_policy = opts
            .overrides
            .approval_policy
            .or(profile.approval_policy)
            .or(cfg.approval_policy)
            .or(opts.overrides.default_approval_policy)
            .unwrap_or_default();
        if approval_policy == AskForApproval::Untrusted {
            return Err(ConfigError::UntrustedPolicy);
        }
        let sandbox_mode = opts
            .overrides
            .sandbox_mode
            .or(profile.sandbox_mode)
            .or(cfg.sandbox_mode)
            .unwrap_or_default();
        let mut ww = cfg.sandbox_workspace_write.clone().unwrap_or_default();
        ww.writable_roots
            .extend(opts.overrides.additional_writable_roots.iter().cloned());

        let mut shell_environment_policy: crate::exec::env::ShellEnvironmentPolicy = cfg
            .shell_environment_policy
            .clone()
            .unwrap_or_default()
            .into();
        // The model's key never reaches a tool command unless `set` says so.
        for key in [
            model_provider.env_key.as_deref(),
            Some("OPENAI_API_KEY"),
            Some("CODEX_API_KEY"),
        ]
        .into_iter()
        .flatten()
        {
            if !shell_environment_policy.set.contains_key(key) {
                shell_environment_policy.protected.push(key.to_string());
            }
        }

        let cwd = match &opts.overrides.cwd {
            Some(dir) => std::fs::canonicalize(dir).map_err(|source| ConfigError::Cwd {
                path: dir.clone(),
                source,
            })?,
            None => std::env::current_dir().map_err(|source| ConfigError::Cwd {
                path: PathBuf::from("."),
                source,
            })?,
        };

        let instructions_file = profile
            .model_instructions_file
            .clone()
            .or(profile.experimental_instructions_file.clone())
            .or(cfg.model_instructions_file.clone())
            .or(cfg.experimental_instructions_file.clone());
        let base_instructions = match (&opts.overrides.base_instructions, instructions_file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(path)) => {
                let path = if path.is_relative() {
                    codex_home.join(path)
                } else {
                    path
                };
                Some(
                    std::fs::read_to_string(&path)
                        .map_err(|source| ConfigError::Read { path, source })?,
                )
            }
            (None, None) => None,
        };

        let user_instructions = {
            let global = std::fs::read_to_string(codex_home.join("AGENTS.md"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            let parts: Vec<String> = cfg.instructions.clone().into_iter().chain(global).collect();
            (!parts.is_empty()).then(|| parts.join("\n\n"))
        };

        let unix_sockets = {
            let net = cfg.permissions.as_ref().and_then(|p| p.network.as_ref());
            UnixSocketPermissions {
                allow: net
                    .and_then(|n| n.allow_unix_sockets.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| {
                        if p.is_absolute() {
                            p
                        } else {
                            codex_home.join(p)
                        }
                    })
                    .collect(),
                allow_all: net
                    .and_then(|n| n.dangerously_allow_all_unix_sockets)
                    .unwrap_or(false),
            }
        };
        let local_model_path = match &cfg.local_model_path {
            Some(p) if p.is_relative() => codex_home.join(p),
            Some(p) => p.clone(),
            None => default_local_model_path(&codex_home),
        };
        Ok(Config {
            model: opts
                .overrides
                .model
                .clone()
                .or(profile.model.clone())
                .or(cfg.model.clone())
                .unwrap_or_else(|| {
                    // The local provider's model is its file, not an API model.
                    if model_provider_id == LOCAL_PROVIDER_ID && model_provider.base_url.is_none() {
                        LOCAL_DEFAULT_MODEL.to_string()
                    } else {
                        DEFAULT_MODEL.to_string()
                    }
                }),
            codex_home,
            cwd,
            model_provider_id,
            model_provider,
            model_providers,
            approval_policy,
            sandbox_policy: SandboxPolicy::from_mode(sandbox_mode, &ww),
            model_reasoning_effort: profile
                .model_reasoning_effort
                .or(cfg.model_reasoning_effort),
            model_reasoning_summary: profile
                .model_reasoning_summary
                .or(cfg.model_reasoning_summary)
                .unwrap_or_default(),
            model_verbosity: profile.model_verbosity.or(cfg.model_verbosity),
            model_context_window: profile.model_context_window.or(cfg.model_context_window),
            model_auto_compact_token_limit: cfg
                .model_auto_compact_token_limit
                .and_then(|l| u64::try_from(l).ok())
                .filter(|l| *l > 0),
            base_instructions,
            developer_instructions: opts
                .overrides
                .developer_instructions
                .clone()
                .or(profile.developer_instructions.clone())
                .or(cfg.developer_instructions.clone()),
            user_instructions,
            project_doc_max_bytes: cfg
                .project_doc_max_bytes
                .unwrap_or(DEFAULT_PROJECT_DOC_MAX_BYTES),
            project_doc_fallback_filenames: cfg
                .project_doc_fallback_filenames
                .clone()
                .unwrap_or_default(),
            turn_timeout: Duration::from_millis(
                cfg.turn_timeout_ms
                    .unwrap_or(DEFAULT_TURN_TIMEOUT_MS)
                    .max(1),
            ),
            exec_timeout: Duration::from_millis(
                cfg.exec_timeout_ms
                    .unwrap_or(DEFAULT_EXEC_TIMEOUT_MS)
                    .max(1),
            ),
            approval_timeout: Duration::from_millis(
                cfg.approval_timeout_ms
                    .unwrap_or(DEFAULT_APPROVAL_TIMEOUT_MS)
                    .max(1),
            ),
            tool_timeout: cfg
                .tool_timeout_ms
                .map(|ms| Duration::from_millis(ms.max(1))),
            tool_output_token_limit: cfg
                .tool_output_token_limit
                .unwrap_or(DEFAULT_TOOL_OUTPUT_TOKENS)
                .max(1),
            shell_environment_policy,
            cli_auth_credentials_store: cfg.cli_auth_credentials_store.unwrap_or_default(),
            chatgpt_base_url: cfg
                .chatgpt_base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_CHATGPT_BASE_URL.to_string()),
            unix_sockets,
            codexd: cfg.codexd.clone().unwrap_or_default(),
            mcp_servers,
            memories,
            context_shaping,
            mcp_oauth_credentials_store: cfg.mcp_oauth_credentials_store.unwrap_or_default(),
            mcp_oauth_callback_port: cfg.mcp_oauth_callback_port,
            mcp_oauth_callback_url: cfg.mcp_oauth_callback_url.clone(),
            local_model_path,
            warnings,
        })
    }

    /// The sessions directory (`$CODEX_HOME/sessions`).
    pub fn sessions_dir(&self) -> PathBuf {
        self.codex_home.join(crate::rollout::SESSIONS_SUBDIR)
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    read_config_file(path).map(|(_, table)| table)
}

/// Reads and parses a config file as [`Config::load`] does, returning its
/// text and table: a missing file is empty; one that cannot be read or does
/// not parse is an error naming the file (and the line and column).
pub fn read_config_file(path: &Path) -> Result<(String, toml::Table), ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((String::new(), toml::Table::new()))
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match text.parse::<toml::Table>() {
        Ok(table) => Ok((text, table)),
        Err(e) => {
            let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                reason: e.message().to_string(),
            })
        }
    }
}

fn load_profile_file(codex_home: &Path, name: &str) -> Result<ConfigProfile, ConfigError> {
    let path = codex_home.join(format!("{name}.config.toml"));
    if !path.exists() {
        return Err(ConfigError::UnknownProfile(name.to_string()));
    }
    let table = read_table(&path)?;
    let mut unknown = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path<'_>| unknown.push(key_path(&p));
    let de = serde_ignored::Deserializer::new(toml::Value::Table(table), &mut on_unknown);
    serde_path_to_error::deserialize::<_, ConfigProfile>(de).map_err(|e| ConfigError::InvalidKey {
        path: path.clone(),
        key: e.path().to_string(),
        reason: e.inner().message().to_string(),
    })
}

/// A dotted key path as the user wrote it (serde_ignored marks the
/// `Option`s it went through with `?` segments).
fn key_path(p: &serde_ignored::Path<'_>) -> String {
    p.to_string()
        .split('.')
        .filter(|seg| *seg != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// Deserializes a config table, collecting unknown keys and naming the key
/// of the first error.
fn deserialize_config(
    value: toml::Value,
    origin: &Path,
) -> Result<(ConfigToml, Vec<String>), ConfigError> {
    let mut unknown = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path<'_>| unknown.push(key_path(&p));
    let de = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let cfg = serde_path_to_error::deserialize::<_, ConfigToml>(de).map_err(|e| {
        ConfigError::InvalidKey {
            path: origin.to_path_buf(),
            key: e.path().to_string(),
            reason: e.inner().message().to_string(),
        }
    })?;
    Ok((cfg, unknown))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(text: &str, overrides: &[&str]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), text).unwrap();
        Config::load(LoadOptions {
            codex_home: Some(dir.path().to_path_buf()),
            cli_overrides: overrides
                .iter()
                .map(|o| CliOverride::parse(o).unwrap())
                .collect(),
            overrides: ConfigOverrides {
                cwd: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        })
    }

    #[test]
    fn mcp_servers_are_read_and_unusable_ones_named() {
        let cfg = load_with(
            "[mcp_servers.echo]\ncommand = \"echo-server\"\n[mcp_servers.docs]\nurl = \"http://x\"\nargs = []\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.mcp_servers.keys().collect::<Vec<_>>(), ["echo"]);
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("[mcp_servers.docs]") && w.contains("`args` is not supported")),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn config_file_errors_name_file_line_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert_eq!(read_config_file(&path).unwrap().0, "");
        std::fs::write(&path, "model = \"m\"\n\n[broken\n").unwrap();
        let e = read_config_file(&path).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3:", path.display())), "{e}");
        assert!(e.contains("invalid TOML"), "{e}");
        // The same words as `Config::load` (what `codex exec` prints).
        let loaded = load_with("model = \"m\"\n\n[broken\n", &[]).unwrap_err();
        assert!(loaded.to_string().contains(":3:"), "{loaded}");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let e = read_config_file(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot read {}: ", path.display())),
            "{e}"
        );
    }

    #[test]
    fn reads_upstream_keys() {
        let cfg = load_with(
            r#"
model = "mock-model"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "workspace-write"

[sandbox_workspace_write]
network_access = true

[model_providers.mock]
name = "Mock"
base_url = "http://127.0.0.1:9/v1"
wire_api = "responses"
env_key = "MOCK_API_KEY"
request_max_retries = 2
stream_max_retries = 1
stream_idle_timeout_ms = 500
http_headers = { "x-test" = "1" }
"#,
            &[],
        )
        .unwrap();
        assert_eq!(cfg.model, "mock-model");
        assert_eq!(cfg.model_provider_id, "mock");
        assert_eq!(cfg.model_provider.request_max_retries(), 2);
        assert_eq!(
            cfg.model_provider.stream_idle_timeout(),
            Duration::from_millis(500)
        );
        assert_eq!(cfg.approval_policy, AskForApproval::Never);
        assert!(cfg.sandbox_policy.has_network());
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn profiles_and_overrides_layer() {
        let text = r#"
model = "base"
profile = "fast"
[profiles.fast]
model = "from-profile"
approval_policy = "on-failure"
"#;
        let cfg = load_with(text, &[]).unwrap();
        assert_eq!(cfg.model, "from-profile");
        assert_eq!(cfg.approval_policy, AskForApproval::OnFailure);
        let cfg = load_with(text, &["model=\"from-c\"", "profile=none_such"]);
        assert!(matches!(cfg, Err(ConfigError::UnknownProfile(p)) if p == "none_such"));
    }

    #[test]
    fn bad_value_names_file_and_key() {
        let err = load_with("approval_policy = \"sometimes\"\n", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("config.toml"), "{msg}");
        assert!(msg.contains("approval_policy"), "{msg}");
        assert!(msg.contains("sometimes"), "{msg}");

        let err = load_with(
            "[model_providers.x]\nname = \"X\"\nwire_api = \"grpc\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("model_providers.x.wire_api"), "{err}");
    }

    #[test]
    fn syntax_error_has_line() {
        let err = load_with("model = \"a\"\nmodel_provider = \n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.toml:2:"), "{err}");
    }

    #[test]
    fn unknown_keys_warn() {
        let cfg = load_with("modle = \"typo\"\n[tui]\nanything = 1\n", &[]).unwrap();
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("modle"));
    }

    #[test]
    fn nested_unknown_keys_are_named_as_written() {
        let cfg = load_with(
            "[permissions.network]\nallow_unix_sockets = [\"/run/a.sock\"]\nproxy_url = \"http://x\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(
            cfg.warnings[0].contains("`permissions.network.proxy_url`"),
            "{:?}",
            cfg.warnings
        );
        assert_eq!(cfg.unix_sockets.allow, [PathBuf::from("/run/a.sock")]);
    }

    #[test]
    fn bad_override_is_named() {
        let err = load_with("", &["sandbox_mode=\"nope\""])
            .unwrap_err()
            .to_string();
        assert!(err.contains("sandbox_mode"), "{err}");
    }

    #[test]
    fn unknown_provider() {
        let err = load_with("model_provider = \"nope\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("openai"), "{err}");
    }
}
