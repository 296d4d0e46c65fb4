//! The memories pipeline against real parts: SQLite files in a temporary
//! CODEX_HOME, rollout files written the way sessions are, real files under
//! `memories/`. The models are fakes behind the pipeline's traits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use codex_core::config::{AskForApproval, SandboxPolicy};
use codex_core::memory::pipeline::phase1::{self, ExtractionPrompt};
use codex_core::memory::pipeline::phase2;
use codex_core::memory::pipeline::stage1::{JOB_KIND_CONSOLIDATE_GLOBAL, JOB_KIND_STAGE1};
use codex_core::memory::pipeline::{
    ConsolidationJob, Consolidator, Extractor, ModelError, Phase2Outcome, Pipeline,
    PipelineSettings, Stage1Claim, Stage1Db, Trigger,
};
use futures_util::future::BoxFuture;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn memories(&self) -> PathBuf {
        self.path().join("memories")
    }

    /// A rollout of `source` whose file was last written `age` ago.
    fn rollout(
        &self,
        id: &str,
        source: serde_json::Value,
        age: Duration,
        extra: &[serde_json::Value],
    ) -> PathBuf {
        let dir = self.path().join("sessions/2026/11/20");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("rollout-2026-11-20T10-00-00-{id}.jsonl"));
        let mut lines = vec![
            json!({"timestamp": "2026-11-20T10:00:00.000Z", "type": "session_meta", "payload": {
            "id": id, "timestamp": "2026-11-20T10:00:00.000Z", "cwd": "/work/project",
            "originator": "codex_cli_rs", "cli_version": "0.169.0", "source": source,
            "git": {"branch": "main"}}}),
        ];
        if extra.is_empty() {
            lines.push(item(json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": format!("task of {id}")}]})));
            lines.push(item(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "done"}]})));
        }
        lines.extend(extra.iter().cloned());
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, body).unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    fn db(&self) -> Stage1Db {
        Stage1Db::open_in(self.path()).unwrap()
    }
}

fn item(payload: serde_json::Value) -> serde_json::Value {
    json!({"timestamp": "2026-11-20T10:00:01.000Z", "type": "response_item", "payload": payload})
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn id(n: u32) -> String {
    format!("0199a213-81c0-7800-8aa1-{n:012}")
}

/// Answers every extraction with upstream-shaped JSON (in a Markdown fence),
/// recording the prompts.
#[derive(Default)]
struct FakeExtractor {
    prompts: Mutex<Vec<ExtractionPrompt>>,
    answer: Mutex<Option<String>>,
}

impl FakeExtractor {
    fn answering(answer: &str) -> Arc<Self> {
        Arc::new(Self {
            prompts: Mutex::default(),
            answer: Mutex::new(Some(answer.to_string())),
        })
    }

    fn prompts(&self) -> Vec<ExtractionPrompt> {
        self.prompts.lock().unwrap().clone()
    }
}

impl Extractor for FakeExtractor {
    fn extract(&self, prompt: ExtractionPrompt) -> BoxFuture<'_, Result<String, ModelError>> {
        let thread = prompt.thread_id.clone();
        self.prompts.lock().unwrap().push(prompt);
        let answer = self.answer.lock().unwrap().clone().unwrap_or_else(|| {
            format!(
                "```json\n{}\n```",
                json!({
                    "raw_memory": format!("---\nrollout_summary_file: x.md\ndescription: fixed the build of {thread}\nkeywords: cargo, build\n---\n- run `cargo build` first; token=abcdefgh12345 was used"),
                    "rollout_summary": format!("# Fixed the build of {thread}\n\nUser preferences: keep diffs small\nUsed key sk-abcdefghijklmnopqrstuvwx."),
                    "rollout_slug": "Fix Build",
                })
            )
        });
        Box::pin(async move { Ok(answer) })
    }
}

fn pipeline(
    home: &Home,
    extractor: Arc<dyn Extractor>,
    consolidator: Option<Arc<dyn Consolidator>>,
) -> Pipeline {
    Pipeline::new(
        home.path(),
        PipelineSettings::default(),
        extractor,
        consolidator,
    )
}

#[test]
fn defaults_are_upstreams() {
    let s = PipelineSettings::default();
    assert_eq!(s.max_raw_memories_for_consolidation, 256);
    assert_eq!(s.max_unused_days, 30);
    assert_eq!(s.max_rollout_age_days, 10);
    assert_eq!(s.max_rollouts_per_startup, 2);
    assert_eq!(s.min_rollout_idle_hours, 6);
}

#[test]
fn schema_and_migration_bookkeeping_are_upstreams() {
    let home = Home::new();
    drop(home.db());
    // Reopening applies nothing twice.
    drop(home.db());
    let conn = rusqlite::Connection::open(home.path().join("memories_1.sqlite")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut stmt = conn
        .prepare("SELECT version, description, hex(checksum), success FROM _sqlx_migrations ORDER BY version")
        .unwrap();
    let rows: Vec<(i64, String, String, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // The SHA-384 sqlx records for upstream's two memory migrations.
    assert_eq!(
        rows,
        vec![
            (1, "memories".into(), "A1AF50DA50775A70F98DA680006B7DF4501956753AE98511AB727AA295915D9AE6F4190B4EAA5ABC4FD7891642F7D21D".into(), true),
            (2, "consolidation progress".into(), "18F0A8DD7FE9A847B30D719029066D7A78E0BC64310DC66E4F7708BAD6F1A0A594C0DBD14FEC1CCB410CD7AE75DD7B10".into(), true),
        ]
    );
    let columns = |table: &str| -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        columns("stage1_outputs"),
        [
            "thread_id",
            "source_updated_at",
            "raw_memory",
            "rollout_summary",
            "rollout_slug",
            "generated_at",
            "usage_count",
            "last_usage",
            "selected_for_phase2",
            "selected_for_phase2_source_updated_at"
        ]
    );
    assert_eq!(
        columns("jobs"),
        [
            "kind",
            "job_key",
            "status",
            "worker_id",
            "ownership_token",
            "started_at",
            "finished_at",
            "lease_until",
            "retry_at",
            "retry_remaining",
            "last_error",
            "input_watermark",
            "last_success_watermark"
        ]
    );
    assert_eq!(
        columns("consolidation_progress"),
        ["singleton", "max_thread_count"]
    );
    let singleton: i64 = conn
        .query_row(
            "SELECT max_thread_count FROM consolidation_progress",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(singleton, 0);
}

#[test]
fn eligibility_follows_upstreams_rules() {
    let home = Home::new();
    home.rollout(&id(1), json!("cli"), hours(7), &[]);
    home.rollout(&id(2), json!("vscode"), hours(30), &[]);
    home.rollout(&id(3), json!("cli"), hours(1), &[]); // not idle long enough
    home.rollout(&id(4), json!("cli"), hours(11 * 24), &[]); // too old
    home.rollout(&id(5), json!("exec"), hours(7), &[]); // not interactive
    home.rollout(&id(6), json!({"subagent": "review"}), hours(7), &[]); // a sub-agent
    home.rollout(&id(7), json!("cli"), hours(8), &[]); // the thread that triggered
    let threads = phase1::scan_threads(home.path());
    assert_eq!(threads.len(), 7);
    let eligible: Vec<String> =
        phase1::eligible_threads(&threads, &PipelineSettings::default(), now(), &[id(7)])
            .into_iter()
            .map(|t| t.thread_id.clone())
            .collect();
    // Most recently updated first.
    assert_eq!(eligible, vec![id(1), id(2)]);
    let t = threads.iter().find(|t| t.thread_id == id(1)).unwrap();
    assert_eq!(t.cwd, PathBuf::from("/work/project"));
    assert_eq!(t.git_branch.as_deref(), Some("main"));
}

#[tokio::test]
async fn a_pass_claims_at_most_max_rollouts_per_startup_and_skips_extracted_ones() {
    let home = Home::new();
    for n in 1..=3 {
        home.rollout(&id(n), json!("cli"), hours(6 + u64::from(n)), &[]);
    }
    let extractor = Arc::new(FakeExtractor::default());
    let p = pipeline(&home, extractor.clone(), None);
    let first = p.run_once(vec![]).await.unwrap();
    assert_eq!(first.eligible, 3);
    assert_eq!(first.claimed, vec![id(1), id(2)], "the two most recent");
    assert_eq!(first.extracted, vec![id(1), id(2)]);
    let second = p.run_once(vec![]).await.unwrap();
    assert_eq!(
        second.claimed,
        vec![id(3)],
        "extracted threads are up to date"
    );
    let third = p.run_once(vec![]).await.unwrap();
    assert!(third.claimed.is_empty());
    assert_eq!(extractor.prompts().len(), 3);

    // A thread written to again is extracted again.
    home.rollout(
        &id(1),
        json!("cli"),
        hours(6) + Duration::from_secs(60),
        &[],
    );
    let fourth = p.run_once(vec![]).await.unwrap();
    assert_eq!(fourth.claimed, vec![id(1)]);
}

#[test]
fn two_connections_never_both_win_a_lease() {
    let home = Home::new();
    let mut a = home.db();
    let mut b = home.db();
    let t = now();
    let first = a
        .try_claim_stage1_job(&id(1), "worker-a", 100, 3600, 8, t)
        .unwrap();
    assert!(matches!(first, Stage1Claim::Claimed { .. }));
    assert_eq!(
        b.try_claim_stage1_job(&id(1), "worker-b", 100, 3600, 8, t)
            .unwrap(),
        Stage1Claim::SkippedRunning
    );

    // Racing threads, each with its own connection, for many jobs.
    let path = home.path().to_path_buf();
    for n in 10..30u32 {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let wins = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|w| {
                let (path, barrier, wins) = (path.clone(), barrier.clone(), wins.clone());
                std::thread::spawn(move || {
                    let mut db = Stage1Db::open_in(&path).unwrap();
                    barrier.wait();
                    let claim = db
                        .try_claim_stage1_job(&id(n), &format!("w{w}"), 100, 3600, 64, t)
                        .unwrap();
                    if matches!(claim, Stage1Claim::Claimed { .. }) {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::SeqCst), 1, "job {n}");
    }
}

#[test]
fn an_expired_lease_is_reclaimed_and_the_old_owner_loses() {
    let home = Home::new();
    let mut a = home.db();
    let mut b = home.db();
    let t = now();
    let Stage1Claim::Claimed {
        ownership_token: old,
    } = a
        .try_claim_stage1_job(&id(1), "a", 100, 3600, 2, t)
        .unwrap()
    else {
        panic!("not claimed")
    };
    assert_eq!(
        b.try_claim_stage1_job(&id(1), "b", 100, 3600, 2, t + 3599)
            .unwrap(),
        Stage1Claim::SkippedRunning
    );
    let Stage1Claim::Claimed {
        ownership_token: new,
    } = b
        .try_claim_stage1_job(&id(1), "b", 100, 3600, 2, t + 3600)
        .unwrap()
    else {
        panic!("expired lease not reclaimed")
    };
    assert_ne!(old, new);
    assert!(!a
        .mark_stage1_succeeded(&id(1), &old, 100, "m", "s", None, t + 3601)
        .unwrap());
    assert!(b
        .mark_stage1_succeeded(&id(1), &new, 100, "m", "s", Some("slug"), t + 3601)
        .unwrap());
    let row = b.stage1_output(&id(1)).unwrap().unwrap();
    assert_eq!(
        (row.raw_memory.as_str(), row.rollout_slug.as_deref()),
        ("m", Some("slug"))
    );
    let job = b.job(JOB_KIND_STAGE1, &id(1)).unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.last_success_watermark),
        ("done", Some(100))
    );
    // Phase 2 was enqueued with the output's time as its watermark.
    let global = b
        .job(JOB_KIND_CONSOLIDATE_GLOBAL, "global")
        .unwrap()
        .unwrap();
    assert_eq!(
        (global.status.as_str(), global.input_watermark),
        ("pending", Some(100))
    );
    // The max running leases bound holds across threads.
    let _ = b
        .try_claim_stage1_job(&id(2), "b", 100, 3600, 1, t)
        .unwrap();
    assert_eq!(
        b.try_claim_stage1_job(&id(3), "b", 100, 3600, 1, t)
            .unwrap(),
        Stage1Claim::SkippedRunning
    );
}

#[test]
fn failures_back_off_then_run_out_until_the_rollout_changes() {
    let home = Home::new();
    let mut db = home.db();
    let t = now();
    for attempt in 0..3 {
        let at = t + attempt * 4000;
        let Stage1Claim::Claimed { ownership_token } = db
            .try_claim_stage1_job(&id(1), "w", 100, 3600, 2, at)
            .unwrap()
        else {
            panic!("attempt {attempt} not claimed")
        };
        assert!(db
            .mark_stage1_failed(&id(1), &ownership_token, "boom", 3600, at)
            .unwrap());
        if attempt == 0 {
            assert_eq!(
                db.try_claim_stage1_job(&id(1), "w", 100, 3600, 2, at + 10)
                    .unwrap(),
                Stage1Claim::SkippedRetryBackoff
            );
        }
    }
    let job = db.job(JOB_KIND_STAGE1, &id(1)).unwrap().unwrap();
    assert_eq!(
        (
            job.status.as_str(),
            job.retry_remaining,
            job.last_error.as_deref()
        ),
        ("error", 0, Some("boom"))
    );
    assert_eq!(
        db.try_claim_stage1_job(&id(1), "w", 100, 3600, 2, t + 20_000)
            .unwrap(),
        Stage1Claim::SkippedRetryExhausted
    );
    // Newer input resets the retries.
    assert!(matches!(
        db.try_claim_stage1_job(&id(1), "w", 200, 3600, 2, t + 20_000)
            .unwrap(),
        Stage1Claim::Claimed { .. }
    ));
    assert_eq!(
        db.job(JOB_KIND_STAGE1, &id(1))
            .unwrap()
            .unwrap()
            .retry_remaining,
        3
    );
}

#[tokio::test]
async fn extraction_writes_a_redacted_stage1_row_and_the_memory_files() {
    let home = Home::new();
    let thread = id(1);
    let path = home.rollout(
        &thread,
        json!("cli"),
        hours(7),
        &[
            item(json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "DEVELOPER RULES"}]})),
            item(json!({"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "# AGENTS.md instructions for /work/project\n\n<INSTRUCTIONS>\nAGENTS BODY\n</INSTRUCTIONS>"},
                {"type": "input_text", "text": "fix the build; my key is sk-proj-ABCDEFGHIJKLMNOPQRSTUV and password: hunter2hunter2"}]})),
            item(json!({"type": "reasoning", "id": "r1", "summary": [{"type": "summary_text", "text": "SECRET THOUGHTS"}]})),
            item(json!({"type": "function_call", "name": "exec_command", "arguments": "{\"cmd\":\"cargo build\"}", "call_id": "c1"})),
            item(json!({"type": "function_call_output", "call_id": "c1", "output": "Finished"})),
            item(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Built."}]})),
            json!({"timestamp": "2026-11-20T10:00:02.000Z", "type": "event_msg", "payload": {"type": "task_complete", "turn_id": "t1"}}),
        ],
    );
    // No database yet: none consolidated, and nothing is created.
    assert_eq!(Stage1Db::count_selected_for_phase2(home.path()).unwrap(), 0);
    assert!(!Stage1Db::path_in(home.path()).exists());
    let extractor = Arc::new(FakeExtractor::default());
    let p = pipeline(&home, extractor.clone(), None);
    let report = p.run_once(vec![]).await.unwrap();
    assert_eq!(report.extracted, vec![thread.clone()], "{report:?}");
    assert_eq!(Stage1Db::count_selected_for_phase2(home.path()).unwrap(), 1);
    assert_eq!(
        report.phase2,
        Phase2Outcome::Succeeded {
            status: "succeeded_deterministic",
            selected: 1
        }
    );

    // What the model was sent.
    let prompts = extractor.prompts();
    assert_eq!(prompts.len(), 1);
    let prompt = &prompts[0];
    assert!(prompt
        .instructions
        .starts_with("## Memory Writing Agent: Phase 1 (Single Rollout)"));
    assert!(prompt.input.starts_with("Analyze this rollout and produce JSON with `raw_memory`, `rollout_summary`, and `rollout_slug`"));
    assert!(prompt
        .input
        .contains(&format!("- rollout_path: {}", path.display())));
    assert!(prompt.input.contains("- rollout_cwd: /work/project"));
    assert!(prompt.input.contains("fix the build"));
    assert!(prompt.input.contains("cargo build") && prompt.input.contains("Built."));
    for hidden in [
        "DEVELOPER RULES",
        "AGENTS BODY",
        "SECRET THOUGHTS",
        "task_complete",
        "ABCDEFGHIJKLMNOPQRSTUV",
        "hunter2hunter2",
    ] {
        assert!(!prompt.input.contains(hidden), "{hidden} was sent");
    }
    assert!(prompt.input.contains("[REDACTED_SECRET]"));
    assert_eq!(
        prompt.output_schema["required"],
        json!(["rollout_summary", "rollout_slug", "raw_memory"])
    );

    // The stage-1 row, redacted.
    let db = home.db();
    let row = db.stage1_output(&thread).unwrap().unwrap();
    assert!(
        row.raw_memory.contains("token=[REDACTED_SECRET]"),
        "{}",
        row.raw_memory
    );
    assert!(row.rollout_summary.contains("Used key [REDACTED_SECRET]."));
    assert_eq!(row.rollout_slug.as_deref(), Some("Fix Build"));
    assert!(row.selected_for_phase2);
    assert_eq!(
        row.selected_for_phase2_source_updated_at,
        Some(row.source_updated_at)
    );
    assert_eq!(
        db.job(JOB_KIND_STAGE1, &thread).unwrap().unwrap().status,
        "done"
    );
    assert_eq!(
        db.job(JOB_KIND_CONSOLIDATE_GLOBAL, "global")
            .unwrap()
            .unwrap()
            .status,
        "done"
    );
    assert_eq!(db.consolidated_thread_count().unwrap(), 1);

    // The files, laid out as upstream lays them out.
    let stem = phase2::rollout_summary_file_stem(&thread, row.source_updated_at, Some("Fix Build"));
    assert!(stem.ends_with("-fix_build"), "{stem}");
    let updated_at = chrono::DateTime::<chrono::Utc>::from_timestamp(row.source_updated_at, 0)
        .unwrap()
        .to_rfc3339();
    let summary =
        std::fs::read_to_string(home.memories().join(format!("rollout_summaries/{stem}.md")))
            .unwrap();
    assert_eq!(
        summary,
        format!("thread_id: {thread}\nupdated_at: {updated_at}\nrollout_path: {}\ncwd: /work/project\ngit_branch: main\n\n{}\n", path.display(), row.rollout_summary)
    );
    let raw = std::fs::read_to_string(home.memories().join("raw_memories.md")).unwrap();
    assert_eq!(
        raw,
        format!(
            "# Raw Memories\n\nMerged stage-1 raw memories (latest first):\n\n## Thread `{thread}`\nupdated_at: {updated_at}\ncwd: /work/project\nrollout_path: {}\nrollout_summary_file: {stem}.md\n\n{}\n\n",
            path.display(),
            row.raw_memory.trim()
        )
    );
    // The deterministic consolidation: valid for the read path, bounded.
    phase2::validate_artifacts(&home.memories()).unwrap();
    let memory = std::fs::read_to_string(home.memories().join("MEMORY.md")).unwrap();
    assert!(memory.starts_with("# Task Group: /work/project"));
    assert!(memory.contains(&format!("- rollout_summaries/{stem}.md (cwd=/work/project")));
    assert!(memory.contains("- cargo, build"));
    assert!(memory.len() <= phase2::FALLBACK_MEMORY_MAX_CHARS);
    let summary_md = std::fs::read_to_string(home.memories().join("memory_summary.md")).unwrap();
    assert!(summary_md.starts_with("v1\n\n## User Profile\n"));
    assert!(summary_md.contains("- keep diffs small"));
    assert!(summary_md.len() <= phase2::FALLBACK_SUMMARY_MAX_CHARS);
    assert!(!home.memories().join("phase2_workspace_diff.md").exists());

    // Nothing new: no extraction, and phase 2 is in its cooldown.
    let again = p.run_once(vec![]).await.unwrap();
    assert!(again.claimed.is_empty());
    assert_eq!(
        again.phase2,
        Phase2Outcome::Skipped("SkippedCooldown".into())
    );
}

#[tokio::test]
async fn an_invalid_answer_fails_the_job_with_a_retry() {
    let home = Home::new();
    home.rollout(&id(1), json!("cli"), hours(7), &[]);
    let p = pipeline(
        &home,
        FakeExtractor::answering("Sorry, I can't produce that."),
        None,
    );
    let report = p.run_once(vec![]).await.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].1.contains("invalid stage-1 output"),
        "{:?}",
        report.failed
    );
    let job = home.db().job(JOB_KIND_STAGE1, &id(1)).unwrap().unwrap();
    assert_eq!(job.status, "error");
    assert_eq!(job.retry_remaining, 2);
    assert!(job.retry_at.unwrap() > now());
    assert!(home.db().stage1_output(&id(1)).unwrap().is_none());
    // In backoff: the next pass leaves it alone.
    assert!(p.run_once(vec![]).await.unwrap().claimed.is_empty());
}

#[tokio::test]
async fn an_empty_answer_is_no_output() {
    let home = Home::new();
    home.rollout(&id(1), json!("cli"), hours(7), &[]);
    let p = pipeline(
        &home,
        FakeExtractor::answering(r#"{"rollout_summary":"","rollout_slug":"","raw_memory":""}"#),
        None,
    );
    let report = p.run_once(vec![]).await.unwrap();
    assert_eq!(report.no_output, vec![id(1)]);
    assert_eq!(
        report.phase2,
        Phase2Outcome::Succeeded {
            status: "succeeded_no_input",
            selected: 0
        }
    );
    assert_eq!(
        home.db()
            .job(JOB_KIND_STAGE1, &id(1))
            .unwrap()
            .unwrap()
            .status,
        "done"
    );
    // Nothing was ever selected: the folder is not this database's to
    // rewrite.
    assert!(!home.memories().join("raw_memories.md").exists());
}

/// Regression: a fresh `memories_1.sqlite` beside memory files it did not
/// write (a user's, upstream's) used to delete `MEMORY.md` and
/// `memory_summary.md` on the first pass.
#[tokio::test]
async fn files_the_database_did_not_write_survive_an_empty_selection() {
    let home = Home::new();
    std::fs::create_dir_all(home.memories()).unwrap();
    std::fs::write(
        home.memories().join("MEMORY.md"),
        "# Tabs\nThe user likes tabs.\n",
    )
    .unwrap();
    std::fs::write(home.memories().join("memory_summary.md"), "v1\n\n- tabs\n").unwrap();
    let p = pipeline(&home, FakeExtractor::answering("{}"), None);
    let report = p.run_once(vec![]).await.unwrap();
    assert_eq!(
        report.phase2,
        Phase2Outcome::Succeeded {
            status: "succeeded_no_input",
            selected: 0
        }
    );
    assert_eq!(
        std::fs::read_to_string(home.memories().join("MEMORY.md")).unwrap(),
        "# Tabs\nThe user likes tabs.\n"
    );
    assert!(home.memories().join("memory_summary.md").exists());
}

/// A consolidation agent: records its job and whether the diff was there,
/// then writes (or not) the artifacts.
struct FakeAgent {
    write_valid: bool,
    jobs: Mutex<Vec<(ConsolidationJob, Option<String>)>>,
}

impl Consolidator for FakeAgent {
    fn consolidate(&self, job: ConsolidationJob) -> BoxFuture<'_, Result<(), ModelError>> {
        let diff = std::fs::read_to_string(job.cwd.join("phase2_workspace_diff.md")).ok();
        if self.write_valid {
            std::fs::write(job.cwd.join("MEMORY.md"), "# Task Group: agent\n").unwrap();
            std::fs::write(job.cwd.join("memory_summary.md"), "v1\n\n## User Profile\n").unwrap();
        }
        self.jobs.lock().unwrap().push((job, diff));
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn phase2_runs_the_agent_prunes_stale_summaries_and_validates_what_it_left() {
    let home = Home::new();
    home.rollout(&id(1), json!("cli"), hours(7), &[]);
    let stale = home
        .memories()
        .join("rollout_summaries/2020-01-01T00-00-00-abcd-old.md");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "thread_id: gone\n").unwrap();
    let agent = Arc::new(FakeAgent {
        write_valid: false,
        jobs: Mutex::default(),
    });
    let p = pipeline(
        &home,
        Arc::new(FakeExtractor::default()),
        Some(agent.clone()),
    );
    let report = p.run_once(vec![]).await.unwrap();
    let Phase2Outcome::Failed { status, .. } = &report.phase2 else {
        panic!("{report:?}")
    };
    assert_eq!(*status, "failed_invalid_artifacts");
    let job = home
        .db()
        .job(JOB_KIND_CONSOLIDATE_GLOBAL, "global")
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.status.as_str(), job.last_error.as_deref()),
        ("error", Some("failed_invalid_artifacts"))
    );
    assert!(!stale.exists(), "a summary no longer selected is removed");
    assert!(!home.memories().join("phase2_workspace_diff.md").exists());
    assert!(
        !home
            .db()
            .stage1_output(&id(1))
            .unwrap()
            .unwrap()
            .selected_for_phase2
    );

    let jobs = agent.jobs.lock().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    let (job, diff) = &jobs[0];
    let root = home.memories();
    assert!(job
        .prompt
        .starts_with("## Memory Writing Agent: Phase 2 (Consolidation)"));
    assert!(job
        .prompt
        .contains(&format!("Folder structure (under {}/):", root.display())));
    assert!(job
        .prompt
        .contains("Read\n`phase2_workspace_diff.md` in this same folder first."));
    assert!(!job.prompt.contains("{{"));
    assert_eq!(job.cwd, root);
    assert_eq!(
        job.sandbox_policy,
        SandboxPolicy::WorkspaceWrite {
            writable_roots: vec![root.clone()],
            network_access: false,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: true
        }
    );
    assert_eq!(job.approval_policy, AskForApproval::Never);
    assert_eq!(job.subagent_source, "memory_consolidation");
    assert!(job.ephemeral && !job.generate_memories && !job.use_memories);
    let diff = diff
        .as_deref()
        .expect("the diff is there while the agent runs");
    assert!(diff.starts_with(
        "# Memory Workspace Diff\n\nGenerated by Codex before Phase 2 memory consolidation."
    ));
    assert!(diff.contains("- deleted rollout_summaries/2020-01-01T00-00-00-abcd-old.md"));
    assert!(diff.contains("- added raw_memories.md"));
    assert!(diff.contains(&format!("- selected thread {}", id(1))));

    // A second home where the agent does its job.
    let home = Home::new();
    home.rollout(&id(2), json!("cli"), hours(7), &[]);
    let agent = Arc::new(FakeAgent {
        write_valid: true,
        jobs: Mutex::default(),
    });
    let p = pipeline(&home, Arc::new(FakeExtractor::default()), Some(agent));
    let report = p.run_once(vec![]).await.unwrap();
    assert_eq!(
        report.phase2,
        Phase2Outcome::Succeeded {
            status: "succeeded",
            selected: 1
        }
    );
    assert!(
        home.db()
            .stage1_output(&id(2))
            .unwrap()
            .unwrap()
            .selected_for_phase2
    );
}

#[test]
fn phase2_selection_ranks_by_usage_and_drops_unused_memories() {
    let home = Home::new();
    let mut db = home.db();
    let t = now();
    let day = 86_400;
    for (n, updated) in [
        (1, t - 2 * day),
        (2, t - day),
        (3, t - 3 * day),
        (4, t - 40 * day),
    ] {
        let Stage1Claim::Claimed { ownership_token } = db
            .try_claim_stage1_job(&id(n), "w", updated, 3600, 8, t)
            .unwrap()
        else {
            panic!()
        };
        db.mark_stage1_succeeded(
            &id(n),
            &ownership_token,
            updated,
            &format!("m{n}"),
            "s",
            None,
            t,
        )
        .unwrap();
    }
    assert_eq!(db.record_usage(&[id(3), id(3), id(9)], t).unwrap(), 2);
    let pick = |n: usize| -> Vec<String> {
        db.phase2_input_selection(n, 30, t, |_| true)
            .unwrap()
            .into_iter()
            .map(|o| o.thread_id)
            .collect()
    };
    // 4 is unused for 40 days; 3 is used, so first; then most recent; the
    // kept ones come back in thread-id order.
    assert_eq!(pick(10), vec![id(1), id(2), id(3)]);
    assert_eq!(pick(2), vec![id(2), id(3)]);
    // A thread whose rollout is gone is not selected.
    let only: Vec<String> = db
        .phase2_input_selection(10, 30, t, |x| x != id(3))
        .unwrap()
        .into_iter()
        .map(|o| o.thread_id)
        .collect();
    assert_eq!(only, vec![id(1), id(2)]);
    // Retention pruning removes the unused one.
    assert_eq!(db.prune_for_retention(30, 200, t).unwrap(), 1);
    assert!(db.stage1_output(&id(4)).unwrap().is_none());
}

#[tokio::test]
async fn reset_empties_the_database_and_the_memory_folder() {
    let home = Home::new();
    home.rollout(&id(1), json!("cli"), hours(7), &[]);
    let p = pipeline(&home, Arc::new(FakeExtractor::default()), None);
    p.run_once(vec![]).await.unwrap();
    assert!(home.memories().join("MEMORY.md").exists());
    p.reset().await.unwrap();
    let db = home.db();
    assert!(db.all_outputs().unwrap().is_empty());
    assert!(db.job(JOB_KIND_STAGE1, &id(1)).unwrap().is_none());
    assert!(db
        .job(JOB_KIND_CONSOLIDATE_GLOBAL, "global")
        .unwrap()
        .is_none());
    assert_eq!(std::fs::read_dir(home.memories()).unwrap().count(), 0);
}

/// Blocks every extraction until released; says when one started.
struct GatedExtractor {
    started: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
    calls: AtomicUsize,
}

impl Extractor for GatedExtractor {
    fn extract(&self, _prompt: ExtractionPrompt) -> BoxFuture<'_, Result<String, ModelError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.started.notify_one();
            let _permit = self
                .release
                .acquire()
                .await
                .map_err(|e| Box::new(e) as ModelError)?;
            Ok(r##"{"raw_memory":"m","rollout_summary":"# s","rollout_slug":null}"##.to_string())
        })
    }
}

fn gated() -> Arc<GatedExtractor> {
    Arc::new(GatedExtractor {
        started: tokio::sync::Notify::new(),
        release: tokio::sync::Semaphore::new(0),
        calls: AtomicUsize::new(0),
    })
}

#[tokio::test]
async fn triggers_during_a_pass_coalesce_into_one_follow_up() {
    let home = Home::new();
    home.rollout(&id(1), json!("cli"), hours(7), &[]);
    let extractor = gated();
    let p = pipeline(&home, extractor.clone(), None);
    assert_eq!(p.trigger(vec![]), Trigger::Started);
    tokio::time::timeout(WAIT, extractor.started.notified())
        .await
        .unwrap();
    assert_eq!(p.trigger(vec![]), Trigger::Coalesced);
    assert_eq!(p.trigger(vec![]), Trigger::Coalesced);
    assert!(matches!(
        p.run_once(vec![]).await,
        Err(codex_core::memory::pipeline::PipelineError::Busy)
    ));
    extractor.release.add_permits(10);
    let last = tokio::time::timeout(WAIT, p.wait_idle())
        .await
        .unwrap()
        .unwrap();
    // One follow-up pass carried both triggers; it had nothing to extract.
    assert_eq!(last.coalesced_triggers, 2);
    assert!(last.claimed.is_empty());
    assert_eq!(extractor.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cancelling_a_pass_gives_the_lease_back() {
    let home = Home::new();
    home.rollout(&id(1), json!("cli"), hours(7), &[]);
    let extractor = gated();
    let p = pipeline(&home, extractor.clone(), None);
    assert_eq!(p.trigger(vec![]), Trigger::Started);
    tokio::time::timeout(WAIT, extractor.started.notified())
        .await
        .unwrap();
    p.cancel();
    let report = tokio::time::timeout(WAIT, p.wait_idle())
        .await
        .unwrap()
        .unwrap();
    assert!(report.cancelled);
    assert_eq!(report.phase2, Phase2Outcome::NotRun);
    let job = home.db().job(JOB_KIND_STAGE1, &id(1)).unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.lease_until, job.retry_remaining),
        ("pending", None, 3)
    );
    assert_eq!(p.trigger(vec![]), Trigger::Cancelled);
}

#[tokio::test]
async fn a_thread_filter_keeps_disabled_threads_out_and_usage_is_counted() {
    let home = Home::new();
    home.rollout(&id(1), json!("cli"), hours(7), &[]);
    home.rollout(&id(2), json!("cli"), hours(8), &[]);
    let p = pipeline(&home, Arc::new(FakeExtractor::default()), None);
    let disabled = id(2);
    p.set_thread_filter(Arc::new(move |t: &str| t != disabled));
    let report = p.run_once(vec![]).await.unwrap();
    assert_eq!(report.claimed, vec![id(1)]);
    assert_eq!(
        report.phase2,
        Phase2Outcome::Succeeded {
            status: "succeeded_deterministic",
            selected: 1
        }
    );
    assert_eq!(p.record_usage(vec![id(1), id(2)]).await.unwrap(), 1);
    let row = home.db().stage1_output(&id(1)).unwrap().unwrap();
    assert_eq!(row.usage_count, Some(1));
    assert!(row.last_usage.is_some());
}

#[test]
fn a_database_upstream_created_opens_as_is() {
    use sha2::Digest;
    let home = Home::new();
    let path = home.path().join("memories_1.sqlite");
    {
        // What sqlx leaves: the bookkeeping table, upstream's two
        // migrations, and a newer one we do not know.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
                checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
        )
        .unwrap();
        let m1 = include_str!("../src/memory/pipeline/migrations/0001_memories.sql");
        let m2 = include_str!("../src/memory/pipeline/migrations/0002_consolidation_progress.sql");
        for (v, d, sql) in [
            (1, "memories", m1),
            (2, "consolidation progress", m2),
            (3, "future", "CREATE TABLE future_table (x INTEGER);"),
        ] {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?1, ?2, 1, ?3, 7)",
                rusqlite::params![v, d, sha2::Sha384::digest(sql.as_bytes()).to_vec()],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO stage1_outputs (thread_id, source_updated_at, raw_memory, rollout_summary, rollout_slug, generated_at)
             VALUES ('t', 100, 'upstream memory', 'upstream summary', NULL, 101)",
            [],
        )
        .unwrap();
    }
    let db = home.db();
    let row = db.stage1_output("t").unwrap().unwrap();
    assert_eq!(
        (row.raw_memory.as_str(), row.rollout_slug),
        ("upstream memory", None)
    );
    drop(db);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3, "nothing re-applied or recorded twice");

    // A migration with other content is refused rather than written over.
    conn.execute(
        "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let err = Stage1Db::open_in(home.path()).unwrap_err();
    assert!(err.to_string().contains("migration 2"), "{err}");
}

/// The remote lane's extractor sends upstream's phase-1 request (the
/// instructions, the history as one user message, the strict schema) over
/// real HTTP and hands back the assistant's text.
#[tokio::test]
async fn the_model_extractor_sends_the_phase1_request_and_returns_the_answer() {
    use codex_core::client::{model_service, ClientIdentity, Credentials};
    use codex_core::memory::pipeline::ModelExtractor;
    use codex_test_support::sse;
    let answer = r#"{"rollout_summary":"s","rollout_slug":"x","raw_memory":"m"}"#;
    let mock =
        codex_test_support::mock_server::MockModelServer::start(vec![sse::message(answer)]).await;
    let providers = codex_core::config::built_in_providers(Some(mock.url()));
    let service = model_service(
        &providers["openai"],
        Credentials::Bearer("k".into()),
        ClientIdentity::new("codex_memory"),
    )
    .unwrap();
    let extractor = ModelExtractor::new(service, "mini-model");
    let prompt = ExtractionPrompt {
        thread_id: "t-1".into(),
        instructions: "extract memories".into(),
        input: "the history".into(),
        output_schema: phase1::output_schema(),
        reasoning_effort: "low",
    };
    let text = tokio::time::timeout(WAIT, extractor.extract(prompt))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text, answer);
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    assert_eq!(body["model"], "mini-model");
    assert_eq!(body["reasoning"]["effort"], "low");
    assert_eq!(body["text"]["format"]["type"], "json_schema");
    let input = body["input"].to_string();
    assert!(
        input.contains("extract memories") && input.contains("the history"),
        "{input}"
    );
}
