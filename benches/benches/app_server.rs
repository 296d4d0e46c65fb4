//! Whole-system figures of `codex app-server`, for ours and (with
//! `CODEX_UPSTREAM=/path/to/upstream/codex`) upstream's, side by side:
//!
//! - time from spawn to the `initialize` reply of a fresh process;
//! - `thread/start` latency over 100 threads on one connection (p50/p99,
//!   including our worker spawn);
//! - one plain turn (`turn/start` → `turn/completed`) against a zero-latency
//!   mock model;
//! - memory: PSS summed over the process tree after `initialize` and with the
//!   100 threads loaded, and the RSS of the supervisor alone.
//!
//! `cargo bench -p codex-benches --bench app_server` (after
//! `cargo build --release -p codex-cli`; `scripts/bench` does both). Under
//! `cargo test` it runs a small smoke version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use codex_benches::{our_binary, percentile, Rpc};
use codex_test_support::{sse, MockModelServer, TestHome};
use serde_json::json;

/// (PSS of the whole tree, RSS of the root), in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let field = |pid: u32, file: &str, key: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    };
    let mut pss = field(pid, "smaps_rollup", "Pss:");
    for d in codex_core::process::descendants(pid) {
        pss += field(d.pid, "smaps_rollup", "Pss:");
    }
    (pss, field(pid, "status", "VmRSS:"))
}

struct Figures {
    init: Duration,
    start_p50: Duration,
    start_p99: Duration,
    turn: Duration,
    pss_init_kib: u64,
    pss_loaded_kib: u64,
    root_rss_kib: u64,
    exec_wall: Duration,
}

/// Wall time of whole `codex exec --json` processes (spawn to exit) for one
/// plain turn, p50 over `runs`.
async fn exec_wall_time(bin: &str, runs: usize) -> Duration {
    let mock = MockModelServer::start(vec![]).await;
    for _ in 0..runs {
        mock.push(sse::message("Hello from the mock model."));
    }
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let status = tokio::process::Command::new(bin)
            .args(["exec", "--json", "--skip-git-repo-check", "Say hello."])
            .current_dir(home.workspace())
            .env("CODEX_HOME", home.codex_home())
            .env("HOME", home.home())
            .env("MOCK_API_KEY", "sk-bench")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("spawn codex exec");
        times.push(t.elapsed());
        assert!(status.success(), "{bin} exec failed: {status}");
    }
    times.sort();
    percentile(&times, 0.5)
}

async fn measure(
    cmd: &[String],
    inits: usize,
    threads: usize,
    turns: usize,
    exec_runs: usize,
) -> Figures {
    let mock = MockModelServer::start(vec![]).await;
    for _ in 0..turns + 2 {
        mock.push(sse::message("Hello from the mock model."));
    }
    let home = TestHome::new();
    home.write_config(&mock.url(), "");

    let mut init_times = Vec::new();
    for _ in 0..inits {
        let t = Instant::now();
        let mut rpc = Rpc::spawn(cmd, &home);
        rpc.initialize().await;
        init_times.push(t.elapsed());
        drop(rpc);
    }
    init_times.sort();

    let mut rpc = Rpc::spawn(cmd, &home);
    rpc.initialize().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (pss_init_kib, _) = memory(rpc.pid().unwrap());

    let mut start_times = Vec::new();
    let mut first_thread = None;
    for _ in 0..threads {
        let t = Instant::now();
        let r = rpc.call("thread/start", json!({})).await;
        start_times.push(t.elapsed());
        first_thread.get_or_insert(r["thread"]["id"].as_str().unwrap().to_string());
    }
    start_times.sort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (pss_loaded_kib, root_rss_kib) = memory(rpc.pid().unwrap());

    let tid = first_thread.unwrap();
    let mut turn_times = Vec::new();
    for _ in 0..turns {
        let t = Instant::now();
        rpc.call(
            "turn/start",
            json!({"threadId": tid, "input": [{"type": "text", "text": "Say hello."}]}),
        )
        .await;
        let tid2 = tid.clone();
        rpc.until(move |v| {
            v["method"] == "turn/completed" && v["params"]["threadId"] == tid2.as_str()
        })
        .await;
        turn_times.push(t.elapsed());
    }
    turn_times.sort();
    drop(rpc);
    let exec_wall = exec_wall_time(&cmd[0], exec_runs).await;
    Figures {
        init: percentile(&init_times, 0.5),
        start_p50: percentile(&start_times, 0.5),
        start_p99: percentile(&start_times, 0.99),
        turn: percentile(&turn_times, 0.5),
        pss_init_kib,
        pss_loaded_kib,
        root_rss_kib,
        exec_wall,
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (inits, threads, turns, exec_runs) = if bench {
        (10, 100, 20, 10)
    } else {
        (1, 3, 1, 1)
    };
    let Some(ours) = our_binary() else {
        println!("app_server bench: build the binary first (cargo build --release -p codex-cli) or set CODEX_BIN");
        return;
    };
    let mut targets = vec![(
        "ours".to_string(),
        vec![ours.display().to_string(), "app-server".into()],
    )];
    if let Ok(up) = std::env::var("CODEX_UPSTREAM") {
        targets.push(("upstream".to_string(), vec![up, "app-server".into()]));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results: Vec<(String, Figures)> = targets
        .iter()
        .map(|(name, cmd)| {
            (
                name.clone(),
                rt.block_on(measure(cmd, inits, threads, turns, exec_runs)),
            )
        })
        .collect();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    type Column = Box<dyn Fn(&Figures) -> String>;
    let rows: Vec<(String, Column)> = vec![
        (
            "initialize reply (fresh process, p50)".into(),
            Box::new(move |f| ms(f.init)),
        ),
        (
            format!("thread/start p50 ({threads} threads)"),
            Box::new(move |f| ms(f.start_p50)),
        ),
        (
            format!("thread/start p99 ({threads} threads)"),
            Box::new(move |f| ms(f.start_p99)),
        ),
        (
            "plain turn, turn/start → turn/completed (p50)".into(),
            Box::new(move |f| ms(f.turn)),
        ),
        (
            "codex exec, one plain turn, whole process (p50)".into(),
            Box::new(move |f| ms(f.exec_wall)),
        ),
        (
            "tree PSS after initialize".into(),
            Box::new(move |f| mib(f.pss_init_kib)),
        ),
        (
            format!("tree PSS with {threads} threads loaded"),
            Box::new(move |f| mib(f.pss_loaded_kib)),
        ),
        (
            "supervisor RSS (with threads loaded)".into(),
            Box::new(move |f| mib(f.root_rss_kib)),
        ),
    ];
    print!("| {:<48} |", "figure");
    for (name, _) in &results {
        print!(" {name:>12} |");
    }
    println!();
    print!("|{}|", "-".repeat(50));
    for _ in &results {
        print!("{}|", "-".repeat(14));
    }
    println!();
    for (label, f) in rows {
        print!("| {label:<48} |");
        for (_, fig) in &results {
            print!(" {:>12} |", f(fig));
        }
        println!();
    }
}
