//! A JSON-RPC client for `codex app-server` in tests: over the server's stdio
//! or over its unix socket. Every wait has a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use codex_test_support::TestHome;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::CODEX;

pub const WAIT: Duration = Duration::from_secs(60);

type Reader = Box<dyn tokio::io::AsyncBufRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

pub struct Client {
    reader: Reader,
    writer: Writer,
    next_id: i64,
    /// Messages read but not yet consumed.
    backlog: VecDeque<Value>,
    /// Every message received, in order.
    pub seen: Vec<Value>,
}

impl Client {
    pub fn new(reader: Reader, writer: Writer) -> Self {
        Self {
            reader,
            writer,
            next_id: 0,
            backlog: VecDeque::new(),
            seen: Vec::new(),
        }
    }

    pub async fn connect_unix(path: &Path) -> Self {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .expect("connect");
        let (r, w) = stream.into_split();
        Self::new(Box::new(BufReader::new(r)), Box::new(w))
    }

    pub async fn send_raw(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
        self.writer.flush().await.unwrap();
    }

    pub async fn send(&mut self, v: Value) {
        self.send_raw(&v.to_string()).await;
    }

    /// Sends a request; returns its id.
    pub async fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await;
        id
    }

    pub async fn notify(&mut self, method: &str) {
        self.send(json!({"method": method})).await;
    }

    /// The next message from the server (`None` at EOF or after `wait`).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        if let Some(v) = self.backlog.pop_front() {
            return Some(v);
        }
        let mut line = String::new();
        match tokio::time::timeout(wait, self.reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => None,
            Ok(Ok(_)) => {
                let v: Value = serde_json::from_str(line.trim())
                    .unwrap_or_else(|e| panic!("server sent non-JSON {line:?}: {e}"));
                assert!(v.get("jsonrpc").is_none(), "no jsonrpc field: {v}");
                self.seen.push(v.clone());
                Some(v)
            }
        }
    }

    /// The next response or error (notifications are skipped).
    pub async fn next_reply(&mut self) -> Value {
        loop {
            let v = self.next().await;
            if v.get("method").is_none() {
                return v;
            }
        }
    }

    pub async fn next(&mut self) -> Value {
        self.next_within(WAIT)
            .await
            .expect("no message from the server within the deadline")
    }

    /// Reads until `pred` matches; other messages stay in the backlog.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = VecDeque::new();
        // Look at the backlog first.
        while let Some(v) = self.backlog.pop_front() {
            if pred(&v) {
                self.backlog = skipped.into_iter().chain(self.backlog.drain(..)).collect();
                return v;
            }
            skipped.push_back(v);
        }
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut line = String::new();
            let r = tokio::time::timeout(left, self.reader.read_line(&mut line)).await;
            match r {
                Ok(Ok(n)) if n > 0 => {
                    let v: Value = serde_json::from_str(line.trim()).unwrap();
                    self.seen.push(v.clone());
                    if pred(&v) {
                        self.backlog = skipped;
                        return v;
                    }
                    skipped.push_back(v);
                }
                _ => panic!("waiting for {what}: not seen; got: {skipped:#?}"),
            }
        }
    }

    /// Waits for the response to request `id` (result or error).
    pub async fn response(&mut self, id: i64) -> Value {
        self.wait_for(&format!("response {id}"), |v| {
            v.get("method").is_none() && v["id"] == id
        })
        .await
    }

    /// Sends a request and returns its `result` (panics on an error reply).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params).await;
        let r = self.response(id).await;
        assert!(r.get("error").is_none(), "{method} failed: {r}");
        r["result"].clone()
    }

    pub async fn notification(&mut self, method: &str) -> Value {
        self.wait_for(method, |v| v["method"] == method && v.get("id").is_none())
            .await
    }

    pub async fn initialize(&mut self, name: &str) {
        self.call(
            "initialize",
            json!({"clientInfo": {"name": name, "title": "test", "version": "0.1.0"}}),
        )
        .await;
        self.notify("initialized").await;
    }

    pub async fn start_thread(&mut self, params: Value) -> String {
        let r = self.call("thread/start", params).await;
        r["thread"]["id"].as_str().unwrap().to_string()
    }

    /// `turn/start` with a text prompt; returns the turn id.
    pub async fn start_turn(&mut self, thread_id: &str, text: &str) -> String {
        let r = self
            .call(
                "turn/start",
                json!({"threadId": thread_id, "input": [{"type": "text", "text": text}]}),
            )
            .await;
        r["turn"]["id"].as_str().unwrap().to_string()
    }

    /// Waits for `turn/completed` of `thread_id`.
    pub async fn turn_completed(&mut self, thread_id: &str) -> Value {
        let tid = thread_id.to_string();
        self.wait_for("turn/completed", move |v| {
            v["method"] == "turn/completed" && v["params"]["threadId"] == tid.as_str()
        })
        .await
    }

    /// `codexd/status`.
    pub async fn status(&mut self) -> Value {
        self.call("codexd/status", json!({})).await
    }

    /// The pid of the worker hosting `thread_id`.
    pub async fn worker_pid(&mut self, thread_id: &str) -> u32 {
        let s = self.status().await;
        s["threads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["threadId"] == thread_id)
            .unwrap_or_else(|| panic!("thread {thread_id} not loaded: {s}"))["pid"]
            .as_u64()
            .unwrap() as u32
    }

    /// Waits for notification `method` about `thread_id`.
    pub async fn thread_note(&mut self, method: &str, thread_id: &str) -> Value {
        let (m, t) = (method.to_string(), thread_id.to_string());
        self.wait_for(&format!("{method} of {thread_id}"), move |v| {
            v["method"] == m.as_str()
                && v.get("id").is_none()
                && (v["params"]["threadId"] == t.as_str()
                    || v["params"]["thread"]["id"] == t.as_str())
        })
        .await
    }

    /// Reads until the server closes the connection; returns how many
    /// messages came (`None`: still open after `wait`).
    pub async fn drain_to_eof(&mut self, wait: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut n = self.backlog.len();
        self.backlog.clear();
        loop {
            let mut line = String::new();
            match tokio::time::timeout_at(deadline, self.reader.read_line(&mut line)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(n),
                Ok(Ok(_)) => {
                    n += 1;
                    if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                        self.seen.push(v);
                    }
                }
            }
        }
    }

    /// The statuses of the thread's turns (`thread/read` with turns).
    pub async fn turn_statuses(&mut self, thread_id: &str) -> Vec<String> {
        let read = self
            .call(
                "thread/read",
                json!({"threadId": thread_id, "includeTurns": true}),
            )
            .await;
        read["thread"]["turns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["status"].as_str().unwrap().to_string())
            .collect()
    }

    /// Forgets messages read but not consumed yet.
    pub fn clear_backlog(&mut self) {
        self.backlog.clear();
    }

    /// Every notification seen so far with this method.
    pub fn seen_method(&self, method: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|v| v["method"] == method)
            .cloned()
            .collect()
    }
}

/// `codex app-server ARGS` in the test home, with the mock key; stdio is
/// for the caller to set (stderr is inherited).
pub fn app_server_command(home: &TestHome, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(CODEX);
    cmd.arg("app-server")
        .args(args)
        .current_dir(home.workspace())
        .env("CODEX_HOME", home.codex_home())
        .env("HOME", home.home())
        .env("MOCK_API_KEY", "sk-mock-test")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// `codex app-server` on stdio.
pub struct StdioServer {
    pub child: tokio::process::Child,
    pub client: Client,
}

impl StdioServer {
    pub async fn start(home: &TestHome, extra_args: &[&str]) -> Self {
        let mut cmd = app_server_command(home, extra_args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        Self::from_command(cmd)
    }

    /// Starts a prepared command (stdin and stdout piped).
    pub fn from_command(mut cmd: tokio::process::Command) -> Self {
        let mut child = cmd.spawn().expect("spawn app-server");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let client = Client::new(Box::new(BufReader::new(stdout)), Box::new(stdin));
        Self { child, client }
    }
}

/// `codex app-server --listen unix://PATH` (a daemon for many clients).
pub struct SocketServer {
    pub child: tokio::process::Child,
    pub socket: PathBuf,
}

impl SocketServer {
    pub async fn start(home: &TestHome) -> Self {
        Self::start_with(home, &[]).await
    }

    pub async fn start_with(home: &TestHome, extra_args: &[&str]) -> Self {
        let socket = home.root().join("run").join("codexd.sock");
        let listen = format!("unix://{}", socket.display());
        let mut args = vec!["--listen", listen.as_str()];
        args.extend_from_slice(extra_args);
        let mut cmd = app_server_command(home, &args);
        let mut child = cmd.spawn().expect("spawn codexd");
        let deadline = std::time::Instant::now() + WAIT;
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("codexd exited before listening: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "socket never appeared"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, socket }
    }

    pub async fn client(&self, name: &str) -> Client {
        let mut c = Client::connect_unix(&self.socket).await;
        c.initialize(name).await;
        c
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// `kill -9` of codexd itself; waits until it is gone.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }
}

/// `codex app-server --listen ws://127.0.0.1:0 ARGS…` on a port the kernel
/// picks, learnt from codexd's readiness notice (`STATUS=listening on
/// ws://…` on a `NOTIFY_SOCKET` the test holds): no port is guessed, so no
/// other listener can be mistaken for it.
pub async fn start_ws_server(home: &TestHome, args: &[&str]) -> (tokio::process::Child, u16) {
    let notify = home.root().join(format!("notify-{}.sock", uuid_like()));
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut all = vec!["--listen", "ws://127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut cmd = app_server_command(home, &all);
    cmd.env("NOTIFY_SOCKET", &notify);
    let child = cmd.spawn().expect("spawn codexd");
    let port = tokio::task::spawn_blocking(move || {
        let at = listening_at(&sock);
        at.rsplit(':').next().unwrap().parse::<u16>().unwrap()
    })
    .await
    .unwrap();
    (child, port)
}

/// Where codexd says it listens (`STATUS=listening on <at>` with its
/// `READY=1` on the `NOTIFY_SOCKET` bound at `sock`), waiting for it.
pub fn listening_at(sock: &std::os::unix::net::UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("codexd never said it was ready");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(at) = text
            .lines()
            .find_map(|l| l.strip_prefix("STATUS=listening on "))
        {
            return at.to_string();
        }
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
