//! One model on one dedicated inference thread behind a bounded queue.
//!
//! Requests are shed at once when the queue is full
//! ([`LocalError::Overloaded`]), never piled up; every request carries a
//! deadline, checked when it is dequeued and between tokens; its answer
//! comes back on a oneshot channel ([`Pending`] is a `Future`, or can be
//! waited on from a plain thread). Dropping a `Pending` cancels its request.

use std::future::Future;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::{GenerateRequest, Generated, LoadOptions, LocalError, LocalModel};

/// Requests that may wait behind the one being run.
pub const DEFAULT_QUEUE_CAPACITY: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneOptions {
    /// Requests that may wait (the running one not counted); at least 1.
    pub queue_capacity: usize,
}

impl Default for LaneOptions {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

type TokenSink = Box<dyn FnMut(&str) -> ControlFlow<()> + Send>;

enum Work {
    Embed {
        texts: Vec<String>,
        reply: oneshot::Sender<Result<Vec<Vec<f32>>, LocalError>>,
    },
    Generate {
        req: GenerateRequest,
        on_token: TokenSink,
        reply: oneshot::Sender<Result<Generated, LocalError>>,
    },
}

struct Job {
    work: Work,
    deadline: Instant,
    budget: Duration,
    cancel: Arc<AtomicBool>,
}

pub struct LocalLane {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    shutdown: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    path: PathBuf,
    embedding_dim: usize,
}

impl std::fmt::Debug for LocalLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLane")
            .field("path", &self.path)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl LocalLane {
    /// Loads the model (on this thread, so load errors come back here) and
    /// starts its inference thread.
    pub fn start(
        path: impl AsRef<Path>,
        load: LoadOptions,
        opts: LaneOptions,
    ) -> Result<Self, LocalError> {
        Self::with_model(LocalModel::load(path, load)?, opts)
    }

    pub fn with_model(model: LocalModel, opts: LaneOptions) -> Result<Self, LocalError> {
        let capacity = opts.queue_capacity.max(1);
        let (tx, rx) = sync_channel::<Job>(capacity);
        let shutdown = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicUsize::new(0));
        let path = model.path().to_path_buf();
        let embedding_dim = model.embedding_dim();
        let thread = std::thread::Builder::new()
            .name("codex-local-inference".into())
            .spawn({
                let shutdown = shutdown.clone();
                let queued = queued.clone();
                move || run(model, rx, &shutdown, &queued)
            })
            .map_err(|e| {
                LocalError::Inference(format!("cannot start the inference thread: {e}"))
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            shutdown,
            queued,
            capacity,
            path,
            embedding_dim,
        })
    }

    pub fn model_path(&self) -> &Path {
        &self.path
    }

    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    /// Requests waiting (not counting the one running).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn embed(
        &self,
        texts: Vec<String>,
        deadline: Duration,
    ) -> Result<Pending<Vec<Vec<f32>>>, LocalError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Work::Embed { texts, reply }, deadline, rx)
    }

    /// `on_token` runs on the inference thread with each piece of text as
    /// it is produced; `ControlFlow::Break` ends the generation early.
    pub fn generate(
        &self,
        req: GenerateRequest,
        deadline: Duration,
        on_token: impl FnMut(&str) -> ControlFlow<()> + Send + 'static,
    ) -> Result<Pending<Generated>, LocalError> {
        let (reply, rx) = oneshot::channel();
        let on_token: TokenSink = Box::new(on_token);
        self.submit(
            Work::Generate {
                req,
                on_token,
                reply,
            },
            deadline,
            rx,
        )
    }

    fn submit<T>(
        &self,
        work: Work,
        budget: Duration,
        rx: oneshot::Receiver<Result<T, LocalError>>,
    ) -> Result<Pending<T>, LocalError> {
        let tx = self.tx.as_ref().ok_or(LocalError::LaneStopped)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            work,
            deadline: Instant::now() + budget,
            budget,
            cancel: cancel.clone(),
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(job) {
            Ok(()) => Ok(Pending { rx, cancel }),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => LocalError::Overloaded {
                        capacity: self.capacity,
                    },
                    TrySendError::Disconnected(_) => LocalError::LaneStopped,
                })
            }
        }
    }
}

impl Drop for LocalLane {
    fn drop(&mut self) {
        // The running request stops at its next token; queued ones are
        // answered `LaneStopped`; then the thread ends and frees the model.
        self.shutdown.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(model: LocalModel, rx: Receiver<Job>, shutdown: &AtomicBool, queued: &AtomicUsize) {
    while let Ok(job) = rx.recv() {
        queued.fetch_sub(1, Ordering::Relaxed);
        let Job {
            work,
            deadline,
            budget,
            cancel,
        } = job;
        let interrupted = || -> Option<LocalError> {
            if shutdown.load(Ordering::Relaxed) {
                Some(LocalError::LaneStopped)
            } else if cancel.load(Ordering::Relaxed) {
                Some(LocalError::Cancelled)
            } else if Instant::now() >= deadline {
                Some(LocalError::DeadlineExceeded(budget))
            } else {
                None
            }
        };
        // A panic in one request (llama-cpp-2 asserts) fails that request,
        // not the lane.
        let guard =
            |f: &mut dyn FnMut()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
        match work {
            Work::Embed { texts, reply } => {
                let mut out = None;
                let ok = guard(&mut || {
                    out = Some(match interrupted() {
                        Some(e) => Err(e),
                        None => {
                            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                            model.embed_until(&refs, &interrupted)
                        }
                    });
                });
                let result = out.filter(|_| ok).unwrap_or_else(|| {
                    Err(LocalError::Inference(
                        "the embedding request panicked".into(),
                    ))
                });
                let _ = reply.send(result);
            }
            Work::Generate {
                req,
                mut on_token,
                reply,
            } => {
                let mut out = None;
                let ok = guard(&mut || {
                    out = Some(match interrupted() {
                        Some(e) => Err(e),
                        None => model.generate_until(&req, &mut *on_token, &interrupted),
                    });
                });
                let result = out.filter(|_| ok).unwrap_or_else(|| {
                    Err(LocalError::Inference("the generation panicked".into()))
                });
                let _ = reply.send(result);
            }
        }
    }
}

/// The answer to one lane request. Dropping it cancels the request.
pub struct Pending<T> {
    rx: oneshot::Receiver<Result<T, LocalError>>,
    cancel: Arc<AtomicBool>,
}

impl<T> Pending<T> {
    /// Asks the inference thread to stop this request at its next token.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Waits from a thread that is not running async code.
    pub fn wait(mut self) -> Result<T, LocalError> {
        let rx = std::mem::replace(&mut self.rx, oneshot::channel().1);
        rx.blocking_recv().unwrap_or(Err(LocalError::LaneStopped))
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, LocalError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(LocalError::LaneStopped)))
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}
