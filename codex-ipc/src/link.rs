//! The supervisor ↔ worker link: newline-delimited JSON messages over the
//! socketpair the [launcher](crate::launcher) hands to a worker, and
//! [`WorkerThread`], the client that makes a thread hosted in a
//! `codex-session` worker look local.
//!
//! One thread per worker. The first message is [`ToWorker::Init`]; the worker
//! answers [`FromWorker::Ready`] (or [`FromWorker::InitFailed`]) and from then
//! on streams [`FromWorker::Event`]s. EOF on the link means the other side is
//! gone: a worker exits, a supervisor treats the thread as unloaded.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_core::approval::{ApprovalRequest, ReviewDecision};
use codex_core::auth::{AuthError, BrokerRequest, BrokerResponse};
use codex_core::config::{AskForApproval, ReasoningEffort, SandboxMode, SandboxPolicy};
use codex_core::memory::{MemoryRequest, MemoryResponse, MemoryServiceError};
use codex_core::protocol::{Event, UserInput};
use codex_core::rollout::RecordedUsage;
use codex_core::tools::dynamic::{DynamicTool, DynamicToolAnswer, DynamicToolRequest};
use codex_core::turn::TurnOverrides;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::framing::{read_frame, Frame};
use crate::launcher::{kill_group, LaunchSpec, Launcher};

/// Largest message on a link (a completed command item carries up to 1 MiB
/// of output, JSON-escaped).
pub const MAX_LINK_FRAME: usize = 64 * 1024 * 1024;
/// Bound of the queue of messages to a worker.
const TO_WORKER_CAPACITY: usize = 256;
/// Bound of the queue of messages from a worker.
const FROM_WORKER_CAPACITY: usize = 1024;

/// How a worker should host its thread.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThreadInit {
    pub codex_home: PathBuf,
    pub cwd: Option<PathBuf>,
    /// Config overrides as dotted key → JSON value (`-c`, app-server `config`).
    #[serde(default)]
    pub config_overrides: Vec<(String, Value)>,
    pub model: Option<String>,
    pub model_provider: Option<String>,
    pub approval_policy: Option<AskForApproval>,
    /// Used when nothing configures an approval policy.
    pub default_approval_policy: Option<AskForApproval>,
    pub sandbox_mode: Option<SandboxMode>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
    /// `originator` header and session-file field.
    pub originator: String,
    /// `source` recorded in the session file.
    pub source: String,
    pub ephemeral: bool,
    /// Id of a new thread.
    pub thread_id: Option<String>,
    /// Resume this session file instead of starting a thread.
    pub resume_path: Option<PathBuf>,
    /// Extra writable roots (`--add-dir`).
    #[serde(default)]
    pub additional_writable_roots: Vec<PathBuf>,
    /// Send [`FromWorker::Heartbeat`] this often (ms) from the engine loop;
    /// `None`: no heartbeats.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Ask the supervisor's broker for sign-in tokens (over the link)
    /// instead of refreshing them in the worker.
    #[serde(default)]
    pub use_broker: bool,
    /// Paths of the host that the thread's commands must never reach (the
    /// supervisor's sockets, its WebSocket token file), besides the
    /// defaults of `codex_core::exec::Protection`.
    #[serde(default)]
    pub protected_paths: Vec<PathBuf>,
    /// Ignore `$CODEX_HOME/config.toml` (only the overrides count).
    #[serde(default)]
    pub ignore_user_config: bool,
    /// `historyMode` of a new thread, recorded in its session file.
    #[serde(default)]
    pub history_mode: Option<String>,
    /// `threadSource` of a new thread, recorded in its session file.
    #[serde(default)]
    pub thread_source: Option<String>,
    /// A new thread's `dynamicTools` (a resumed one's are in its file).
    #[serde(default)]
    pub dynamic_tools: Vec<DynamicTool>,
    /// Ask the supervisor's `codex-memory` for per-turn recall (over the
    /// link) when the thread's config turns memories on.
    #[serde(default)]
    pub use_memory: bool,
    /// Not a thread: run one memories pipeline pass (phase 1 and phase 2),
    /// report it with [`FromWorker::PipelineReport`] and exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_pass: Option<MemoryPassInit>,
}

/// What a pipeline worker's pass is to do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemoryPassInit {
    /// Threads not to extract (the one just starting).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// The worker's answer to `Init`: the thread as it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadReady {
    pub thread_id: String,
    pub rollout_path: Option<PathBuf>,
    pub cwd: PathBuf,
    pub model: String,
    pub model_provider: String,
    pub approval_policy: AskForApproval,
    pub sandbox_policy: SandboxPolicy,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub developer_instructions: Option<String>,
    /// Config warnings (unknown keys, ...).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Usage recorded by the last turn of a resumed thread.
    #[serde(default)]
    pub last_usage: Option<RecordedUsage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    Init(Box<ThreadInit>),
    TurnStart {
        turn_id: String,
        input: Vec<UserInput>,
        #[serde(default)]
        output_schema: Option<Value>,
        #[serde(default)]
        overrides: TurnOverrides,
        /// A compaction turn (`thread/compact/start`; `input` is empty).
        #[serde(default)]
        compact: bool,
        /// `clientUserMessageId`, echoed as the user message's `clientId`.
        #[serde(default)]
        client_message_id: Option<String>,
    },
    /// Adds input to the running turn if it is `expected_turn_id`
    /// (`turn/steer`); answered by [`FromWorker::SteerAccepted`] or
    /// [`FromWorker::SteerRejected`] with the same `steer_id`.
    TurnSteer {
        steer_id: String,
        expected_turn_id: String,
        input: Vec<UserInput>,
        #[serde(default)]
        client_message_id: Option<String>,
    },
    /// Interrupts the running turn (if any, and if it is `turn_id`).
    TurnInterrupt {
        turn_id: Option<String>,
    },
    ApprovalDecision {
        approval_id: u64,
        decision: ReviewDecision,
        /// The client's answer when the request was an elicitation.
        #[serde(default)]
        answer: Option<codex_core::approval::ElicitationAnswer>,
    },
    /// A question about the thread's MCP servers (answered by
    /// [`FromWorker::McpReply`]).
    Mcp {
        id: u64,
        request: McpRequest,
    },
    /// Ends the running turn (interrupted) and exits.
    Shutdown,
    /// The broker's answer to [`FromWorker::Broker`] `id`.
    BrokerReply {
        id: u64,
        result: Result<BrokerResponse, AuthError>,
    },
    /// The memory service's answer to [`FromWorker::Memory`] `id`.
    MemoryReply {
        id: u64,
        result: Result<MemoryResponse, MemoryServiceError>,
    },
    /// The client's answer to [`FromWorker::DynamicToolCall`] `call` (or why
    /// there is none).
    DynamicToolResult {
        call: u64,
        result: Result<DynamicToolAnswer, String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    Ready(Box<ThreadReady>),
    InitFailed {
        message: String,
    },
    TurnAccepted {
        turn_id: String,
    },
    TurnRejected {
        turn_id: String,
        message: String,
    },
    /// Sent before the turn reports the steer input.
    SteerAccepted {
        steer_id: String,
        turn_id: String,
    },
    SteerRejected {
        steer_id: String,
        message: String,
    },
    Event {
        event: Box<Event>,
    },
    ApprovalRequest {
        approval_id: u64,
        request: ApprovalRequest,
    },
    /// The worker stopped waiting for an approval (its deadline passed, or
    /// the turn ended); the request is void.
    ApprovalCancelled {
        approval_id: u64,
    },
    /// The worker's engine loop is alive.
    Heartbeat,
    /// A request for the credential broker (answered by
    /// [`ToWorker::BrokerReply`]).
    Broker {
        id: u64,
        request: BrokerRequest,
    },
    /// The model called a client-defined tool (answered by
    /// [`ToWorker::DynamicToolResult`]).
    DynamicToolCall {
        call: u64,
        request: DynamicToolRequest,
    },
    /// The worker stopped waiting for that answer (deadline, interrupt).
    DynamicToolCancelled {
        call: u64,
    },
    /// A request for the memory service (answered by
    /// [`ToWorker::MemoryReply`]; the worker waits at most `deadline_ms`,
    /// and so does codexd).
    Memory {
        id: u64,
        request: MemoryRequest,
        deadline_ms: u64,
    },
    /// The answer to [`ToWorker::Mcp`] `id`.
    McpReply {
        id: u64,
        result: Result<serde_json::Value, String>,
    },
    /// A pipeline worker's pass ended (its last message).
    PipelineReport {
        report: crate::app_server::codexd_status::PipelinePass,
    },
}

/// What codexd asks a worker about its MCP servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum McpRequest {
    /// Every server's state and tools (`mcpServerStatus/list` entries);
    /// with `resources`, also each ready server's resources and templates
    /// (`detail: "full"`).
    Status {
        #[serde(default)]
        resources: bool,
    },
    /// Re-read `[mcp_servers]` and apply it (`config/mcpServer/reload`).
    Reload,
    /// `mcpServer/tool/call`.
    ToolCall {
        server: String,
        tool: String,
        arguments: serde_json::Value,
        #[serde(default)]
        meta: Option<serde_json::Value>,
    },
    /// `mcpServer/resource/read`.
    ResourceRead {
        server: String,
        uri: String,
        #[serde(default)]
        meta: Option<serde_json::Value>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot start worker: {0}")]
    Launch(std::io::Error),
    #[error("worker exited before it was ready")]
    WorkerGone,
    #[error("worker did not become ready within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    InitFailed(String),
    #[error("worker link closed")]
    Closed,
    #[error("the worker's queue is full")]
    Full,
}

/// Encodes one message as a line.
pub fn encode<T: Serialize>(msg: &T) -> std::io::Result<Vec<u8>> {
    let mut v = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    v.push(b'\n');
    Ok(v)
}

/// Reads messages of type `T` from `reader` into `tx` until EOF, a closed
/// receiver, or an unreadable stream. Oversized or undecodable frames are
/// logged and skipped.
pub async fn pump_frames<R, T>(reader: R, tx: mpsc::Sender<T>, what: &'static str)
where
    R: tokio::io::AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let mut reader = BufReader::new(reader);
    loop {
        match read_frame(&mut reader, MAX_LINK_FRAME).await {
            Ok(Some(Frame::Line(line))) => {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<T>(&line) {
                    Ok(msg) => {
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!("{what}: undecodable link message: {e}"),
                }
            }
            Ok(Some(Frame::TooLarge { bytes: n, .. })) => {
                tracing::warn!("{what}: link message of {n} bytes dropped (over the cap)")
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Writes messages from `rx` to `writer` until the channel closes or a write
/// fails.
pub async fn write_frames<W, T>(writer: W, rx: mpsc::Receiver<T>)
where
    W: tokio::io::AsyncWrite + Unpin,
    T: Serialize,
{
    write_frames_until(writer, rx, std::future::pending()).await
}

/// Like [`write_frames`], but also stops when `finish` resolves: what is
/// queued by then is written, then the stream is shut down. A link must not
/// stay open only because some task still holds a sender.
async fn write_frames_until<W, T>(
    mut writer: W,
    mut rx: mpsc::Receiver<T>,
    finish: impl std::future::Future<Output = ()>,
) where
    W: tokio::io::AsyncWrite + Unpin,
    T: Serialize,
{
    tokio::pin!(finish);
    let mut finishing = false;
    loop {
        let msg = if finishing {
            rx.try_recv().ok()
        } else {
            tokio::select! {
                biased;
                m = rx.recv() => m,
                () = &mut finish => {
                    finishing = true;
                    continue;
                }
            }
        };
        let Some(msg) = msg else { break };
        let Ok(bytes) = encode(&msg) else { continue };
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}

/// The writing half of a child's link: [`LinkWriter::close`] writes what is
/// queued and closes the link, whoever still holds a sender.
#[derive(Debug)]
pub struct LinkWriter {
    finish: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl LinkWriter {
    /// Flushes the queued messages and closes the link, waiting at most
    /// `deadline` for a peer that does not read.
    pub async fn close(mut self, deadline: Duration) {
        if let Some(f) = self.finish.take() {
            let _ = f.send(());
        }
        if tokio::time::timeout(deadline, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// The child's side of a link (worker, broker): the stream taken from the
/// launcher, split into a bounded outbox (written by a task; close it with
/// [`LinkWriter::close`] so the last messages are flushed before exit) and a
/// bounded inbox fed until EOF.
pub fn serve_link<In, Out>(
    link: std::os::unix::net::UnixStream,
    capacity: usize,
    what: &'static str,
) -> std::io::Result<(mpsc::Sender<Out>, mpsc::Receiver<In>, LinkWriter)>
where
    In: for<'de> Deserialize<'de> + Send + 'static,
    Out: Serialize + Send + 'static,
{
    link.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(link)?;
    let (read_half, write_half) = stream.into_split();
    let (out_tx, out_rx) = mpsc::channel::<Out>(capacity);
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(write_frames_until(write_half, out_rx, async move {
        // A writer dropped without `close` leaves the link to the senders.
        if finish_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    }));
    let (in_tx, in_rx) = mpsc::channel::<In>(capacity);
    tokio::spawn(pump_frames(read_half, in_tx, what));
    Ok((
        out_tx,
        in_rx,
        LinkWriter {
            finish: Some(finish_tx),
            task,
        },
    ))
}

/// What a worker sends after `Ready`, plus its end.
#[derive(Debug)]
pub enum WorkerMessage {
    Event(Event),
    Approval {
        approval_id: u64,
        request: ApprovalRequest,
    },
    ApprovalCancelled {
        approval_id: u64,
    },
    TurnAccepted {
        turn_id: String,
    },
    TurnRejected {
        turn_id: String,
        message: String,
    },
    SteerAccepted {
        steer_id: String,
        turn_id: String,
    },
    SteerRejected {
        steer_id: String,
        message: String,
    },
    /// A request for the credential broker.
    Broker {
        id: u64,
        request: BrokerRequest,
    },
    /// A request for the memory service.
    Memory {
        id: u64,
        request: MemoryRequest,
        deadline_ms: u64,
    },
    DynamicToolCall {
        call: u64,
        request: DynamicToolRequest,
    },
    DynamicToolCancelled {
        call: u64,
    },
    McpReply {
        id: u64,
        result: Result<serde_json::Value, String>,
    },
    /// The link closed: the worker is gone (its process group has been
    /// killed and the process reaped).
    Exited {
        status: Option<i32>,
    },
}

/// When a worker was last heard from (any message counts).
#[derive(Debug)]
struct Liveness {
    epoch: Instant,
    /// Milliseconds after `epoch`.
    last_ms: AtomicU64,
}

impl Liveness {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// A thread hosted in a `codex-session` worker process.
#[derive(Debug, Clone)]
pub struct WorkerThread {
    pub pid: u32,
    pub ready: ThreadReady,
    tx: mpsc::Sender<ToWorker>,
    liveness: Arc<Liveness>,
}

impl WorkerThread {
    /// Starts a worker, initializes its thread and waits (up to `deadline`)
    /// until it is ready. The receiver yields everything the worker sends
    /// afterwards and ends with [`WorkerMessage::Exited`].
    pub async fn launch(
        launcher: &Launcher,
        spec: LaunchSpec,
        init: ThreadInit,
        deadline: Duration,
    ) -> Result<(WorkerThread, mpsc::Receiver<WorkerMessage>), LinkError> {
        let launched = launcher.launch(spec).await.map_err(LinkError::Launch)?;
        let pid = launched.pid;
        let mut child = launched.child;
        let (read_half, write_half) = launched.link.into_split();
        let (to_tx, to_rx) = mpsc::channel::<ToWorker>(TO_WORKER_CAPACITY);
        tokio::spawn(write_frames(write_half, to_rx));
        let (raw_tx, mut raw_rx) = mpsc::channel::<FromWorker>(FROM_WORKER_CAPACITY);
        tokio::spawn(pump_frames(read_half, raw_tx, "worker"));

        let _ = to_tx.send(ToWorker::Init(Box::new(init))).await;
        let ready = match tokio::time::timeout(deadline, raw_rx.recv()).await {
            Ok(Some(FromWorker::Ready(r))) => *r,
            Ok(Some(FromWorker::InitFailed { message })) => {
                kill_group(pid);
                let _ = child.wait().await;
                codex_core::process::unregister_child(pid);
                return Err(LinkError::InitFailed(message));
            }
            Ok(Some(_)) | Ok(None) => {
                kill_group(pid);
                let _ = child.wait().await;
                codex_core::process::unregister_child(pid);
                return Err(LinkError::WorkerGone);
            }
            Err(_) => {
                kill_group(pid);
                let _ = child.wait().await;
                codex_core::process::unregister_child(pid);
                return Err(LinkError::Timeout(deadline));
            }
        };

        let liveness = Arc::new(Liveness::new());
        let (out_tx, out_rx) = mpsc::channel::<WorkerMessage>(FROM_WORKER_CAPACITY);
        let seen = liveness.clone();
        tokio::spawn(async move {
            while let Some(msg) = raw_rx.recv().await {
                seen.touch();
                let m = match msg {
                    FromWorker::Event { event } => WorkerMessage::Event(*event),
                    FromWorker::ApprovalRequest {
                        approval_id,
                        request,
                    } => WorkerMessage::Approval {
                        approval_id,
                        request,
                    },
                    FromWorker::ApprovalCancelled { approval_id } => {
                        WorkerMessage::ApprovalCancelled { approval_id }
                    }
                    FromWorker::TurnAccepted { turn_id } => WorkerMessage::TurnAccepted { turn_id },
                    FromWorker::TurnRejected { turn_id, message } => {
                        WorkerMessage::TurnRejected { turn_id, message }
                    }
                    FromWorker::SteerAccepted { steer_id, turn_id } => {
                        WorkerMessage::SteerAccepted { steer_id, turn_id }
                    }
                    FromWorker::SteerRejected { steer_id, message } => {
                        WorkerMessage::SteerRejected { steer_id, message }
                    }
                    FromWorker::Broker { id, request } => WorkerMessage::Broker { id, request },
                    FromWorker::Memory {
                        id,
                        request,
                        deadline_ms,
                    } => WorkerMessage::Memory {
                        id,
                        request,
                        deadline_ms,
                    },
                    FromWorker::DynamicToolCall { call, request } => {
                        WorkerMessage::DynamicToolCall { call, request }
                    }
                    FromWorker::DynamicToolCancelled { call } => {
                        WorkerMessage::DynamicToolCancelled { call }
                    }
                    FromWorker::McpReply { id, result } => WorkerMessage::McpReply { id, result },
                    FromWorker::Heartbeat
                    | FromWorker::Ready(_)
                    | FromWorker::InitFailed { .. }
                    | FromWorker::PipelineReport { .. } => continue,
                };
                if out_tx.send(m).await.is_err() {
                    break;
                }
            }
            // EOF: whatever the worker left in its group goes with it.
            kill_group(pid);
            let status = child.wait().await.ok().and_then(|s| s.code());
            codex_core::process::unregister_child(pid);
            let _ = out_tx.send(WorkerMessage::Exited { status }).await;
        });
        Ok((
            WorkerThread {
                pid,
                ready,
                tx: to_tx,
                liveness,
            },
            out_rx,
        ))
    }

    pub async fn send(&self, msg: ToWorker) -> Result<(), LinkError> {
        self.tx.send(msg).await.map_err(|_| LinkError::Closed)
    }

    /// Queues a message without waiting: a worker that is not reading its
    /// link must not stall the caller.
    pub fn try_send(&self, msg: ToWorker) -> Result<(), LinkError> {
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => LinkError::Full,
            mpsc::error::TrySendError::Closed(_) => LinkError::Closed,
        })
    }

    /// Messages queued for the worker and not yet written to its link.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// How long since the worker last sent anything (a heartbeat included).
    pub fn silent_for(&self) -> Duration {
        self.liveness.silent_for()
    }

    pub async fn start_turn(
        &self,
        turn_id: String,
        input: Vec<UserInput>,
        output_schema: Option<Value>,
        overrides: TurnOverrides,
    ) -> Result<(), LinkError> {
        self.send(ToWorker::TurnStart {
            turn_id,
            input,
            output_schema,
            overrides,
            compact: false,
            client_message_id: None,
        })
        .await
    }

    pub async fn interrupt(&self, turn_id: Option<String>) -> Result<(), LinkError> {
        self.send(ToWorker::TurnInterrupt { turn_id }).await
    }

    pub async fn decide(
        &self,
        approval_id: u64,
        decision: ReviewDecision,
    ) -> Result<(), LinkError> {
        self.send(ToWorker::ApprovalDecision {
            approval_id,
            decision,
            answer: None,
        })
        .await
    }

    /// Asks the worker to end its turn and exit.
    pub async fn shutdown(&self) {
        let _ = self.send(ToWorker::Shutdown).await;
    }

    /// Kills the worker's process group at once.
    pub fn kill(&self) {
        kill_group(self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = ToWorker::TurnStart {
            turn_id: "t".into(),
            input: vec![UserInput::Text { text: "hi".into() }],
            output_schema: None,
            overrides: TurnOverrides::default(),
            compact: false,
            client_message_id: None,
        };
        let line = encode(&m).unwrap();
        let back: ToWorker = serde_json::from_slice(&line).unwrap();
        assert!(matches!(back, ToWorker::TurnStart { .. }));
        let e = FromWorker::Event {
            event: Box::new(Event::Warning {
                message: "w".into(),
            }),
        };
        let back: FromWorker = serde_json::from_slice(&encode(&e).unwrap()).unwrap();
        assert!(matches!(back, FromWorker::Event { .. }));
    }

    /// Regression: a worker's link stayed open (and `codex exec` waited 5 s)
    /// while any task still held a sender of its outbox.
    #[tokio::test]
    async fn closing_a_link_flushes_and_ends_it_while_senders_remain() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let (tx, _rx, writer) = serve_link::<ToWorker, FromWorker>(ours, 8, "test").unwrap();
        let stray = tx.clone();
        tx.send(FromWorker::Heartbeat).await.unwrap();
        tx.send(FromWorker::TurnAccepted {
            turn_id: "t".into(),
        })
        .await
        .unwrap();
        writer.close(Duration::from_secs(30)).await;

        theirs.set_nonblocking(true).unwrap();
        let theirs = tokio::net::UnixStream::from_std(theirs).unwrap();
        let (raw_tx, mut raw_rx) = mpsc::channel::<FromWorker>(8);
        let pump = tokio::spawn(pump_frames(theirs, raw_tx, "test"));
        let got = tokio::time::timeout(Duration::from_secs(30), async {
            let mut got = Vec::new();
            while let Some(m) = raw_rx.recv().await {
                got.push(m);
            }
            got
        })
        .await
        .expect("the link reaches EOF although a sender is still alive");
        assert!(matches!(got[0], FromWorker::Heartbeat));
        assert!(matches!(got[1], FromWorker::TurnAccepted { .. }));
        assert_eq!(got.len(), 2);
        pump.await.unwrap();
        drop(stray);
    }
}
