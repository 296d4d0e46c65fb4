//! The memory service: [`MemoryRequest`] → [`MemoryResponse`], a tower
//! [`Service`] whose requests and answers are serde types, so the same
//! service runs in-process ([`LocalMemory`]: `codex memory` without a
//! daemon, and inside `codex-memory`) and across the link (codexd's client
//! of the `codex-memory` process implements the same requests).
//!
//! Layers of [`LocalMemory`], outermost first:
//! 1. deadline: [`LocalMemory::call_with_deadline`] (the service's
//!    `call` uses [`DEFAULT_DEADLINE`]); on expiry the caller gets
//!    [`MemoryServiceError::Timeout`] and the job, if it still runs,
//!    answers nobody;
//! 2. load shed: the queue to the store thread is bounded
//!    ([`DEFAULT_QUEUE`]); a full queue answers
//!    [`MemoryServiceError::Overloaded`] at once, never waits;
//! 3. the store thread: one [`MemoryIndex`] (SQLite is blocking), opened
//!    on that thread so a slow or locked database never delays the caller,
//!    jobs run one at a time in order.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tower::Service;

use super::embed::Embedder;
use super::error::MemoryError;
use super::generate::{LocalGenerate, LocalGenerated};
use super::index::{IndexOptions, MemoryIndex};
use super::layout::MemoryLayout;
use super::store::{Memory, MemoryId, RecallHit};

/// Jobs waiting for the store thread at most.
pub const DEFAULT_QUEUE: usize = 64;
/// Deadline of a call through the `Service` face.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// Test hook: a file holding a number of milliseconds; while it exists the
/// store thread sleeps that long before each `Recall` (a recall made
/// deterministically slow for failure tests, and fast again by removing
/// the file).
pub const TEST_RECALL_DELAY_ENV: &str = "CODEX_MEMORY_TEST_RECALL_DELAY_FILE";

/// A request to the memory service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MemoryRequest {
    /// Per-turn recall (the turn's user message as query).
    Recall {
        query: String,
        limit: usize,
    },
    /// Stores a memory as an ad-hoc note.
    Remember {
        text: String,
        #[serde(default)]
        source_thread_id: Option<String>,
    },
    Forget {
        id: i64,
    },
    /// The most recently updated memories.
    List {
        limit: usize,
    },
    /// A user's search (same ranking as recall).
    Search {
        query: String,
        limit: usize,
    },
    Status,
    /// Forgets every memory: deletes everything under `memories/` and
    /// empties the index.
    Reset,
    Embed {
        texts: Vec<String>,
    },
    /// Records a memory's usefulness.
    Score {
        id: i64,
        score: f64,
    },
    /// Memories not scored yet (score 0), oldest first: the background
    /// scorer's work list.
    Unscored {
        limit: usize,
    },
    /// A completion from the local generation model ([`Generator`]).
    Generate {
        request: LocalGenerate,
    },
}

impl MemoryRequest {
    pub fn name(&self) -> &'static str {
        match self {
            MemoryRequest::Recall { .. } => "recall",
            MemoryRequest::Remember { .. } => "remember",
            MemoryRequest::Forget { .. } => "forget",
            MemoryRequest::List { .. } => "list",
            MemoryRequest::Search { .. } => "search",
            MemoryRequest::Status => "status",
            MemoryRequest::Reset => "reset",
            MemoryRequest::Embed { .. } => "embed",
            MemoryRequest::Score { .. } => "score",
            MemoryRequest::Unscored { .. } => "unscored",
            MemoryRequest::Generate { .. } => "generate",
        }
    }
}

/// One memory as the service reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryEntry {
    pub id: i64,
    pub text: String,
    pub source_path: Option<String>,
    pub source_thread_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub score: f64,
    /// Relevance to the query (recall and search only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relevance: Option<f64>,
}

impl MemoryEntry {
    fn from_memory(m: Memory, relevance: Option<f64>) -> Self {
        Self {
            id: m.id.0,
            text: m.text,
            source_path: m.source_path,
            source_thread_id: m.source_thread_id,
            created_at_ms: m.created_at_ms,
            updated_at_ms: m.updated_at_ms,
            score: m.score,
            relevance,
        }
    }

    fn from_hit(h: RecallHit) -> Self {
        Self::from_memory(h.memory, Some(h.relevance))
    }
}

/// What the service and its index look like.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStatus {
    pub db_path: std::path::PathBuf,
    pub memories_dir: std::path::PathBuf,
    pub count: usize,
    /// Memories with an embedding (vector recall).
    pub vectors: usize,
    pub embedder: bool,
    /// Memories with a score (> 0; 0 means not scored yet).
    #[serde(default)]
    pub scored: usize,
    pub warnings: Vec<String>,
}

/// The service's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemoryResponse {
    Hits {
        hits: Vec<MemoryEntry>,
    },
    Remembered {
        id: i64,
    },
    Forgot {
        found: bool,
    },
    Memories {
        memories: Vec<MemoryEntry>,
    },
    Status {
        status: MemoryStatus,
    },
    /// What reset removed: entries of `memories/` and index rows.
    Reset {
        removed: Vec<String>,
        rows: usize,
    },
    Embeddings {
        vectors: Vec<Vec<f32>>,
    },
    Scored {
        found: bool,
    },
    Generated {
        generated: LocalGenerated,
    },
}

/// Why the service did not answer a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", content = "message", rename_all = "snake_case")]
pub enum MemoryServiceError {
    /// The queue is full: shed at once.
    #[error("the memory service is overloaded")]
    Overloaded,
    #[error("the memory service did not answer within {0} ms")]
    Timeout(u64),
    /// Down, restarting, stopped or not started.
    #[error("the memory service is unavailable: {0}")]
    Unavailable(String),
    /// The database is locked by another process (try later).
    #[error("{0}")]
    Busy(String),
    #[error("no embedding model is configured")]
    NoEmbedder,
    /// No local generation model for this purpose (`[memories]
    /// extract_model`, `[context_shaping] model`).
    #[error("no local generation model is configured: {0}")]
    NoModel(String),
    #[error("{0}")]
    Failed(String),
}

impl From<MemoryError> for MemoryServiceError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Busy { .. } => MemoryServiceError::Busy(e.to_string()),
            other => MemoryServiceError::Failed(other.to_string()),
        }
    }
}

pub type MemoryResult = Result<MemoryResponse, MemoryServiceError>;

type Job = (MemoryRequest, oneshot::Sender<MemoryResult>);

/// Makes an embedder on the store thread (`None`: none after all).
pub type MakeEmbedder = Box<dyn FnOnce() -> Option<Box<dyn Embedder>> + Send>;

/// How to start a [`LocalMemory`].
pub struct LocalMemoryOptions {
    pub layout: MemoryLayout,
    pub index: IndexOptions,
    pub queue: usize,
    /// Makes the embedder on the store thread (a model is loaded there).
    pub embedder: Option<MakeEmbedder>,
    /// Sleep before each `Recall` (tests).
    pub recall_delay: Option<Duration>,
    /// The [`TEST_RECALL_DELAY_ENV`] file (tests).
    pub recall_delay_file: Option<std::path::PathBuf>,
}

impl LocalMemoryOptions {
    pub fn new(layout: MemoryLayout) -> Self {
        Self {
            layout,
            index: IndexOptions::default(),
            queue: DEFAULT_QUEUE,
            embedder: None,
            recall_delay: None,
            recall_delay_file: std::env::var_os(TEST_RECALL_DELAY_ENV).map(Into::into),
        }
    }
}

/// The in-process memory service: a store thread behind a bounded queue.
/// Clones share the thread, which ends when the last clone is dropped.
#[derive(Clone)]
pub struct LocalMemory {
    jobs: std_mpsc::SyncSender<Job>,
    /// Why the index could not be opened, when it could not.
    open_error: Arc<Mutex<Option<String>>>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl LocalMemory {
    /// Starts the store thread; the index is opened on it.
    pub fn start(opts: LocalMemoryOptions) -> std::io::Result<LocalMemory> {
        let (tx, rx) = std_mpsc::sync_channel::<Job>(opts.queue.max(1));
        let open_error = Arc::new(Mutex::new(None));
        let err_slot = open_error.clone();
        let delay = opts.recall_delay;
        let delay_file = opts.recall_delay_file;
        let thread = std::thread::Builder::new()
            .name("codex-memory-store".into())
            .spawn(move || {
                let embedder = opts.embedder.and_then(|make| make());
                let mut index = match MemoryIndex::open(opts.layout.clone(), opts.index, embedder) {
                    Ok(i) => Some(i),
                    Err(e) => {
                        tracing::warn!("memory index unavailable: {e}");
                        if let Ok(mut s) = err_slot.lock() {
                            *s = Some(e.to_string());
                        }
                        None
                    }
                };
                while let Ok((request, reply)) = rx.recv() {
                    if reply.is_closed() {
                        continue; // its caller gave up
                    }
                    if let MemoryRequest::Recall { .. } = &request {
                        if let Some(d) = delay.or_else(|| file_delay(delay_file.as_deref())) {
                            std::thread::sleep(d);
                        }
                    }
                    let result = match &mut index {
                        Some(index) => handle(index, &opts.layout, request),
                        None => Err(MemoryServiceError::Unavailable(
                            err_slot
                                .lock()
                                .ok()
                                .and_then(|s| s.clone())
                                .unwrap_or_else(|| "the memory index did not open".into()),
                        )),
                    };
                    let _ = reply.send(result);
                }
            })?;
        Ok(LocalMemory {
            jobs: tx,
            open_error,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Drops this handle and, when it was the last one, waits (at most
    /// `wait`) for the store thread to finish and close the database
    /// cleanly (WAL checkpointed): for a process about to exit.
    pub fn close(self, wait: Duration) {
        let LocalMemory { jobs, thread, .. } = self;
        drop(jobs);
        let Some(handle) = thread.lock().ok().and_then(|mut t| t.take()) else {
            return;
        };
        let deadline = std::time::Instant::now() + wait;
        while !handle.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if handle.is_finished() {
            let _ = handle.join();
        }
    }

    /// Why the index did not open, if it did not.
    pub fn open_error(&self) -> Option<String> {
        self.open_error.lock().ok().and_then(|s| s.clone())
    }

    /// Queues `request` (or sheds it at once) and waits at most `deadline`.
    pub async fn call_with_deadline(
        &self,
        request: MemoryRequest,
        deadline: Duration,
    ) -> MemoryResult {
        let (reply_tx, reply_rx) = oneshot::channel();
        match self.jobs.try_send((request, reply_tx)) {
            Ok(()) => {}
            Err(std_mpsc::TrySendError::Full(_)) => return Err(MemoryServiceError::Overloaded),
            Err(std_mpsc::TrySendError::Disconnected(_)) => {
                return Err(MemoryServiceError::Unavailable(
                    "the memory store thread is gone".into(),
                ))
            }
        }
        match tokio::time::timeout(deadline, reply_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(MemoryServiceError::Unavailable(
                "the memory store thread is gone".into(),
            )),
            Err(_) => Err(MemoryServiceError::Timeout(deadline.as_millis() as u64)),
        }
    }

    /// Runs `request` on the calling thread's runtime-free path: for
    /// synchronous callers (a CLI without a runtime), blocking.
    pub fn call_blocking(&self, request: MemoryRequest) -> MemoryResult {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.jobs
            .try_send((request, reply_tx))
            .map_err(|e| match e {
                std_mpsc::TrySendError::Full(_) => MemoryServiceError::Overloaded,
                std_mpsc::TrySendError::Disconnected(_) => {
                    MemoryServiceError::Unavailable("the memory store thread is gone".into())
                }
            })?;
        reply_rx.blocking_recv().map_err(|_| {
            MemoryServiceError::Unavailable("the memory store thread is gone".into())
        })?
    }
}

impl Service<MemoryRequest> for LocalMemory {
    type Response = MemoryResponse;
    type Error = MemoryServiceError;
    type Future = Pin<Box<dyn Future<Output = MemoryResult> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), MemoryServiceError>> {
        // Never waits: a full queue is answered by `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: MemoryRequest) -> Self::Future {
        let me = self.clone();
        Box::pin(async move { me.call_with_deadline(request, DEFAULT_DEADLINE).await })
    }
}

fn file_delay(path: Option<&std::path::Path>) -> Option<Duration> {
    let text = std::fs::read_to_string(path?).ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_millis)
}

/// One request on the store thread.
fn handle(index: &mut MemoryIndex, layout: &MemoryLayout, request: MemoryRequest) -> MemoryResult {
    Ok(match request {
        MemoryRequest::Recall { query, limit } | MemoryRequest::Search { query, limit } => {
            let hits = index.recall(&query, limit)?;
            MemoryResponse::Hits {
                hits: hits.into_iter().map(MemoryEntry::from_hit).collect(),
            }
        }
        MemoryRequest::Remember {
            text,
            source_thread_id,
        } => {
            let id = index.remember(&text, source_thread_id.as_deref())?;
            MemoryResponse::Remembered { id: id.0 }
        }
        MemoryRequest::Forget { id } => MemoryResponse::Forgot {
            found: index.forget(MemoryId(id))?,
        },
        MemoryRequest::List { limit } => MemoryResponse::Memories {
            memories: index
                .list(limit)?
                .into_iter()
                .map(|m| MemoryEntry::from_memory(m, None))
                .collect(),
        },
        MemoryRequest::Status => MemoryResponse::Status {
            status: status(index, layout)?,
        },
        MemoryRequest::Reset => {
            let (removed, rows) = index.reset()?;
            MemoryResponse::Reset { removed, rows }
        }
        MemoryRequest::Embed { texts } => {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            match index.embed(&refs)? {
                Some(vectors) => MemoryResponse::Embeddings { vectors },
                None => return Err(MemoryServiceError::NoEmbedder),
            }
        }
        MemoryRequest::Score { id, score } => MemoryResponse::Scored {
            found: index.set_score(MemoryId(id), score)?,
        },
        MemoryRequest::Unscored { limit } => MemoryResponse::Memories {
            memories: index
                .unscored(limit)?
                .into_iter()
                .map(|m| MemoryEntry::from_memory(m, None))
                .collect(),
        },
        // The store thread hosts no generation model; codex-memory routes
        // these to its lane before they reach the store.
        MemoryRequest::Generate { request } => {
            return Err(MemoryServiceError::NoModel(format!(
                "{:?} has no model in this process",
                request.purpose
            )))
        }
    })
}

fn status(index: &mut MemoryIndex, layout: &MemoryLayout) -> Result<MemoryStatus, MemoryError> {
    let count = index.count()?;
    Ok(MemoryStatus {
        db_path: layout.index_db(),
        memories_dir: layout.root(),
        count,
        vectors: index.vector_count(),
        embedder: index.has_embedder(),
        scored: index.scored_count()?,
        warnings: index.warnings().to_vec(),
    })
}

/// What the turn loop asks at the start of a turn: the memories relevant
/// to the user's message. Implementations: the worker's client over the
/// link, [`LocalMemory`]. The turn bounds the wait with its recall
/// deadline; an implementation should also give up by `deadline`.
pub trait MemoryRecall: Send + Sync {
    fn recall(
        &self,
        query: String,
        limit: usize,
        deadline: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<MemoryEntry>, MemoryServiceError>> + Send>>;
}

impl MemoryRecall for LocalMemory {
    fn recall(
        &self,
        query: String,
        limit: usize,
        deadline: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<MemoryEntry>, MemoryServiceError>> + Send>> {
        let me = self.clone();
        Box::pin(async move {
            match me
                .call_with_deadline(MemoryRequest::Recall { query, limit }, deadline)
                .await?
            {
                MemoryResponse::Hits { hits } => Ok(hits),
                other => Err(MemoryServiceError::Failed(format!(
                    "unexpected answer to recall: {other:?}"
                ))),
            }
        })
    }
}
