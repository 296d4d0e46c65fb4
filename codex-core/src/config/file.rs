//! The shape of `config.toml` (upstream's keys). Keys that upstream defines
//! but this runtime does not act on yet are accepted silently (typed as raw
//! TOML values); anything else is reported as unknown.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::provider::ModelProviderInfo;
use super::types::{
    AskForApproval, ReasoningEffort, ReasoningSummary, SandboxMode, SandboxWorkspaceWrite,
    Verbosity,
};

type Unused = Option<toml::Value>;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigToml {
    pub model: Option<String>,
    pub model_provider: Option<String>,
    #[serde(default)]
    pub model_providers: BTreeMap<String, ModelProviderInfo>,
    pub approval_policy: Option<AskForApproval>,
    pub sandbox_mode: Option<SandboxMode>,
    pub sandbox_workspace_write: Option<SandboxWorkspaceWrite>,
    pub profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, ConfigProfile>,
    pub model_reasoning_effort: Option<ReasoningEffort>,
    pub model_reasoning_summary: Option<ReasoningSummary>,
    pub model_verbosity: Option<Verbosity>,
    pub model_context_window: Option<u64>,
    /// Replaces the built-in base instructions.
    pub instructions: Option<String>,
    pub model_instructions_file: Option<PathBuf>,
    pub experimental_instructions_file: Option<PathBuf>,
    pub developer_instructions: Option<String>,
    pub project_doc_max_bytes: Option<usize>,
    pub project_doc_fallback_filenames: Option<Vec<String>>,
    pub openai_base_url: Option<String>,
    pub tool_output_token_limit: Option<u64>,

    // Runtime extensions (not upstream keys).
    /// Deadline for one whole turn, in milliseconds.
    pub turn_timeout_ms: Option<u64>,
    /// Deadline for one tool command, in milliseconds.
    pub exec_timeout_ms: Option<u64>,
    /// How long an approval request waits for an answer before it is
    /// declined, in milliseconds.
    pub approval_timeout_ms: Option<u64>,
    /// Deadline of one call to a tool that is not built in (a client's
    /// `dynamicTools`, embedders' tools), in milliseconds.
    pub tool_timeout_ms: Option<u64>,
    /// The GGUF file the embedded `local` provider runs (relative paths are
    /// taken from `$CODEX_HOME`).
    pub local_model_path: Option<PathBuf>,

    /// Supervisor settings (`[codexd]`), interpreted by `codex-daemon`.
    pub codexd: Option<toml::Table>,

    pub shell_environment_policy: Option<crate::exec::env::ShellEnvironmentPolicyToml>,
    /// `[permissions]`: only `[permissions.network]`'s unix-socket keys are
    /// acted on; the rest (upstream's network proxy) is reported unknown.
    pub permissions: Option<PermissionsToml>,
    pub cli_auth_credentials_store: Option<crate::auth::CredentialsStoreMode>,
    /// `[mcp_servers.NAME]`, read by [`crate::mcp::config::parse_servers`].
    pub mcp_servers: Option<toml::Table>,
    /// `[features]`: only `memories` is acted on (the rest is accepted).
    pub features: Option<toml::Table>,
    /// `[memories]`, read by [`crate::memory::config::parse`].
    pub memories: Option<toml::Table>,
    /// `[context_shaping]` (ours), read by [`super::context_shaping::parse`].
    pub context_shaping: Option<toml::Table>,

    // Upstream keys accepted but not acted on (yet).
    pub mcp_oauth_credentials_store: Option<crate::mcp::oauth::McpOAuthStoreMode>,
    pub mcp_oauth_callback_port: Option<u16>,
    pub mcp_oauth_callback_url: Option<String>,
    pub notify: Unused,
    pub history: Unused,
    pub file_opener: Unused,
    pub tui: Unused,
    pub hide_agent_reasoning: Unused,
    pub show_raw_agent_reasoning: Unused,
    pub model_supports_reasoning_summaries: Unused,
    pub model_reasoning_summary_format: Unused,
    pub model_max_output_tokens: Unused,
    pub model_auto_compact_token_limit: Option<i64>,
    pub review_model: Unused,
    pub chatgpt_base_url: Option<String>,
    pub projects: Unused,
    pub tools: Unused,
    pub web_search: Unused,
    pub disable_paste_burst: Unused,
    pub otel: Unused,
    pub notice: Unused,
    pub windows: Unused,
    pub windows_wsl_setup_acknowledged: Unused,
    pub preferred_auth_method: Unused,
    pub forced_login_method: Unused,
    pub forced_chatgpt_workspace_id: Unused,
    pub approvals_reviewer: Unused,
    pub sqlite_home: Unused,
    pub log_dir: Unused,
    pub personality: Unused,
    pub analytics: Unused,
    pub feedback: Unused,
    pub experimental_use_exec_command_tool: Unused,
    pub experimental_use_unified_exec_tool: Unused,
    pub experimental_use_rmcp_client: Unused,
    pub experimental_use_freeform_apply_patch: Unused,
    pub experimental_resume: Unused,
    pub disable_response_storage: Unused,
    pub responses_originator_header_internal_override: Unused,
}

/// `[permissions]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PermissionsToml {
    pub network: Option<NetworkPermissionsToml>,
}

/// `[permissions.network]`: the local sockets a sandboxed command may reach.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetworkPermissionsToml {
    pub allow_unix_sockets: Option<Vec<PathBuf>>,
    pub dangerously_allow_all_unix_sockets: Option<bool>,
}

/// `[profiles.<name>]`: a named bundle of overrides.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ConfigProfile {
    pub model: Option<String>,
    pub model_provider: Option<String>,
    pub approval_policy: Option<AskForApproval>,
    pub sandbox_mode: Option<SandboxMode>,
    pub model_reasoning_effort: Option<ReasoningEffort>,
    pub model_reasoning_summary: Option<ReasoningSummary>,
    pub model_verbosity: Option<Verbosity>,
    pub model_context_window: Option<u64>,
    pub developer_instructions: Option<String>,
    pub chatgpt_base_url: Unused,
    pub experimental_instructions_file: Option<PathBuf>,
    pub model_instructions_file: Option<PathBuf>,
    pub tools: Unused,
    pub features: Unused,
}
