//! A worker's answerer of dynamic tool calls: each call goes to codexd over
//! the link (after every event emitted before it, through the worker's
//! forwarder) and waits for the client's answer that codexd relays back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use codex_core::tools::dynamic::{DynamicToolAnswer, DynamicToolClient, DynamicToolRequest};
use codex_ipc::link::FromWorker;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

type Answer = Result<DynamicToolAnswer, String>;

pub(crate) struct LinkDynamicTools {
    /// Read by the forwarder, which keeps the order with events.
    out: mpsc::Sender<FromWorker>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next: AtomicU64,
}

impl LinkDynamicTools {
    pub(crate) fn new(out: mpsc::Sender<FromWorker>) -> Self {
        Self {
            out,
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        }
    }

    /// codexd relayed the answer to `call`.
    pub(crate) fn resolve(&self, call: u64, result: Answer) {
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&call));
        match tx {
            Some(tx) => {
                let _ = tx.send(result);
            }
            None => tracing::debug!("dynamic tool call {call} already ended; answer ignored"),
        }
    }

    /// Fails everything still waiting (the supervisor went away).
    pub(crate) fn fail_all(&self) {
        if let Ok(mut p) = self.pending.lock() {
            for (_, tx) in p.drain() {
                let _ = tx.send(Err("the supervisor went away".into()));
            }
        }
    }
}

/// Tells codexd the call is void when its waiter is dropped unanswered
/// (deadline, interrupt).
struct CancelOnDrop<'a> {
    call: u64,
    owner: &'a LinkDynamicTools,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.owner.pending.lock() {
            p.remove(&self.call);
        }
        if self.armed {
            let _ = self
                .owner
                .out
                .try_send(FromWorker::DynamicToolCancelled { call: self.call });
        }
    }
}

/// The client over the link; shared (`Arc`) with the worker's loop, which
/// delivers the answers.
pub(crate) struct SharedLinkDynamicTools(pub(crate) std::sync::Arc<LinkDynamicTools>);

impl DynamicToolClient for SharedLinkDynamicTools {
    fn call(&self, request: DynamicToolRequest) -> BoxFuture<'static, Answer> {
        let owner = self.0.clone();
        Box::pin(async move {
            let call = owner.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            if let Ok(mut p) = owner.pending.lock() {
                p.insert(call, tx);
            }
            let mut guard = CancelOnDrop {
                call,
                owner: &owner,
                armed: false,
            };
            if owner
                .out
                .send(FromWorker::DynamicToolCall { call, request })
                .await
                .is_err()
            {
                return Err("the supervisor is gone".into());
            }
            guard.armed = true;
            let answer = rx
                .await
                .unwrap_or_else(|_| Err("the supervisor went away".into()));
            guard.armed = false;
            answer
        })
    }
}
