//! One client connection: a bounded ingress queue in front of sequential
//! request processing (a full queue sheds requests with `-32001`), and a
//! bounded egress queue (a client that stops reading is disconnected rather
//! than allowed to stall the threads it subscribes to).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use codex_core::CancellationToken;
use codex_ipc::framing::{read_frame, Frame};
use codex_ipc::jsonrpc::{self, DecodeError, Incoming, RequestId, RpcError};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Server;

pub use crate::limits::connection::{
    EGRESS_BYTES, EGRESS_MESSAGES as EGRESS_CAPACITY, INGRESS_MESSAGES as INGRESS_CAPACITY,
    MAX_MESSAGE_BYTES as MAX_FRAME_BYTES,
};

/// Bytes gathered into one write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// How long a closing connection may take to flush what is queued.
const FINAL_FLUSH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Load shed by the whole daemon, for `codexd/status`.
#[derive(Debug, Default)]
pub struct LoadCounters {
    /// Requests answered `-32001` (any reason: a full queue, pressure, the
    /// worker limit).
    pub overloaded: AtomicU64,
    /// Connections dropped because their client stopped reading.
    pub slow_clients: AtomicU64,
}

/// A server request waiting for this client's answer.
#[derive(Debug, Clone)]
pub struct PendingServerRequest {
    pub thread_id: String,
    /// The worker's approval id, or its dynamic tool call id.
    pub approval_id: u64,
    /// An `item/tool/call` rather than an approval.
    pub tool_call: bool,
}

#[derive(Debug, Default)]
struct ConnState {
    initialized: bool,
    client_name: Option<String>,
    client_version: Option<String>,
    opt_out: HashSet<String>,
    next_request_id: i64,
    pending: HashMap<i64, PendingServerRequest>,
    /// `initialize.capabilities.experimentalApi`.
    experimental_api: bool,
}

pub struct Conn {
    pub id: u64,
    out: mpsc::Sender<String>,
    /// Bytes queued in `out`.
    queued_bytes: Arc<AtomicUsize>,
    pub closed: CancellationToken,
    state: Mutex<ConnState>,
    /// Set once the client sent `initialized` (and got the side notices).
    announced: AtomicBool,
    counters: Arc<LoadCounters>,
    /// Notifications of the threads a request in progress subscribes this
    /// connection to (`thread/start`, ...), held so that they follow the
    /// answer and `thread/started` (see [`Conn::hold`]). Other threads'
    /// notifications are not held.
    held: Mutex<Option<Held>>,
}

#[derive(Default)]
struct Held {
    threads: std::collections::HashSet<String>,
    notes: Vec<(String, Value)>,
}

impl Conn {
    fn state(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send_line(&self, line: String) {
        if self.closed.is_cancelled() {
            return;
        }
        tracing::trace!(target: "codexd::wire", "conn {} -> {line}", self.id);
        let len = line.len();
        // Counted before it is queued: the writer subtracts when it takes it.
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > EGRESS_BYTES {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            tracing::warn!(
                "connection {}: client is not reading ({before} bytes queued); disconnecting it",
                self.id
            );
            self.disconnect_slow();
            return;
        }
        match self.out.try_send(line) {
            Ok(()) => {}
            Err(e) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                if let mpsc::error::TrySendError::Full(_) = e {
                    tracing::warn!(
                        "connection {}: client is not reading ({} messages queued); disconnecting it",
                        self.id,
                        EGRESS_CAPACITY
                    );
                    self.disconnect_slow();
                }
            }
        }
    }

    pub fn respond(&self, id: &RequestId, result: Value) {
        self.send_line(jsonrpc::encode_response(id, result));
    }

    fn disconnect_slow(&self) {
        if !self.closed.is_cancelled() {
            self.counters.slow_clients.fetch_add(1, Ordering::Relaxed);
        }
        self.closed.cancel();
    }

    pub fn error(&self, id: &RequestId, err: &RpcError) {
        if err.code == jsonrpc::SERVER_OVERLOADED {
            self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
        }
        self.send_line(jsonrpc::encode_error(id, err));
    }

    pub fn notify(&self, method: &str, params: Value) {
        if self.state().opt_out.contains(method) {
            return;
        }
        self.send_line(jsonrpc::encode_notification(
            method,
            params,
            jsonrpc::now_ms(),
        ));
    }

    /// Starts holding the notifications of threads this connection is
    /// subscribed to from now on ([`Conn::holding_for`]) until
    /// [`Conn::release`].
    pub fn hold(&self) {
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        h.get_or_insert_with(Held::default);
    }

    /// `thread_id` is being subscribed while holding: its notifications wait
    /// for [`Conn::release`]. Called before the subscription takes effect.
    pub fn holding_for(&self, thread_id: &str) {
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = h.as_mut() {
            held.threads.insert(thread_id.to_string());
        }
    }

    /// Sends what was held, in order, and stops holding.
    pub fn release(&self) {
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for (method, params) in h.take().map(|h| h.notes).unwrap_or_default() {
            self.notify(&method, params);
        }
    }

    /// A notification of thread `thread_id`: sent, or held while the request
    /// that subscribes this connection to it is unanswered.
    pub fn notify_thread(&self, thread_id: &str, method: &str, params: Value) {
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        match h.as_mut() {
            Some(held) if held.threads.contains(thread_id) => {
                held.notes.push((method.to_string(), params))
            }
            _ => self.notify(method, params),
        }
    }

    /// Sends a server→client request; returns its id.
    pub fn request(&self, method: &str, params: Value, pending: PendingServerRequest) -> i64 {
        let id = {
            let mut st = self.state();
            let id = st.next_request_id;
            st.next_request_id += 1;
            st.pending.insert(id, pending);
            id
        };
        self.send_line(jsonrpc::encode_request(&RequestId::Int(id), method, params));
        id
    }

    pub fn take_pending(&self, id: i64) -> Option<PendingServerRequest> {
        self.state().pending.remove(&id)
    }

    pub fn forget_pending(&self, thread_id: &str, approval_id: u64) {
        self.state().pending.retain(|_, p| {
            !(p.thread_id == thread_id && p.approval_id == approval_id && !p.tool_call)
        });
    }

    /// Forgets the `item/tool/call` request of dynamic tool call `call`.
    pub fn forget_tool_call(&self, thread_id: &str, call: u64) {
        self.state()
            .pending
            .retain(|_, p| !(p.thread_id == thread_id && p.approval_id == call && p.tool_call));
    }

    pub fn client_name(&self) -> Option<String> {
        self.state().client_name.clone()
    }

    pub fn is_initialized(&self) -> bool {
        self.state().initialized
    }

    /// Records `initialize`; false if it already happened.
    pub fn initialize(&self, name: String, version: String, opt_out: Vec<String>) -> bool {
        let mut st = self.state();
        if st.initialized {
            return false;
        }
        st.initialized = true;
        st.client_name = Some(name);
        st.client_version = Some(version);
        st.opt_out = opt_out.into_iter().collect();
        true
    }

    pub fn client_version(&self) -> Option<String> {
        self.state().client_version.clone()
    }

    pub fn set_experimental_api(&self, on: bool) {
        self.state().experimental_api = on;
    }

    pub fn experimental_api(&self) -> bool {
        self.state().experimental_api
    }

    pub fn mark_announced(&self) -> bool {
        !self.announced.swap(true, Ordering::Relaxed)
    }
}

/// Serves one connection until the client goes away (or is disconnected).
pub async fn serve<R, W>(server: Arc<Server>, reader: R, writer: W)
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel::<String>(EGRESS_CAPACITY);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let conn = Arc::new(Conn {
        id: server.next_conn_id(),
        out: out_tx,
        queued_bytes: queued_bytes.clone(),
        closed: CancellationToken::new(),
        state: Mutex::new(ConnState::default()),
        announced: AtomicBool::new(false),
        counters: server.counters.clone(),
        held: Mutex::new(None),
    });
    server.register_conn(conn.clone());
    let writer_task = tokio::spawn(write_lines(
        writer,
        out_rx,
        queued_bytes,
        conn.closed.clone(),
    ));

    let (in_tx, mut in_rx) = mpsc::channel::<Incoming>(INGRESS_CAPACITY);
    let processor = {
        let server = server.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            while let Some(msg) = in_rx.recv().await {
                server.handle_message(&conn, msg).await;
            }
        })
    };

    let mut reader = reader;
    let mut shed: u64 = 0;
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut reader, MAX_FRAME_BYTES) => f,
            _ = conn.closed.cancelled() => break,
        };
        let decoded = match frame {
            Ok(Some(Frame::Line(l))) if l.trim().is_empty() => continue,
            Ok(Some(Frame::Line(l))) => {
                // `RUST_LOG=codexd::wire=trace` shows what clients send.
                tracing::trace!(target: "codexd::wire", "conn {} <- {l}", conn.id);
                jsonrpc::decode(&l)
            }
            Ok(Some(Frame::TooLarge { bytes, id })) => {
                Err(DecodeError::too_large(bytes, MAX_FRAME_BYTES, id))
            }
            Ok(None) | Err(_) => break,
        };
        let msg = match decoded {
            Ok(m) => m,
            Err(e) => {
                // Logged, and the connection lives on. Upstream never answers;
                // a request whose id we could recover is answered, so its
                // sender does not wait forever.
                tracing::warn!("connection {}: {e}", conn.id);
                if let Some((id, err)) = e.reply() {
                    conn.error(&id, &err);
                }
                continue;
            }
        };
        if let Err(mpsc::error::TrySendError::Full(Incoming::Request { id, method, .. })) =
            in_tx.try_send(msg)
        {
            shed += 1;
            if shed == 1 || shed % 1000 == 0 {
                tracing::warn!(
                    "connection {}: shedding `{method}` (queue full; {shed} shed so far)",
                    conn.id
                );
            }
            conn.error(&id, &RpcError::overloaded());
        }
    }
    drop(in_tx);
    let _ = processor.await;
    server.unregister_conn(conn.id);
    // Let queued replies and notifications go out (bounded), then close.
    let closed = conn.closed.clone();
    drop(conn);
    let mut writer_task = writer_task;
    if tokio::time::timeout(FINAL_FLUSH_DEADLINE, &mut writer_task)
        .await
        .is_err()
    {
        closed.cancel();
        let _ = writer_task.await;
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<String>,
    queued_bytes: Arc<AtomicUsize>,
    closed: CancellationToken,
) {
    // Every write races the close: a client that stopped reading blocks a
    // write forever, and a disconnected client must really be let go.
    loop {
        let line = tokio::select! {
            l = rx.recv() => l,
            _ = closed.cancelled() => None,
        };
        let Some(line) = line else { break };
        queued_bytes.fetch_sub(line.len(), Ordering::Relaxed);
        let mut batch = line.into_bytes();
        // Batch what is already queued.
        while batch.len() < WRITE_BATCH_BYTES {
            let Ok(more) = rx.try_recv() else { break };
            queued_bytes.fetch_sub(more.len(), Ordering::Relaxed);
            batch.extend_from_slice(more.as_bytes());
        }
        let written = tokio::select! {
            r = async {
                writer.write_all(&batch).await?;
                writer.flush().await
            } => r.is_ok(),
            _ = closed.cancelled() => false,
        };
        if !written {
            closed.cancel();
            return;
        }
    }
    if !closed.is_cancelled() {
        let _ = tokio::time::timeout(FINAL_FLUSH_DEADLINE, async {
            let _ = writer.flush().await;
            let _ = writer.shutdown().await;
        })
        .await;
    }
}
