#![allow(clippy::expect_used)]
//! Hot-path benchmarks. `cargo bench -p codex-benches` prints a table of
//! per-iteration times; under `cargo test` each case runs once as a smoke
//! test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use codex_core::client::sse::SseDecoder;
use codex_core::rollout::{RolloutItem, RolloutWriter};
use codex_core::tools::apply_patch;
use codex_core::util::truncate_middle;

struct Case {
    name: &'static str,
    unit: &'static str,
    units_per_iter: f64,
    run: Box<dyn FnMut()>,
}

fn sse_case() -> Case {
    let mut body = Vec::new();
    for i in 0..1000 {
        body.extend_from_slice(
            format!(
                "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"delta\":\"token {i} \"}}\n\n"
            )
            .as_bytes(),
        );
    }
    let bytes = body.len() as f64;
    Case {
        name: "sse decode 1000 deltas (1 KiB chunks)",
        unit: "MiB/s",
        units_per_iter: bytes / (1024.0 * 1024.0),
        run: Box::new(move || {
            let mut d = SseDecoder::default();
            let mut n = 0;
            for chunk in body.chunks(1024) {
                n += d.push(chunk).map(|v| v.len()).unwrap_or(0);
            }
            black_box(n);
        }),
    }
}

fn patch_case() -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("big.rs");
    let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&file, &text).expect("write");
    let patch = "*** Begin Patch\n*** Update File: big.rs\n@@\n line 1500\n-line 1501\n+LINE 1501\n line 1502\n*** End Patch";
    Case {
        name: "apply_patch verify (2000-line file)",
        unit: "patches/s",
        units_per_iter: 1.0,
        run: Box::new(move || {
            let planned = apply_patch::verify(patch, dir.path()).expect("verify");
            black_box(planned);
        }),
    }
}

fn rollout_case() -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rollout.jsonl");
    let mut w = RolloutWriter::create(&path).expect("create");
    Case {
        name: "rollout append 10 lines + fsync",
        unit: "turns/s",
        units_per_iter: 1.0,
        run: Box::new(move || {
            for _ in 0..10 {
                w.append(RolloutItem::EventMsg(serde_json_value(
                    "{\"type\":\"agent_message\",\"message\":\"hello\"}",
                )))
                .expect("append");
            }
            w.sync().expect("sync");
            let _keep = &dir;
        }),
    }
}

fn serde_json_value(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("json")
}

fn truncate_case() -> Case {
    let text = "0123456789abcdef\n".repeat(64 * 1024);
    let mb = text.len() as f64 / (1024.0 * 1024.0);
    Case {
        name: "truncate 1 MiB tool output to 10k tokens",
        unit: "MiB/s",
        units_per_iter: mb,
        run: Box::new(move || {
            black_box(truncate_middle(&text, 10_000));
        }),
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let budget = if bench {
        Duration::from_secs(2)
    } else {
        Duration::ZERO
    };
    let cases = vec![sse_case(), patch_case(), rollout_case(), truncate_case()];
    println!("{:<44} {:>12} {:>16}", "case", "time/iter", "throughput");
    for mut c in cases {
        (c.run)(); // warm-up
        let start = Instant::now();
        let mut iters = 0u64;
        loop {
            (c.run)();
            iters += 1;
            if start.elapsed() >= budget {
                break;
            }
        }
        let per = start.elapsed() / iters as u32;
        let rate = c.units_per_iter / per.as_secs_f64();
        println!(
            "{:<44} {:>12} {:>11.1} {}",
            c.name,
            format!("{per:.2?}"),
            rate,
            c.unit
        );
    }
}
