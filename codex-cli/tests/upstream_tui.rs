//! Upstream's own interactive client (`codex --remote`, `@openai/codex`
//! 0.169.0 from npm, installed by `scripts/test` into `tests/upstream/`)
//! drives our codexd, in a real terminal (tmux), over `unix://` and over
//! `ws://` with a capability token: startup, two turns with the mock's
//! answers on screen, a command approved with `y`, an Esc interrupt of a slow
//! stream, `/new`, `/resume` of the earlier thread with its history shown,
//! `/compact`, `/quit`, and nothing on the TUI's stderr. The test reads the
//! screen (`tmux capture-pane`), not the wire.
//!
//! Needs `tmux` and the upstream package; skipped with a note when either is
//! missing, unless `CODEX_REQUIRE_UPSTREAM_TUI=1` (CI). With
//! `CODEX_TUI_TEST_SERVER=upstream` the same script runs against upstream's
//! own app-server, which is how the script itself is checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codex_test_support::sse::{self, message_events, slow_message};
use codex_test_support::{MockModelServer, MockResponse, TestHome};
use serde_json::{json, Value};

const SCREEN_WAIT: Duration = Duration::from_secs(45);
const TOKEN: &str = "tui-capability-token";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The upstream binary npm installed (`vendor/<target>/bin/codex`).
fn upstream_codex() -> Option<PathBuf> {
    let vendor = workspace_root().join("tests/upstream/node_modules/@openai");
    for pkg in std::fs::read_dir(vendor).ok()?.flatten() {
        let dir = pkg.path().join("vendor");
        for target in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let bin = target.path().join("bin/codex");
            if bin.is_file() {
                return Some(bin);
            }
        }
    }
    None
}

fn prerequisites() -> Option<PathBuf> {
    let required = std::env::var("CODEX_REQUIRE_UPSTREAM_TUI").as_deref() == Ok("1");
    let tmux = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let upstream = upstream_codex();
    match (tmux, upstream) {
        (true, Some(bin)) => Some(bin),
        (tmux, bin) => {
            let why = format!(
                "upstream TUI test skipped: tmux {}, upstream codex {} (run scripts/test, which installs tests/upstream)",
                if tmux { "found" } else { "missing" },
                if bin.is_some() { "found" } else { "missing" }
            );
            assert!(!required, "{why}");
            eprintln!("{why}");
            None
        }
    }
}

/// One TUI in its own tmux server (a private socket), killed on drop.
struct Tui {
    socket: PathBuf,
    stderr: PathBuf,
    rc: PathBuf,
}

impl Tui {
    fn start(
        dir: &Path,
        cwd: &Path,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> Self {
        let socket = dir.join("tmux.sock");
        let stderr = dir.join("tui.stderr");
        let rc = dir.join("tui.rc");
        let mut line = String::new();
        for (k, v) in env {
            line.push_str(&format!("{k}={} ", shell_quote(v)));
        }
        line.push_str(&shell_quote(&program.display().to_string()));
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        let script = format!(
            "{line} 2>{}; echo $? >{}",
            shell_quote(&stderr.display().to_string()),
            shell_quote(&rc.display().to_string())
        );
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-c",
                cwd.to_str().unwrap(),
                "-d",
                "-x",
                "160",
                "-y",
                "50",
            ])
            .args(["-s", "tui", "sh", "-c", &script])
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        Self { socket, stderr, rc }
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "tui"]).stdout)
            .into_owned()
    }

    fn running(&self) -> bool {
        self.tmux(&["has-session", "-t", "tui"]).status.success()
    }

    /// Waits until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        self.wait_until(text, |s| s.contains(text))
    }

    fn wait_until(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                self.running() && Instant::now() < deadline,
                "the TUI never showed {what:?}\n--- screen ---\n{screen}\n--- stderr ---\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        assert!(
            self.tmux(&args).status.success(),
            "the TUI is gone\n--- stderr ---\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
    }

    /// Types `text` into the composer, waits until it is shown (the TUI
    /// treats a fast burst that ends in Enter as a paste), then submits it.
    fn submit(&self, text: &str) {
        self.keys(&["-l", text]);
        self.wait_for(text);
        std::thread::sleep(Duration::from_millis(300));
        self.keys(&["Enter"]);
    }

    /// Waits for the TUI to exit and returns its exit code.
    fn wait_exit(&self) -> i32 {
        let deadline = Instant::now() + SCREEN_WAIT;
        while self.running() {
            assert!(Instant::now() < deadline, "the TUI did not exit");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::read_to_string(&self.rc)
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(-1)
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn last_user_text(body: &Value) -> String {
    body["input"]
        .as_array()
        .and_then(|items| items.iter().rev().find(|i| i["role"] == "user"))
        .map(|i| i["content"].to_string())
        .unwrap_or_default()
}

/// The model for the whole session. Requests the TUI makes on the side
/// (title generation: a turn with an output schema; `/compact`'s summary
/// request) are answered by what they are; the conversation's turns by
/// position.
async fn mock_model() -> MockModelServer {
    let words: Vec<String> = (0..200).map(|i| format!("slow{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mock = MockModelServer::start(vec![
        MockResponse::sse(message_events("resp_1", "ANSWER-ONE from the mock", 3)),
        MockResponse::sse(sse::function_call_events(
            "resp_2",
            "call_touch",
            "exec_command",
            json!({
                "cmd": "touch approved-by-tui.txt && echo created",
                "sandbox_permissions": "require_escalated",
                "justification": "Create approved-by-tui.txt?"
            }),
        )),
        MockResponse::sse(message_events("resp_3", "ANSWER-TWO file created", 2)),
        slow_message("resp_4", &words, Duration::from_millis(250)),
    ])
    .await;
    mock.set_router(|body| {
        if body.pointer("/text/format/schema").is_some() {
            return Some(MockResponse::sse(message_events(
                "resp_title",
                r#"{"title":"Mock session title"}"#,
                1,
            )));
        }
        if last_user_text(body).contains("CONTEXT CHECKPOINT COMPACTION") {
            return Some(MockResponse::sse(message_events(
                "resp_compact",
                "SUMMARY of the conversation so far.",
                1,
            )));
        }
        None
    });
    mock
}

fn write_config(home: &TestHome, mock: &MockModelServer) {
    let text = format!(
        r#"model = "mock-model"
model_provider = "mock"
approval_policy = "on-request"
sandbox_mode = "workspace-write"

[model_providers.mock]
name = "Mock"
base_url = "{}"
wire_api = "responses"
env_key = "MOCK_API_KEY"
request_max_retries = 1
stream_max_retries = 0
stream_idle_timeout_ms = 30000
"#,
        mock.url()
    );
    std::fs::write(home.codex_home().join("config.toml"), text).unwrap();
}

enum Transport {
    Unix,
    WebSocket,
}

/// The server under test: ours (`codex app-server`) or upstream's.
struct Server {
    child: std::process::Child,
    remote: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(home: &TestHome, upstream: &Path, transport: &Transport) -> Server {
    let ours = std::env::var("CODEX_TUI_TEST_SERVER").as_deref() != Ok("upstream");
    let program = if ours {
        PathBuf::from(common::CODEX)
    } else {
        upstream.to_path_buf()
    };
    let token_file = home.root().join("ws-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    // Ours says where it listens on a NOTIFY_SOCKET (so no port is guessed);
    // upstream's gets a free port.
    let notify_path = home.root().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(SCREEN_WAIT)).unwrap();
    let listen = match transport {
        // Upstream's default socket on both sides, as README's two
        // commands use it.
        Transport::Unix => "unix://".to_string(),
        Transport::WebSocket if ours => "ws://127.0.0.1:0".to_string(),
        Transport::WebSocket => format!("ws://127.0.0.1:{}", free_port()),
    };
    let mut cmd = Command::new(program);
    cmd.args(["app-server", "--listen", &listen]);
    if matches!(transport, Transport::WebSocket) {
        cmd.args(["--ws-auth", "capability-token", "--ws-token-file"])
            .arg(&token_file);
    }
    let log = std::fs::File::create(home.root().join("server.stderr")).unwrap();
    let child = cmd
        .current_dir(home.workspace())
        .env("CODEX_HOME", home.codex_home())
        .env("HOME", home.home())
        .env("MOCK_API_KEY", "sk-mock-test")
        .env("RUST_LOG", "warn")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        remote: listen.clone(),
    };
    if ours {
        let at = common::app_server::listening_at(&notify);
        if at.starts_with("ws://") {
            server.remote = at;
        }
        return server;
    }
    let deadline = Instant::now() + SCREEN_WAIT;
    loop {
        let up = match transport {
            Transport::Unix => std::os::unix::net::UnixStream::connect(
                codex_daemon::transport::default_socket_path(&home.codex_home()),
            )
            .is_ok(),
            Transport::WebSocket => {
                std::net::TcpStream::connect(server.remote.trim_start_matches("ws://")).is_ok()
            }
        };
        if up {
            return server;
        }
        assert!(Instant::now() < deadline, "the server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of the TUI's stderr that are errors or warnings.
fn stderr_problems(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

async fn drive(transport: Transport) {
    let Some(upstream) = prerequisites() else {
        return;
    };
    let mock = mock_model().await;
    // The script blocks on the screen; the mock keeps serving on the runtime.
    tokio::task::spawn_blocking(move || script(&upstream, &mock, transport))
        .await
        .unwrap();
}

fn script(upstream: &Path, mock: &MockModelServer, transport: Transport) {
    // Not under the system temp dir: upstream's client declines to set up
    // its helper aliases there and says so on stderr.
    let home = TestHome::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")).join("tui"));
    write_config(&home, mock);
    let server = start_server(&home, upstream, &transport);

    let mut args = vec!["--remote".to_string(), server.remote.clone()];
    if matches!(transport, Transport::WebSocket) {
        args.extend(["--remote-auth-token-env".into(), "CODEX_TUI_TOKEN".into()]);
    }
    // The TUI runs in a directory of its own. On upstream's default socket it
    // knows the daemon is local and sends that directory as the thread's
    // cwd; over ws:// it sends none and the thread gets the server's.
    // (Outside any git repository: in one, a local TUI asks on `/new`
    // whether to make a new worktree.)
    let tui_dir = tempfile::Builder::new()
        .prefix("tui-cwd-")
        .tempdir()
        .unwrap();
    let tui_cwd = tui_dir.path().to_path_buf();
    let thread_cwd = match transport {
        Transport::Unix => tui_cwd.clone(),
        Transport::WebSocket => home.workspace(),
    };
    let tui = Tui::start(
        home.root(),
        &tui_cwd,
        upstream,
        &args,
        &[
            ("CODEX_HOME", home.codex_home().display().to_string()),
            ("HOME", home.home().display().to_string()),
            ("TERM", "xterm-256color".into()),
            ("CODEX_TUI_TOKEN", TOKEN.into()),
        ],
    );

    // Startup: the footer shows the model once the bootstrap requests
    // (account, models, config) have been answered.
    // A local daemon makes the TUI ask, once, whether to trust its folder.
    let first = tui.wait_until("the composer or the trust question", |s| {
        s.contains("mock-model") || s.contains("Trust this folder?")
    });
    if first.contains("Trust this folder?") {
        tui.keys(&["Enter"]);
    }
    tui.wait_for("mock-model");
    tui.wait_for("Ask Codex to do anything");
    tui.wait_for(&thread_cwd.display().to_string());

    // A plain turn, answered on screen.
    tui.submit("first question");
    tui.wait_for("ANSWER-ONE from the mock");

    // A command that needs approval: accepted with `y`.
    tui.submit("please create the file");
    tui.wait_for("approved-by-tui.txt");
    tui.wait_until("the approval prompt", |s| {
        s.contains("Would you like to run") || s.contains("Yes, proceed")
    });
    tui.keys(&["y"]);
    tui.wait_for("ANSWER-TWO file created");
    assert!(
        thread_cwd.join("approved-by-tui.txt").exists(),
        "the approved command did not run"
    );

    // Esc interrupts a slow stream.
    tui.submit("stream slowly");
    tui.wait_for("slow3");
    tui.keys(&["Escape"]);
    tui.wait_for("Conversation interrupted");

    // `/new` starts an empty thread.
    tui.submit("/new");
    tui.wait_until("an empty thread", |s| {
        !s.contains("ANSWER-ONE") && s.contains("Ask Codex to do anything")
    });

    // `/resume` lists the earlier thread; choosing it shows its history.
    tui.submit("/resume");
    tui.wait_for("Resume a previous session");
    tui.wait_for("Mock session title");
    tui.keys(&["Enter"]);
    tui.wait_for("ANSWER-ONE from the mock");

    // `/compact`: a real compaction turn.
    tui.submit("/compact");
    tui.wait_for("Context compacted");

    tui.submit("/quit");
    let rc = tui.wait_exit();
    let problems = stderr_problems(&tui.stderr);
    assert!(
        problems.is_empty(),
        "the TUI printed on stderr: {problems:#?}"
    );
    assert_eq!(rc, 0, "the TUI's exit code");
    let compaction = mock
        .model_requests()
        .iter()
        .any(|r| last_user_text(&r.body).contains("CONTEXT CHECKPOINT COMPACTION"));
    assert!(compaction, "/compact sent no summary request to the model");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tui_over_unix_socket() {
    drive(Transport::Unix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tui_over_websocket_with_token() {
    drive(Transport::WebSocket).await;
}
