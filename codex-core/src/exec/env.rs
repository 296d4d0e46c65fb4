//! The environment a tool command sees: the parent's environment minus
//! anything that looks like a credential, plus settings that keep tools
//! non-interactive and their output plain.

use std::collections::HashMap;

/// Name fragments (case-insensitive) of variables never passed to commands.
const SECRET_MARKERS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"];

/// Variables set for every command.
const FORCED: &[(&str, &str)] = &[
    ("NO_COLOR", "1"),
    ("TERM", "dumb"),
    ("PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("GH_PAGER", "cat"),
    ("CODEX_CI", "1"),
];

/// Whether a variable name looks like it holds a credential.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m))
}

/// Builds the environment for a tool command from `base` (usually the
/// process environment).
pub fn command_env(base: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    let mut env: HashMap<String, String> =
        base.into_iter().filter(|(k, _)| !looks_secret(k)).collect();
    for (k, v) in FORCED {
        env.insert((*k).to_string(), (*v).to_string());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_credentials() {
        let env = command_env(vec![
            ("OPENAI_API_KEY".to_string(), "sk".to_string()),
            ("GITHUB_TOKEN".to_string(), "t".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ]);
        assert!(!env.contains_key("OPENAI_API_KEY"));
        assert!(!env.contains_key("GITHUB_TOKEN"));
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["NO_COLOR"], "1");
    }
}
