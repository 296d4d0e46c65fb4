//! A loaded thread: its worker, its subscribers, and the task that turns the
//! worker's messages into notifications, responses and approval requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use codex_core::approval::{ApprovalRequest, ReviewDecision};
use codex_core::protocol::{Event, UserInput};
use codex_core::tools::dynamic::{DynamicToolAnswer, DynamicToolRequest};
use codex_ipc::app_server::dynamic_tools::{self, DynamicToolCallParams};
use codex_ipc::app_server::events::ThreadEventMapper;
use codex_ipc::app_server::notifications::{
    ErrorNotification, ServerNotification, ServerRequestResolvedNotification,
    ThreadClosedNotification, ThreadStatusChangedNotification, WarningNotification,
};
use codex_ipc::app_server::objects::{
    CodexErrorInfo, ThreadStatusView, ThreadTokenUsage, TurnError,
};
use codex_ipc::app_server::responses::TurnStartResponse;
use codex_ipc::app_server::server_requests::{elicitation_answer, review_decision, ServerRequest};
use codex_ipc::app_server::turn_control::TurnSteerResponse;
use codex_ipc::jsonrpc::{RequestId, RpcError};
use codex_ipc::link::{ThreadReady, WorkerMessage, WorkerThread};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::conn::PendingServerRequest;
use super::send::{self, ConnSend};
use super::Server;
use crate::containment::Containment;
use crate::governor::{Governor, Pressure, Transition};

/// How long a worker's broker request may take (a refresh has its own
/// 30 s deadline inside).
const BROKER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Facts about a thread fixed when it was loaded.
#[derive(Debug, Clone)]
pub struct ThreadMeta {
    pub source: String,
    pub originator: String,
    pub created_at: i64,
    pub ephemeral: bool,
}

/// An approval the worker is waiting for.
struct ApprovalRoute {
    request: ApprovalRequest,
    /// Connection and request id it was sent as, once routed.
    sent: Option<(u64, i64)>,
}

struct Runtime {
    ready: ThreadReady,
    subscribers: Vec<u64>,
    mapper: ThreadEventMapper,
    /// turn id → (connection, request id) of a `turn/start` awaiting its turn.
    pending_turns: HashMap<String, (u64, RequestId)>,
    /// steer id → (connection, request id) of a `turn/steer` awaiting the
    /// worker's answer.
    pending_steers: HashMap<String, (u64, RequestId)>,
    approvals: HashMap<u64, ApprovalRoute>,
    /// A turn the worker accepted that has not reported its start yet.
    accepted_turn: Option<String>,
    /// The worker announced an approval (`Event::ApprovalPending`) that has
    /// not arrived yet: the thread already shows as waiting on it.
    approval_pending: bool,
    /// Dynamic tool calls waiting for a client: call → (connection,
    /// request id, tool).
    tool_calls: HashMap<u64, (u64, i64, String)>,
    preview: Option<String>,
}

/// Why a worker is being stopped by the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// Asked to exit (shutdown, archive, idle unload): nothing to report.
    Requested,
    /// Killed for cause (watchdog, memory cap): subscribers get an `error`.
    Killed(String),
}

pub struct LoadedThread {
    pub id: String,
    pub worker: WorkerThread,
    pub meta: ThreadMeta,
    /// Everything the worker started, and how to take it down.
    pub containment: Arc<Containment>,
    governor: Mutex<Governor>,
    stop: Mutex<Option<StopReason>>,
    /// Set when the thread became unwatched and idle.
    idle_since: Mutex<Option<Instant>>,
    unloading: AtomicBool,
    rt: Mutex<Runtime>,
    exited_rx: watch::Receiver<bool>,
    /// Questions to the worker about its MCP servers, by id.
    mcp_pending: Mutex<HashMap<u64, tokio::sync::oneshot::Sender<Result<Value, String>>>>,
    next_mcp: std::sync::atomic::AtomicU64,
    /// Each MCP server's last reported state (for `codexd/status`).
    mcp_states: Mutex<
        std::collections::BTreeMap<String, (codex_core::protocol::McpStartupState, Option<String>)>,
    >,
}

/// How long codexd waits for a worker's answer about its MCP servers (a
/// tool call has its own, longer deadline inside the worker).
pub const MCP_QUERY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

impl LoadedThread {
    /// Registers a ready worker and starts pumping its messages.
    pub fn start(
        server: &Arc<Server>,
        worker: WorkerThread,
        messages: mpsc::Receiver<WorkerMessage>,
        containment: Containment,
        meta: ThreadMeta,
        preview: Option<String>,
    ) -> Arc<LoadedThread> {
        let (exited_tx, exited_rx) = watch::channel(false);
        let id = worker.ready.thread_id.clone();
        let t = Arc::new(LoadedThread {
            rt: Mutex::new(Runtime {
                ready: worker.ready.clone(),
                subscribers: Vec::new(),
                mapper: ThreadEventMapper::new(id.clone()),
                pending_turns: HashMap::new(),
                pending_steers: HashMap::new(),
                approvals: HashMap::new(),
                approval_pending: false,
                accepted_turn: None,
                tool_calls: HashMap::new(),
                preview,
            }),
            id,
            worker,
            meta,
            containment: Arc::new(containment),
            governor: Mutex::new(Governor::new()),
            stop: Mutex::new(None),
            idle_since: Mutex::new(None),
            unloading: AtomicBool::new(false),
            exited_rx,
            mcp_pending: Mutex::new(HashMap::new()),
            next_mcp: std::sync::atomic::AtomicU64::new(0),
            mcp_states: Mutex::new(Default::default()),
        });
        server.insert_thread(t.clone());
        tokio::spawn(pump(Arc::downgrade(server), t.clone(), messages, exited_tx));
        t
    }

    fn rt(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.rt.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn governor(&self) -> std::sync::MutexGuard<'_, Governor> {
        self.governor.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pressure(&self) -> Pressure {
        self.governor().level()
    }

    /// Kills the worker's tree for `reason` (reported to subscribers when
    /// the worker is gone). The first reason given wins.
    pub fn kill(&self, reason: String) {
        {
            let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
            if stop.is_none() {
                tracing::warn!("thread {}: killing its worker: {reason}", self.id);
                *stop = Some(StopReason::Killed(reason));
            }
        }
        self.worker.kill();
    }

    /// Asks the worker to finish and exit; kills it if it does not in time.
    pub async fn stop(&self) {
        {
            let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
            stop.get_or_insert(StopReason::Requested);
        }
        self.unloading.store(true, Ordering::Relaxed);
        if self
            .worker
            .try_send(codex_ipc::link::ToWorker::Shutdown)
            .is_err()
        {
            self.worker.kill();
        }
        if tokio::time::timeout(super::SHUTDOWN_GRACE, self.exited())
            .await
            .is_err()
        {
            self.worker.kill();
            self.exited().await;
        }
    }

    /// Being stopped: requests must wait for the exit, then load it anew.
    pub fn is_unloading(&self) -> bool {
        self.unloading.load(Ordering::Relaxed) || *self.exited_rx.borrow()
    }

    /// How long the thread has had no subscriber, no turn and no pending
    /// approval (`None`: it is in use). Updates the bookkeeping.
    pub fn idle_for(&self, now: Instant) -> Option<std::time::Duration> {
        let in_use = {
            let rt = self.rt();
            !rt.subscribers.is_empty()
                || rt.mapper.active_turn_id().is_some()
                || !rt.pending_turns.is_empty()
                || !rt.approvals.is_empty()
                || !rt.tool_calls.is_empty()
        };
        let mut since = self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if in_use {
            *since = None;
            return None;
        }
        Some(now.duration_since(*since.get_or_insert(now)))
    }

    /// Acts on a change of pressure level found by the governor.
    pub fn on_pressure(&self, server: &Server, tr: &Transition) {
        match tr.to {
            Pressure::Terminal => self.kill(format!("it was killed by codexd: {}", tr.reason)),
            Pressure::Soft | Pressure::Hard if tr.to > tr.from => {
                tracing::warn!(
                    "thread {}: pressure {} ({})",
                    self.id,
                    tr.to.as_str(),
                    tr.reason
                );
                let message = if tr.to == Pressure::Soft {
                    format!(
                        "This thread's worker is over its soft resource limit ({}); it now runs at lower priority.",
                        tr.reason
                    )
                } else {
                    format!(
                        "This thread's worker is over its hard resource limit ({}); new turns are refused until it is back under the limit.",
                        tr.reason
                    )
                };
                self.broadcast(
                    server,
                    &[WarningNotification {
                        thread_id: self.id.clone(),
                        message,
                    }
                    .into()],
                );
            }
            _ => tracing::info!(
                "thread {}: pressure {} ({})",
                self.id,
                tr.to.as_str(),
                tr.reason
            ),
        }
    }

    pub fn ready(&self) -> ThreadReady {
        self.rt().ready.clone()
    }

    pub fn preview(&self) -> Option<String> {
        self.rt().preview.clone()
    }

    pub fn set_preview_if_empty(&self, input: &[UserInput]) {
        let mut rt = self.rt();
        if rt.preview.is_none() {
            rt.preview = input.iter().find_map(|i| match i {
                UserInput::Text { text } => Some(text.clone()),
                _ => None,
            });
        }
    }

    pub fn status(&self) -> ThreadStatusView {
        status_of(&self.rt())
    }

    pub fn active_turn_id(&self) -> Option<String> {
        self.rt().mapper.active_turn_id().map(str::to_string)
    }

    /// A turn is running or about to.
    pub fn is_busy(&self) -> bool {
        let rt = self.rt();
        rt.mapper.active_turn_id().is_some() || !rt.pending_turns.is_empty()
    }

    /// The last token usage this process reported: (turn id, usage).
    pub fn last_usage(&self) -> Option<(String, ThreadTokenUsage)> {
        self.rt().mapper.last_usage.clone()
    }

    pub fn subscribe(&self, server: &Server, conn: u64) {
        // A connection whose request subscribes it holds this thread's
        // notifications until its answer is out.
        if let Some(c) = server.conn(conn) {
            c.holding_for(&self.id);
        }
        {
            let mut rt = self.rt();
            if !rt.subscribers.contains(&conn) {
                rt.subscribers.push(conn);
            }
        }
        // Approvals nobody could be asked about go to the newcomer.
        self.route_unsent(server);
    }

    /// Returns whether the connection was subscribed.
    pub fn unsubscribe(&self, server: &Server, conn: u64) -> bool {
        let was = {
            let mut rt = self.rt();
            let was = rt.subscribers.contains(&conn);
            rt.subscribers.retain(|c| *c != conn);
            for route in rt.approvals.values_mut() {
                if route.sent.is_some_and(|(c, _)| c == conn) {
                    route.sent = None;
                }
            }
            was
        };
        self.route_unsent(server);
        self.fail_tool_calls_of(server, conn);
        was
    }

    pub fn is_subscriber(&self, conn: u64) -> bool {
        self.rt().subscribers.contains(&conn)
    }

    pub fn subscriber_count(&self) -> usize {
        self.rt().subscribers.len()
    }

    pub fn expect_turn(&self, turn_id: &str, conn: u64, request: RequestId) {
        self.rt()
            .pending_turns
            .insert(turn_id.to_string(), (conn, request));
    }

    pub fn cancel_expected_turn(&self, turn_id: &str) {
        self.rt().pending_turns.remove(turn_id);
    }

    /// The turn a `turn/steer` may name: the running one, or one accepted
    /// by `turn/start` that has not reported its start yet.
    pub fn steerable_turn_id(&self, expected: &str) -> Option<String> {
        let rt = self.rt();
        match rt.mapper.active_turn_id() {
            Some(active) => Some(active.to_string()),
            None => (rt.pending_turns.contains_key(expected)
                || rt.accepted_turn.as_deref() == Some(expected))
            .then(|| expected.to_string()),
        }
    }

    pub fn expect_steer(&self, steer_id: &str, conn: u64, request: RequestId) {
        self.rt()
            .pending_steers
            .insert(steer_id.to_string(), (conn, request));
    }

    pub fn cancel_expected_steer(&self, steer_id: &str) {
        self.rt().pending_steers.remove(steer_id);
    }

    fn on_steer_answer(&self, server: &Server, steer_id: &str, answer: Result<String, String>) {
        let waiting = self.rt().pending_steers.remove(steer_id);
        let Some((conn, id)) = waiting else { return };
        let Some(c) = server.conn(conn) else { return };
        match answer {
            Ok(turn_id) => c.send_result(&id, &TurnSteerResponse { turn_id }),
            Err(message) => c.error(&id, &RpcError::invalid_request(message)),
        }
    }

    /// Waits until the worker has exited.
    pub async fn exited(&self) {
        let mut rx = self.exited_rx.clone();
        let _ = rx.wait_for(|e| *e).await;
    }

    fn broadcast(&self, server: &Server, notes: &[ServerNotification]) {
        let subs = self.rt().subscribers.clone();
        if subs.is_empty() {
            return;
        }
        // Encoded once, whatever the number of subscribers.
        let encoded: Vec<(&'static str, Value)> = notes.iter().filter_map(send::encode).collect();
        for sub in subs {
            if let Some(conn) = server.conn(sub) {
                for (method, params) in &encoded {
                    // Read state is for clients that can act on it
                    // (`thread/readState/update` is experimental).
                    if *method == "thread/readState/changed" && !conn.experimental_api() {
                        continue;
                    }
                    conn.notify_thread(&self.id, method, params.clone());
                }
            }
        }
    }

    /// Sends `note` to every subscriber.
    pub fn publish(&self, server: &Server, note: ServerNotification) {
        self.broadcast(server, &[note]);
    }

    fn status_note(&self) -> ServerNotification {
        ThreadStatusChangedNotification::new(&self.id, self.status()).into()
    }

    fn resolved_note(&self, request_id: i64) -> ServerNotification {
        ServerRequestResolvedNotification {
            thread_id: self.id.clone(),
            request_id,
        }
        .into()
    }

    /// Asks the worker about its MCP servers, waiting at most `deadline`.
    pub async fn mcp(
        &self,
        request: codex_ipc::link::McpRequest,
        deadline: std::time::Duration,
    ) -> Result<Value, String> {
        let id = self
            .next_mcp
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut p) = self.mcp_pending.lock() {
            p.insert(id, tx);
        }
        let sent = self
            .worker
            .try_send(codex_ipc::link::ToWorker::Mcp { id, request });
        let outcome = match sent {
            Err(e) => Err(format!("the thread's worker cannot be reached: {e}")),
            Ok(()) => match tokio::time::timeout(deadline, rx).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err("the thread's worker exited".into()),
                Err(_) => Err(format!(
                    "the thread's worker did not answer within {}s",
                    deadline.as_secs()
                )),
            },
        };
        if let Ok(mut p) = self.mcp_pending.lock() {
            p.remove(&id);
        }
        outcome
    }

    fn on_mcp_reply(&self, id: u64, result: Result<Value, String>) {
        let tx = self.mcp_pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    /// Each MCP server's last reported state and error.
    pub fn mcp_states(
        &self,
    ) -> Vec<(
        String,
        codex_core::protocol::McpStartupState,
        Option<String>,
    )> {
        self.mcp_states
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, (s, e))| (k.clone(), *s, e.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn on_approval(&self, server: &Server, approval_id: u64, request: ApprovalRequest) {
        let announced = {
            let mut rt = self.rt();
            rt.approvals.insert(
                approval_id,
                ApprovalRoute {
                    request,
                    sent: None,
                },
            );
            std::mem::take(&mut rt.approval_pending)
        };
        // Announced: the status already said so, before the item started.
        if !announced {
            self.broadcast(server, &[self.status_note()]);
        }
        self.route_unsent(server);
    }

    /// Sends every approval not yet sent to a live subscriber, to the first
    /// live subscriber.
    fn route_unsent(&self, server: &Server) {
        let (unsent, target) = {
            let rt = self.rt();
            let unsent: Vec<(u64, ApprovalRequest)> = rt
                .approvals
                .iter()
                .filter(|(_, r)| r.sent.is_none())
                .map(|(id, r)| (*id, r.request.clone()))
                .collect();
            let target = rt.subscribers.iter().find_map(|c| server.conn(*c));
            (unsent, target)
        };
        let Some(conn) = target else {
            if !unsent.is_empty() {
                tracing::warn!(
                    "thread {}: {} approval(s) waiting for a subscriber",
                    self.id,
                    unsent.len()
                );
            }
            return;
        };
        for (approval_id, request) in unsent {
            let request = ServerRequest::approval(&self.id, &request, codex_ipc::jsonrpc::now_ms());
            let Some(rid) = conn.send_request(
                &request,
                PendingServerRequest {
                    thread_id: self.id.clone(),
                    approval_id,
                    tool_call: false,
                },
            ) else {
                continue;
            };
            if let Some(route) = self.rt().approvals.get_mut(&approval_id) {
                route.sent = Some((conn.id, rid));
            }
        }
    }

    /// A client answered approval `approval_id` (sent as request `rid`).
    pub async fn resolve_approval(
        &self,
        server: &Server,
        approval_id: u64,
        rid: i64,
        answer: Result<Value, RpcError>,
    ) {
        let route = self.rt().approvals.remove(&approval_id);
        if route.is_none() {
            return;
        }
        let is_elicitation = route
            .as_ref()
            .is_some_and(|r| matches!(r.request, ApprovalRequest::Elicitation(_)));
        let (decision, elicitation) = if is_elicitation {
            let a = match &answer {
                Ok(result) => elicitation_answer(result),
                Err(_) => codex_core::approval::ElicitationAnswer::decline(),
            };
            let d = if a.action == codex_core::approval::ElicitationAction::Accept {
                ReviewDecision::Approved
            } else {
                ReviewDecision::Denied
            };
            (d, Some(a))
        } else {
            let d = match &answer {
                Ok(result) => review_decision(result),
                Err(_) => ReviewDecision::Denied,
            };
            (d, None)
        };
        if let Err(e) = self
            .worker
            .try_send(codex_ipc::link::ToWorker::ApprovalDecision {
                approval_id,
                decision,
                answer: elicitation,
            })
        {
            tracing::warn!(
                "thread {}: approval {approval_id} not delivered: {e}",
                self.id
            );
        }
        self.broadcast(server, &[self.resolved_note(rid), self.status_note()]);
    }

    /// The worker stopped waiting (deadline, interrupt): the client's request
    /// is resolved without its answer; a late answer is ignored.
    fn on_approval_cancelled(&self, server: &Server, approval_id: u64) {
        let route = self.rt().approvals.remove(&approval_id);
        let Some(route) = route else {
            return;
        };
        let mut notes = Vec::new();
        if let Some((conn, rid)) = route.sent {
            if let Some(c) = server.conn(conn) {
                c.forget_pending(&self.id, approval_id);
            }
            notes.push(self.resolved_note(rid));
        }
        notes.push(self.status_note());
        self.broadcast(server, &notes);
    }

    /// The model called a client-defined tool: the first live subscriber
    /// with the experimental API (where `dynamicTools` come from), else the
    /// first live one, is asked (`item/tool/call`); with none, the model
    /// reads why at once.
    fn on_tool_call(&self, server: &Server, call: u64, request: DynamicToolRequest) {
        let target = {
            let rt = self.rt();
            let live: Vec<_> = rt
                .subscribers
                .iter()
                .filter_map(|c| server.conn(*c))
                .collect();
            live.iter()
                .find(|c| c.experimental_api())
                .or(live.first())
                .cloned()
        };
        let sent = target.and_then(|conn| {
            let rid = conn.send_request(
                &ServerRequest::DynamicToolCall(DynamicToolCallParams::new(&self.id, &request)),
                PendingServerRequest {
                    thread_id: self.id.clone(),
                    approval_id: call,
                    tool_call: true,
                },
            )?;
            Some((conn.id, rid, request.tool.clone()))
        });
        match sent {
            Some(route) => {
                self.rt().tool_calls.insert(call, route);
            }
            None => self.answer_tool_call(
                call,
                Err(format!(
                    "no client is connected to answer dynamic tool `{}`",
                    request.tool
                )),
            ),
        }
    }

    fn answer_tool_call(&self, call: u64, result: Result<DynamicToolAnswer, String>) {
        if let Err(e) = self
            .worker
            .try_send(codex_ipc::link::ToWorker::DynamicToolResult { call, result })
        {
            tracing::warn!(
                "thread {}: dynamic tool answer {call} not delivered: {e}",
                self.id
            );
        }
    }

    /// A client answered dynamic tool call `call` (sent as request `rid`).
    pub fn resolve_tool_call(
        &self,
        server: &Server,
        call: u64,
        rid: i64,
        answer: Result<Value, RpcError>,
    ) {
        let Some((_, _, tool)) = self.rt().tool_calls.remove(&call) else {
            return;
        };
        let result = dynamic_tools::answer(&tool, answer.as_ref());
        self.answer_tool_call(call, result);
        self.broadcast(server, &[self.resolved_note(rid)]);
    }

    /// The worker stopped waiting (deadline, interrupt): the request is
    /// resolved without an answer; a late one is ignored.
    fn on_tool_call_cancelled(&self, server: &Server, call: u64) {
        let Some((conn, rid, _)) = self.rt().tool_calls.remove(&call) else {
            return;
        };
        if let Some(c) = server.conn(conn) {
            c.forget_tool_call(&self.id, call);
        }
        self.broadcast(server, &[self.resolved_note(rid)]);
    }

    /// Connection `conn` went away: the calls it was asked to answer fail.
    fn fail_tool_calls_of(&self, server: &Server, conn: u64) {
        let gone: Vec<(u64, i64)> = {
            let mut rt = self.rt();
            let calls: Vec<(u64, i64)> = rt
                .tool_calls
                .iter()
                .filter(|(_, (c, _, _))| *c == conn)
                .map(|(call, (_, rid, _))| (*call, *rid))
                .collect();
            for (call, _) in &calls {
                rt.tool_calls.remove(call);
            }
            calls
        };
        for (call, rid) in gone {
            if let Some(c) = server.conn(conn) {
                c.forget_tool_call(&self.id, call);
            }
            self.answer_tool_call(
                call,
                Err("the client asked to run this dynamic tool disconnected".into()),
            );
            self.broadcast(server, &[self.resolved_note(rid)]);
        }
    }

    fn on_event(&self, server: &Server, event: Event) {
        if let Event::McpStartupStatus {
            server: name,
            status,
            error,
        } = &event
        {
            if let Ok(mut m) = self.mcp_states.lock() {
                m.insert(name.clone(), (*status, error.clone()));
            }
        }
        match &event {
            // Upstream's order: waitingOnApproval, then the item, then the
            // request.
            Event::ApprovalPending { .. } => {
                let changed = {
                    let mut rt = self.rt();
                    let was = status_of(&rt);
                    rt.approval_pending = true;
                    status_of(&rt) != was
                };
                if changed {
                    self.broadcast(server, &[self.status_note()]);
                }
                return;
            }
            Event::TurnStarted { .. } => self.rt().accepted_turn = None,
            Event::TurnCompleted { .. } | Event::TurnFailed { .. } | Event::TurnAborted { .. } => {
                let mut rt = self.rt();
                rt.approval_pending = false;
                rt.accepted_turn = None;
            }
            _ => {}
        }
        let mut notes = self.rt().mapper.map(&event);
        self.mark_unread(server, &event, &mut notes);
        if !notes.is_empty() {
            self.broadcast(server, &notes);
        }
    }

    /// A turn of a durable thread that ended with an answer or an error
    /// leaves it unread (an interrupted or silent one does not, as
    /// upstream); upstream says so before the thread goes idle.
    fn mark_unread(&self, server: &Server, event: &Event, notes: &mut Vec<ServerNotification>) {
        let turn_id = match event {
            Event::TurnCompleted {
                turn_id,
                last_agent_message: Some(text),
                ..
            } if !text.trim().is_empty() => turn_id,
            Event::TurnFailed { turn_id, .. } => turn_id,
            _ => return,
        };
        if self.meta.ephemeral {
            return;
        }
        let note = server.read_states.turn_completed(&self.id, turn_id);
        let at = notes
            .iter()
            .position(|n| {
                matches!(
                    n,
                    ServerNotification::ThreadStatusChanged(_)
                        | ServerNotification::TurnCompleted(_)
                )
            })
            .unwrap_or(notes.len());
        notes.insert(at, note.into());
    }

    fn on_turn_accepted(&self, server: &Server, turn_id: &str) {
        let waiting = {
            let mut rt = self.rt();
            rt.accepted_turn = Some(turn_id.to_string());
            rt.pending_turns.remove(turn_id)
        };
        if let Some((conn, id)) = waiting {
            if let Some(c) = server.conn(conn) {
                c.send_result(
                    &id,
                    &TurnStartResponse {
                        turn: ThreadEventMapper::pending_turn(turn_id),
                    },
                );
            }
        }
    }

    fn on_turn_rejected(&self, server: &Server, turn_id: &str, message: &str) {
        let waiting = self.rt().pending_turns.remove(turn_id);
        if let Some((conn, id)) = waiting {
            if let Some(c) = server.conn(conn) {
                c.error(&id, &RpcError::invalid_request(message));
            }
        }
    }

    /// The worker is gone: everything waiting on it is resolved, subscribers
    /// learn why (unless it was asked to go) and that the thread is no
    /// longer loaded.
    fn on_exit(&self, server: &Server, status: Option<i32>) {
        let (approvals, turns, tool_calls) = {
            let mut rt = self.rt();
            let mut turns = std::mem::take(&mut rt.pending_turns);
            turns.extend(std::mem::take(&mut rt.pending_steers));
            (
                std::mem::take(&mut rt.approvals),
                turns,
                std::mem::take(&mut rt.tool_calls),
            )
        };
        for (call, (conn, rid, _)) in tool_calls {
            if let Some(c) = server.conn(conn) {
                c.forget_tool_call(&self.id, call);
            }
            self.broadcast(server, &[self.resolved_note(rid)]);
        }
        for (approval_id, route) in approvals {
            if let Some((conn, rid)) = route.sent {
                if let Some(c) = server.conn(conn) {
                    c.forget_pending(&self.id, approval_id);
                }
                self.broadcast(server, &[self.resolved_note(rid)]);
            }
        }
        for (_, (conn, id)) in turns {
            if let Some(c) = server.conn(conn) {
                c.error(
                    &id,
                    &RpcError::invalid_request(format!("thread {} stopped", self.id)),
                );
            }
        }
        // A turn that was running ends here as far as clients can tell.
        let mut notes = Vec::new();
        let stop = self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let active = self.active_turn_id();
        let why = match stop {
            Some(StopReason::Requested) => None,
            Some(StopReason::Killed(reason)) => Some((reason, "codexd_killed")),
            None if active.is_some() || status != Some(0) => Some((
                match status {
                    Some(code) => format!("it exited unexpectedly with status {code}"),
                    None => "it was killed by a signal".to_string(),
                },
                "worker_exited",
            )),
            None => None,
        };
        if let Some((reason, kind)) = why {
            let turn_id = active
                .clone()
                .or_else(|| self.rt().mapper.last_turn_id().map(str::to_string))
                .unwrap_or_default();
            notes.push(
                ErrorNotification {
                    thread_id: self.id.clone(),
                    turn_id,
                    will_retry: false,
                    error: TurnError::live(
                        format!("This thread's worker process stopped: {reason}. Resume the thread to continue; the interrupted turn is kept in its history."),
                        CodexErrorInfo::Other,
                        Some(kind.to_string()),
                    ),
                }
                .into(),
            );
        }
        if let Some(turn_id) = active {
            notes.extend(self.rt().mapper.map(&Event::TurnAborted {
                turn_id,
                reason: codex_core::protocol::AbortReason::Interrupted,
                usage: Default::default(),
            }));
        }
        notes.push(
            ThreadStatusChangedNotification::new(&self.id, ThreadStatusView::NotLoaded).into(),
        );
        notes.push(
            ThreadClosedNotification {
                thread_id: self.id.clone(),
            }
            .into(),
        );
        self.broadcast(server, &notes);
    }
}

fn status_of(rt: &Runtime) -> ThreadStatusView {
    if rt.mapper.active_turn_id().is_some() || !rt.pending_turns.is_empty() {
        ThreadStatusView::Active {
            waiting_on_approval: !rt.approvals.is_empty() || rt.approval_pending,
        }
    } else {
        ThreadStatusView::Idle
    }
}

async fn pump(
    server: Weak<Server>,
    thread: Arc<LoadedThread>,
    mut messages: mpsc::Receiver<WorkerMessage>,
    exited: watch::Sender<bool>,
) {
    while let Some(msg) = messages.recv().await {
        let Some(server) = server.upgrade() else {
            break;
        };
        match msg {
            WorkerMessage::Event(ev) => {
                let turn_done = matches!(ev, Event::TurnCompleted { .. });
                thread.on_event(&server, ev);
                if turn_done && !thread.meta.ephemeral {
                    server.memory_pipeline_after_turn();
                }
            }
            WorkerMessage::Approval {
                approval_id,
                request,
            } => thread.on_approval(&server, approval_id, request),
            WorkerMessage::ApprovalCancelled { approval_id } => {
                thread.on_approval_cancelled(&server, approval_id)
            }
            WorkerMessage::TurnAccepted { turn_id } => thread.on_turn_accepted(&server, &turn_id),
            WorkerMessage::TurnRejected { turn_id, message } => {
                thread.on_turn_rejected(&server, &turn_id, &message)
            }
            WorkerMessage::SteerAccepted { steer_id, turn_id } => {
                thread.on_steer_answer(&server, &steer_id, Ok(turn_id))
            }
            WorkerMessage::SteerRejected { steer_id, message } => {
                thread.on_steer_answer(&server, &steer_id, Err(message))
            }
            WorkerMessage::Broker { id, request } => {
                // Answered off the pump: a refresh may take seconds.
                let broker = server.broker.clone();
                let t = thread.clone();
                tokio::spawn(async move {
                    let result = broker.call(request, BROKER_DEADLINE).await;
                    let _ = t
                        .worker
                        .try_send(codex_ipc::link::ToWorker::BrokerReply { id, result });
                });
            }
            WorkerMessage::Memory {
                id,
                request,
                deadline_ms,
            } => server.relay_memory(&thread, id, request, deadline_ms),
            WorkerMessage::DynamicToolCall { call, request } => {
                thread.on_tool_call(&server, call, request)
            }
            WorkerMessage::DynamicToolCancelled { call } => {
                thread.on_tool_call_cancelled(&server, call)
            }
            WorkerMessage::McpReply { id, result } => thread.on_mcp_reply(id, result),
            WorkerMessage::Exited { status } => {
                tracing::info!("thread {}: worker exited ({status:?})", thread.id);
                // Unload before telling anyone, so a resume respawns.
                let still_ours = server
                    .thread(&thread.id)
                    .is_some_and(|t| Arc::ptr_eq(&t, &thread));
                if still_ours {
                    server.remove_thread(&thread.id);
                }
                // Whatever the worker left (setsid'd grandchildren too) goes
                // before anyone is told the thread is closed.
                let containment = thread.containment.clone();
                let _ = tokio::task::spawn_blocking(move || containment.kill_all()).await;
                thread.on_exit(&server, status);
                break;
            }
        }
    }
    let _ = exited.send(true);
}
