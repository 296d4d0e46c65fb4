//! Benchmarks live in `benches/`; run `cargo bench -p codex-benches`.
//!
//! This library is what the whole-system benches share: a line-oriented
//! JSON-RPC driver of a `codex app-server` process, the binaries' locators,
//! percentiles and the table printer. A failure panics with a message: a
//! bench that cannot run has nothing to report.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use codex_test_support::TestHome;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// How long any one wait on an app-server may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// One `codex app-server` process on stdio.
pub struct Rpc {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    next_id: i64,
}

impl Rpc {
    /// Starts `cmd` in `home` (its workspace, `CODEX_HOME`, `HOME`).
    pub fn spawn(cmd: &[String], home: &TestHome) -> Rpc {
        let mut c = tokio::process::Command::new(&cmd[0]);
        c.args(&cmd[1..])
            .current_dir(home.workspace())
            .env("CODEX_HOME", home.codex_home())
            .env("HOME", home.home())
            .env("MOCK_API_KEY", "sk-bench")
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", cmd[0]));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("app-server pipes missing");
        };
        Rpc {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next_id: 0,
        }
    }

    pub async fn send(&mut self, v: Value) {
        let mut s = v.to_string();
        s.push('\n');
        if let Err(e) = self.stdin.write_all(s.as_bytes()).await {
            panic!("write to app-server: {e}");
        }
        if let Err(e) = self.stdin.flush().await {
            panic!("flush to app-server: {e}");
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await;
        id
    }

    /// Reads until `pred` holds for a message and returns it.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = match tokio::time::timeout(DEADLINE, self.lines.next_line()).await {
                Err(_) => panic!("app-server stalled"),
                Ok(Err(e)) => panic!("read from app-server: {e}"),
                Ok(Ok(None)) => panic!("app-server closed stdout"),
                Ok(Ok(Some(line))) => line,
            };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if pred(&v) {
                return v;
            }
        }
    }

    /// A request and its successful result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params).await;
        let r = self
            .until(|v| v.get("method").is_none() && v["id"] == id)
            .await;
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    pub async fn initialize(&mut self) {
        self.call(
            "initialize",
            json!({"clientInfo": {"name": "bench", "version": "0.1.0"}}),
        )
        .await;
        self.send(json!({"method": "initialized"})).await;
    }

    /// `thread/start` with no parameters: the new thread's id.
    pub async fn start_thread(&mut self) -> String {
        let r = self.call("thread/start", json!({})).await;
        match r["thread"]["id"].as_str() {
            Some(id) => id.to_string(),
            None => panic!("thread/start without a thread id: {r}"),
        }
    }

    /// Sends `turn/start` with one text input and waits for its reply.
    pub async fn start_turn(&mut self, thread: &str, text: &str) {
        self.call(
            "turn/start",
            json!({"threadId": thread, "input": [{"type": "text", "text": text}]}),
        )
        .await;
    }

    /// Waits for `turn/completed` of `thread`.
    pub async fn turn_completed(&mut self, thread: &str) -> Value {
        self.until(|v| v["method"] == "turn/completed" && v["params"]["threadId"] == thread)
            .await
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The `p`-quantile (0..=1) of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Our `codex`: `$CODEX_BIN`, else the one next to the bench's profile dir
/// (`target/<profile>/deps/bench-xxxx` → `target/<profile>/codex`).
pub fn our_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CODEX_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("codex");
    candidate.exists().then_some(candidate)
}

/// Upstream's native `codex`, from `$CODEX_UPSTREAM`.
pub fn upstream_binary() -> Option<PathBuf> {
    std::env::var_os("CODEX_UPSTREAM").map(PathBuf::from)
}

/// The mock MCP server built next to the bench (`target/<profile>/`), or
/// `$CODEX_MOCK_MCP_SERVER`; `None` if it was not built.
pub fn mock_mcp_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CODEX_MOCK_MCP_SERVER") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("mock-mcp-server");
    candidate.is_file().then_some(candidate)
}

/// Milliseconds with one decimal (or three under 10 ms, where the
/// interesting differences are).
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.3} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A markdown table: `header` then `rows`, the first column left-aligned.
pub fn print_table(header: &[String], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .chain(std::iter::once(&header[i]))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            if i == 0 {
                s.push_str(&format!(" {c:<w$} |"));
            } else {
                s.push_str(&format!(" {c:>w$} |"));
            }
        }
        s
    };
    println!("{}", line(header));
    let mut sep = String::from("|");
    for w in &widths {
        sep.push_str(&"-".repeat(w + 2));
        sep.push('|');
    }
    println!("{sep}");
    for r in rows {
        println!("{}", line(r));
    }
}
