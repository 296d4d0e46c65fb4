//! codexd's side of the memories pipeline: when to run a pass, and the
//! internal pipeline worker that runs it (`crate::pipeline_worker`).
//!
//! With `[features] memories` and `[memories] generate_memories` on, a pass
//! is asked for shortly after the daemon starts, at each `thread/start`
//! (excluding that thread, as upstream) and after a `turn/completed` (at
//! most once a minute from turns). One pipeline worker at a time; a request
//! while it runs is folded into one pending pass. Nothing here is awaited
//! by a request or a turn: triggers only spawn. The worker is launched like
//! a thread's (the one launcher, rlimits, its own cgroup and process group)
//! but is no thread: never listed, no subscribers. It has a hard deadline
//! and is stopped with the daemon.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use codex_core::memory::pipeline::{PipelineSettings, PHASE1_CONCURRENCY};
use codex_core::CancellationToken;
use codex_ipc::app_server::codexd_status::{PipelinePass, PipelineStatus};
use codex_ipc::launcher::{kill_group, LaunchSpec, Rlimit, Role};
use codex_ipc::link::{
    pump_frames, write_frames, FromWorker, MemoryPassInit, ThreadInit, ToWorker,
};
use tokio::sync::mpsc;

use super::Server;
use crate::containment::Containment;

/// The first pass waits this long after the daemon starts.
const STARTUP_DELAY: Duration = Duration::from_secs(2);
/// Turns ask for a pass at most this often.
const TURN_DEBOUNCE: Duration = Duration::from_secs(60);
/// Beyond the pipeline's own timeouts, before the worker is killed.
const DEADLINE_SLACK: Duration = Duration::from_secs(120);
/// How long a broker request of the worker may take.
const BROKER_DEADLINE: Duration = Duration::from_secs(60);
/// The longest codexd waits for codex-memory on the worker's behalf (a
/// local extraction is bounded by the pipeline's extraction timeout).
const MAX_MEMORY_DEADLINE: Duration = Duration::from_secs(300);
/// How often the worker's process tree is recorded (for the sweep when
/// there is no cgroup).
const TREE_SAMPLE: Duration = Duration::from_secs(5);
/// Messages queued to / from the worker.
const LINK_CAPACITY: usize = 64;
/// Sources of interactive threads (upstream extracts only these; a daemon
/// whose threads are something else, like `codex exec`'s, runs no pass).
const INTERACTIVE_SOURCES: &[&str] =
    codex_core::memory::pipeline::phase1::INTERACTIVE_SESSION_SOURCES;

/// The pipeline's state in codexd.
#[derive(Default)]
pub(crate) struct PipelineRunner {
    state: Mutex<RunnerState>,
    /// Cancelled at shutdown: no new pass; the running worker is stopped.
    stop: CancellationToken,
}

#[derive(Default)]
struct RunnerState {
    enabled: bool,
    running: bool,
    pid: Option<u32>,
    /// The exclusions of the pass that follows the running one.
    pending: Option<Vec<String>>,
    passes: u64,
    last: Option<PipelinePass>,
    last_turn_trigger: Option<Instant>,
}

impl PipelineRunner {
    fn state(&self) -> std::sync::MutexGuard<'_, RunnerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn status(&self) -> PipelineStatus {
        let st = self.state();
        PipelineStatus {
            enabled: st.enabled,
            pid: st.pid,
            pending: st.pending.is_some(),
            passes: st.passes,
            last: st.last.clone(),
        }
    }
}

/// Why a pass was asked for (logged).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PassTrigger {
    Startup,
    ThreadStart,
    TurnCompleted,
}

impl Server {
    /// Asks for the first pass, shortly after the daemon started.
    pub(crate) fn memory_pipeline_at_startup(self: &Arc<Self>) {
        let server = Arc::downgrade(self);
        tokio::spawn(async move {
            // `codexd/status` says at once whether passes will run.
            if let Some(s) = server.upgrade().filter(|s| s.pipeline_interactive()) {
                s.pipeline_settings();
            }
            tokio::time::sleep(STARTUP_DELAY).await;
            if let Some(s) = server.upgrade() {
                s.memory_pipeline_trigger(PassTrigger::Startup, Vec::new());
            }
        });
    }

    /// Asks for a pass (fire and forget): started now, or folded into the
    /// one pass that follows the running worker.
    pub(crate) fn memory_pipeline_trigger(
        self: &Arc<Self>,
        why: PassTrigger,
        exclude: Vec<String>,
    ) {
        if self.pipeline.stop.is_cancelled() || !self.pipeline_interactive() {
            return;
        }
        if let PassTrigger::TurnCompleted = why {
            let mut st = self.pipeline.state();
            let now = Instant::now();
            if st
                .last_turn_trigger
                .is_some_and(|t| now.duration_since(t) < TURN_DEBOUNCE)
            {
                return;
            }
            st.last_turn_trigger = Some(now);
        }
        let server = Arc::downgrade(self);
        tokio::spawn(async move {
            // The config is read off the caller's path.
            let Some(s) = server.upgrade() else { return };
            let Some(settings) = s.pipeline_settings() else {
                return;
            };
            {
                let mut st = s.pipeline.state();
                if st.running {
                    st.pending = Some(exclude);
                    tracing::debug!("memories pipeline: {why:?} folded into the next pass");
                    return;
                }
                st.running = true;
            }
            tracing::info!("memories pipeline: pass started ({why:?})");
            drop(s);
            drive(server, exclude, settings).await;
        });
    }

    /// A turn ended on one of this daemon's threads.
    pub(crate) fn memory_pipeline_after_turn(self: &Arc<Self>) {
        self.memory_pipeline_trigger(PassTrigger::TurnCompleted, Vec::new());
    }

    fn pipeline_interactive(&self) -> bool {
        INTERACTIVE_SOURCES.contains(&self.opts.thread_defaults.source.as_str())
    }

    /// The settings of a pass when the config turns the pipeline on.
    fn pipeline_settings(&self) -> Option<PipelineSettings> {
        let config = match self.handler_config() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("memories pipeline: cannot read the config: {}", e.message);
                return None;
            }
        };
        let m = &config.memories;
        let on = m.enabled && m.generate_memories;
        self.pipeline.state().enabled = on;
        on.then(|| PipelineSettings {
            max_rollouts_per_startup: m.max_rollouts_per_startup,
            ..PipelineSettings::default()
        })
    }

    /// Stops the running worker (asked first, then killed) and refuses new
    /// passes.
    pub(crate) async fn stop_memory_pipeline(&self) {
        self.pipeline.stop.cancel();
        let deadline = Instant::now() + super::SHUTDOWN_GRACE * 2;
        while self.pipeline.state().running && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The worker's init: a thread worker's, with the pass to run.
    fn pipeline_init(&self, exclude: Vec<String>) -> ThreadInit {
        let overrides = self
            .opts
            .config_overrides
            .iter()
            .map(|o| {
                (
                    o.path.join("."),
                    serde_json::to_value(&o.value).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        ThreadInit {
            codex_home: self.opts.codex_home.clone(),
            cwd: Some(self.opts.cwd.clone()),
            config_overrides: overrides,
            originator: "codex_memories".into(),
            source: self.opts.thread_defaults.source.clone(),
            ephemeral: true,
            ignore_user_config: self.opts.thread_defaults.ignore_user_config,
            protected_paths: self.opts.protected_paths.clone(),
            use_broker: true,
            use_memory: true,
            memory_pass: Some(MemoryPassInit { exclude }),
            ..Default::default()
        }
    }
}

/// Runs passes until none is pending.
async fn drive(server: Weak<Server>, mut exclude: Vec<String>, mut settings: PipelineSettings) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let report = run_worker(&s, exclude, &settings).await;
        if report.error.is_some() || report.failed > 0 {
            tracing::warn!("memories pipeline: pass ended: {report:?}");
        } else {
            tracing::info!("memories pipeline: pass ended: {report:?}");
        }
        let next = {
            let mut st = s.pipeline.state();
            st.passes += 1;
            st.last = Some(report);
            st.pid = None;
            match st.pending.take() {
                Some(next) if !s.pipeline.stop.is_cancelled() => Some(next),
                _ => {
                    st.running = false;
                    None
                }
            }
        };
        let Some(next) = next else { return };
        exclude = next;
        match s.pipeline_settings() {
            Some(fresh) => settings = fresh,
            None => {
                s.pipeline.state().running = false;
                return;
            }
        }
    }
}

/// One pipeline worker, from launch to reaping; its report, or why there
/// is none.
async fn run_worker(
    server: &Arc<Server>,
    exclude: Vec<String>,
    settings: &PipelineSettings,
) -> PipelinePass {
    let failed = |error: String| PipelinePass {
        finished_at: unix_now(),
        phase2: "notRun".into(),
        error: Some(error),
        ..PipelinePass::default()
    };
    let limits = server.limits();
    let mut spec = LaunchSpec::new(Role::Session, server.opts.worker_exe.clone());
    spec.cwd = Some(server.opts.codex_home.clone()).filter(|c| c.is_dir());
    spec.rlimits = vec![
        (Rlimit::OpenFiles, limits.max_open_files),
        (Rlimit::Processes, limits.max_processes),
        (Rlimit::Data, limits.max_data),
    ];
    let cgroup = server.cgroups.as_ref().and_then(|c| c.create());
    spec.cgroup_procs = cgroup.as_ref().map(|c| c.procs_file());
    let launched = match server.launcher.launch(spec).await {
        Ok(l) => l,
        Err(e) => {
            if let Some(cg) = cgroup {
                cg.kill_and_remove(Duration::from_millis(200));
            }
            return failed(format!("cannot start the pipeline worker: {e}"));
        }
    };
    let pid = launched.pid;
    let mut child = launched.child;
    server.pipeline.state().pid = Some(pid);
    let containment = Arc::new(Containment::new(pid, cgroup));
    let (read_half, write_half) = launched.link.into_split();
    let (to_tx, to_rx) = mpsc::channel::<ToWorker>(LINK_CAPACITY);
    tokio::spawn(write_frames(write_half, to_rx));
    let (from_tx, mut from_rx) = mpsc::channel::<FromWorker>(LINK_CAPACITY);
    tokio::spawn(pump_frames(read_half, from_tx, "pipeline worker"));
    let _ = to_tx
        .send(ToWorker::Init(Box::new(server.pipeline_init(exclude))))
        .await;

    let budget = hard_deadline(settings);
    let deadline = tokio::time::sleep(budget);
    tokio::pin!(deadline);
    let mut sample = tokio::time::interval(TREE_SAMPLE);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut report = None;
    let mut killed: Option<String> = None;
    let mut asked_to_stop = false;
    loop {
        tokio::select! {
            msg = from_rx.recv() => match msg {
                Some(FromWorker::Broker { id, request }) => {
                    let broker = server.broker.clone();
                    let to = to_tx.clone();
                    tokio::spawn(async move {
                        let result = broker.call(request, BROKER_DEADLINE).await;
                        let _ = to.try_send(ToWorker::BrokerReply { id, result });
                    });
                }
                Some(FromWorker::Memory { id, request, deadline_ms }) => {
                    let memory = server.memory.clone();
                    let to = to_tx.clone();
                    let wait = Duration::from_millis(deadline_ms).min(MAX_MEMORY_DEADLINE);
                    tokio::spawn(async move {
                        let result = memory.call(request, wait).await;
                        let _ = to.try_send(ToWorker::MemoryReply { id, result });
                    });
                }
                Some(FromWorker::PipelineReport { report: r }) => report = Some(r),
                Some(_) => {}
                None => break,
            },
            _ = &mut deadline, if killed.is_none() => {
                let why = format!(
                    "the pipeline worker was killed after its deadline ({} s)",
                    budget.as_secs()
                );
                tracing::warn!("memories pipeline: {why}");
                killed = Some(why);
                kill_group(pid);
            }
            _ = server.pipeline.stop.cancelled(), if !asked_to_stop => {
                // Asked to give its leases back; killed if it does not.
                asked_to_stop = true;
                if to_tx.try_send(ToWorker::Shutdown).is_err() {
                    kill_group(pid);
                }
                deadline.as_mut().reset(tokio::time::Instant::now() + super::SHUTDOWN_GRACE);
            }
            _ = sample.tick() => {
                let c = containment.clone();
                let _ = tokio::task::spawn_blocking(move || c.members(None)).await;
            }
        }
    }
    // EOF: whatever it left goes with it.
    kill_group(pid);
    let status = child.wait().await.ok();
    codex_core::process::unregister_child(pid);
    let c = containment.clone();
    let _ = tokio::task::spawn_blocking(move || c.kill_all()).await;
    match (report, killed) {
        (_, Some(why)) => failed(why),
        (Some(r), None) => r,
        (None, None) => failed(match status.and_then(|s| s.code()) {
            Some(code) => format!("the pipeline worker exited with status {code} before reporting"),
            None => "the pipeline worker was killed by a signal before reporting".into(),
        }),
    }
}

/// The pipeline's own timeouts (extractions run 8 at a time) plus slack.
fn hard_deadline(s: &PipelineSettings) -> Duration {
    let batches = s
        .max_rollouts_per_startup
        .div_ceil(PHASE1_CONCURRENCY)
        .max(1) as u32;
    s.extraction_timeout * batches + s.consolidation_timeout + DEADLINE_SLACK
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
