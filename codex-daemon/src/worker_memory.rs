//! The worker's memory client: per-turn recall asked of codexd's
//! `codex-memory` over the link. It never waits longer than the caller's
//! deadline, and a link that cannot take the request at once is an error
//! at once (the turn proceeds without memories).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_core::memory::generate::GenerateFuture;
use codex_core::memory::{
    Generator, LocalGenerate, MemoryEntry, MemoryRecall, MemoryRequest, MemoryResponse,
    MemoryServiceError,
};
use codex_ipc::link::FromWorker;
use tokio::sync::{mpsc, oneshot};

type Reply = Result<MemoryResponse, MemoryServiceError>;

pub(crate) struct LinkMemory {
    out: mpsc::Sender<FromWorker>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next: AtomicU64,
}

impl LinkMemory {
    pub(crate) fn new(out: mpsc::Sender<FromWorker>) -> Arc<Self> {
        Arc::new(Self {
            out,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        })
    }

    /// codexd's answer to request `id`.
    pub(crate) fn resolve(&self, id: u64, result: Reply) {
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    pub(crate) async fn ask(&self, request: MemoryRequest, deadline: Duration) -> Reply {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let forget = || {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&id);
            }
        };
        let sent = self.out.try_send(FromWorker::Memory {
            id,
            request,
            deadline_ms: deadline.as_millis() as u64,
        });
        if sent.is_err() {
            forget();
            return Err(MemoryServiceError::Unavailable(
                "the link to codexd is full or closed".into(),
            ));
        }
        let answer = tokio::time::timeout(deadline, rx).await;
        forget();
        match answer {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(MemoryServiceError::Unavailable(
                "no answer from codexd".into(),
            )),
            Err(_) => Err(MemoryServiceError::Timeout(deadline.as_millis() as u64)),
        }
    }
}

/// The recall seam of the worker's thread.
pub(crate) struct LinkRecall(pub(crate) Arc<LinkMemory>);

impl MemoryRecall for LinkRecall {
    fn recall(
        &self,
        query: String,
        limit: usize,
        deadline: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<MemoryEntry>, MemoryServiceError>> + Send>> {
        let memory = self.0.clone();
        Box::pin(async move {
            match memory
                .ask(MemoryRequest::Recall { query, limit }, deadline)
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

/// The local-lane seam of the worker (extraction, context shaping): the
/// model lives in codex-memory, one instance per daemon.
pub(crate) struct LinkGenerator(pub(crate) Arc<LinkMemory>);

impl Generator for LinkGenerator {
    fn generate(&self, request: LocalGenerate, deadline: Duration) -> GenerateFuture {
        let memory = self.0.clone();
        Box::pin(async move {
            match memory
                .ask(MemoryRequest::Generate { request }, deadline)
                .await?
            {
                MemoryResponse::Generated { generated } => Ok(generated),
                other => Err(MemoryServiceError::Failed(format!(
                    "unexpected answer to generate: {other:?}"
                ))),
            }
        })
    }
}
