//! The internal pipeline worker: a `codex-session` process that hosts no
//! thread but runs one memories pipeline pass (phase 1 extraction, phase 2
//! consolidation) and exits. codexd launches it like a thread worker (the
//! one launcher, its own cgroup, rlimits and process group, the guardian),
//! so the pipeline's model calls and its consolidation agent never run in
//! codexd or codex-memory. Its credentials come from the broker over the
//! link, as a thread worker's do.

use std::sync::Arc;
use std::time::Duration;

use codex_core::approval::DeclineAll;
use codex_core::auth::SharedTokenSource;
use codex_core::config::{Config, ReasoningEffort};
use codex_core::exec::Isolation;
use codex_core::memory::mode::{self, ThreadMemoryMode};
use codex_core::memory::pipeline::{
    phase1, ConsolidationJob, Consolidator, Extractor, ModelError, ModelExtractor, PassReport,
    Phase2Outcome, Pipeline, PipelineSettings,
};
use codex_core::protocol::Event;
use codex_core::{Thread, ThreadOptions, TurnRequest, TurnStatus};
use codex_ipc::app_server::codexd_status::PipelinePass;
use codex_ipc::link::{FromWorker, LinkWriter, MemoryPassInit, ThreadInit, ToWorker};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use crate::worker::{LinkBroker, LinkTokens};
use crate::worker_memory::LinkMemory;

/// How long the last messages may take to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long a cancelled pass may take to give its leases back.
const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// At most this many failures are named in the report.
const MAX_NAMED_FAILURES: usize = 8;

/// Runs the pass `init` asks for; returns the exit code.
pub(crate) async fn run(
    init: ThreadInit,
    pass: MemoryPassInit,
    out: mpsc::Sender<FromWorker>,
    mut inbox: mpsc::Receiver<ToWorker>,
    writer: LinkWriter,
) -> i32 {
    let broker = LinkBroker::new(out.clone());
    let memory = LinkMemory::new(out.clone());
    let pipeline = match crate::worker::load_config(&init)
        .and_then(|config| build(&init, config, broker.clone(), memory.clone()))
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("memories pipeline worker: {e}");
            let report = PipelinePass {
                finished_at: unix_now(),
                phase2: "notRun".into(),
                error: Some(e),
                ..PipelinePass::default()
            };
            let _ = out.send(FromWorker::PipelineReport { report }).await;
            drop(out);
            writer.close(CLOSE_GRACE).await;
            return 1;
        }
    };
    let exclude = pass.exclude;
    let running = pipeline.run_once(exclude);
    tokio::pin!(running);
    let mut supervisor_gone = false;
    let result = loop {
        tokio::select! {
            r = &mut running => break Some(r),
            msg = inbox.recv() => match msg {
                Some(ToWorker::BrokerReply { id, result }) => broker.resolve(id, result),
                Some(ToWorker::MemoryReply { id, result }) => memory.resolve(id, result),
                Some(ToWorker::Shutdown) => {
                    pipeline.cancel();
                    break tokio::time::timeout(CANCEL_GRACE, &mut running).await.ok();
                }
                Some(other) => tracing::debug!("memories pipeline worker: ignoring {other:?}"),
                None => {
                    supervisor_gone = true;
                    pipeline.cancel();
                    break tokio::time::timeout(CANCEL_GRACE, &mut running).await.ok();
                }
            },
        }
    };
    if supervisor_gone {
        // Nobody is left to read the report or to kill what remains.
        crate::guardian::end_self();
    }
    let report = match result {
        Some(Ok(r)) => summarize(&r),
        Some(Err(e)) => PipelinePass {
            phase2: "notRun".into(),
            error: Some(e.to_string()),
            finished_at: unix_now(),
            ..PipelinePass::default()
        },
        None => PipelinePass {
            phase2: "notRun".into(),
            cancelled: true,
            error: Some("stopped by codexd".into()),
            finished_at: unix_now(),
            ..PipelinePass::default()
        },
    };
    tracing::info!("memories pipeline pass: {report:?}");
    let _ = out.send(FromWorker::PipelineReport { report }).await;
    drop(out);
    writer.close(CLOSE_GRACE).await;
    0
}

/// The pipeline of `config`: its settings, the extractor, the consolidation
/// agent, and the filter that keeps threads whose memory mode is not
/// `enabled` out.
fn build(
    init: &ThreadInit,
    config: Config,
    broker: Arc<LinkBroker>,
    memory: Arc<LinkMemory>,
) -> Result<Pipeline, String> {
    let tokens: SharedTokenSource = Arc::new(LinkTokens(broker));
    let extractor = extractor(init, &config, tokens.clone(), memory)?;
    let settings = settings(&config, extractor.1.as_deref());
    let consolidator = Arc::new(AgentConsolidator {
        base: config.clone(),
        originator: init.originator.clone(),
        tokens,
        protected_paths: init.protected_paths.clone(),
    });
    let pipeline = Pipeline::new(
        config.codex_home.clone(),
        settings,
        extractor.0,
        Some(consolidator),
    );
    let (home, memories) = (config.codex_home.clone(), config.memories.clone());
    pipeline.set_thread_filter(Arc::new(move |id: &str| {
        mode::load(&home, id, &memories) == ThreadMemoryMode::Enabled
    }));
    Ok(pipeline)
}

/// `[memories]` as the pipeline reads it; the rollout budget follows the
/// extraction model's window when the catalog knows it.
fn settings(config: &Config, extract_model: Option<&str>) -> PipelineSettings {
    let m = &config.memories;
    let window = extract_model
        .and_then(codex_core::models::find_model)
        .map(|info| info.context_window);
    PipelineSettings {
        max_raw_memories_for_consolidation: m.max_raw_memories_for_consolidation,
        max_unused_days: i64::from(m.max_unused_days),
        max_rollout_age_days: i64::from(m.max_rollout_age_days),
        max_rollouts_per_startup: m.max_rollouts_per_startup,
        min_rollout_idle_hours: i64::from(m.min_rollout_idle_hours),
        rollout_token_limit: phase1::rollout_token_limit(window),
        consolidation_model: m.consolidation_model.clone(),
        ..PipelineSettings::default()
    }
}

/// Which lane extracts, and (remote) with which model.
///
/// `[memories] extract_model` naming a local GGUF (`*.gguf`) belongs to
/// codex-memory's local lane; otherwise the remote lane runs it with the
/// model it names, else upstream's phase-1 default on the OpenAI provider,
/// else the configured model (another provider does not serve upstream's).
fn extractor(
    init: &ThreadInit,
    config: &Config,
    tokens: SharedTokenSource,
    memory: Arc<LinkMemory>,
) -> Result<(Arc<dyn Extractor>, Option<String>), String> {
    let configured = config.memories.extract_model.clone();
    if configured.as_deref().is_some_and(is_local_model) {
        // The model lives in codex-memory (one instance per daemon); the
        // worker only relays.
        let generator = Arc::new(crate::worker_memory::LinkGenerator(memory));
        let name = configured.unwrap_or_default();
        return Ok((
            Arc::new(codex_core::memory::pipeline::LocalExtractor::new(generator)),
            Some(name),
        ));
    }
    let model = match configured.filter(|m| !is_local_model(m)) {
        Some(m) => m,
        None if config.model_provider_id == codex_core::config::OPENAI_PROVIDER_ID => {
            phase1::DEFAULT_EXTRACT_MODEL.to_string()
        }
        None => config.model.clone(),
    };
    let mut opts = ThreadOptions::new(init.originator.clone(), init.source.clone());
    opts.token_source = Some(tokens);
    let service =
        codex_core::thread::build_model(config, &opts).map_err(|e| format!("model: {e}"))?;
    Ok((
        Arc::new(ModelExtractor::new(service, model.clone())),
        Some(model),
    ))
}

fn is_local_model(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gguf")
}

/// Phase 2's agent: an ephemeral in-process thread in this worker, in the
/// memory folder, allowed to write only there, without network, approvals,
/// MCP servers, memories or a session file.
struct AgentConsolidator {
    base: Config,
    originator: String,
    tokens: SharedTokenSource,
    protected_paths: Vec<std::path::PathBuf>,
}

impl AgentConsolidator {
    fn config(&self, job: &ConsolidationJob) -> Config {
        let mut c = self.base.clone();
        c.cwd = job.cwd.clone();
        c.sandbox_policy = job.sandbox_policy.clone();
        c.approval_policy = job.approval_policy;
        if let Some(m) = &job.model {
            c.model = m.clone();
        }
        c.model_reasoning_effort =
            serde_json::from_value::<ReasoningEffort>(job.reasoning_effort.into()).ok();
        c.memories.generate_memories = job.generate_memories;
        c.memories.use_memories = job.use_memories;
        // The user's MCP servers are not the consolidation agent's tools.
        c.mcp_servers.clear();
        c.model_provider
            .http_headers
            .get_or_insert_with(Default::default)
            .insert("x-openai-subagent".into(), job.subagent_source.into());
        c
    }

    async fn run(&self, job: ConsolidationJob) -> Result<(), ModelError> {
        let config = self.config(&job);
        let mut protection = codex_core::exec::Protection::for_config(&config);
        // `$CODEX_HOME` is read-only for commands; its memory folder is this
        // agent's one writable root (the policy keeps the rest unwritable).
        protection.read_only.retain(|p| p != &config.codex_home);
        for p in &self.protected_paths {
            protection.hide(p);
        }
        let mut opts = ThreadOptions::new(self.originator.clone(), job.subagent_source);
        opts.ephemeral = job.ephemeral;
        opts.approvals = Arc::new(DeclineAll);
        opts.token_source = Some(self.tokens.clone());
        opts.command_isolation = Isolation::InheritGroup;
        opts.sandbox = codex_core::exec::platform_sandbox(protection);
        let (thread, mut events) = Thread::start(config, opts)?;
        // Drained so the turn never waits on a full event queue.
        let drain = tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let Event::Warning { message } = &ev {
                    tracing::info!("memories consolidation agent: {message}");
                }
            }
        });
        let outcome = thread.run_turn(TurnRequest::text(job.prompt)).await;
        thread.shutdown().await;
        drop(thread);
        drain.abort();
        match outcome?.status {
            TurnStatus::Completed => Ok(()),
            TurnStatus::Failed { error } => Err(error.message.into()),
            TurnStatus::Aborted { reason } => Err(format!("aborted: {reason:?}").into()),
        }
    }
}

impl Consolidator for AgentConsolidator {
    fn consolidate(&self, job: ConsolidationJob) -> BoxFuture<'_, Result<(), ModelError>> {
        Box::pin(self.run(job))
    }
}

/// The report's wire summary.
fn summarize(r: &PassReport) -> PipelinePass {
    let (phase2, phase2_detail, selected) = match &r.phase2 {
        Phase2Outcome::NotRun => ("notRun".to_string(), None, None),
        Phase2Outcome::Skipped(why) => ("skipped".to_string(), Some(why.clone()), None),
        Phase2Outcome::Succeeded { status, selected } => {
            (status.to_string(), None, Some(*selected))
        }
        Phase2Outcome::Failed { status, detail } => {
            (status.to_string(), Some(detail.clone()), None)
        }
    };
    PipelinePass {
        finished_at: unix_now(),
        scanned: r.scanned,
        eligible: r.eligible,
        claimed: r.claimed.len(),
        extracted: r.extracted.len(),
        no_output: r.no_output.len(),
        failed: r.failed.len(),
        failures: r
            .failed
            .iter()
            .take(MAX_NAMED_FAILURES)
            .map(|(id, why)| format!("{id}: {why}"))
            .collect(),
        phase2,
        phase2_detail,
        selected,
        cancelled: r.cancelled,
        error: r.error.clone(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
