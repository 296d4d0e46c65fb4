//! `codex audit [THREAD] [--json]`: the audit trail of one thread (or of all
//! threads), readably.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use codex_core::audit::{read_log, AuditRecord, DecidedBy, ALL_THREADS_FILE, AUDIT_DIR};
use codex_core::config::find_codex_home;

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// A thread id (or a unique prefix of one); all threads when omitted.
    thread: Option<String>,
    /// Print the records as JSON lines.
    #[arg(long)]
    json: bool,
}

pub fn main(args: AuditArgs) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("codex audit: {e:#}");
            1
        }
    }
}

fn run(args: AuditArgs) -> anyhow::Result<()> {
    let dir = find_codex_home()?.join(AUDIT_DIR);
    let path = match &args.thread {
        None => dir.join(ALL_THREADS_FILE),
        Some(t) => thread_log(&dir, t)?,
    };
    let records = match read_log(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if records.is_empty() {
        eprintln!("no audit records in {}", path.display());
        return Ok(());
    }
    for r in &records {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!("{}", render(r, args.thread.is_none()));
        }
    }
    Ok(())
}

/// The log of the thread whose id is (or starts with) `id`.
fn thread_log(dir: &std::path::Path, id: &str) -> anyhow::Result<PathBuf> {
    let exact = dir.join(format!("{id}.jsonl"));
    if exact.exists() {
        return Ok(exact);
    }
    let matches: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(id) && n != ALL_THREADS_FILE)
                })
                .collect()
        })
        .unwrap_or_default();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no audit log for thread {id} in {}", dir.display()),
        _ => bail!(
            "{id} matches {} threads; give more of the id",
            matches.len()
        ),
    }
}

/// One record as a line: when, what, decision, sandbox, outcome.
pub fn render(r: &AuditRecord, with_thread: bool) -> String {
    let by = match r.decided_by {
        DecidedBy::Policy => "policy",
        DecidedBy::Client => "client",
        DecidedBy::Session => "session",
    };
    let what = match (&r.command, r.kind.as_str()) {
        (Some(c), _) => format!("$ {c}"),
        (None, "patch") => format!("patch {}", r.files.join(", ")),
        (None, k) => k.to_string(),
    };
    let outcome = match (r.exit_code, r.duration_ms) {
        (Some(code), Some(ms)) => format!("{} (exit {code}, {ms} ms)", r.status),
        (Some(code), None) => format!("{} (exit {code})", r.status),
        _ => r.status.clone(),
    };
    let thread = if with_thread {
        format!("{}  ", r.thread_id.get(..8).unwrap_or(&r.thread_id))
    } else {
        String::new()
    };
    let mut line = format!(
        "{}  {thread}{what}\n    in {}  ·  {} via {}  ·  {} by {by}  ·  {outcome}",
        r.timestamp, r.cwd, r.policy, r.backend, r.decision
    );
    if let Some(n) = &r.note {
        line.push_str(&format!("\n    note: {n}"));
    }
    line
}
