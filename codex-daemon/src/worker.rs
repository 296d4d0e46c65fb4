//! `codex-session`: the worker process that hosts one thread.
//!
//! Started by the [launcher](codex_ipc::launcher) with its link on fd 3. It
//! leads its own session (no terminal), is the subreaper of everything its
//! tools start, and runs the tool commands in its own process group, so the
//! supervisor can take the whole tree down with one `killpg`. It exits when
//! told to, or when the link closes (the supervisor is gone).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_core::approval::{
    ApprovalHandler, ApprovalRequest, ElicitationAction, ElicitationAnswer, ElicitationRequest,
    ReviewDecision,
};
use codex_core::auth::{AuthError, AuthToken, BrokerRequest, BrokerResponse, TokenSource};
use codex_core::config::{CliOverride, Config, ConfigOverrides, LoadOptions};
use codex_core::exec::Isolation;
use codex_core::protocol::Event;
use codex_core::turn::{SteerInbox, SteerInput};
use codex_core::{CancellationToken, Thread, ThreadOptions, TurnRequest};
use codex_ipc::launcher::{set_process_name, take_link, Role};
use codex_ipc::link::{serve_link, FromWorker, ThreadInit, ThreadReady, ToWorker};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::worker_tools::{LinkDynamicTools, SharedLinkDynamicTools};

/// How long a worker waits for its `Init`.
const INIT_DEADLINE: Duration = Duration::from_secs(30);
/// How long `Shutdown` waits for a running turn to record its end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Entry point of the `codex-session` role. Returns the exit code.
pub fn main() -> i32 {
    set_process_name(Role::Session.process_name());
    // Before any thread exists: taking the link edits the environment.
    let link = match take_link() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("codex-session: {e}");
            return 2;
        }
    };
    if let Err(e) = codex_core::process::become_subreaper() {
        tracing::warn!("codex-session: cannot become subreaper: {e}");
    }
    // Before anything can start a tool: nothing this worker starts may
    // outlive its supervisor.
    if let Err(e) = crate::guardian::spawn(std::os::fd::AsRawFd::as_raw_fd(&link)) {
        eprintln!("codex-session: cannot start the guardian: {e}");
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codex-session: cannot start runtime: {e}");
            return 1;
        }
    };
    rt.block_on(run(link))
}

/// Forwards approval requests to the supervisor and waits for its decision.
/// Requests travel through the event forwarder, after every event emitted
/// before them (the item an approval is about is announced first).
/// A client's answer: the decision, and for an elicitation its answer.
type Answer = (ReviewDecision, Option<ElicitationAnswer>);

struct LinkApprovals {
    out: mpsc::Sender<ApprovalMsg>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next: AtomicU64,
}

impl LinkApprovals {
    fn resolve(&self, id: u64, decision: Answer) {
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        // (If the waiter is gone, its CancelOnDrop already voided the request.)
        match tx {
            Some(tx) => {
                let _ = tx.send(decision);
            }
            None => tracing::debug!("approval {id} already resolved; decision ignored"),
        }
    }

    /// Declines everything still waiting (the supervisor went away).
    fn decline_all(&self) {
        if let Ok(mut p) = self.pending.lock() {
            for (_, tx) in p.drain() {
                let _ = tx.send((ReviewDecision::Denied, None));
            }
        }
    }
}

/// Reaches the supervisor's broker over the link. A broker that is down,
/// restarting or overloaded answers at once; the request (a token: asking
/// again is harmless) is retried a few times with backoff before the error
/// reaches the model client.
pub(crate) struct LinkBroker {
    out: mpsc::Sender<FromWorker>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<BrokerResponse, AuthError>>>>,
    next: AtomicU64,
}

/// Attempts per broker request while the broker is unavailable.
const BROKER_ATTEMPTS: u32 = 6;
/// Deadline of one attempt (the supervisor has its own, shorter).
const BROKER_ATTEMPT_DEADLINE: Duration = Duration::from_secs(90);

impl LinkBroker {
    pub(crate) fn new(out: mpsc::Sender<FromWorker>) -> Arc<Self> {
        Arc::new(Self {
            out,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        })
    }

    pub(crate) fn resolve(&self, id: u64, result: Result<BrokerResponse, AuthError>) {
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    /// One request, any answer (bounded by the attempt deadline).
    async fn ask_raw(&self, request: BrokerRequest) -> Result<BrokerResponse, AuthError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        if self
            .out
            .send(FromWorker::Broker { id, request })
            .await
            .is_err()
        {
            return Err(AuthError::Unavailable("the supervisor is gone".into()));
        }
        let answer = tokio::time::timeout(BROKER_ATTEMPT_DEADLINE, rx).await;
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
        match answer {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(AuthError::Unavailable(
                "no answer from the supervisor".into(),
            )),
            Err(_) => Err(AuthError::Unavailable(format!(
                "the broker did not answer within {}s",
                BROKER_ATTEMPT_DEADLINE.as_secs()
            ))),
        }
    }

    async fn ask_once(&self, request: BrokerRequest) -> Result<AuthToken, AuthError> {
        match self.ask_raw(request).await? {
            BrokerResponse::Token(t) => Ok(t),
            other => Err(AuthError::Transient(format!(
                "unexpected broker answer {other:?}"
            ))),
        }
    }

    async fn ask(self: Arc<Self>, request: BrokerRequest) -> Result<AuthToken, AuthError> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match self.ask_once(request.clone()).await {
                Err(e @ (AuthError::Unavailable(_) | AuthError::Overloaded))
                    if attempt < BROKER_ATTEMPTS =>
                {
                    tracing::info!("{e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(3));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// MCP OAuth tokens from the broker, which refreshes them (it alone writes
/// credentials). A broker that cannot answer means no token: the server
/// then reports that it needs a login.
struct LinkMcpTokens(Arc<LinkBroker>);

impl codex_core::mcp::oauth::McpTokenSource for LinkMcpTokens {
    fn token(&self, server: &str, _url: &str) -> BoxFuture<'static, Option<String>> {
        let broker = self.0.clone();
        let server = server.to_string();
        Box::pin(async move {
            match broker
                .ask_raw(BrokerRequest::McpToken {
                    server: server.clone(),
                })
                .await
            {
                Ok(BrokerResponse::McpToken { access_token }) => access_token,
                Ok(other) => {
                    tracing::warn!("mcp server {server}: unexpected broker answer {other:?}");
                    None
                }
                Err(e) => {
                    tracing::debug!("mcp server {server}: no OAuth token from the broker: {e}");
                    None
                }
            }
        })
    }
}

/// `TokenSource` over the link (the struct is shared with the main loop,
/// which delivers the replies).
pub(crate) struct LinkTokens(pub(crate) Arc<LinkBroker>);

impl TokenSource for LinkTokens {
    fn token(&self) -> BoxFuture<'static, Result<AuthToken, AuthError>> {
        Box::pin(self.0.clone().ask(BrokerRequest::GetToken))
    }

    fn refresh(&self, stale: String) -> BoxFuture<'static, Result<AuthToken, AuthError>> {
        Box::pin(self.0.clone().ask(BrokerRequest::Refresh { stale }))
    }
}

/// What the approval handler hands to the event forwarder.
enum ApprovalMsg {
    Request(u64, Box<ApprovalRequest>),
    Cancelled(u64),
}

/// Tells the supervisor a request is void if the waiting future is dropped
/// before an answer arrived (deadline, interrupted turn).
struct CancelOnDrop {
    id: u64,
    out: mpsc::Sender<ApprovalMsg>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.out.try_send(ApprovalMsg::Cancelled(self.id));
        }
    }
}

impl ApprovalHandler for LinkApprovals {
    fn decide(&self, request: ApprovalRequest) -> BoxFuture<'static, ReviewDecision> {
        let answer = self.ask(request);
        Box::pin(async move { answer.await.0 })
    }

    fn elicit(&self, request: ElicitationRequest) -> BoxFuture<'static, ElicitationAnswer> {
        let answer = self.ask(ApprovalRequest::Elicitation(request));
        Box::pin(async move {
            match answer.await {
                (_, Some(a)) => a,
                (d, None) if d.is_approved() => ElicitationAnswer {
                    action: ElicitationAction::Accept,
                    content: None,
                    meta: None,
                },
                _ => ElicitationAnswer::decline(),
            }
        })
    }
}

impl LinkApprovals {
    fn ask(&self, request: ApprovalRequest) -> BoxFuture<'static, Answer> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let out = self.out.clone();
        Box::pin(async move {
            if out
                .send(ApprovalMsg::Request(id, Box::new(request)))
                .await
                .is_err()
            {
                return (ReviewDecision::Denied, None);
            }
            let mut guard = CancelOnDrop {
                id,
                out,
                armed: true,
            };
            let decision = rx.await.unwrap_or((ReviewDecision::Denied, None));
            guard.armed = false;
            decision
        })
    }
}

pub(crate) fn load_config(init: &ThreadInit) -> Result<Config, String> {
    let cli_overrides = init
        .config_overrides
        .iter()
        .map(|(k, v)| CliOverride::from_json(k, v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Config::load(LoadOptions {
        codex_home: Some(init.codex_home.clone()),
        cli_overrides,
        overrides: ConfigOverrides {
            model: init.model.clone(),
            model_provider: init.model_provider.clone(),
            approval_policy: init.approval_policy,
            default_approval_policy: init.default_approval_policy,
            sandbox_mode: init.sandbox_mode,
            cwd: init.cwd.clone(),
            base_instructions: init.base_instructions.clone(),
            developer_instructions: init.developer_instructions.clone(),
            additional_writable_roots: init.additional_writable_roots.clone(),
            ignore_user_config: init.ignore_user_config,
            ..Default::default()
        },
    })
    .map_err(|e| e.to_string())
}

type Opened = (Thread, mpsc::Receiver<Event>, ThreadReady);

fn open_thread(
    init: &ThreadInit,
    approvals: Arc<LinkApprovals>,
    broker: Option<Arc<LinkBroker>>,
    dynamic: Arc<LinkDynamicTools>,
    memory: Option<Arc<crate::worker_memory::LinkMemory>>,
) -> Result<Opened, String> {
    let config = load_config(init)?;
    let warnings = config.warnings.clone();
    let mut opts = ThreadOptions::new(init.originator.clone(), init.source.clone());
    opts.approvals = approvals;
    opts.ephemeral = init.ephemeral;
    opts.thread_id = init.thread_id.clone();
    opts.history_mode = init.history_mode.clone();
    opts.thread_source = init.thread_source.clone();
    opts.dynamic_tools = init.dynamic_tools.clone();
    opts.dynamic_client = Some(Arc::new(SharedLinkDynamicTools(dynamic)));
    opts.command_isolation = Isolation::InheritGroup;
    // This binary is the sandbox helper (`codex-linux-sandbox`).
    let mut protection = codex_core::exec::Protection::for_config(&config);
    for p in &init.protected_paths {
        protection.hide(p);
    }
    opts.sandbox = codex_core::exec::platform_sandbox(protection);
    if let Some(b) = broker {
        opts.mcp_tokens = Some(Arc::new(LinkMcpTokens(b.clone())));
        opts.token_source = Some(Arc::new(LinkTokens(b)));
    }
    // The lane is offered whether or not shaping is on now: each turn reads
    // `[context_shaping]` afresh (a config write may turn it on).
    if let Some(m) = &memory {
        opts.local_generator = Some(Arc::new(crate::worker_memory::LinkGenerator(m.clone())));
    }
    if let Some(m) = memory.filter(|_| config.memories.enabled && config.memories.use_memories) {
        opts.memory_recall = Some(Arc::new(crate::worker_memory::LinkRecall(m)));
    }
    let (thread, events, last_usage) = match &init.resume_path {
        Some(path) => {
            let (t, rx, loaded) = Thread::resume(config, path, opts).map_err(|e| e.to_string())?;
            (t, rx, loaded.last_token_usage)
        }
        None => {
            let (t, rx) = Thread::start(config, opts).map_err(|e| e.to_string())?;
            (t, rx, None)
        }
    };
    let c = thread.config();
    let ready = ThreadReady {
        thread_id: thread.id().to_string(),
        rollout_path: thread.rollout_path().map(|p| p.to_path_buf()),
        cwd: c.cwd.clone(),
        model: c.model.clone(),
        model_provider: c.model_provider_id.clone(),
        approval_policy: c.approval_policy,
        sandbox_policy: c.sandbox_policy.clone(),
        reasoning_effort: c.model_reasoning_effort,
        developer_instructions: c.developer_instructions.clone(),
        warnings,
        last_usage,
    };
    Ok((thread, events, ready))
}

async fn run(link: std::os::unix::net::UnixStream) -> i32 {
    let (out_tx, mut in_rx, writer) =
        match serve_link::<ToWorker, FromWorker>(link, 1024, "codex-session") {
            Ok(l) => l,
            Err(e) => {
                eprintln!("codex-session: bad link: {e}");
                return 2;
            }
        };

    let init = match tokio::time::timeout(INIT_DEADLINE, in_rx.recv()).await {
        Ok(Some(ToWorker::Init(init))) => *init,
        _ => {
            eprintln!("codex-session: no Init from the supervisor");
            return 2;
        }
    };
    // An internal pipeline worker hosts no thread.
    if let Some(pass) = init.memory_pass.clone() {
        return crate::pipeline_worker::run(init, pass, out_tx, in_rx, writer).await;
    }
    let (approval_tx, mut approval_rx) = mpsc::channel::<ApprovalMsg>(64);
    let approvals = Arc::new(LinkApprovals {
        out: approval_tx,
        pending: Mutex::new(HashMap::new()),
        next: AtomicU64::new(0),
    });
    let broker = LinkBroker::new(out_tx.clone());
    let link_broker = init.use_broker.then(|| broker.clone());
    let (dynamic_tx, mut dynamic_rx) = mpsc::channel::<FromWorker>(64);
    let dynamic = Arc::new(LinkDynamicTools::new(dynamic_tx));
    let memory = crate::worker_memory::LinkMemory::new(out_tx.clone());
    let link_memory = init.use_memory.then(|| memory.clone());
    let opened = open_thread(
        &init,
        approvals.clone(),
        link_broker,
        dynamic.clone(),
        link_memory,
    );
    let (thread, mut events, ready) = match opened {
        Ok(t) => t,
        Err(message) => {
            let _ = out_tx.send(FromWorker::InitFailed { message }).await;
            drop(out_tx);
            drop(approvals);
            writer.close(SHUTDOWN_GRACE).await;
            return 1;
        }
    };
    // A `required` MCP server that cannot start fails the thread start.
    if let Err(message) = thread.wait_required_mcp().await {
        thread.shutdown().await;
        let _ = out_tx.send(FromWorker::InitFailed { message }).await;
        drop(out_tx);
        drop(approvals);
        writer.close(SHUTDOWN_GRACE).await;
        return 1;
    }
    let _ = out_tx.send(FromWorker::Ready(Box::new(ready))).await;

    // Forwards events and approval messages, in order, until told to stop;
    // then forwards what is already queued and ends. (Waiting for the event
    // channel to close would wait on every clone of the thread.)
    let (stop_forward, mut stop_rx) = oneshot::channel::<()>();
    let forward = {
        let out = out_tx.clone();
        tokio::spawn(async move {
            let send_event = |event| FromWorker::Event {
                event: Box::new(event),
            };
            let approval_msg = |msg| match msg {
                ApprovalMsg::Request(approval_id, request) => FromWorker::ApprovalRequest {
                    approval_id,
                    request: *request,
                },
                ApprovalMsg::Cancelled(approval_id) => {
                    FromWorker::ApprovalCancelled { approval_id }
                }
            };
            loop {
                tokio::select! {
                    biased;
                    ev = events.recv() => match ev {
                        Some(ev) => {
                            if out.send(send_event(ev)).await.is_err() {
                                return;
                            }
                        }
                        None => break,
                    },
                    Some(msg) = approval_rx.recv() => {
                        // Everything emitted before the request goes first.
                        while let Ok(ev) = events.try_recv() {
                            let _ = out.send(send_event(ev)).await;
                        }
                        let _ = out.send(approval_msg(msg)).await;
                    }
                    Some(msg) = dynamic_rx.recv() => {
                        // The call's item is announced before the call.
                        while let Ok(ev) = events.try_recv() {
                            let _ = out.send(send_event(ev)).await;
                        }
                        let _ = out.send(msg).await;
                    }
                    _ = &mut stop_rx => break,
                }
            }
            while let Ok(ev) = events.try_recv() {
                if out.send(send_event(ev)).await.is_err() {
                    return;
                }
            }
            while let Ok(msg) = approval_rx.try_recv() {
                let _ = out.send(approval_msg(msg)).await;
            }
            while let Ok(msg) = dynamic_rx.try_recv() {
                let _ = out.send(msg).await;
            }
        })
    };

    // Heartbeats come from this loop, so a wedged engine (not only a stopped
    // process) falls silent and the supervisor's watchdog notices.
    let mut heartbeat = tokio::time::interval(Duration::from_millis(
        init.heartbeat_ms.unwrap_or(3_600_000).max(10),
    ));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut active: Option<ActiveTurn> = None;
    let mut supervisor_gone = false;
    loop {
        if active.as_ref().is_some_and(|a| a.handle.is_finished()) {
            active = None;
        }
        let msg = tokio::select! {
            m = in_rx.recv() => m,
            _ = heartbeat.tick() => {
                if init.heartbeat_ms.is_some() {
                    let _ = out_tx.try_send(FromWorker::Heartbeat);
                }
                continue;
            }
        };
        let Some(msg) = msg else {
            // The supervisor is gone: stop working for nobody.
            supervisor_gone = true;
            if let Some(a) = active.take() {
                a.cancel.cancel();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, a.handle).await;
            }
            break;
        };
        match msg {
            ToWorker::TurnStart {
                turn_id,
                input,
                output_schema,
                overrides,
                compact,
                client_message_id,
            } => {
                if active.as_ref().is_some_and(|a| !a.handle.is_finished()) {
                    let _ = out_tx
                        .send(FromWorker::TurnRejected {
                            turn_id,
                            message: "a turn is already running on this thread".into(),
                        })
                        .await;
                    continue;
                }
                if let Some(message) = thread.take_model_warning() {
                    let _ = out_tx
                        .send(FromWorker::Event {
                            event: Box::new(Event::Warning { message }),
                        })
                        .await;
                }
                let _ = out_tx
                    .send(FromWorker::TurnAccepted {
                        turn_id: turn_id.clone(),
                    })
                    .await;
                let cancel = CancellationToken::new();
                let steer = SteerInbox::default();
                let t = thread.clone();
                let req = TurnRequest {
                    input,
                    output_schema,
                    cancel: cancel.clone(),
                    turn_id: Some(turn_id.clone()),
                    overrides,
                    steer: steer.clone(),
                    compact,
                    client_message_id,
                };
                let handle = tokio::spawn(async move {
                    // One turn at a time is enforced above, so the
                    // thread's own queue never refuses it.
                    if let Err(e) = t.run_turn(req).await {
                        tracing::warn!("codex-session: {e}");
                    }
                });
                active = Some(ActiveTurn {
                    turn_id,
                    cancel,
                    steer,
                    handle,
                });
            }
            ToWorker::TurnSteer {
                steer_id,
                expected_turn_id,
                input,
                client_message_id,
            } => {
                let input = SteerInput {
                    input,
                    client_id: client_message_id,
                };
                steer_turn(
                    active.as_ref(),
                    &steer_id,
                    &expected_turn_id,
                    input,
                    &out_tx,
                )
                .await;
            }
            ToWorker::TurnInterrupt { turn_id } => {
                if let Some(a) = &active {
                    if turn_id.as_deref().is_none_or(|t| t == a.turn_id) {
                        a.cancel.cancel();
                    }
                }
            }
            ToWorker::ApprovalDecision {
                approval_id,
                decision,
                answer,
            } => approvals.resolve(approval_id, (decision, answer)),
            ToWorker::Mcp { id, request } => {
                let out = out_tx.clone();
                let t = thread.clone();
                let init = init.clone();
                tokio::spawn(async move {
                    let result = crate::worker_mcp::answer(&t, &init, request).await;
                    let _ = out.send(FromWorker::McpReply { id, result }).await;
                });
            }
            ToWorker::Shutdown => {
                if let Some(a) = active.take() {
                    a.cancel.cancel();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, a.handle).await;
                }
                break;
            }
            ToWorker::BrokerReply { id, result } => broker.resolve(id, result),
            ToWorker::MemoryReply { id, result } => memory.resolve(id, result),
            ToWorker::DynamicToolResult { call, result } => dynamic.resolve(call, result),
            ToWorker::Init(_) => tracing::warn!("codex-session: ignoring a second Init"),
        }
    }
    // The turn has ended and recorded its end: what it emitted is queued.
    approvals.decline_all();
    dynamic.fail_all();
    // MCP servers die with their thread (whole trees, bounded).
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, thread.shutdown()).await;
    drop(thread);
    if supervisor_gone {
        // Nobody is left to read the link or to kill what remains.
        crate::guardian::end_self();
    }
    let _ = stop_forward.send(());
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, forward).await;
    drop(approvals);
    drop(out_tx);
    writer.close(SHUTDOWN_GRACE).await;
    0
}

/// The turn this worker is running.
struct ActiveTurn {
    turn_id: String,
    cancel: CancellationToken,
    steer: SteerInbox,
    handle: tokio::task::JoinHandle<()>,
}

/// `turn/steer`: the input goes into the running turn if it is the one the
/// client expects. The acceptance is queued while the inbox is locked, so it
/// reaches the supervisor before the turn reports the input.
async fn steer_turn(
    active: Option<&ActiveTurn>,
    steer_id: &str,
    expected: &str,
    input: SteerInput,
    out: &mpsc::Sender<FromWorker>,
) {
    let rejected = |message: String| FromWorker::SteerRejected {
        steer_id: steer_id.to_string(),
        message,
    };
    let Some(a) = active.filter(|a| !a.handle.is_finished()) else {
        let _ = out.send(rejected("no active turn to steer".into())).await;
        return;
    };
    if a.turn_id != expected {
        let _ = out
            .send(rejected(format!(
                "expected active turn id `{expected}` but found `{}`",
                a.turn_id
            )))
            .await;
        return;
    }
    let mut inbox = a.steer.lock().await;
    if !inbox.is_open() {
        drop(inbox);
        let _ = out.send(rejected("no active turn to steer".into())).await;
        return;
    }
    let _ = out
        .send(FromWorker::SteerAccepted {
            steer_id: steer_id.to_string(),
            turn_id: a.turn_id.clone(),
        })
        .await;
    let _ = inbox.push(input);
}
