//! Upstream's `$CODEX_HOME/memories_1.sqlite`: stage-1 outputs, the leased
//! `jobs` of both phases, and `consolidation_progress`.
//!
//! The schema and the migration bookkeeping are upstream's byte for byte
//! (sqlx's `_sqlx_migrations` with the SHA-384 of each migration file), so a
//! database either side created is one the other opens. Every statement that
//! changes a job runs under `BEGIN IMMEDIATE` and is guarded by the row's
//! state, so two connections racing for a lease never both win. Time is
//! always passed in (`now`, Unix seconds) so leases and backoff are testable
//! without sleeping.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha384};

use super::error::PipelineError;

/// File name under `$CODEX_HOME`.
pub const MEMORIES_DB_FILENAME: &str = "memories_1.sqlite";
pub const JOB_KIND_STAGE1: &str = "memory_stage1";
pub const JOB_KIND_CONSOLIDATE_GLOBAL: &str = "memory_consolidate_global";
pub const CONSOLIDATION_JOB_KEY: &str = "global";
/// Attempts a job gets before it stops being retried (until its input
/// changes).
pub const DEFAULT_RETRY_REMAINING: i64 = 3;
/// After a successful consolidation, phase 2 is not claimed again for this
/// long (upstream: 6 h).
pub const PHASE2_SUCCESS_COOLDOWN_SECONDS: i64 = 6 * 60 * 60;
/// How long a connection waits for another's write lock.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Upstream's migrations, exact bytes (the checksum is over them).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "memories", include_str!("migrations/0001_memories.sql")),
    (
        2,
        "consolidation progress",
        include_str!("migrations/0002_consolidation_progress.sql"),
    ),
];

const SQLX_MIGRATIONS_DDL: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);";

/// A stage-1 output row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage1Output {
    pub thread_id: String,
    /// The rollout's last-update time (Unix seconds) the output was made
    /// from.
    pub source_updated_at: i64,
    pub raw_memory: String,
    pub rollout_summary: String,
    pub rollout_slug: Option<String>,
    pub generated_at: i64,
    pub usage_count: Option<i64>,
    pub last_usage: Option<i64>,
    pub selected_for_phase2: bool,
    pub selected_for_phase2_source_updated_at: Option<i64>,
}

/// A `jobs` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub kind: String,
    pub job_key: String,
    pub status: String,
    pub worker_id: Option<String>,
    pub ownership_token: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub lease_until: Option<i64>,
    pub retry_at: Option<i64>,
    pub retry_remaining: i64,
    pub last_error: Option<String>,
    pub input_watermark: Option<i64>,
    pub last_success_watermark: Option<i64>,
}

/// The result of trying to claim a stage-1 job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage1Claim {
    Claimed { ownership_token: String },
    SkippedUpToDate,
    SkippedRunning,
    SkippedRetryBackoff,
    SkippedRetryExhausted,
}

/// The result of trying to claim the global phase-2 job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase2Claim {
    Claimed {
        ownership_token: String,
        input_watermark: i64,
    },
    SkippedRetryUnavailable,
    SkippedRunning,
    SkippedCooldown,
}

/// One connection to `memories_1.sqlite`.
pub struct Stage1Db {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Stage1Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage1Db")
            .field("path", &self.path)
            .finish()
    }
}

impl Stage1Db {
    /// `$CODEX_HOME/memories_1.sqlite`.
    pub fn path_in(codex_home: &Path) -> PathBuf {
        codex_home.join(MEMORIES_DB_FILENAME)
    }

    /// Opens (creating and migrating as needed) the database in
    /// `codex_home`.
    pub fn open_in(codex_home: &Path) -> Result<Self, PipelineError> {
        Self::open(&Self::path_in(codex_home), DEFAULT_BUSY_TIMEOUT)
    }

    /// Opens the database at `path` in WAL mode; writes wait up to
    /// `busy_timeout` for another connection's lock.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, PipelineError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| PipelineError::sqlite(path, e))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| PipelineError::sqlite(path, e))?;
        // `journal_mode` answers with the mode; WAL persists in the file.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| PipelineError::sqlite(path, e))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(|e| PipelineError::sqlite(path, e))?;
        let mut db = Self {
            conn,
            path: path.to_path_buf(),
        };
        db.migrate()?;
        Ok(db)
    }

    /// Stage-1 outputs the last successful phase 2 selected (`memory/status`
    /// counts them), read through a read-only connection: nothing is
    /// created or migrated, and no database (or no table yet) is 0.
    pub fn count_selected_for_phase2(codex_home: &Path) -> Result<u64, PipelineError> {
        let path = Self::path_in(codex_home);
        if !path.exists() {
            return Ok(0);
        }
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| PipelineError::sqlite(&path, e))?;
        conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)
            .map_err(|e| PipelineError::sqlite(&path, e))?;
        let has_table: bool = conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stage1_outputs')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| PipelineError::sqlite(&path, e))?;
        if !has_table {
            return Ok(0);
        }
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM stage1_outputs WHERE selected_for_phase2 != 0",
                [],
                |r| r.get(0),
            )
            .map_err(|e| PipelineError::sqlite(&path, e))?;
        Ok(n.max(0) as u64)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> PipelineError {
        PipelineError::sqlite(&self.path, e)
    }

    /// Applies upstream's migrations that are missing, recording them the way
    /// sqlx does. Versions newer than ours (a newer upstream) are left alone.
    fn migrate(&mut self) -> Result<(), PipelineError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| PipelineError::sqlite(&path, e))?;
        tx.execute_batch(SQLX_MIGRATIONS_DDL)
            .map_err(|e| PipelineError::sqlite(&path, e))?;
        for (version, description, sql) in MIGRATIONS {
            let checksum = Sha384::digest(sql.as_bytes()).to_vec();
            let applied: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT checksum FROM _sqlx_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| PipelineError::sqlite(&path, e))?;
            match applied {
                Some(existing) if existing == checksum => continue,
                Some(_) => {
                    return Err(PipelineError::MigrationMismatch {
                        path,
                        version: *version,
                    })
                }
                None => {}
            }
            // A database whose tables exist without bookkeeping (created by
            // a tool that skipped sqlx) keeps its tables.
            let first_table = match version {
                1 => "stage1_outputs",
                _ => "consolidation_progress",
            };
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                    [first_table],
                    |r| r.get(0),
                )
                .map_err(|e| PipelineError::sqlite(&path, e))?;
            if !exists {
                tx.execute_batch(sql)
                    .map_err(|e| PipelineError::sqlite(&path, e))?;
            }
            tx.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (?1, ?2, 1, ?3, 0)",
                params![version, description, checksum],
            )
            .map_err(|e| PipelineError::sqlite(&path, e))?;
        }
        tx.commit().map_err(|e| PipelineError::sqlite(&path, e))
    }

    /// Whether `thread_id` at `source_updated_at` still needs extraction (no
    /// output or job success at or after that time).
    pub fn stage1_needs_update(
        &self,
        thread_id: &str,
        source_updated_at: i64,
    ) -> Result<bool, PipelineError> {
        let output: Option<i64> = self
            .conn
            .query_row(
                "SELECT source_updated_at FROM stage1_outputs WHERE thread_id = ?1",
                [thread_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if output.is_some_and(|at| at >= source_updated_at) {
            return Ok(false);
        }
        let watermark: Option<Option<i64>> = self
            .conn
            .query_row(
                "SELECT last_success_watermark FROM jobs WHERE kind = ?1 AND job_key = ?2",
                params![JOB_KIND_STAGE1, thread_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(watermark.flatten().is_none_or(|w| w < source_updated_at))
    }

    /// Tries to lease the stage-1 job of `thread_id` for `lease_seconds`.
    ///
    /// As upstream: skipped when already extracted at or after
    /// `source_updated_at`; otherwise claimed only if fewer than
    /// `max_running_jobs` other stage-1 leases are live, the row is not
    /// under a live lease, its retry backoff has passed and retries remain
    /// (a newer `source_updated_at` lifts both and resets the retries).
    pub fn try_claim_stage1_job(
        &mut self,
        thread_id: &str,
        worker_id: &str,
        source_updated_at: i64,
        lease_seconds: i64,
        max_running_jobs: usize,
        now: i64,
    ) -> Result<Stage1Claim, PipelineError> {
        let path = self.path.clone();
        let sql_err = |e| PipelineError::sqlite(&path, e);
        let lease_until = now.saturating_add(lease_seconds.max(0));
        let max_running = i64::try_from(max_running_jobs).unwrap_or(i64::MAX);
        let token = uuid::Uuid::new_v4().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let output: Option<i64> = tx
            .query_row(
                "SELECT source_updated_at FROM stage1_outputs WHERE thread_id = ?1",
                [thread_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        if output.is_some_and(|at| at >= source_updated_at) {
            tx.commit().map_err(sql_err)?;
            return Ok(Stage1Claim::SkippedUpToDate);
        }
        let watermark: Option<Option<i64>> = tx
            .query_row(
                "SELECT last_success_watermark FROM jobs WHERE kind = ?1 AND job_key = ?2",
                params![JOB_KIND_STAGE1, thread_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        if watermark.flatten().is_some_and(|w| w >= source_updated_at) {
            tx.commit().map_err(sql_err)?;
            return Ok(Stage1Claim::SkippedUpToDate);
        }
        let changed = tx
            .execute(
                "INSERT INTO jobs (kind, job_key, status, worker_id, ownership_token, started_at,
                    finished_at, lease_until, retry_at, retry_remaining, last_error,
                    input_watermark, last_success_watermark)
                 SELECT ?1, ?2, 'running', ?3, ?4, ?5, NULL, ?6, NULL, ?7, NULL, ?8, NULL
                 WHERE (SELECT COUNT(*) FROM jobs WHERE kind = ?1 AND status = 'running'
                        AND lease_until IS NOT NULL AND lease_until > ?5) < ?9
                 ON CONFLICT(kind, job_key) DO UPDATE SET
                    status = 'running',
                    worker_id = excluded.worker_id,
                    ownership_token = excluded.ownership_token,
                    started_at = excluded.started_at,
                    finished_at = NULL,
                    lease_until = excluded.lease_until,
                    retry_at = NULL,
                    retry_remaining = CASE
                        WHEN excluded.input_watermark > COALESCE(jobs.input_watermark, -1) THEN ?7
                        ELSE jobs.retry_remaining
                    END,
                    last_error = NULL,
                    input_watermark = excluded.input_watermark
                 WHERE (jobs.status != 'running' OR jobs.lease_until IS NULL
                        OR jobs.lease_until <= excluded.started_at)
                   AND (jobs.retry_at IS NULL OR jobs.retry_at <= excluded.started_at
                        OR excluded.input_watermark > COALESCE(jobs.input_watermark, -1))
                   AND (jobs.retry_remaining > 0
                        OR excluded.input_watermark > COALESCE(jobs.input_watermark, -1))
                   AND (SELECT COUNT(*) FROM jobs AS running_jobs
                        WHERE running_jobs.kind = excluded.kind
                          AND running_jobs.status = 'running'
                          AND running_jobs.lease_until IS NOT NULL
                          AND running_jobs.lease_until > excluded.started_at
                          AND running_jobs.job_key != excluded.job_key) < ?9",
                params![
                    JOB_KIND_STAGE1,
                    thread_id,
                    worker_id,
                    token,
                    now,
                    lease_until,
                    DEFAULT_RETRY_REMAINING,
                    source_updated_at,
                    max_running,
                ],
            )
            .map_err(sql_err)?;
        if changed > 0 {
            tx.commit().map_err(sql_err)?;
            return Ok(Stage1Claim::Claimed {
                ownership_token: token,
            });
        }
        let existing = tx
            .query_row(
                "SELECT status, lease_until, retry_at, retry_remaining FROM jobs
                 WHERE kind = ?1 AND job_key = ?2",
                params![JOB_KIND_STAGE1, thread_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        Ok(match existing {
            Some((_, _, _, retries)) if retries <= 0 => Stage1Claim::SkippedRetryExhausted,
            Some((_, _, Some(retry_at), _)) if retry_at > now => Stage1Claim::SkippedRetryBackoff,
            _ => Stage1Claim::SkippedRunning,
        })
    }

    /// Finishes an owned stage-1 job with output: the job is `done`, the
    /// output is upserted (never replaced by an older snapshot; the
    /// previous phase-2 selection flags are kept) and phase 2 is enqueued.
    /// `false` when the lease was lost.
    #[allow(clippy::too_many_arguments)]
    pub fn mark_stage1_succeeded(
        &mut self,
        thread_id: &str,
        ownership_token: &str,
        source_updated_at: i64,
        raw_memory: &str,
        rollout_summary: &str,
        rollout_slug: Option<&str>,
        now: i64,
    ) -> Result<bool, PipelineError> {
        let path = self.path.clone();
        let sql_err = |e| PipelineError::sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let changed = finish_stage1_job(&tx, thread_id, ownership_token, now).map_err(sql_err)?;
        if changed == 0 {
            tx.commit().map_err(sql_err)?;
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO stage1_outputs (thread_id, source_updated_at, raw_memory, rollout_summary,
                rollout_slug, generated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(thread_id) DO UPDATE SET
                source_updated_at = excluded.source_updated_at,
                raw_memory = excluded.raw_memory,
                rollout_summary = excluded.rollout_summary,
                rollout_slug = excluded.rollout_slug,
                generated_at = excluded.generated_at
             WHERE excluded.source_updated_at >= stage1_outputs.source_updated_at",
            params![
                thread_id,
                source_updated_at,
                raw_memory,
                rollout_summary,
                rollout_slug,
                now
            ],
        )
        .map_err(sql_err)?;
        enqueue_consolidation(&tx, source_updated_at).map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        Ok(true)
    }

    /// Finishes an owned stage-1 job that produced nothing worth keeping: an
    /// earlier output of the thread is deleted (and phase 2 enqueued so it is
    /// forgotten).
    pub fn mark_stage1_succeeded_no_output(
        &mut self,
        thread_id: &str,
        ownership_token: &str,
        now: i64,
    ) -> Result<bool, PipelineError> {
        let path = self.path.clone();
        let sql_err = |e| PipelineError::sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let changed = finish_stage1_job(&tx, thread_id, ownership_token, now).map_err(sql_err)?;
        if changed == 0 {
            tx.commit().map_err(sql_err)?;
            return Ok(false);
        }
        let watermark: Option<i64> = tx
            .query_row(
                "SELECT input_watermark FROM jobs WHERE kind = ?1 AND job_key = ?2",
                params![JOB_KIND_STAGE1, thread_id],
                |r| r.get(0),
            )
            .map_err(sql_err)?;
        let deleted = tx
            .execute(
                "DELETE FROM stage1_outputs WHERE thread_id = ?1",
                [thread_id],
            )
            .map_err(sql_err)?;
        if deleted > 0 {
            enqueue_consolidation(&tx, watermark.unwrap_or(now)).map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)?;
        Ok(true)
    }

    /// Fails an owned stage-1 job: `error`, one retry fewer, retried after
    /// `retry_delay_seconds`.
    pub fn mark_stage1_failed(
        &self,
        thread_id: &str,
        ownership_token: &str,
        reason: &str,
        retry_delay_seconds: i64,
        now: i64,
    ) -> Result<bool, PipelineError> {
        let retry_at = now.saturating_add(retry_delay_seconds.max(0));
        let changed = self
            .conn
            .execute(
                "UPDATE jobs SET status = 'error', finished_at = ?1, lease_until = NULL,
                    retry_at = ?2, retry_remaining = retry_remaining - 1, last_error = ?3
                 WHERE kind = ?4 AND job_key = ?5 AND status = 'running' AND ownership_token = ?6",
                params![
                    now,
                    retry_at,
                    reason,
                    JOB_KIND_STAGE1,
                    thread_id,
                    ownership_token
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    /// Gives back an owned stage-1 lease without spending a retry (the pass
    /// was cancelled); the next pass may claim the job at once.
    pub fn release_stage1_lease(
        &self,
        thread_id: &str,
        ownership_token: &str,
    ) -> Result<bool, PipelineError> {
        let changed = self
            .conn
            .execute(
                "UPDATE jobs SET status = 'pending', lease_until = NULL, ownership_token = NULL
                 WHERE kind = ?1 AND job_key = ?2 AND status = 'running' AND ownership_token = ?3",
                params![JOB_KIND_STAGE1, thread_id, ownership_token],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    /// Tries to take the single global phase-2 lease.
    pub fn try_claim_phase2(
        &mut self,
        worker_id: &str,
        lease_seconds: i64,
        now: i64,
    ) -> Result<Phase2Claim, PipelineError> {
        let path = self.path.clone();
        let sql_err = |e| PipelineError::sqlite(&path, e);
        let lease_until = now.saturating_add(lease_seconds.max(0));
        let cooldown_cutoff = now.saturating_sub(PHASE2_SUCCESS_COOLDOWN_SECONDS);
        let token = uuid::Uuid::new_v4().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let existing = tx
            .query_row(
                "SELECT status, lease_until, retry_at, input_watermark, finished_at, last_error
                 FROM jobs WHERE kind = ?1 AND job_key = ?2",
                params![JOB_KIND_CONSOLIDATE_GLOBAL, CONSOLIDATION_JOB_KEY],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(sql_err)?;
        let Some((status, lease, retry_at, watermark, finished_at, last_error)) = existing else {
            let inserted = tx
                .execute(
                    "INSERT INTO jobs (kind, job_key, status, worker_id, ownership_token, started_at,
                        finished_at, lease_until, retry_at, retry_remaining, last_error,
                        input_watermark, last_success_watermark)
                     VALUES (?1, ?2, 'running', ?3, ?4, ?5, NULL, ?6, NULL, ?7, NULL, 0, 0)",
                    params![
                        JOB_KIND_CONSOLIDATE_GLOBAL,
                        CONSOLIDATION_JOB_KEY,
                        worker_id,
                        token,
                        now,
                        lease_until,
                        DEFAULT_RETRY_REMAINING
                    ],
                )
                .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            return Ok(if inserted == 0 {
                Phase2Claim::SkippedRunning
            } else {
                Phase2Claim::Claimed {
                    ownership_token: token,
                    input_watermark: 0,
                }
            });
        };
        let outcome = if retry_at.is_some_and(|at| at > now) {
            Some(Phase2Claim::SkippedRetryUnavailable)
        } else if status == "running" && lease.is_some_and(|until| until > now) {
            Some(Phase2Claim::SkippedRunning)
        } else if last_error.is_none() && finished_at.is_some_and(|at| at > cooldown_cutoff) {
            Some(Phase2Claim::SkippedCooldown)
        } else {
            None
        };
        if let Some(outcome) = outcome {
            tx.commit().map_err(sql_err)?;
            return Ok(outcome);
        }
        let changed = tx
            .execute(
                "UPDATE jobs SET status = 'running', worker_id = ?1, ownership_token = ?2,
                    started_at = ?3, finished_at = NULL, lease_until = ?4, retry_at = NULL,
                    last_error = NULL
                 WHERE kind = ?5 AND job_key = ?6
                   AND (status != 'running' OR lease_until IS NULL OR lease_until <= ?3)
                   AND (retry_at IS NULL OR retry_at <= ?3)
                   AND (last_error IS NOT NULL OR finished_at IS NULL OR finished_at <= ?7)",
                params![
                    worker_id,
                    token,
                    now,
                    lease_until,
                    JOB_KIND_CONSOLIDATE_GLOBAL,
                    CONSOLIDATION_JOB_KEY,
                    cooldown_cutoff
                ],
            )
            .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        Ok(if changed == 0 {
            Phase2Claim::SkippedRunning
        } else {
            Phase2Claim::Claimed {
                ownership_token: token,
                input_watermark: watermark.unwrap_or(0),
            }
        })
    }

    /// Extends an owned phase-2 lease; `false` when it was lost.
    pub fn heartbeat_phase2(
        &self,
        ownership_token: &str,
        lease_seconds: i64,
        now: i64,
    ) -> Result<bool, PipelineError> {
        let changed = self
            .conn
            .execute(
                "UPDATE jobs SET lease_until = ?1
                 WHERE kind = ?2 AND job_key = ?3 AND status = 'running' AND ownership_token = ?4",
                params![
                    now.saturating_add(lease_seconds.max(0)),
                    JOB_KIND_CONSOLIDATE_GLOBAL,
                    CONSOLIDATION_JOB_KEY,
                    ownership_token
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    /// Finishes the owned phase-2 job: `done`, the watermark advanced, and
    /// exactly the `selected` snapshots marked as the new phase-2 baseline.
    pub fn mark_phase2_succeeded(
        &mut self,
        ownership_token: &str,
        completed_watermark: i64,
        selected: &[Stage1Output],
        now: i64,
    ) -> Result<bool, PipelineError> {
        let path = self.path.clone();
        let sql_err = |e| PipelineError::sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let changed = tx
            .execute(
                "UPDATE jobs SET status = 'done', finished_at = ?1, lease_until = NULL,
                    last_error = NULL,
                    last_success_watermark = max(COALESCE(last_success_watermark, 0), ?2)
                 WHERE kind = ?3 AND job_key = ?4 AND status = 'running' AND ownership_token = ?5",
                params![
                    now,
                    completed_watermark,
                    JOB_KIND_CONSOLIDATE_GLOBAL,
                    CONSOLIDATION_JOB_KEY,
                    ownership_token
                ],
            )
            .map_err(sql_err)?;
        if changed == 0 {
            tx.commit().map_err(sql_err)?;
            return Ok(false);
        }
        tx.execute(
            "UPDATE stage1_outputs SET selected_for_phase2 = 0,
                selected_for_phase2_source_updated_at = NULL
             WHERE selected_for_phase2 != 0 OR selected_for_phase2_source_updated_at IS NOT NULL",
            [],
        )
        .map_err(sql_err)?;
        for output in selected {
            tx.execute(
                "UPDATE stage1_outputs SET selected_for_phase2 = 1,
                    selected_for_phase2_source_updated_at = ?1
                 WHERE thread_id = ?2 AND source_updated_at = ?1",
                params![output.source_updated_at, output.thread_id],
            )
            .map_err(sql_err)?;
        }
        let count = i64::try_from(selected.len()).unwrap_or(i64::MAX);
        tx.execute(
            "UPDATE consolidation_progress SET max_thread_count = max(max_thread_count, ?1)
             WHERE singleton = 1",
            [count],
        )
        .map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        Ok(true)
    }

    /// Fails the owned phase-2 job with `reason` (e.g.
    /// `failed_invalid_artifacts`), retried after `retry_delay_seconds`.
    pub fn mark_phase2_failed(
        &self,
        ownership_token: &str,
        reason: &str,
        retry_delay_seconds: i64,
        now: i64,
    ) -> Result<bool, PipelineError> {
        let changed = self
            .conn
            .execute(
                "UPDATE jobs SET status = 'error', finished_at = ?1, lease_until = NULL,
                    retry_at = ?2, retry_remaining = max(retry_remaining - 1, 0), last_error = ?3
                 WHERE kind = ?4 AND job_key = ?5 AND status = 'running' AND ownership_token = ?6",
                params![
                    now,
                    now.saturating_add(retry_delay_seconds.max(0)),
                    reason,
                    JOB_KIND_CONSOLIDATE_GLOBAL,
                    CONSOLIDATION_JOB_KEY,
                    ownership_token
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    /// Phase 2's input, as upstream selects it: non-empty outputs used
    /// within `max_unused_days` (or, never used, made from a rollout updated
    /// within it), ranked by `usage_count`, then recency of use or update,
    /// keeping the first `n` for which `keep` holds (the thread still
    /// exists), returned in ascending thread-id order.
    pub fn phase2_input_selection(
        &self,
        n: usize,
        max_unused_days: i64,
        now: i64,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<Stage1Output>, PipelineError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let cutoff = now.saturating_sub(max_unused_days.max(0).saturating_mul(86_400));
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {OUTPUT_COLUMNS} FROM stage1_outputs AS so
                 WHERE (length(trim(so.raw_memory)) > 0 OR length(trim(so.rollout_summary)) > 0)
                   AND ((so.last_usage IS NOT NULL AND so.last_usage >= ?1)
                        OR (so.last_usage IS NULL AND so.source_updated_at >= ?1))
                 ORDER BY COALESCE(so.usage_count, 0) DESC,
                          COALESCE(so.last_usage, so.source_updated_at) DESC,
                          so.source_updated_at DESC,
                          so.thread_id DESC"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([cutoff], output_from_row)
            .map_err(|e| self.err(e))?;
        let mut selected = Vec::new();
        for row in rows {
            let row = row.map_err(|e| self.err(e))?;
            if keep(&row.thread_id) {
                selected.push(row);
                if selected.len() >= n {
                    break;
                }
            }
        }
        selected.sort_by(|a, b| a.thread_id.cmp(&b.thread_id));
        Ok(selected)
    }

    /// The outputs the last successful phase 2 consumed.
    pub fn previous_phase2_selection(&self) -> Result<Vec<Stage1Output>, PipelineError> {
        self.outputs_where("selected_for_phase2 != 0")
    }

    /// Every stage-1 output, by thread id.
    pub fn all_outputs(&self) -> Result<Vec<Stage1Output>, PipelineError> {
        self.outputs_where("1")
    }

    fn outputs_where(&self, filter: &str) -> Result<Vec<Stage1Output>, PipelineError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {OUTPUT_COLUMNS} FROM stage1_outputs AS so WHERE {filter}
                 ORDER BY so.thread_id ASC"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], output_from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The output of one thread.
    pub fn stage1_output(&self, thread_id: &str) -> Result<Option<Stage1Output>, PipelineError> {
        self.conn
            .query_row(
                &format!("SELECT {OUTPUT_COLUMNS} FROM stage1_outputs AS so WHERE thread_id = ?1"),
                [thread_id],
                output_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// One `jobs` row.
    pub fn job(&self, kind: &str, job_key: &str) -> Result<Option<JobRow>, PipelineError> {
        self.conn
            .query_row(
                "SELECT kind, job_key, status, worker_id, ownership_token, started_at, finished_at,
                    lease_until, retry_at, retry_remaining, last_error, input_watermark,
                    last_success_watermark
                 FROM jobs WHERE kind = ?1 AND job_key = ?2",
                params![kind, job_key],
                |r| {
                    Ok(JobRow {
                        kind: r.get(0)?,
                        job_key: r.get(1)?,
                        status: r.get(2)?,
                        worker_id: r.get(3)?,
                        ownership_token: r.get(4)?,
                        started_at: r.get(5)?,
                        finished_at: r.get(6)?,
                        lease_until: r.get(7)?,
                        retry_at: r.get(8)?,
                        retry_remaining: r.get(9)?,
                        last_error: r.get(10)?,
                        input_watermark: r.get(11)?,
                        last_success_watermark: r.get(12)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// `consolidation_progress.max_thread_count`.
    pub fn consolidated_thread_count(&self) -> Result<i64, PipelineError> {
        self.conn
            .query_row(
                "SELECT COALESCE((SELECT max_thread_count FROM consolidation_progress WHERE singleton = 1), 0)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Counts a citation of each thread's memory (`usage_count + 1`,
    /// `last_usage = now`); unknown threads are ignored.
    pub fn record_usage(
        &mut self,
        thread_ids: &[String],
        now: i64,
    ) -> Result<usize, PipelineError> {
        let path = self.path.clone();
        let sql_err = |e| PipelineError::sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let mut updated = 0;
        for id in thread_ids {
            updated += tx
                .execute(
                    "UPDATE stage1_outputs SET usage_count = COALESCE(usage_count, 0) + 1,
                        last_usage = ?1 WHERE thread_id = ?2",
                    params![now, id],
                )
                .map_err(sql_err)?;
        }
        tx.commit().map_err(sql_err)?;
        Ok(updated)
    }

    /// Deletes up to `limit` outputs outside the phase-2 baseline whose last
    /// use (or, never used, update) is older than `max_unused_days`.
    pub fn prune_for_retention(
        &self,
        max_unused_days: i64,
        limit: usize,
        now: i64,
    ) -> Result<usize, PipelineError> {
        let cutoff = now.saturating_sub(max_unused_days.max(0).saturating_mul(86_400));
        self.conn
            .execute(
                "DELETE FROM stage1_outputs WHERE thread_id IN (
                    SELECT thread_id FROM stage1_outputs
                    WHERE selected_for_phase2 = 0
                      AND COALESCE(last_usage, source_updated_at) < ?1
                    ORDER BY COALESCE(last_usage, source_updated_at) ASC,
                             source_updated_at ASC, thread_id ASC
                    LIMIT ?2)",
                params![cutoff, i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .map_err(|e| self.err(e))
    }

    /// Forgets everything (`memory/reset`): every stage-1 output and every
    /// job of both phases, in one transaction.
    pub fn reset(&mut self) -> Result<(), PipelineError> {
        let path = self.path.clone();
        let sql_err = |e| PipelineError::sqlite(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        tx.execute("DELETE FROM stage1_outputs", [])
            .map_err(sql_err)?;
        tx.execute(
            "DELETE FROM jobs WHERE kind = ?1 OR kind = ?2",
            params![JOB_KIND_STAGE1, JOB_KIND_CONSOLIDATE_GLOBAL],
        )
        .map_err(sql_err)?;
        tx.commit().map_err(sql_err)
    }
}

const OUTPUT_COLUMNS: &str =
    "so.thread_id, so.source_updated_at, so.raw_memory, so.rollout_summary,
    so.rollout_slug, so.generated_at, so.usage_count, so.last_usage, so.selected_for_phase2,
    so.selected_for_phase2_source_updated_at";

fn output_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stage1Output> {
    Ok(Stage1Output {
        thread_id: r.get(0)?,
        source_updated_at: r.get(1)?,
        raw_memory: r.get(2)?,
        rollout_summary: r.get(3)?,
        rollout_slug: r.get(4)?,
        generated_at: r.get(5)?,
        usage_count: r.get(6)?,
        last_usage: r.get(7)?,
        selected_for_phase2: r.get::<_, i64>(8)? != 0,
        selected_for_phase2_source_updated_at: r.get(9)?,
    })
}

fn finish_stage1_job(
    tx: &rusqlite::Transaction<'_>,
    thread_id: &str,
    ownership_token: &str,
    now: i64,
) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE jobs SET status = 'done', finished_at = ?1, lease_until = NULL, last_error = NULL,
            last_success_watermark = input_watermark
         WHERE kind = ?2 AND job_key = ?3 AND status = 'running' AND ownership_token = ?4",
        params![now, JOB_KIND_STAGE1, thread_id, ownership_token],
    )
}

/// Enqueues (or advances the watermark of) the global phase-2 job; a running
/// one stays running.
fn enqueue_consolidation(
    tx: &rusqlite::Transaction<'_>,
    input_watermark: i64,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO jobs (kind, job_key, status, worker_id, ownership_token, started_at,
            finished_at, lease_until, retry_at, retry_remaining, last_error, input_watermark,
            last_success_watermark)
         VALUES (?1, ?2, 'pending', NULL, NULL, NULL, NULL, NULL, NULL, ?3, NULL, ?4, 0)
         ON CONFLICT(kind, job_key) DO UPDATE SET
            status = CASE WHEN jobs.status = 'running' THEN 'running' ELSE 'pending' END,
            retry_at = CASE WHEN jobs.status = 'running' THEN jobs.retry_at ELSE NULL END,
            retry_remaining = max(jobs.retry_remaining, excluded.retry_remaining),
            input_watermark = CASE
                WHEN excluded.input_watermark > COALESCE(jobs.input_watermark, 0)
                    THEN excluded.input_watermark
                ELSE COALESCE(jobs.input_watermark, 0) + 1
            END",
        params![
            JOB_KIND_CONSOLIDATE_GLOBAL,
            CONSOLIDATION_JOB_KEY,
            DEFAULT_RETRY_REMAINING,
            input_watermark
        ],
    )
}
