//! The environment a tool command sees, built from upstream's
//! `[shell_environment_policy]`:
//!
//! 1. `inherit`: `all` (default), `core` (HOME, PATH, SHELL, USER, ...), or
//!    `none`;
//! 2. unless `ignore_default_excludes`: drop every variable whose name looks
//!    like a credential (contains KEY, SECRET, TOKEN, PASSWORD, CREDENTIAL);
//! 3. drop names matching `exclude` (case-insensitive globs, `*` and `?`);
//! 4. drop the model provider's key variable and the service manager's
//!    variables (always);
//! 5. add settings that keep tools non-interactive, then `set`;
//! 6. if `include_only` is given, keep only names matching it.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// Name fragments (case-insensitive) of variables never passed to commands
/// by default.
const SECRET_MARKERS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"];

/// What systemd (or another service manager) hands the daemon for itself:
/// its activation sockets, readiness socket and watchdog. A worker or a tool
/// that inherited them could notify or steal sockets in the daemon's name,
/// so the launcher and [`command_env`] drop them.
pub const SERVICE_MANAGER_VARS: &[&str] = &[
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// Variables `inherit = "core"` keeps.
const CORE: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "USER", "USERNAME", "TMPDIR", "TEMP", "TMP", "LANG",
    "LC_ALL", "LC_CTYPE",
];

/// Variables set for every command (before `set`, which may change them).
const FORCED: &[(&str, &str)] = &[
    ("NO_COLOR", "1"),
    ("TERM", "dumb"),
    ("PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("GH_PAGER", "cat"),
    ("CODEX_CI", "1"),
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Inherit {
    #[default]
    All,
    Core,
    None,
}

/// `[shell_environment_policy]` as written in `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ShellEnvironmentPolicyToml {
    pub inherit: Option<Inherit>,
    pub ignore_default_excludes: Option<bool>,
    pub exclude: Option<Vec<String>>,
    pub set: Option<BTreeMap<String, String>>,
    pub include_only: Option<Vec<String>>,
    /// Upstream key, accepted; the login shell already reads the profile.
    pub experimental_use_profile: Option<bool>,
}

/// The effective policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellEnvironmentPolicy {
    pub inherit: Inherit,
    pub ignore_default_excludes: bool,
    pub exclude: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub include_only: Vec<String>,
    /// Names always removed (the model provider's key variable), unless
    /// `set` names them.
    pub protected: Vec<String>,
}

impl From<ShellEnvironmentPolicyToml> for ShellEnvironmentPolicy {
    fn from(t: ShellEnvironmentPolicyToml) -> Self {
        Self {
            inherit: t.inherit.unwrap_or_default(),
            ignore_default_excludes: t.ignore_default_excludes.unwrap_or(false),
            exclude: t.exclude.unwrap_or_default(),
            set: t.set.unwrap_or_default(),
            include_only: t.include_only.unwrap_or_default(),
            protected: Vec::new(),
        }
    }
}

/// Whether a variable name looks like it holds a credential.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m))
}

/// Case-insensitive glob match with `*` (any run) and `?` (one char).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_uppercase().chars().collect();
    let n: Vec<char> = name.to_ascii_uppercase().chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Builds the environment for a tool command from `base` (usually the
/// process environment).
pub fn command_env(
    policy: &ShellEnvironmentPolicy,
    base: impl IntoIterator<Item = (String, String)>,
) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = base
        .into_iter()
        .filter(|(k, _)| match policy.inherit {
            Inherit::All => true,
            Inherit::Core => CORE.contains(&k.as_str()),
            Inherit::None => false,
        })
        .filter(|(k, _)| policy.ignore_default_excludes || !looks_secret(k))
        .filter(|(k, _)| !policy.exclude.iter().any(|p| glob_match(p, k)))
        .filter(|(k, _)| !policy.protected.iter().any(|p| p == k))
        .filter(|(k, _)| !SERVICE_MANAGER_VARS.contains(&k.as_str()))
        .collect();
    for (k, v) in FORCED {
        env.insert((*k).to_string(), (*v).to_string());
    }
    for (k, v) in &policy.set {
        env.insert(k.clone(), v.clone());
    }
    if !policy.include_only.is_empty() {
        env.retain(|k, _| policy.include_only.iter().any(|p| glob_match(p, k)));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(String, String)> {
        [
            ("OPENAI_API_KEY", "sk"),
            ("GITHUB_TOKEN", "t"),
            ("MY_PROVIDER_CRED", "c"),
            ("PATH", "/bin"),
            ("HOME", "/home/u"),
            ("AWS_REGION", "eu"),
            ("EDITOR", "vi"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn default_policy_drops_credentials() {
        let env = command_env(&ShellEnvironmentPolicy::default(), base());
        assert!(!env.contains_key("OPENAI_API_KEY"));
        assert!(!env.contains_key("GITHUB_TOKEN"));
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["EDITOR"], "vi");
        assert_eq!(env["NO_COLOR"], "1");
    }

    #[test]
    fn service_manager_variables_never_reach_commands() {
        let mut env = base();
        for k in SERVICE_MANAGER_VARS {
            env.push((k.to_string(), "1".into()));
        }
        let env = command_env(&ShellEnvironmentPolicy::default(), env);
        for k in SERVICE_MANAGER_VARS {
            assert!(!env.contains_key(*k), "{k}");
        }
        assert_eq!(env["PATH"], "/bin");
    }

    #[test]
    fn inherit_exclude_set_include_only_and_protected() {
        let core = ShellEnvironmentPolicy {
            inherit: Inherit::Core,
            ..Default::default()
        };
        let env = command_env(&core, base());
        assert!(env.contains_key("HOME") && !env.contains_key("EDITOR"));
        let none = ShellEnvironmentPolicy {
            inherit: Inherit::None,
            set: [("CI".to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        let env = command_env(&none, base());
        assert!(!env.contains_key("PATH"));
        assert_eq!(env["CI"], "1");
        let p = ShellEnvironmentPolicy {
            ignore_default_excludes: true,
            exclude: vec!["aws_*".into()],
            protected: vec!["OPENAI_API_KEY".into()],
            ..Default::default()
        };
        let env = command_env(&p, base());
        assert_eq!(env["GITHUB_TOKEN"], "t", "default excludes ignored");
        assert!(
            !env.contains_key("AWS_REGION"),
            "exclude is case-insensitive"
        );
        assert!(
            !env.contains_key("OPENAI_API_KEY"),
            "the model key never passes"
        );
        let only = ShellEnvironmentPolicy {
            include_only: vec!["PATH".into(), "NO_*".into()],
            ..Default::default()
        };
        let env = command_env(&only, base());
        let mut keys: Vec<&String> = env.keys().collect();
        keys.sort();
        assert_eq!(keys, ["NO_COLOR", "PATH"]);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*KEY*", "openai_api_key"));
        assert!(glob_match("A?C", "abc"));
        assert!(!glob_match("A?C", "abbc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("X*", "Y"));
    }
}
