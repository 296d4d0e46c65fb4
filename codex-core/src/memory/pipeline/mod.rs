//! Upstream's memories pipeline, compatible with Codex 0.169's files: phase 1
//! extracts one memory per idle rollout into `memories_1.sqlite`, phase 2
//! writes `$CODEX_HOME/memories/` (`raw_memories.md`, `rollout_summaries/`)
//! and consolidates it into `MEMORY.md` and `memory_summary.md`.
//!
//! A library: no processes, no network. The extraction model is an
//! [`Extractor`] (the remote lane or the local small model), the
//! consolidation agent a [`Consolidator`] the integrator runs as an internal
//! ephemeral thread; without one, phase 2 consolidates deterministically.
//! [`Pipeline`] runs one pass at a time; a trigger during a pass is folded
//! into at most one follow-up pass.

mod error;
mod local_extractor;
mod model_extractor;
pub mod phase1;
pub mod phase2;
mod redact;
pub mod stage1;
mod template;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

pub use error::PipelineError;
pub use local_extractor::{LocalExtractor, LocalExtractorOptions};
pub use model_extractor::ModelExtractor;
pub use phase1::{ExtractionPrompt, StageOneOutput, ThreadInfo};
pub use phase2::{memory_root, ConsolidationJob, SelectedMemory};
pub use redact::{redact_secrets, REDACTED};
pub use stage1::{JobRow, Phase2Claim, Stage1Claim, Stage1Db, Stage1Output};

/// What an [`Extractor`] or [`Consolidator`] reports when it fails.
pub type ModelError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one phase-1 extraction: the prompt goes to a model, its text answer
/// comes back (JSON per [`phase1::output_schema`]).
pub trait Extractor: Send + Sync + 'static {
    fn extract(&self, prompt: ExtractionPrompt) -> BoxFuture<'_, Result<String, ModelError>>;
}

/// Runs the phase-2 consolidation agent to completion (it edits the files
/// under `job.cwd`; the pipeline validates them afterwards).
pub trait Consolidator: Send + Sync + 'static {
    fn consolidate(&self, job: ConsolidationJob) -> BoxFuture<'_, Result<(), ModelError>>;
}

/// The `[memories]` settings the pipeline uses, with upstream's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    pub max_raw_memories_for_consolidation: usize,
    pub max_unused_days: i64,
    pub max_rollout_age_days: i64,
    pub max_rollouts_per_startup: usize,
    pub min_rollout_idle_hours: i64,
    /// Rollout tokens sent to the extractor ([`phase1::rollout_token_limit`]
    /// of the extraction model's window).
    pub rollout_token_limit: u64,
    /// One extraction may take this long before it counts as failed.
    pub extraction_timeout: Duration,
    /// The consolidation agent may run this long.
    pub consolidation_timeout: Duration,
    /// `[memories] consolidation_model`, passed on in [`ConsolidationJob`].
    pub consolidation_model: Option<String>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            max_raw_memories_for_consolidation: 256,
            max_unused_days: 30,
            max_rollout_age_days: 10,
            max_rollouts_per_startup: 2,
            min_rollout_idle_hours: 6,
            rollout_token_limit: phase1::DEFAULT_ROLLOUT_TOKEN_LIMIT,
            extraction_timeout: Duration::from_secs(300),
            consolidation_timeout: Duration::from_secs(30 * 60),
            consolidation_model: None,
        }
    }
}

/// How phase 2 ended in a pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Phase2Outcome {
    #[default]
    NotRun,
    /// The global lease was not taken (running elsewhere, cooldown, retry
    /// backoff).
    Skipped(String),
    /// `succeeded`, `succeeded_deterministic`, `succeeded_no_input`,
    /// `succeeded_no_workspace_changes`.
    Succeeded {
        status: &'static str,
        selected: usize,
    },
    /// Upstream's failure reasons (`failed_agent`,
    /// `failed_invalid_artifacts`, ...), also written to `jobs.last_error`.
    Failed {
        status: &'static str,
        detail: String,
    },
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Stale stage-1 outputs deleted.
    pub pruned: usize,
    /// Rollout files looked at.
    pub scanned: usize,
    /// Of those, eligible by source, idleness and age.
    pub eligible: usize,
    /// Threads whose stage-1 job this pass leased.
    pub claimed: Vec<String>,
    /// Threads with a new stage-1 output.
    pub extracted: Vec<String>,
    /// Threads the model found nothing durable in.
    pub no_output: Vec<String>,
    /// Threads whose extraction failed (retried later), with the reason.
    pub failed: Vec<(String, String)>,
    pub phase2: Phase2Outcome,
    pub cancelled: bool,
    /// Triggers folded into this pass while the previous one ran.
    pub coalesced_triggers: usize,
    /// Set when the pass stopped early on an error.
    pub error: Option<String>,
}

/// What [`Pipeline::trigger`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Started,
    /// A pass is running; one more pass will follow it.
    Coalesced,
    Cancelled,
}

/// Decides whether a thread's memories may be generated and used (upstream:
/// `threads.memory_mode = 'enabled'`; `disabled` and `polluted` threads are
/// neither extracted nor selected for consolidation).
pub type ThreadFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// At most this many extractions run at once (upstream: 8).
pub const PHASE1_CONCURRENCY: usize = 8;

/// The pipeline driver. Cheap to clone; clones share one pass at a time.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    codex_home: PathBuf,
    settings: PipelineSettings,
    extractor: Arc<dyn Extractor>,
    consolidator: Option<Arc<dyn Consolidator>>,
    thread_filter: Mutex<Option<ThreadFilter>>,
    worker_id: String,
    db: tokio::sync::OnceCell<Arc<Mutex<Stage1Db>>>,
    state: Mutex<RunState>,
    passes: tokio::sync::watch::Sender<u64>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct RunState {
    running: bool,
    /// The follow-up pass requested while one ran (its excluded threads).
    pending: Option<Vec<String>>,
    coalesced: usize,
    last_report: Option<PassReport>,
}

enum JobOutcome {
    Extracted,
    NoOutput,
    Failed(String),
    Cancelled,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Pipeline {
    pub fn new(
        codex_home: impl Into<PathBuf>,
        settings: PipelineSettings,
        extractor: Arc<dyn Extractor>,
        consolidator: Option<Arc<dyn Consolidator>>,
    ) -> Self {
        let (passes, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                codex_home: codex_home.into(),
                settings,
                extractor,
                consolidator,
                thread_filter: Mutex::new(None),
                worker_id: uuid::Uuid::new_v4().to_string(),
                db: tokio::sync::OnceCell::new(),
                state: Mutex::new(RunState::default()),
                passes,
                cancel: CancellationToken::new(),
            }),
        }
    }

    pub fn codex_home(&self) -> &Path {
        &self.inner.codex_home
    }

    pub fn settings(&self) -> &PipelineSettings {
        &self.inner.settings
    }

    /// `$CODEX_HOME/memories`.
    pub fn memory_root(&self) -> PathBuf {
        memory_root(&self.inner.codex_home)
    }

    /// Installs the [`ThreadFilter`] later passes consult.
    pub fn set_thread_filter(&self, filter: ThreadFilter) {
        *self
            .inner
            .thread_filter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(filter);
    }

    fn thread_filter(&self) -> Option<ThreadFilter> {
        self.inner
            .thread_filter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Counts a citation of each thread's memory (phase 2 ranks by use).
    pub async fn record_usage(&self, thread_ids: Vec<String>) -> Result<usize, PipelineError> {
        let now = unix_now();
        self.with_db(move |db| db.record_usage(&thread_ids, now))
            .await
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RunState> {
        // A panic mid-update leaves plain flags behind; they stay usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a pass in the background (needs a Tokio runtime). While one
    /// runs, the request is coalesced: at most one more pass follows, with
    /// the latest `exclude` (threads not to extract, e.g. the one starting).
    pub fn trigger(&self, exclude: Vec<String>) -> Trigger {
        if self.inner.cancel.is_cancelled() {
            return Trigger::Cancelled;
        }
        {
            let mut st = self.state();
            if st.running {
                st.pending = Some(exclude);
                st.coalesced += 1;
                return Trigger::Coalesced;
            }
            st.running = true;
        }
        let this = self.clone();
        tokio::spawn(async move { this.drive(exclude).await });
        Trigger::Started
    }

    /// Runs one pass now; [`PipelineError::Busy`] if one is running.
    pub async fn run_once(&self, exclude: Vec<String>) -> Result<PassReport, PipelineError> {
        {
            let mut st = self.state();
            if st.running {
                return Err(PipelineError::Busy);
            }
            st.running = true;
        }
        let result = self.pass(exclude).await;
        let report = match &result {
            Ok(r) => r.clone(),
            Err(e) => PassReport {
                error: Some(e.to_string()),
                ..PassReport::default()
            },
        };
        self.finish(report);
        result
    }

    /// The report of the last pass, once no pass is running.
    pub async fn wait_idle(&self) -> Option<PassReport> {
        let mut rx = self.inner.passes.subscribe();
        loop {
            {
                let st = self.state();
                if !st.running {
                    return st.last_report.clone();
                }
            }
            if rx.changed().await.is_err() {
                return self.state().last_report.clone();
            }
        }
    }

    /// Stops the running pass at its next step (leases are given back) and
    /// refuses further passes.
    pub fn cancel(&self) {
        self.inner.cancel.cancel();
    }

    /// `memory/reset`: every stage-1 output and job is deleted and the
    /// memory folder emptied. [`PipelineError::Busy`] while a pass runs.
    pub async fn reset(&self) -> Result<(), PipelineError> {
        if self.state().running {
            return Err(PipelineError::Busy);
        }
        self.with_db(|db| db.reset()).await?;
        let root = self.memory_root();
        blocking(move || clear_memory_root(&root)).await
    }

    async fn drive(&self, mut exclude: Vec<String>) {
        loop {
            let report = match self.pass(exclude).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("memories pipeline pass failed: {e}");
                    PassReport {
                        error: Some(e.to_string()),
                        ..PassReport::default()
                    }
                }
            };
            let next = {
                let mut st = self.state();
                st.last_report = Some(report);
                match st.pending.take() {
                    Some(next) if !self.inner.cancel.is_cancelled() => Some(next),
                    _ => {
                        st.running = false;
                        None
                    }
                }
            };
            self.inner.passes.send_modify(|n| *n += 1);
            match next {
                Some(next) => exclude = next,
                None => return,
            }
        }
    }

    fn finish(&self, report: PassReport) {
        let pending = {
            let mut st = self.state();
            st.last_report = Some(report);
            match st.pending.take() {
                Some(next) if !self.inner.cancel.is_cancelled() => Some(next),
                _ => {
                    st.running = false;
                    None
                }
            }
        };
        self.inner.passes.send_modify(|n| *n += 1);
        if let Some(next) = pending {
            let this = self.clone();
            tokio::spawn(async move { this.drive(next).await });
        }
    }

    async fn db(&self) -> Result<Arc<Mutex<Stage1Db>>, PipelineError> {
        let home = self.inner.codex_home.clone();
        self.inner
            .db
            .get_or_try_init(|| async move {
                blocking(move || Stage1Db::open_in(&home))
                    .await
                    .map(|db| Arc::new(Mutex::new(db)))
            })
            .await
            .cloned()
    }

    async fn with_db<T, F>(&self, f: F) -> Result<T, PipelineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Stage1Db) -> Result<T, PipelineError> + Send + 'static,
    {
        let db = self.db().await?;
        blocking(move || {
            let mut guard = db
                .lock()
                .map_err(|_| PipelineError::Worker("memories database lock poisoned".into()))?;
            f(&mut guard)
        })
        .await
    }

    async fn pass(&self, exclude: Vec<String>) -> Result<PassReport, PipelineError> {
        let settings = self.inner.settings.clone();
        let mut report = PassReport {
            coalesced_triggers: std::mem::take(&mut self.state().coalesced),
            ..PassReport::default()
        };
        let now = unix_now();
        let max_unused_days = settings.max_unused_days;
        report.pruned = self
            .with_db(move |db| {
                db.prune_for_retention(max_unused_days, phase1::PRUNE_BATCH_SIZE, now)
            })
            .await?;

        let home = self.inner.codex_home.clone();
        let threads = blocking(move || Ok(phase1::scan_threads(&home))).await?;
        report.scanned = threads.len();
        let filter = self.thread_filter();
        let eligible: Vec<ThreadInfo> =
            phase1::eligible_threads(&threads, &settings, now, &exclude)
                .into_iter()
                .filter(|t| filter.as_ref().is_none_or(|f| f(&t.thread_id)))
                .cloned()
                .collect();
        report.eligible = eligible.len();

        let worker = self.inner.worker_id.clone();
        let max = settings.max_rollouts_per_startup;
        let claims = self
            .with_db(move |db| {
                let mut claimed = Vec::new();
                for thread in eligible {
                    if claimed.len() >= max {
                        break;
                    }
                    if !db.stage1_needs_update(&thread.thread_id, thread.updated_at)? {
                        continue;
                    }
                    if let Stage1Claim::Claimed { ownership_token } = db.try_claim_stage1_job(
                        &thread.thread_id,
                        &worker,
                        thread.updated_at,
                        phase1::JOB_LEASE_SECONDS,
                        max,
                        now,
                    )? {
                        claimed.push((thread, ownership_token));
                    }
                }
                Ok(claimed)
            })
            .await?;
        report.claimed = claims.iter().map(|(t, _)| t.thread_id.clone()).collect();

        let outcomes: Vec<(String, JobOutcome)> = futures_util::stream::iter(claims)
            .map(|(thread, token)| self.extract_one(thread, token))
            .buffer_unordered(PHASE1_CONCURRENCY)
            .collect()
            .await;
        for (id, outcome) in outcomes {
            match outcome {
                JobOutcome::Extracted => report.extracted.push(id),
                JobOutcome::NoOutput => report.no_output.push(id),
                JobOutcome::Failed(reason) => report.failed.push((id, reason)),
                JobOutcome::Cancelled => report.cancelled = true,
            }
        }
        report.extracted.sort();
        report.no_output.sort();
        report.failed.sort();
        if report.cancelled || self.inner.cancel.is_cancelled() {
            report.cancelled = true;
            return Ok(report);
        }

        report.phase2 = self.phase2(&threads).await?;
        report.cancelled = self.inner.cancel.is_cancelled();
        Ok(report)
    }

    async fn extract_one(&self, thread: ThreadInfo, token: String) -> (String, JobOutcome) {
        let id = thread.thread_id.clone();
        let outcome = self.extract_job(thread).await;
        let record = {
            let id = id.clone();
            let token = token.clone();
            let now = unix_now();
            let updated_at_and_output = match &outcome {
                Ok(Some((updated_at, out))) => Some((*updated_at, out.clone())),
                _ => None,
            };
            let failure = match &outcome {
                Err(ExtractFailure::Failed(reason)) => Some(reason.clone()),
                _ => None,
            };
            let cancelled = matches!(outcome, Err(ExtractFailure::Cancelled));
            self.with_db(move |db| {
                if cancelled {
                    db.release_stage1_lease(&id, &token)?;
                    return Ok(JobOutcome::Cancelled);
                }
                if let Some(reason) = failure {
                    db.mark_stage1_failed(
                        &id,
                        &token,
                        &reason,
                        phase1::JOB_RETRY_DELAY_SECONDS,
                        now,
                    )?;
                    return Ok(JobOutcome::Failed(reason));
                }
                match updated_at_and_output {
                    Some((updated_at, out)) if !out.is_empty() => {
                        let ok = db.mark_stage1_succeeded(
                            &id,
                            &token,
                            updated_at,
                            &out.raw_memory,
                            &out.rollout_summary,
                            out.rollout_slug.as_deref(),
                            now,
                        )?;
                        Ok(if ok {
                            JobOutcome::Extracted
                        } else {
                            JobOutcome::Failed("lost the stage-1 lease".into())
                        })
                    }
                    _ => {
                        let ok = db.mark_stage1_succeeded_no_output(&id, &token, now)?;
                        Ok(if ok {
                            JobOutcome::NoOutput
                        } else {
                            JobOutcome::Failed("lost the stage-1 lease".into())
                        })
                    }
                }
            })
            .await
        };
        match record {
            Ok(outcome) => (id, outcome),
            Err(e) => (id, JobOutcome::Failed(e.to_string())),
        }
    }

    /// The extraction itself: `Ok(Some)` with output, `Ok(None)` for
    /// nothing durable.
    async fn extract_job(
        &self,
        thread: ThreadInfo,
    ) -> Result<Option<(i64, StageOneOutput)>, ExtractFailure> {
        let limit = self.inner.settings.rollout_token_limit;
        let updated_at = thread.updated_at;
        let prompt = blocking(move || phase1::build_prompt(&thread, limit))
            .await
            .map_err(|e| ExtractFailure::Failed(e.to_string()))?;
        let timeout = self.inner.settings.extraction_timeout;
        let answer = tokio::select! {
            _ = self.inner.cancel.cancelled() => return Err(ExtractFailure::Cancelled),
            r = tokio::time::timeout(timeout, self.inner.extractor.extract(prompt)) => r,
        };
        let text = match answer {
            Err(_) => {
                return Err(ExtractFailure::Failed(format!(
                    "extraction timed out after {} s",
                    timeout.as_secs()
                )))
            }
            Ok(Err(e)) => return Err(ExtractFailure::Failed(format!("extraction failed: {e}"))),
            Ok(Ok(text)) => text,
        };
        let out = phase1::parse_output(&text).map_err(|e| ExtractFailure::Failed(e.to_string()))?;
        Ok((!out.is_empty()).then_some((updated_at, out)))
    }

    async fn phase2(&self, threads: &[ThreadInfo]) -> Result<Phase2Outcome, PipelineError> {
        let worker = self.inner.worker_id.clone();
        let now = unix_now();
        let claim = self
            .with_db(move |db| db.try_claim_phase2(&worker, phase2::JOB_LEASE_SECONDS, now))
            .await?;
        let (token, watermark) = match claim {
            Phase2Claim::Claimed {
                ownership_token,
                input_watermark,
            } => (ownership_token, input_watermark),
            other => return Ok(Phase2Outcome::Skipped(format!("{other:?}"))),
        };
        let by_id: HashMap<String, ThreadInfo> = threads
            .iter()
            .map(|t| (t.thread_id.to_ascii_lowercase(), t.clone()))
            .collect();
        let run = Phase2Run {
            pipeline: self,
            token,
            root: self.memory_root(),
        };
        Ok(run.run(watermark, by_id).await)
    }
}

enum ExtractFailure {
    Failed(String),
    Cancelled,
}

/// One claimed phase-2 run.
struct Phase2Run<'a> {
    pipeline: &'a Pipeline,
    token: String,
    root: PathBuf,
}

impl Phase2Run<'_> {
    async fn run(&self, watermark: i64, by_id: HashMap<String, ThreadInfo>) -> Phase2Outcome {
        let settings = &self.pipeline.inner.settings;
        let (n, max_unused_days) = (
            settings.max_raw_memories_for_consolidation,
            settings.max_unused_days,
        );
        let now = unix_now();
        let home = self.pipeline.inner.codex_home.clone();
        let filter = self.pipeline.thread_filter();
        let loaded = self
            .pipeline
            .with_db(move |db| {
                // Threads beyond the bounded scan are looked up one by one;
                // a thread whose rollout is gone is not selected.
                let mut known = by_id;
                let selection = db.phase2_input_selection(n, max_unused_days, now, |id| {
                    if filter.as_ref().is_some_and(|f| !f(id)) {
                        return false;
                    }
                    let key = id.to_ascii_lowercase();
                    if known.contains_key(&key) {
                        return true;
                    }
                    match phase1::find_thread(&home, id) {
                        Some(t) => {
                            known.insert(key, t);
                            true
                        }
                        None => false,
                    }
                })?;
                Ok((selection, db.previous_phase2_selection()?, known))
            })
            .await;
        let (selection, previous, by_id) = match loaded {
            Ok(v) => v,
            Err(e) => return self.fail("failed_load_stage1_outputs", e.to_string()).await,
        };
        let selected: Vec<SelectedMemory> = selection
            .into_iter()
            .filter_map(|output| {
                let t = by_id.get(&output.thread_id.to_ascii_lowercase())?;
                Some(SelectedMemory {
                    rollout_path: t.rollout_path.clone(),
                    cwd: t.cwd.clone(),
                    git_branch: t.git_branch.clone(),
                    output,
                })
            })
            .collect();
        let new_watermark = selected
            .iter()
            .map(|s| s.output.source_updated_at)
            .fold(watermark, i64::max);

        // Nothing selected now or by the last successful run: the folder's
        // files did not come from this database (a user's, a fresh
        // `memories_1.sqlite` beside upstream's files), so they are left
        // alone. Upstream would delete `MEMORY.md` and `memory_summary.md`.
        if selected.is_empty() && previous.is_empty() {
            return self
                .succeed("succeeded_no_input", new_watermark, &selected)
                .await;
        }
        let (root, inputs) = (self.root.clone(), selected.clone());
        let changes = match blocking(move || phase2::sync_inputs(&root, &inputs)).await {
            Ok(c) => c,
            Err(e) => {
                return self
                    .fail("failed_sync_workspace_inputs", e.to_string())
                    .await
            }
        };
        if selected.is_empty() {
            return self
                .succeed("succeeded_no_input", new_watermark, &selected)
                .await;
        }
        let (added, removed) = phase2::selection_diff(&selected, &previous);
        let artifacts_ok = phase2::validate_artifacts(&self.root).is_ok();
        if changes.is_empty() && added.is_empty() && removed.is_empty() && artifacts_ok {
            return self
                .succeed("succeeded_no_workspace_changes", new_watermark, &selected)
                .await;
        }
        let diff = phase2::render_workspace_diff(&changes, &added, &removed);
        let diff_path = self.root.join(phase2::WORKSPACE_DIFF_FILENAME);
        if let Err(e) = std::fs::write(&diff_path, diff) {
            return self
                .fail(
                    "failed_workspace_diff_file",
                    format!("{}: {e}", diff_path.display()),
                )
                .await;
        }

        let Some(consolidator) = self.pipeline.inner.consolidator.clone() else {
            let (root, inputs) = (self.root.clone(), selected.clone());
            let result = blocking(move || {
                let r = phase2::deterministic_consolidation(&root, &inputs);
                phase2::remove_workspace_diff(&root)?;
                r
            })
            .await;
            if let Err(e) = result {
                return self
                    .fail("failed_deterministic_consolidation", e.to_string())
                    .await;
            }
            if let Err(e) = phase2::validate_artifacts(&self.root) {
                return self.fail("failed_invalid_artifacts", e.to_string()).await;
            }
            return self
                .succeed("succeeded_deterministic", new_watermark, &selected)
                .await;
        };

        let job = ConsolidationJob::new(&self.root, settings.consolidation_model.clone());
        let agent = self.run_agent(consolidator, job).await;
        if let Err(e) = phase2::remove_workspace_diff(&self.root) {
            tracing::warn!("memories phase 2: {e}");
        }
        if let Err(detail) = agent {
            return self.fail("failed_agent", detail).await;
        }
        if let Err(e) = phase2::validate_artifacts(&self.root) {
            return self.fail("failed_invalid_artifacts", e.to_string()).await;
        }
        self.succeed("succeeded", new_watermark, &selected).await
    }

    /// Runs the agent, renewing the lease every 90 s; stops on timeout,
    /// cancellation or a lost lease.
    async fn run_agent(
        &self,
        consolidator: Arc<dyn Consolidator>,
        job: ConsolidationJob,
    ) -> Result<(), String> {
        let inner = &self.pipeline.inner;
        let fut = consolidator.consolidate(job);
        tokio::pin!(fut);
        let deadline = tokio::time::sleep(inner.settings.consolidation_timeout);
        tokio::pin!(deadline);
        let mut heartbeat =
            tokio::time::interval(Duration::from_secs(phase2::JOB_HEARTBEAT_SECONDS));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                r = &mut fut => return r.map_err(|e| e.to_string()),
                _ = &mut deadline => {
                    return Err(format!(
                        "consolidation timed out after {} s",
                        inner.settings.consolidation_timeout.as_secs()
                    ))
                }
                _ = inner.cancel.cancelled() => return Err("cancelled".into()),
                _ = heartbeat.tick() => {
                    let token = self.token.clone();
                    let now = unix_now();
                    let owned = self
                        .pipeline
                        .with_db(move |db| db.heartbeat_phase2(&token, phase2::JOB_LEASE_SECONDS, now))
                        .await;
                    match owned {
                        Ok(true) => {}
                        Ok(false) => return Err("lost the phase-2 lease".into()),
                        Err(e) => tracing::warn!("memories phase 2 heartbeat: {e}"),
                    }
                }
            }
        }
    }

    async fn fail(&self, status: &'static str, detail: String) -> Phase2Outcome {
        tracing::warn!("memories phase 2 {status}: {detail}");
        let token = self.token.clone();
        let now = unix_now();
        let marked = self
            .pipeline
            .with_db(move |db| {
                db.mark_phase2_failed(&token, status, phase2::JOB_RETRY_DELAY_SECONDS, now)
            })
            .await;
        if let Err(e) = marked {
            tracing::warn!("memories phase 2: could not record {status}: {e}");
        }
        Phase2Outcome::Failed { status, detail }
    }

    async fn succeed(
        &self,
        status: &'static str,
        watermark: i64,
        selected: &[SelectedMemory],
    ) -> Phase2Outcome {
        let token = self.token.clone();
        let outputs: Vec<Stage1Output> = selected.iter().map(|s| s.output.clone()).collect();
        let count = outputs.len();
        let now = unix_now();
        match self
            .pipeline
            .with_db(move |db| db.mark_phase2_succeeded(&token, watermark, &outputs, now))
            .await
        {
            Ok(true) => Phase2Outcome::Succeeded {
                status,
                selected: count,
            },
            Ok(false) => Phase2Outcome::Failed {
                status: "failed_mark_succeeded",
                detail: "lost the phase-2 lease before recording success".into(),
            },
            Err(e) => Phase2Outcome::Failed {
                status: "failed_mark_succeeded",
                detail: e.to_string(),
            },
        }
    }
}

/// Empties the memory folder (upstream refuses a symlinked root, so a link
/// never leads the deletion elsewhere).
pub fn clear_memory_root(root: &Path) -> Result<(), PipelineError> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(PipelineError::io(root, e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(PipelineError::io(
                root,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the memory folder is a symlink; not clearing it",
                ),
            ))
        }
        Ok(_) => {}
    }
    for entry in std::fs::read_dir(root).map_err(|e| PipelineError::io(root, e))? {
        let entry = entry.map_err(|e| PipelineError::io(root, e))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(|e| PipelineError::io(&path, e))?
            .is_dir();
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| PipelineError::io(&path, e))?;
    }
    Ok(())
}

/// Runs blocking file or SQLite work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, PipelineError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, PipelineError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PipelineError::Worker(e.to_string()))?
}
