//! An isolated `CODEX_HOME` + workspace for one test.

use std::path::{Path, PathBuf};

pub struct TestHome {
    dir: tempfile::TempDir,
}

impl Default for TestHome {
    fn default() -> Self {
        Self::new()
    }
}

impl TestHome {
    pub fn new() -> Self {
        Self::new_in(std::env::temp_dir())
    }

    /// A home under `parent` (e.g. for clients that treat homes under the
    /// system temp dir specially).
    pub fn new_in(parent: impl AsRef<Path>) -> Self {
        std::fs::create_dir_all(parent.as_ref()).expect("parent dir");
        let dir = tempfile::Builder::new()
            .prefix("codex-test-")
            .tempdir_in(parent)
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("codex_home")).unwrap();
        std::fs::create_dir_all(dir.path().join("workspace")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Self { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn codex_home(&self) -> PathBuf {
        self.dir.path().join("codex_home")
    }

    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }

    /// An empty `$HOME` for child processes (no rc files leak in).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Writes `config.toml` pointing at a mock provider, plus `extra` lines.
    /// The key comes from `$MOCK_API_KEY` (set it on the child process).
    pub fn write_config(&self, base_url: &str, extra: &str) {
        self.write_config_with_auth(base_url, extra, "env_key = \"MOCK_API_KEY\"");
    }

    /// Like [`TestHome::write_config`], for in-process tests that must not
    /// touch the environment: the token is written into the provider.
    pub fn write_config_inline_key(&self, base_url: &str, extra: &str) {
        self.write_config_with_auth(base_url, extra, "experimental_bearer_token = \"sk-inline\"");
    }

    fn write_config_with_auth(&self, base_url: &str, extra: &str, auth: &str) {
        let text = format!(
            r#"model = "mock-model"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "workspace-write"
{extra}

[model_providers.mock]
name = "Mock"
base_url = "{base_url}"
wire_api = "responses"
{auth}
request_max_retries = 2
stream_max_retries = 1
stream_idle_timeout_ms = 2000
"#
        );
        std::fs::write(self.codex_home().join("config.toml"), text).unwrap();
    }

    /// Changes the mock provider's `stream_idle_timeout_ms` (default 2000).
    pub fn set_stream_idle_timeout_ms(&self, ms: u64) {
        let path = self.codex_home().join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("stream_idle_timeout_ms") {
                    format!("stream_idle_timeout_ms = {ms}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        out.push(String::new());
        std::fs::write(&path, out.join("\n")).unwrap();
    }

    /// Every rollout file under `sessions/`.
    pub fn rollouts(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("rollout-") && n.ends_with(".jsonl"))
                {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.codex_home().join("sessions"), &mut out);
        out.sort();
        out
    }
}
