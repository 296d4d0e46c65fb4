//! Process inspection for tests that must prove nothing was left behind.

use std::time::{Duration, Instant};

/// Live (non-zombie) processes whose command line contains `needle`.
pub fn processes_matching(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(needle) {
            continue;
        }
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let close = s.rfind(')')?;
                s[close + 1..].split_whitespace().next().map(str::to_string)
            })
            .unwrap_or_default();
        if state != "Z" && state != "X" {
            out.push(pid);
        }
    }
    out
}

/// Waits (up to `deadline`) until no live process matches `needle`.
pub fn wait_none_matching(needle: &str, deadline: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let left = processes_matching(needle);
        if left.is_empty() || start.elapsed() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills leftovers so a failing test does not leak processes into others.
pub fn kill_matching(needle: &str) {
    for pid in processes_matching(needle) {
        // kill(1) keeps this crate free of unsafe code.
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
}
