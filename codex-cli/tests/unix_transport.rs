//! The unix socket as upstream's clients use it: WebSocket over the socket
//! (and JSONL on the same socket, sniffed), upstream's default socket
//! layout, and a socket passed by the service manager (`LISTEN_FDS`) with
//! readiness on `NOTIFY_SOCKET`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use codex_test_support::{procs, sse, MockModelServer, TestHome};
use common::app_server::{app_server_command, Client, SocketServer, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{http, Message};

type UnixWs = tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>;

async fn next_json(ws: &mut UnixWs, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("deadline")
            .expect("stream ended")
            .unwrap();
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(&t).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Waits until `path` (or, too long to connect to, its target) accepts
/// connections, or `child` exits (a failure).
async fn wait_listening(child: &mut tokio::process::Child, path: &Path) {
    let deadline = std::time::Instant::now() + WAIT;
    let connectable = codex_daemon::transport::connectable;
    while std::os::unix::net::UnixStream::connect(connectable(path)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("codexd exited before listening: {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never listened",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM, then the exit within the deadline.
async fn terminate(child: &mut tokio::process::Child) {
    procs::signal(child.id().unwrap(), "-TERM");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("codexd did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unix_socket_serves_websocket_and_jsonl_clients() {
    let mock =
        MockModelServer::start(vec![sse::message("over a websocket on a unix socket")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut server = SocketServer::start(&home).await;

    // Upstream's TUI: an upgrade on `GET /`, with its compression offer.
    let stream = tokio::net::UnixStream::connect(&server.socket)
        .await
        .unwrap();
    let mut req = "ws://localhost/".into_client_request().unwrap();
    req.headers_mut().insert(
        "x-codex-app-server-compression",
        http::HeaderValue::from_static("zstd-stream-v1"),
    );
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()["x-codex-websocket-max-unfragmented-message-bytes"],
        "16777216"
    );
    assert!(
        resp.headers()
            .get("x-codex-app-server-compression")
            .is_none(),
        "frames stay plain text: {:?}",
        resp.headers()
    );
    let text = |v: Value| Message::text(v.to_string());
    ws.send(text(json!({"id": "initialize", "method": "initialize", "params": {"clientInfo": {"name": "tui", "version": "1"}, "capabilities": {"experimentalApi": true}}})))
        .await
        .unwrap();
    let init = next_json(&mut ws, |v| v["id"] == "initialize").await;
    assert_eq!(init["result"]["platformOs"], "linux", "{init}");
    ws.send(text(json!({"method": "initialized"})))
        .await
        .unwrap();
    ws.send(text(
        json!({"id": 1, "method": "thread/start", "params": {}}),
    ))
    .await
    .unwrap();
    let started = next_json(&mut ws, |v| v["id"] == 1).await;
    let tid = started["result"]["thread"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ws.send(text(json!({"id": 2, "method": "turn/start", "params": {"threadId": tid, "input": [{"type": "text", "text": "hi"}]}})))
        .await
        .unwrap();
    let done = next_json(&mut ws, |v| v["method"] == "turn/completed").await;
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "over a websocket on a unix socket"
    );

    // A JSONL client on the same socket, at the same time.
    let mut jsonl = server.client("jsonl").await;
    let loaded = jsonl.call("thread/loaded/list", json!({})).await;
    assert_eq!(loaded["data"], json!([tid]), "{loaded}");

    // Quit as upstream's TUI does: a Close frame without a status (1005).
    ws.send(Message::Close(None)).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the connection did not end after Close")
        {
            None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        }
    }
    // The daemon and the other client carry on.
    let again = jsonl.call("thread/loaded/list", json!({})).await;
    assert_eq!(again["data"], json!([tid]), "{again}");
    assert!(server.child.try_wait().unwrap().is_none());
    server.child.start_kill().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_unix_without_a_path_uses_upstreams_layout() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let tmpdir = home.root().join("tmp");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let mut child = app_server_command(&home, &["--listen", "unix://"])
        .env("TMPDIR", &tmpdir)
        .spawn()
        .unwrap();
    let control = home.codex_home().join("app-server-control");
    let link = control.join("app-server-control.sock");
    wait_listening(&mut child, &link).await;

    assert_eq!(
        codex_daemon::transport::default_socket_path(&home.codex_home()),
        link
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let real = std::fs::read_link(&link).unwrap();
    assert_eq!(
        real,
        codex_daemon::transport::short_socket_path(&link).unwrap()
    );
    // Upstream's place, whatever TMPDIR says: /tmp/codex-daemon-<uid>/<sha256>.
    let root = real.parent().unwrap();
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        root,
        std::fs::canonicalize("/tmp")
            .unwrap()
            .join(format!("codex-daemon-{uid}"))
    );
    let name = real.file_name().unwrap().to_str().unwrap();
    assert!(name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(std::fs::symlink_metadata(&real)
        .unwrap()
        .file_type()
        .is_socket());
    assert_eq!(mode(&real), 0o600);
    assert_eq!(mode(root), 0o700);
    assert_eq!(mode(&control), 0o700);
    assert!(control.join("app-server-startup.lock").is_file());
    assert_eq!(
        codex_daemon::transport::startup_lock_path(&home.codex_home()),
        control.join("app-server-startup.lock")
    );

    // Reachable through the link, in both protocols.
    assert!(codex_daemon::transport::daemon_answering(&link, WAIT).await);
    let mut c = Client::connect_unix(&link).await;
    c.initialize("through-the-link").await;
    let listed = c.call("thread/loaded/list", json!({})).await;
    assert_eq!(listed["data"], json!([]), "{listed}");

    // A clean stop removes the socket and its link; nothing answers after.
    drop(c);
    terminate(&mut child).await;
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link left behind"
    );
    assert!(
        std::fs::symlink_metadata(&real).is_err(),
        "socket left behind"
    );
    assert!(!codex_daemon::transport::daemon_answering(&link, Duration::from_secs(5)).await);
}

/// Reads `NAME=value` lines from the datagrams on `sock` (into `seen`)
/// until one is `want`.
async fn wait_notify(sock: &tokio::net::UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {want} on NOTIFY_SOCKET; got {seen:?}"))
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let found = text.lines().any(|l| l == want);
        seen.extend(text.lines().map(str::to_string));
        if found {
            return;
        }
    }
}

/// A codexd started as systemd starts a socket-activated service.
struct Activated {
    child: tokio::process::Child,
    /// The passed socket (bound by "systemd", i.e. the test).
    socket: std::path::PathBuf,
    /// `socket:[inode]` of the passed socket, as `/proc/*/fd` shows it.
    socket_fd_link: std::path::PathBuf,
    notify: tokio::net::UnixDatagram,
    seen: Vec<String>,
}

impl Activated {
    /// Binds the socket and a `NOTIFY_SOCKET`, then runs `codex app-server
    /// --listen LISTEN` with the socket as fd 3, `LISTEN_PID` its own pid
    /// (the shell execs into it) and a watchdog.
    async fn start(home: &TestHome, listen: &str) -> Self {
        use std::os::fd::AsRawFd;
        let run = home.root().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let socket = run.join("activated.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let fd = listener.as_raw_fd();
        let socket_fd_link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let notify_path = run.join("notify.sock");
        let notify = tokio::net::UnixDatagram::bind(&notify_path).unwrap();
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=codexd exec "$0" "$@""#)
            .arg(common::CODEX)
            .args(["app-server", "--listen", listen])
            .current_dir(home.workspace())
            .env("CODEX_HOME", home.codex_home())
            .env("HOME", home.home())
            .env("MOCK_API_KEY", "sk-mock-test")
            .env("RUST_LOG", "warn")
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "2000000")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: dup2 and fcntl are async-signal-safe; fd 3 ends up not
        // close-on-exec, as a service manager passes it.
        unsafe {
            cmd.pre_exec(move || {
                if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else if libc::dup2(fd, 3) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(listener);
        Self {
            child,
            socket,
            socket_fd_link,
            notify,
            seen: Vec::new(),
        }
    }

    async fn wait_notify(&mut self, want: &str) {
        wait_notify(&self.notify, want, &mut self.seen).await;
    }

    /// SIGTERM; `STOPPING=1`; a clean exit. Returns its stderr.
    async fn stop(mut self) -> String {
        procs::signal(self.child.id().unwrap(), "-TERM");
        self.wait_notify("STOPPING=1").await;
        let out = tokio::time::timeout(WAIT, self.child.wait_with_output())
            .await
            .expect("codexd did not exit after SIGTERM")
            .unwrap();
        assert!(out.status.success(), "{}", out.status);
        // The service manager owns the socket file: it is left in place.
        assert!(std::fs::symlink_metadata(&self.socket).is_ok());
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_activation_serves_the_passed_socket_and_notifies() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let other = home.root().join("run").join("other.sock");
    let mut daemon = Activated::start(&home, &format!("unix://{}", other.display())).await;

    daemon.wait_notify("READY=1").await;
    assert!(
        daemon
            .seen
            .iter()
            .any(|l| l.starts_with("STATUS=listening on unix://")),
        "{:?}",
        daemon.seen
    );
    // Activation wins over --listen: nothing was bound at the other path.
    assert!(!other.exists());
    let mut c = Client::connect_unix(&daemon.socket).await;
    c.initialize("activated").await;
    let tid = c.start_thread(json!({})).await;
    let worker = c.worker_pid(&tid).await;
    let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
    let names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| kv.split(|b| *b == b'=').next())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(names.iter().any(|k| k == "CODEX_HOME"), "{names:?}");
    for k in [
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ] {
        assert!(!names.iter().any(|n| n == k), "worker inherited {k}");
    }
    // The passed socket is close-on-exec: the worker does not hold it.
    for fd in std::fs::read_dir(format!("/proc/{worker}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert_ne!(
            target, daemon.socket_fd_link,
            "the worker holds the listener"
        );
    }
    // The monitor pings the watchdog.
    daemon.wait_notify("WATCHDOG=1").await;

    drop(c);
    let stderr = daemon.stop().await;
    assert!(
        stderr.contains("is not the socket the service manager passed"),
        "the ignored --listen path is named: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_activation_links_upstreams_default_path_to_the_passed_socket() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut daemon = Activated::start(&home, "unix://").await;
    daemon.wait_notify("READY=1").await;

    let link = codex_daemon::transport::default_socket_path(&home.codex_home());
    assert_eq!(std::fs::read_link(&link).unwrap(), daemon.socket);
    let mut c = Client::connect_unix(&link).await;
    c.initialize("through-the-default-path").await;
    drop(c);

    let stderr = daemon.stop().await;
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_home_too_long_for_sun_path_still_gets_a_reachable_default_socket() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let long_home = home.root().join("h".repeat(120));
    std::fs::create_dir_all(&long_home).unwrap();
    std::fs::copy(
        home.codex_home().join("config.toml"),
        long_home.join("config.toml"),
    )
    .unwrap();
    let link = codex_daemon::transport::default_socket_path(&long_home);
    assert!(link.as_os_str().len() > 108);
    let mut child = app_server_command(&home, &["--listen", "unix://"])
        .env("CODEX_HOME", &long_home)
        .spawn()
        .unwrap();
    wait_listening(&mut child, &link).await;

    // Our clients find it at the default path (resolving the link).
    let out = tokio::process::Command::new(common::CODEX)
        .args(["daemon", "status", "--json"])
        .env("CODEX_HOME", &long_home)
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["threads"].is_array(), "{status}");
    assert!(codex_daemon::transport::daemon_answering(&link, WAIT).await);
    terminate(&mut child).await;
}
