//! The turn loop: one user turn, from the user's input to the model's final
//! answer, through any number of tool calls.
//!
//! A turn builds the request (base instructions, the recorded history with the
//! initial context, the new input), streams the model's answer, runs the tool
//! calls it asks for, feeds the outputs back and loops until the model answers
//! without calling a tool. It ends completed, failed (model errors after all
//! retries, a tool loop, a missed deadline) or aborted (interrupt). Every end
//! is recorded and fsynced in the rollout before it is reported.

pub mod compact;
pub mod context;
pub mod guard;
pub mod sink;
pub mod steer;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use crate::approval::ApprovalHandler;
use crate::client::{ModelError, ModelEvent, ModelRequest, ModelService, ReasoningParams};
use crate::config::Config;
use crate::exec::Sandbox;
use crate::memory::CitationStreamParser;
use crate::models::{effective_context_window, find_model, unknown_model_warning};
use crate::protocol::*;
use crate::rollout::{RolloutItem, TurnContextItem};
use crate::tools::{ToolCall, ToolContext, ToolInvocation, ToolOutput, ToolSet};
use crate::util::backoff;
use guard::{RepeatGuard, Verdict};
use sink::EventSink;
pub use steer::{SteerGuard, SteerInbox, SteerInput};

/// Longest server-requested delay honoured between stream retries.
const MAX_STREAM_RETRY_DELAY: Duration = Duration::from_secs(120);

/// What one turn is asked to do.
#[derive(Debug, Clone, Default)]
pub struct TurnRequest {
    pub input: Vec<UserInput>,
    /// JSON Schema the final answer must follow (`--output-schema`).
    pub output_schema: Option<Value>,
    /// Cancel to interrupt the turn.
    pub cancel: CancellationToken,
    /// Id for the turn (default: a fresh UUIDv7), so a caller can name the
    /// turn before it starts.
    pub turn_id: Option<String>,
    /// Settings changed from this turn on.
    pub overrides: TurnOverrides,
    /// Input added while the turn runs (`turn/steer`); keep a clone to push.
    pub steer: SteerInbox,
    /// The client's id for the input message (`clientUserMessageId`).
    pub client_message_id: Option<String>,
    /// A compaction turn (`thread/compact/start`): `input` is unused; the
    /// history is summarised and replaced ([`compact`]).
    pub compact: bool,
}

impl TurnRequest {
    /// A turn whose input is one text.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            input: vec![UserInput::Text { text: text.into() }],
            ..Default::default()
        }
    }
}

/// Per-turn settings (`turn/start` params); they stick for later turns.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TurnOverrides {
    pub cwd: Option<std::path::PathBuf>,
    pub approval_policy: Option<crate::config::AskForApproval>,
    pub sandbox_policy: Option<crate::config::SandboxPolicy>,
    pub model: Option<String>,
    pub effort: Option<crate::config::ReasoningEffort>,
    pub summary: Option<crate::config::ReasoningSummary>,
    /// The collaboration mode's developer instructions (`turn/start`
    /// `collaborationMode`): told to the model as a developer message when
    /// they change, as upstream does.
    pub collaboration_instructions: Option<String>,
}

impl TurnOverrides {
    pub fn is_empty(&self) -> bool {
        *self == TurnOverrides::default()
    }

    /// `config` with these overrides applied.
    pub fn apply(&self, config: &Config) -> Config {
        let mut c = config.clone();
        if let Some(cwd) = &self.cwd {
            c.cwd = cwd.clone();
        }
        if let Some(a) = self.approval_policy {
            c.approval_policy = a;
        }
        if let Some(p) = &self.sandbox_policy {
            c.sandbox_policy = p.clone();
        }
        if let Some(m) = &self.model {
            c.model = m.clone();
        }
        if let Some(e) = self.effort {
            c.model_reasoning_effort = Some(e);
        }
        if let Some(s) = self.summary {
            c.model_reasoning_summary = s;
        }
        c
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TurnStatus {
    Completed,
    Failed { error: TurnError },
    Aborted { reason: AbortReason },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TurnOutcome {
    pub turn_id: String,
    pub status: TurnStatus,
    pub last_agent_message: Option<String>,
    pub usage: TokenUsage,
}

/// State a thread keeps across turns.
#[derive(Debug, Default)]
pub struct ThreadState {
    pub history: Vec<ResponseItem>,
    pub total_usage: TokenUsage,
    /// The collaboration-mode instructions last told to the model.
    pub collaboration_instructions: Option<String>,
    /// Tokens of the latest response (its context), for auto-compaction.
    pub last_response_tokens: u64,
}

/// What every turn of one thread shares.
pub struct ThreadShared {
    pub id: String,
    /// The thread's settings; turn overrides replace it.
    pub config: Mutex<Arc<Config>>,
    pub model: Mutex<ModelService>,
    /// The tools offered to the model and the service that runs them (with
    /// the thread's layers, see [`crate::thread::ThreadBuilder`]).
    pub tools: Mutex<ToolSet>,
    /// Admission of turns: one permit per turn running or waiting
    /// (see [`TurnService`]).
    pub turn_slots: Arc<tokio::sync::Semaphore>,
    /// How many turns may wait behind the running one (`turn_slots` has one
    /// more permit).
    pub turn_queue: usize,
    pub sandbox: Arc<dyn Sandbox>,
    pub approvals: Arc<dyn ApprovalHandler>,
    pub sink: EventSink,
    pub state: tokio::sync::Mutex<ThreadState>,
    pub session_approvals: Arc<Mutex<HashSet<String>>>,
    pub base_instructions: String,
    pub warned_unknown_model: std::sync::atomic::AtomicBool,
    pub command_isolation: crate::exec::Isolation,
    pub audit: Arc<crate::audit::AuditLog>,
    /// The thread's MCP servers, when it has any.
    pub mcp: Option<crate::mcp::McpTools>,
    /// Per-turn memory recall (`None`: memories off).
    pub memory_recall: Option<Arc<dyn crate::memory::MemoryRecall>>,
    /// The local lane that condenses oversized tool outputs, if any.
    pub local_generator: Option<Arc<dyn crate::memory::Generator>>,
}

impl ThreadShared {
    pub fn current_config(&self) -> Arc<Config> {
        match self.config.lock() {
            Ok(c) => c.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    fn set_config(&self, config: Arc<Config>) {
        match self.config.lock() {
            Ok(mut c) => *c = config,
            Err(e) => *e.into_inner() = config,
        }
    }
}

/// Turns that may wait behind the running one, by default.
pub const DEFAULT_TURN_QUEUE: usize = 1;
/// The most a thread may be configured to queue.
pub const MAX_TURN_QUEUE: usize = 64;

/// A turn that was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnRejected {
    /// A turn is running and the queue behind it is full. Nothing was
    /// recorded or emitted; the caller may retry later (front ends answer
    /// JSON-RPC `-32001`).
    #[error("the thread is busy: a turn is running and {waiting} more are waiting; retry later")]
    Overloaded {
        /// How many turns may wait behind the running one.
        waiting: usize,
    },
}

/// The turn loop as a tower service.
///
/// Turns of one thread run one at a time, in order of arrival; at most
/// `turn_queue` more may wait behind the running one (default
/// [`DEFAULT_TURN_QUEUE`]). The queue is the service's readiness:
/// `poll_ready` reserves a place (a permit of the thread's turn semaphore,
/// shared by every clone of the service) and fails with
/// [`TurnRejected::Overloaded`] at once when there is none; `call` without a
/// reserved place tries once and fails the same way. The error is not
/// terminal: the service can be polled again, and a place frees up as soon as
/// a turn ends. A reserved place is given back when the service (or the
/// turn's future) is dropped.
///
/// ```no_run
/// # async fn demo(thread: codex_core::Thread) {
/// use codex_core::turn::{TurnRejected, TurnRequest};
/// use tower::{Service, ServiceExt};
///
/// let mut turns = thread.turn_service();
/// match turns.ready().await {
///     Ok(svc) => {
///         let outcome = svc.call(TurnRequest::default()).await;
///         println!("{outcome:?}");
///     }
///     Err(TurnRejected::Overloaded { .. }) => println!("busy, try later"),
/// }
/// # }
/// ```
pub struct TurnService {
    shared: Arc<ThreadShared>,
    /// The place reserved by `poll_ready`, consumed by `call`.
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Clone for TurnService {
    fn clone(&self) -> Self {
        // A reservation belongs to the instance that made it.
        Self::new(self.shared.clone())
    }
}

impl std::fmt::Debug for TurnService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnService")
            .field("thread", &self.shared.id)
            .field("reserved", &self.slot.is_some())
            .finish()
    }
}

impl TurnService {
    pub fn new(shared: Arc<ThreadShared>) -> Self {
        Self { shared, slot: None }
    }

    fn rejected(&self) -> TurnRejected {
        TurnRejected::Overloaded {
            waiting: self.shared.turn_queue,
        }
    }

    fn try_reserve(&mut self) -> bool {
        if self.slot.is_none() {
            self.slot = self.shared.turn_slots.clone().try_acquire_owned().ok();
        }
        self.slot.is_some()
    }
}

impl Service<TurnRequest> for TurnService {
    type Response = TurnOutcome;
    type Error = TurnRejected;
    type Future = BoxFuture<'static, Result<TurnOutcome, TurnRejected>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TurnRejected>> {
        // No waiting for a place: a caller beyond the bound learns it now
        // (and leaves nothing queued behind in the semaphore).
        if self.try_reserve() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(self.rejected()))
        }
    }

    fn call(&mut self, req: TurnRequest) -> Self::Future {
        if !self.try_reserve() {
            let rejected = self.rejected();
            return Box::pin(async move { Err(rejected) });
        }
        let slot = self.slot.take();
        let shared = self.shared.clone();
        Box::pin(async move {
            let outcome = run_turn(shared, req).await;
            drop(slot);
            Ok(outcome)
        })
    }
}

/// How a turn body stopped early.
enum TurnEnd {
    Failed(TurnError),
    Aborted(AbortReason),
}

struct Sample {
    items: Vec<ResponseItem>,
    usage: Option<TokenUsage>,
    /// Abandoned for steer input: `items` is empty.
    steered: bool,
}

/// Records a user message in the history and reports it as an item.
async fn push_user_message(
    sink: &EventSink,
    turn_id: &str,
    state: &mut ThreadState,
    item: ResponseItem,
    message: SteerInput,
) {
    sink.record(RolloutItem::ResponseItem(item.clone()));
    state.history.push(item);
    let user_msg = ThreadItem::UserMessage(UserMessageItem {
        id: uuid::Uuid::now_v7().to_string(),
        content: message.input,
        client_id: message.client_id,
    });
    sink.emit(Event::ItemStarted {
        turn_id: turn_id.to_string(),
        item: user_msg.clone(),
    })
    .await;
    sink.emit(Event::ItemCompleted {
        turn_id: turn_id.to_string(),
        item: user_msg,
    })
    .await;
}

/// Runs one turn, waiting for the turns ahead of it. Not bounded by itself:
/// [`TurnService`] is the bounded way in.
pub async fn run_turn(shared: Arc<ThreadShared>, req: TurnRequest) -> TurnOutcome {
    let mut state = shared.state.lock().await;
    let turn_id = req
        .turn_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let started = Instant::now();
    let started_at = chrono::Utc::now().timestamp();
    let cfg = shared.current_config();
    let cfg = if req.overrides.is_empty() {
        cfg
    } else {
        let updated = Arc::new(req.overrides.apply(&cfg));
        shared.set_config(updated.clone());
        updated
    };
    let sink = shared.sink.clone();
    let window = effective_context_window(&cfg.model, cfg.model_context_window);

    // A local model is a file, not a catalog entry: no warning for it.
    if find_model(&cfg.model).is_none()
        && !cfg.uses_embedded_model()
        && !shared
            .warned_unknown_model
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        sink.emit(Event::Warning {
            message: unknown_model_warning(&cfg.model),
        })
        .await;
    }
    sink.emit(Event::TurnStarted {
        turn_id: turn_id.clone(),
    })
    .await;
    sink.record_event(json!({
        "type": "task_started",
        "turn_id": turn_id,
        "started_at": started_at,
        "model_context_window": window,
        "collaboration_mode_kind": "default",
    }));
    let history_start = state.history.len();
    if state.history.is_empty() {
        for item in context::initial_context(&cfg, &shared.id) {
            sink.record(RolloutItem::ResponseItem(item.clone()));
            state.history.push(item);
        }
    }
    if let Some(text) = &req.overrides.collaboration_instructions {
        if state.collaboration_instructions.as_ref() != Some(text) {
            let item = ResponseItem::developer_text(format!(
                "<collaboration_mode>{text}</collaboration_mode>"
            ));
            sink.record(RolloutItem::ResponseItem(item.clone()));
            state.history.push(item);
            state.collaboration_instructions = Some(text.clone());
        }
    }
    sink.record(RolloutItem::TurnContext(TurnContextItem {
        turn_id: Some(turn_id.clone()),
        cwd: cfg.cwd.clone(),
        approval_policy: cfg.approval_policy,
        sandbox_policy: cfg.sandbox_policy.clone(),
        model: cfg.model.clone(),
        effort: cfg
            .model_reasoning_effort
            .and_then(|e| serde_json::to_value(e).ok()),
        summary: serde_json::to_value(cfg.model_reasoning_summary).unwrap_or_default(),
        user_instructions: None,
        developer_instructions: cfg.developer_instructions.clone(),
        final_output_json_schema: req.output_schema.clone(),
    }));

    let user_item = if req.compact {
        // A compaction takes no input: a steer is refused, not lost.
        let _ = req.steer.close().await;
        None
    } else {
        match user_response_item(&req.input) {
            Ok(i) => Some(i),
            Err(message) => {
                let error = TurnError {
                    kind: TurnErrorKind::Other,
                    message,
                };
                return finish(
                    &sink,
                    &turn_id,
                    started,
                    TurnStatus::Failed { error },
                    None,
                    TokenUsage::default(),
                )
                .await;
            }
        }
    };
    // Memories relevant to this message, asked with the recall deadline
    // (`memory::recall`) when the thread may use memories (feature on,
    // `use_memories`, its mode `enabled`); shown before it in this turn's
    // requests only.
    let recalled = match (&user_item, &shared.memory_recall) {
        (Some(item), Some(recall)) if crate::memory::prompt::memories_usable(&cfg, &shared.id) => {
            let hits = crate::memory::recall::recall_for_turn(
                recall,
                &input_text(&req.input),
                cfg.memories.recall_limit,
                cfg.memories.recall_timeout,
            )
            .await;
            crate::memory::recall::fragment(&hits).map(|f| (item.clone(), f))
        }
        _ => None,
    };
    if let Some(user_item) = user_item {
        let message = SteerInput {
            input: req.input.clone(),
            client_id: req.client_message_id.clone(),
        };
        push_user_message(&sink, &turn_id, &mut state, user_item, message).await;
    }
    let tool_ctx = Arc::new(ToolContext {
        turn_id: turn_id.clone(),
        cwd: cfg.cwd.clone(),
        sandbox_policy: cfg.sandbox_policy.clone(),
        approval_policy: cfg.approval_policy,
        sandbox: shared.sandbox.clone(),
        approvals: shared.approvals.clone(),
        exec_timeout: cfg.exec_timeout,
        env_policy: cfg.shell_environment_policy.clone(),
        audit: shared.audit.clone(),
        command_isolation: shared.command_isolation,
        output_token_limit: cfg.tool_output_token_limit,
        shaper: crate::shaping::ContextShaper::new(
            &cfg.context_shaping,
            shared.local_generator.clone(),
        )
        .map(Arc::new),
        events: sink.clone(),
        cancel: req.cancel.child_token(),
        plan: Arc::new(Mutex::new(None)),
        session_approvals: shared.session_approvals.clone(),
    });
    let model = shared.model.lock().map(|m| m.clone()).ok();
    let tools = shared.tools.lock().map(|t| t.clone()).ok();
    let (model, tools) = match (model, tools) {
        (Some(m), Some(t)) => (m, t),
        _ => {
            let error = TurnError {
                kind: TurnErrorKind::Other,
                message: "model client unavailable".into(),
            };
            return finish(
                &sink,
                &turn_id,
                started,
                TurnStatus::Failed { error },
                None,
                TokenUsage::default(),
            )
            .await;
        }
    };
    let mut run = TurnRun {
        shared: &shared,
        cfg: &cfg,
        turn_id: turn_id.clone(),
        model,
        tools,
        tool_ctx: tool_ctx.clone(),
        output_schema: req.output_schema.clone(),
        turn_usage: TokenUsage::default(),
        last_agent_message: None,
        guard: RepeatGuard::default(),
        window,
        steer: req.steer.clone(),
        recalled,
    };

    let deadline = tokio::time::sleep(cfg.turn_timeout);
    let body: BoxFuture<'_, Result<(), TurnEnd>> = if req.compact {
        Box::pin(run.compact(&mut state))
    } else {
        Box::pin(run.body(&mut state))
    };
    let result = tokio::select! {
        r = body => r,
        _ = req.cancel.cancelled() => Err(TurnEnd::Aborted(AbortReason::Interrupted)),
        _ = deadline => Err(TurnEnd::Failed(TurnError {
            kind: TurnErrorKind::Other,
            message: format!(
                "turn exceeded its deadline of {}s (turn_timeout_ms)",
                cfg.turn_timeout.as_secs()
            ),
        })),
        // Work that cannot be recorded stops at once.
        message = sink.unsaved() => Err(TurnEnd::Failed(TurnError {
            kind: TurnErrorKind::Other,
            message,
        })),
    };
    tool_ctx.cancel.cancel();
    let unread = req.steer.close().await;
    if !unread.is_empty() {
        tracing::warn!(
            "turn {turn_id}: {} steer input(s) arrived as the turn ended and were not used",
            unread.len()
        );
    }
    // A dropped body may have left function calls without outputs; the
    // history must stay valid for the next request.
    let from = history_start.min(state.history.len());
    for output in missing_call_outputs(&state.history[from..]) {
        sink.record(RolloutItem::ResponseItem(output.clone()));
        state.history.push(output);
    }
    let usage = run.turn_usage;
    let last = run.last_agent_message.take();
    state.total_usage.add(&usage);
    drop(state);

    // The plan item completes with the turn.
    let plan = tool_ctx.plan.lock().ok().and_then(|p| p.clone());
    if let Some(plan) = plan {
        sink.emit(Event::ItemCompleted {
            turn_id: turn_id.clone(),
            item: ThreadItem::TodoList(plan),
        })
        .await;
    }
    let status = match result {
        Ok(()) => TurnStatus::Completed,
        Err(TurnEnd::Failed(e)) => TurnStatus::Failed { error: e },
        Err(TurnEnd::Aborted(r)) => TurnStatus::Aborted { reason: r },
    };
    finish(&sink, &turn_id, started, status, last, usage).await
}

/// Records the end of the turn, fsyncs, then reports it.
async fn finish(
    sink: &EventSink,
    turn_id: &str,
    started: Instant,
    mut status: TurnStatus,
    last_agent_message: Option<String>,
    usage: TokenUsage,
) -> TurnOutcome {
    let completed_at = chrono::Utc::now().timestamp();
    let duration_ms = started.elapsed().as_millis() as u64;
    match &status {
        TurnStatus::Completed => sink.record_event(json!({
            "type": "task_complete",
            "turn_id": turn_id,
            "last_agent_message": last_agent_message,
            "completed_at": completed_at,
            "duration_ms": duration_ms,
        })),
        TurnStatus::Failed { error: e } => {
            sink.record_event(json!({"type": "error", "message": e.message}));
            sink.record_event(json!({
                "type": "task_complete",
                "turn_id": turn_id,
                "last_agent_message": last_agent_message,
                "completed_at": completed_at,
                "duration_ms": duration_ms,
            }));
        }
        TurnStatus::Aborted { .. } => sink.record_event(json!({
            "type": "turn_aborted",
            "turn_id": turn_id,
            "reason": "interrupted",
            "completed_at": completed_at,
            "duration_ms": duration_ms,
        })),
    }
    if let Err(message) = sink.sync().await {
        status = TurnStatus::Failed {
            error: TurnError {
                kind: TurnErrorKind::Other,
                message,
            },
        };
    }
    let event = match &status {
        TurnStatus::Completed => Event::TurnCompleted {
            turn_id: turn_id.to_string(),
            usage,
            last_agent_message: last_agent_message.clone(),
        },
        TurnStatus::Failed { error } => Event::TurnFailed {
            turn_id: turn_id.to_string(),
            error: error.clone(),
            usage,
        },
        TurnStatus::Aborted { reason } => Event::TurnAborted {
            turn_id: turn_id.to_string(),
            reason: *reason,
            usage,
        },
    };
    sink.emit(event).await;
    TurnOutcome {
        turn_id: turn_id.to_string(),
        status,
        last_agent_message,
        usage,
    }
}

/// Outputs (`aborted`) for every function call in `items` that has none, so
/// that a history cut short by an interrupt or a crash stays valid.
pub fn missing_call_outputs(items: &[ResponseItem]) -> Vec<ResponseItem> {
    let answered: HashSet<&str> = items
        .iter()
        .filter_map(|i| match i {
            ResponseItem::FunctionCallOutput { call_id, .. }
            | ResponseItem::CustomToolCallOutput { call_id, .. } => Some(call_id.as_str()),
            _ => None,
        })
        .collect();
    items
        .iter()
        .filter_map(|item| match item {
            ResponseItem::FunctionCall { call_id, .. } if !answered.contains(call_id.as_str()) => {
                Some(ResponseItem::FunctionCallOutput {
                    call_id: call_id.clone(),
                    output: FunctionCallOutputPayload::text("aborted"),
                })
            }
            ResponseItem::CustomToolCall { call_id, .. }
                if !answered.contains(call_id.as_str()) =>
            {
                Some(ResponseItem::CustomToolCallOutput {
                    call_id: call_id.clone(),
                    output: "aborted".into(),
                })
            }
            _ => None,
        })
        .collect()
}

/// The text parts of a user's input (the recall query).
fn input_text(input: &[UserInput]) -> String {
    let parts: Vec<&str> = input
        .iter()
        .filter_map(|i| match i {
            UserInput::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    parts.join("\n")
}

fn user_response_item(input: &[UserInput]) -> Result<ResponseItem, String> {
    let mut content = Vec::new();
    for i in input {
        match i {
            UserInput::Text { text } => content.push(ContentItem::InputText { text: text.clone() }),
            UserInput::Image { url } => content.push(ContentItem::InputImage {
                image_url: url.clone(),
            }),
            UserInput::LocalImage { path } => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read image {}: {e}", path.display()))?;
                let mime = match path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("png") => "image/png",
                    Some("jpg" | "jpeg") => "image/jpeg",
                    Some("gif") => "image/gif",
                    Some("webp") => "image/webp",
                    _ => return Err(format!("unsupported image type: {}", path.display())),
                };
                content.push(ContentItem::InputImage {
                    image_url: format!(
                        "data:{mime};base64,{}",
                        base64::engine::general_purpose::STANDARD.encode(&bytes)
                    ),
                });
            }
        }
    }
    if content.is_empty() {
        return Err("the turn has no input".into());
    }
    Ok(ResponseItem::Message {
        id: None,
        role: "user".into(),
        content,
    })
}

struct TurnRun<'a> {
    shared: &'a ThreadShared,
    cfg: &'a Config,
    turn_id: String,
    model: ModelService,
    tools: ToolSet,
    tool_ctx: Arc<ToolContext>,
    output_schema: Option<Value>,
    turn_usage: TokenUsage,
    last_agent_message: Option<String>,
    guard: RepeatGuard,
    window: u64,
    steer: SteerInbox,
    /// This turn's user message and the recalled memories shown before it.
    recalled: Option<(ResponseItem, ResponseItem)>,
}

impl TurnRun<'_> {
    async fn body(&mut self, state: &mut ThreadState) -> Result<(), TurnEnd> {
        let sink = self.shared.sink.clone();
        // Over the limit since the last turn: compact before asking, with
        // this turn's input kept after the summary (as upstream compacts
        // before recording it; recorded again after the `compacted` line so
        // a resume has it too).
        if self.auto_compact_due(state) {
            let input = match state.history.last() {
                Some(ResponseItem::Message { role, .. }) if role == "user" => state.history.pop(),
                _ => None,
            };
            self.compact(state).await?;
            if let Some(item) = input {
                sink.record(RolloutItem::ResponseItem(item.clone()));
                state.history.push(item);
            }
        }
        // Tools still being prepared (MCP servers starting) get a bounded
        // grace before the first request.
        self.tools.prepare(&self.turn_id).await;
        loop {
            let steered = self.steer.take().await;
            self.add_steer_input(state, steered).await?;
            let request = self.build_request(&state.history);
            let sample = self.sample_with_retries(request).await?;
            if sample.steered {
                // The partial answer is dropped; ask again with the input.
                continue;
            }
            let mut calls = Vec::new();
            for item in &sample.items {
                sink.record(RolloutItem::ResponseItem(item.clone()));
                state.history.push(item.clone());
                match item {
                    ResponseItem::FunctionCall {
                        name,
                        arguments,
                        call_id,
                        namespace,
                        ..
                    } => calls.push(ToolCall {
                        call_id: call_id.clone(),
                        name: name.clone(),
                        namespace: namespace.clone(),
                        arguments: arguments.clone(),
                        custom: false,
                    }),
                    ResponseItem::CustomToolCall {
                        name,
                        input,
                        call_id,
                        ..
                    } => calls.push(ToolCall {
                        call_id: call_id.clone(),
                        name: name.clone(),
                        namespace: None,
                        arguments: input.clone(),
                        custom: true,
                    }),
                    _ => {}
                }
            }
            if calls.is_empty() {
                self.report_usage(state, sample.usage).await;
                // Input steered in while the answer completed gets its own
                // request; otherwise the turn is over and takes no more.
                match self.steer.take_or_close().await {
                    Some(steered) => {
                        self.add_steer_input(state, steered).await?;
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            for call in calls {
                let output = match self.guard.check(&call.name, &call.arguments) {
                    Verdict::Run => {
                        let inv = ToolInvocation {
                            ctx: self.tool_ctx.clone(),
                            call: call.clone(),
                        };
                        // Tool failures (a timeout, a custom service's
                        // error) are the model's to read, not the turn's.
                        let output = match self.tools.service().oneshot(inv).await {
                            Ok(o) => o,
                            Err(e) => crate::tools::error_output(&call.name, &*e),
                        };
                        if crate::mcp::is_mcp_call(&call) {
                            // External context: `disable_on_external_context`
                            // marks the thread's memory mode `polluted`.
                            crate::memory::mode::note_external_context(
                                &self.cfg.codex_home,
                                &self.shared.id,
                                &self.cfg.memories,
                            );
                        }
                        output
                    }
                    Verdict::Refuse(n) => ToolOutput::error(format!(
                        "This exact call ({}) has now been requested {n} times in a row with the same arguments and was not run again; its result would not change. Use the earlier output or try a different approach.",
                        call.name
                    )),
                    Verdict::Fail(n) => {
                        return Err(TurnEnd::Failed(TurnError {
                            kind: TurnErrorKind::LoopDetected,
                            message: format!(
                                "the agent called `{}` {n} times in a row with identical arguments; stopping the turn",
                                call.name
                            ),
                        }))
                    }
                };
                let item = if call.custom {
                    ResponseItem::CustomToolCallOutput {
                        call_id: call.call_id.clone(),
                        output: output.content.clone(),
                    }
                } else {
                    ResponseItem::FunctionCallOutput {
                        call_id: call.call_id.clone(),
                        output: FunctionCallOutputPayload {
                            content: output.content.clone(),
                            success: Some(output.success),
                        },
                    }
                };
                sink.record(RolloutItem::ResponseItem(item.clone()));
                state.history.push(item);
                if output.abort_turn {
                    self.report_usage(state, sample.usage).await;
                    return Err(TurnEnd::Aborted(AbortReason::Interrupted));
                }
            }
            self.report_usage(state, sample.usage).await;
            // The model goes on after the tool outputs: compact first if the
            // context reached `model_auto_compact_token_limit` (upstream's
            // inline auto-compaction).
            if self.auto_compact_due(state) {
                self.compact(state).await?;
            }
        }
    }

    /// Upstream's rule: 90% of the model's context window, or the
    /// configured `model_auto_compact_token_limit` if that is lower.
    fn auto_compact_due(&self, state: &ThreadState) -> bool {
        let raw_window = self
            .cfg
            .model_context_window
            .or_else(|| find_model(&self.cfg.model).map(|m| m.context_window))
            .unwrap_or(crate::models::FALLBACK_CONTEXT_WINDOW);
        let limit =
            (raw_window * 9 / 10).min(self.cfg.model_auto_compact_token_limit.unwrap_or(u64::MAX));
        state.last_response_tokens > 0 && state.last_response_tokens >= limit
    }

    /// Records and reports steer input as user messages of this turn.
    async fn add_steer_input(
        &mut self,
        state: &mut ThreadState,
        inputs: Vec<SteerInput>,
    ) -> Result<(), TurnEnd> {
        for input in inputs {
            let item = user_response_item(&input.input).map_err(|message| {
                TurnEnd::Failed(TurnError {
                    kind: TurnErrorKind::Other,
                    message,
                })
            })?;
            let sink = self.shared.sink.clone();
            let turn_id = self.turn_id.clone();
            push_user_message(&sink, &turn_id, state, item, input).await;
        }
        Ok(())
    }

    /// Accounts a response's usage (recorded after the round's tool outputs,
    /// where upstream records it).
    async fn report_usage(&mut self, state: &mut ThreadState, usage: Option<TokenUsage>) {
        let Some(usage) = usage else {
            return;
        };
        state.last_response_tokens = usage.total_tokens;
        let sink = &self.shared.sink;
        self.turn_usage.add(&usage);
        let mut total = state.total_usage;
        total.add(&self.turn_usage);
        let info = TokenUsageInfo {
            last: usage,
            turn: self.turn_usage,
            total,
            model_context_window: Some(self.window),
        };
        sink.record_event(json!({
            "type": "token_count",
            "info": {
                "total_token_usage": total,
                "last_token_usage": usage,
                "model_context_window": self.window,
            },
            "rate_limits": null,
        }));
        sink.emit(Event::TokenUsage {
            turn_id: self.turn_id.clone(),
            info,
        })
        .await;
    }

    fn build_request(&self, history: &[ResponseItem]) -> ModelRequest {
        let mut input = Vec::with_capacity(history.len() + 1);
        input.push(ResponseItem::developer_text(
            self.shared.base_instructions.clone(),
        ));
        input.extend(history.iter().filter(|i| i.is_api_item()).cloned());
        if let Some((user, memories)) = &self.recalled {
            if let Some(at) = input.iter().rposition(|i| i == user) {
                input.insert(at, memories.clone());
            }
        }
        // What the model must know about tools it is not offered (MCP
        // servers still starting or failed); not part of the history.
        for notice in self.tools.notices() {
            input.push(ResponseItem::developer_text(notice));
        }
        let reasoning_supported = find_model(&self.cfg.model)
            .map(|m| !m.reasoning_efforts.is_empty())
            .unwrap_or(
                self.cfg.model_provider.requires_openai_auth
                    || self.cfg.model_provider.wire_api == crate::config::WireApi::Responses,
            );
        ModelRequest {
            model: self.cfg.model.clone(),
            input,
            instructions: self.shared.base_instructions.clone(),
            tools: self.tools.specs_json(),
            reasoning: reasoning_supported.then_some(ReasoningParams {
                effort: self.cfg.model_reasoning_effort,
                summary: self.cfg.model_reasoning_summary,
            }),
            verbosity: self.cfg.model_verbosity,
            output_schema: self.output_schema.clone(),
            thread_id: self.shared.id.clone(),
            turn_id: self.turn_id.clone(),
        }
    }

    async fn sample_with_retries(&mut self, request: ModelRequest) -> Result<Sample, TurnEnd> {
        let max = self.cfg.model_provider.stream_max_retries() as u32;
        let mut attempt = 0u32;
        loop {
            match self.sample_once(request.clone()).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable_stream() && attempt < max => {
                    attempt += 1;
                    let delay = e
                        .retry_after()
                        .map(|d| d.min(MAX_STREAM_RETRY_DELAY))
                        .unwrap_or_else(|| backoff(attempt));
                    tracing::info!("model stream failed ({e}); retry {attempt}/{max} in {delay:?}");
                    self.shared
                        .sink
                        .emit(Event::StreamRetry {
                            turn_id: self.turn_id.clone(),
                            message: format!("Reconnecting... {attempt}/{max}"),
                            attempt,
                            max_attempts: max,
                            details: e.to_string(),
                            http_status: e.http_status(),
                        })
                        .await;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    let message = if e.is_retryable_stream() && max > 0 {
                        format!("{e} (gave up after {max} retries)")
                    } else {
                        e.to_string()
                    };
                    return Err(TurnEnd::Failed(TurnError {
                        kind: classify(&e),
                        message,
                    }));
                }
            }
        }
    }

    async fn sample_once(&mut self, request: ModelRequest) -> Result<Sample, ModelError> {
        let sink = self.shared.sink.clone();
        let turn_id = self.turn_id.clone();
        let mut stream = self.model.ready().await?.call(request).await?;
        let mut items = Vec::new();
        let mut active_message: Option<(String, String)> = None;
        // Strips memory citations from the active message's deltas.
        let mut citations = CitationStreamParser::new();
        let mut active_reasoning: Option<(String, Vec<String>)> = None;
        let mut anon = 0usize;
        let steer = self.steer.clone();
        loop {
            let ev = tokio::select! {
                biased;
                ev = stream.next() => match ev {
                    Some(ev) => ev,
                    None => break,
                },
                () = steer.arrived() => {
                    if steer.has_pending().await {
                        return Ok(Sample { items: Vec::new(), usage: None, steered: true });
                    }
                    continue;
                }
            };
            match ev? {
                ModelEvent::Created { .. } => {}
                ModelEvent::OutputItemAdded(ResponseItem::Message { id, role, .. })
                    if role == "assistant" =>
                {
                    let id = id.unwrap_or_else(|| {
                        anon += 1;
                        format!("msg_{}_{anon}", self.turn_id)
                    });
                    active_message = Some(start_message(&sink, &turn_id, id).await);
                    citations = CitationStreamParser::new();
                }
                ModelEvent::OutputItemAdded(ResponseItem::Reasoning { id, .. }) => {
                    sink.emit(Event::ItemStarted {
                        turn_id: turn_id.clone(),
                        item: ThreadItem::Reasoning(ReasoningItem {
                            id: id.clone(),
                            summary: vec![],
                            content: vec![],
                        }),
                    })
                    .await;
                    active_reasoning = Some((id, Vec::new()));
                }
                ModelEvent::OutputItemAdded(_) => {}
                ModelEvent::OutputTextDelta { item_id, delta } => {
                    if active_message.is_none() {
                        let id = item_id.clone().unwrap_or_else(|| {
                            anon += 1;
                            format!("msg_{}_{anon}", self.turn_id)
                        });
                        active_message = Some(start_message(&sink, &turn_id, id).await);
                        citations = CitationStreamParser::new();
                    }
                    if let Some((id, text)) = active_message.as_mut() {
                        text.push_str(&delta);
                        let visible = citations.push(&delta);
                        if !visible.is_empty() {
                            sink.emit(Event::AgentMessageDelta {
                                turn_id: turn_id.clone(),
                                item_id: id.clone(),
                                delta: visible,
                            })
                            .await;
                        }
                    }
                }
                ModelEvent::ReasoningSummaryDelta { item_id, delta } => {
                    let id = active_reasoning
                        .as_ref()
                        .map(|(id, _)| id.clone())
                        .or(item_id)
                        .unwrap_or_default();
                    sink.emit(Event::ReasoningSummaryDelta {
                        turn_id: turn_id.clone(),
                        item_id: id,
                        delta,
                    })
                    .await;
                }
                ModelEvent::ReasoningContentDelta { .. } => {}
                ModelEvent::OutputItemDone(item) => {
                    match &item {
                        ResponseItem::Message { id, role, .. } if role == "assistant" => {
                            let text = item.message_text().unwrap_or_default();
                            let id = id
                                .clone()
                                .or_else(|| active_message.as_ref().map(|(id, _)| id.clone()))
                                .unwrap_or_else(|| format!("msg_{}", uuid::Uuid::now_v7()));
                            if active_message.as_ref().map(|(a, _)| a) != Some(&id) {
                                sink.emit(Event::ItemStarted {
                                    turn_id: turn_id.clone(),
                                    item: ThreadItem::AgentMessage(AgentMessageItem {
                                        id: id.clone(),
                                        text: String::new(),
                                        memory_citation: None,
                                    }),
                                })
                                .await;
                            } else {
                                flush_citations(&sink, &turn_id, &id, &mut citations).await;
                            }
                            active_message = None;
                            let message = cited_message(id, &text);
                            self.last_agent_message = Some(message.text.clone());
                            sink.emit(Event::ItemCompleted {
                                turn_id: turn_id.clone(),
                                item: ThreadItem::AgentMessage(message),
                            })
                            .await;
                        }
                        ResponseItem::Reasoning {
                            id,
                            summary,
                            content,
                            ..
                        } => {
                            let summary: Vec<String> = summary
                                .iter()
                                .map(|ReasoningSummary::SummaryText { text }| text.clone())
                                .collect();
                            let content: Vec<String> = content
                                .iter()
                                .flatten()
                                .map(|c| match c {
                                    ReasoningContent::ReasoningText { text }
                                    | ReasoningContent::Text { text } => text.clone(),
                                })
                                .collect();
                            if active_reasoning.take().is_none() {
                                sink.emit(Event::ItemStarted {
                                    turn_id: turn_id.clone(),
                                    item: ThreadItem::Reasoning(ReasoningItem {
                                        id: id.clone(),
                                        summary: vec![],
                                        content: vec![],
                                    }),
                                })
                                .await;
                            }
                            sink.emit(Event::ItemCompleted {
                                turn_id: turn_id.clone(),
                                item: ThreadItem::Reasoning(ReasoningItem {
                                    id: id.clone(),
                                    summary,
                                    content,
                                }),
                            })
                            .await;
                        }
                        _ => {}
                    }
                    items.push(item);
                }
                ModelEvent::Completed { usage, .. } => {
                    // A message streamed without its `done` event still counts.
                    if let Some((id, text)) = active_message.take() {
                        flush_citations(&sink, &turn_id, &id, &mut citations).await;
                        let message = cited_message(id.clone(), &text);
                        self.last_agent_message = Some(message.text.clone());
                        sink.emit(Event::ItemCompleted {
                            turn_id: turn_id.clone(),
                            item: ThreadItem::AgentMessage(message),
                        })
                        .await;
                        items.push(ResponseItem::assistant_text(Some(id), text));
                    }
                    return Ok(Sample {
                        items,
                        usage,
                        steered: false,
                    });
                }
            }
        }
        Err(ModelError::Stream(
            "stream closed before response.completed".into(),
        ))
    }
}

async fn start_message(sink: &EventSink, turn_id: &str, id: String) -> (String, String) {
    sink.emit(Event::ItemStarted {
        turn_id: turn_id.to_string(),
        item: ThreadItem::AgentMessage(AgentMessageItem {
            id: id.clone(),
            text: String::new(),
            memory_citation: None,
        }),
    })
    .await;
    (id, String::new())
}

/// Sends what the citation parser still holds (a tag prefix that was text
/// after all) as the message's last delta.
async fn flush_citations(
    sink: &EventSink,
    turn_id: &str,
    item_id: &str,
    citations: &mut CitationStreamParser,
) {
    let rest = citations.finish();
    if !rest.is_empty() {
        sink.emit(Event::AgentMessageDelta {
            turn_id: turn_id.to_string(),
            item_id: item_id.to_string(),
            delta: rest,
        })
        .await;
    }
}

/// The finished message as users see it: memory citations stripped into
/// `memory_citation`. The history keeps the model's raw text.
fn cited_message(id: String, raw: &str) -> AgentMessageItem {
    let (text, memory_citation) = crate::memory::strip_citations(raw);
    AgentMessageItem {
        id,
        text,
        memory_citation,
    }
}

fn classify(e: &ModelError) -> TurnErrorKind {
    match e {
        ModelError::MissingApiKey { .. } => TurnErrorKind::Unauthorized,
        ModelError::Http {
            status: 401 | 403, ..
        } => TurnErrorKind::Unauthorized,
        ModelError::Http { status: 429, .. } => TurnErrorKind::UsageLimit,
        ModelError::Http { status, .. } if *status < 500 => TurnErrorKind::BadRequest,
        ModelError::ContextWindowExceeded => TurnErrorKind::ContextWindowExceeded,
        ModelError::QuotaExceeded => TurnErrorKind::UsageLimit,
        ModelError::InvalidRequest(_) | ModelError::Incomplete(_) => TurnErrorKind::BadRequest,
        _ => TurnErrorKind::ModelUnavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_image_becomes_a_padded_base64_data_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.PNG");
        std::fs::write(&path, b"hi!a").unwrap();
        let item = user_response_item(&[UserInput::LocalImage { path }]).unwrap();
        let ResponseItem::Message { content, .. } = item else {
            panic!("{item:?}");
        };
        assert!(
            matches!(&content[..], [ContentItem::InputImage { image_url }]
                if image_url == "data:image/png;base64,aGkhYQ=="),
            "{content:?}"
        );
    }
}
