//! One supervised service process (`codex-broker`, `codex-memory`): launched
//! through the one launcher, sent its `Init`, restarted with backoff when it
//! dies, and a request API that never hangs: while the process is down or
//! (re)starting a caller waits at most the shorter of its deadline and
//! `starting_wait`, then gets [`Protocol::unavailable`]; a process that dies
//! with requests in flight fails them at once; every call has a deadline.
//!
//! The wire is generic: [`ToService`] (`Init`, then `Request`s) and
//! [`FromService`] (`Ready`, then `Reply`s and unprompted `Event`s), JSONL
//! over the launcher's socketpair.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::launcher::{kill_group, LaunchSpec, Launcher};
use crate::link::{pump_frames, write_frames};

/// How long a started process may take to be ready.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Backoff between restarts: from the first to the last value, doubling.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A process that lived this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// Bound of the queue to the process (and of the one from it).
const QUEUE: usize = 1024;

/// What the supervisor sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToService<I, R> {
    Init(I),
    Request {
        id: u64,
        request: R,
        /// What is left of the caller's deadline when sent (the process
        /// gives up by then too).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline_ms: Option<u64>,
    },
}

/// What the process sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromService<Rd, Rp, E> {
    Ready(Rd),
    Reply {
        id: u64,
        result: Rp,
    },
    /// Something the process reports on its own.
    Event {
        event: E,
    },
}

/// The message types and failure answers of one kind of service process.
pub trait Protocol: Send + Sync + 'static {
    /// Its name in logs (`codex-broker`).
    const NAME: &'static str;
    /// What it is called in messages to callers (`the broker`).
    const WHAT: &'static str;
    type Init: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    /// Sent once the process serves (a struct: it is flattened into the
    /// `ready` message).
    type Ready: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    type Request: Serialize + DeserializeOwned + Debug + Send + 'static;
    /// The answer to a request (usually a `Result`).
    type Reply: Serialize + DeserializeOwned + Debug + Send + 'static;
    type Event: Serialize + DeserializeOwned + Debug + Send + 'static;

    /// The answer when the process cannot take or finish the request.
    fn unavailable(reason: String) -> Self::Reply;
    /// The answer when it did not answer within `deadline`.
    fn timed_out(deadline: Duration) -> Self::Reply;
    /// Logs a process that became ready.
    fn on_ready(pid: u32, ready: &Self::Ready) {
        tracing::info!("{} ready (pid {pid}): {ready:?}", Self::NAME);
    }
}

/// Where a supervised process stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ServiceState {
    /// Started on first use, not used yet.
    NotStarted,
    Starting,
    Running,
    /// Died; waiting out the backoff.
    Restarting,
    Stopped,
}

type ToP<P> = ToService<<P as Protocol>::Init, <P as Protocol>::Request>;
type FromP<P> = FromService<<P as Protocol>::Ready, <P as Protocol>::Reply, <P as Protocol>::Event>;
type Pending<P> = Mutex<HashMap<u64, oneshot::Sender<<P as Protocol>::Reply>>>;
/// Receives what the process reports on its own.
pub type EventSink<E> = Box<dyn Fn(E) + Send + Sync>;

struct Inner<P: Protocol> {
    launcher: Launcher,
    spec: LaunchSpec,
    init: P::Init,
    starting_wait: Duration,
    link: Mutex<Option<mpsc::Sender<ToP<P>>>>,
    ready: Notify,
    ready_info: Mutex<Option<P::Ready>>,
    pending: Pending<P>,
    next: AtomicU64,
    pid: AtomicU32,
    restarts: AtomicU64,
    state: Mutex<ServiceState>,
    started: AtomicBool,
    stop: CancellationToken,
    events: EventSink<P::Event>,
}

/// A supervised service process.
pub struct Supervisor<P: Protocol> {
    inner: Arc<Inner<P>>,
}

impl<P: Protocol> Clone for Supervisor<P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<P: Protocol> Supervisor<P> {
    /// A supervisor that starts the process on [`Self::start`] or on the
    /// first call. A caller finding the process (re)starting waits at most
    /// `starting_wait` (and never past its deadline).
    pub fn new(
        launcher: Launcher,
        spec: LaunchSpec,
        init: P::Init,
        starting_wait: Duration,
        events: EventSink<P::Event>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                launcher,
                spec,
                init,
                starting_wait,
                link: Mutex::new(None),
                ready: Notify::new(),
                ready_info: Mutex::new(None),
                pending: Mutex::new(HashMap::new()),
                next: AtomicU64::new(1),
                pid: AtomicU32::new(0),
                restarts: AtomicU64::new(0),
                state: Mutex::new(ServiceState::NotStarted),
                started: AtomicBool::new(false),
                stop: CancellationToken::new(),
                events,
            }),
        }
    }

    /// Starts the process and its supervisor task (once; later calls do
    /// nothing). Needs a tokio runtime.
    pub fn start(&self) {
        if self.inner.stop.is_cancelled() || self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        set_state(&self.inner, ServiceState::Starting);
        tokio::spawn(supervise(self.inner.clone()));
    }

    /// The process's pid (0 while it is down).
    pub fn pid(&self) -> u32 {
        self.inner.pid.load(Ordering::Relaxed)
    }

    /// How many times it was restarted.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> ServiceState {
        self.inner
            .state
            .lock()
            .map(|s| *s)
            .unwrap_or(ServiceState::Stopped)
    }

    /// What the running process said when it became ready.
    pub fn ready_info(&self) -> Option<P::Ready> {
        self.inner.ready_info.lock().ok()?.clone()
    }

    /// Stops supervising and kills the process.
    pub fn stop(&self) {
        self.inner.stop.cancel();
        set_state(&self.inner, ServiceState::Stopped);
        let pid = self.pid();
        if pid > 0 {
            kill_group(pid);
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<ToP<P>>> {
        self.inner.link.lock().ok()?.clone()
    }

    /// Asks the process; [`Protocol::unavailable`] at once if it is down
    /// (after a bounded wait for one starting), busy or dies before
    /// answering, [`Protocol::timed_out`] after `deadline`.
    pub async fn call(&self, request: P::Request, deadline: Duration) -> P::Reply {
        let start = Instant::now();
        if self.inner.stop.is_cancelled() {
            return P::unavailable(format!("{} is stopped", P::WHAT));
        }
        self.start();
        let tx = match self.sender() {
            Some(tx) => tx,
            None => {
                let notified = self.inner.ready.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let tx = match self.sender() {
                    Some(tx) => Some(tx),
                    None => {
                        let wait = self.inner.starting_wait.min(deadline);
                        let _ = tokio::time::timeout(wait, notified).await;
                        self.sender()
                    }
                };
                match tx {
                    Some(tx) => tx,
                    None => return P::unavailable(format!("{} is starting; try again", P::WHAT)),
                }
            }
        };
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        if let Ok(mut p) = self.inner.pending.lock() {
            p.insert(id, reply_tx);
        }
        let forget = || {
            if let Ok(mut p) = self.inner.pending.lock() {
                p.remove(&id);
            }
        };
        let deadline_ms = Some(deadline.saturating_sub(start.elapsed()).as_millis() as u64);
        let sent = tx.try_send(ToService::Request {
            id,
            request,
            deadline_ms,
        });
        if sent.is_err() {
            forget();
            return P::unavailable(format!("{} is busy or gone", P::WHAT));
        }
        let left = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, reply_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => P::unavailable(exited(P::WHAT)),
            Err(_) => {
                forget();
                P::timed_out(deadline)
            }
        }
    }
}

fn exited(name: &str) -> String {
    format!("{name} exited before answering; it is being restarted")
}

fn set_state<P: Protocol>(inner: &Inner<P>, state: ServiceState) {
    if let Ok(mut s) = inner.state.lock() {
        if *s != ServiceState::Stopped {
            *s = state;
        }
    }
}

fn fail_pending<P: Protocol>(inner: &Inner<P>) {
    let drained: Vec<_> = inner
        .pending
        .lock()
        .map(|mut p| p.drain().collect())
        .unwrap_or_default();
    for (_, tx) in drained {
        let _ = tx.send(P::unavailable(exited(P::WHAT)));
    }
}

async fn supervise<P: Protocol>(inner: Arc<Inner<P>>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if inner.stop.is_cancelled() {
            return;
        }
        let started = Instant::now();
        if let Err(e) = run_once(&inner).await {
            tracing::warn!("{}: {e}", P::NAME);
        }
        if let Ok(mut l) = inner.link.lock() {
            *l = None;
        }
        if let Ok(mut r) = inner.ready_info.lock() {
            *r = None;
        }
        inner.pid.store(0, Ordering::Relaxed);
        fail_pending(&inner);
        if inner.stop.is_cancelled() {
            return;
        }
        set_state(&inner, ServiceState::Restarting);
        if started.elapsed() > HEALTHY_AFTER {
            backoff = BACKOFF_MIN;
        }
        tracing::warn!(
            "{} exited; restarting in {} ms",
            P::NAME,
            backoff.as_millis()
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = inner.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        inner.restarts.fetch_add(1, Ordering::Relaxed);
        set_state(&inner, ServiceState::Starting);
    }
}

/// One life of the process: launch, init, serve replies until EOF.
async fn run_once<P: Protocol>(inner: &Arc<Inner<P>>) -> Result<(), String> {
    let launched = inner
        .launcher
        .launch(inner.spec.clone())
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    let pid = launched.pid;
    let mut child = launched.child;
    let (read_half, write_half) = launched.link.into_split();
    let (to_tx, to_rx) = mpsc::channel::<ToP<P>>(QUEUE);
    tokio::spawn(write_frames(write_half, to_rx));
    let (from_tx, mut from_rx) = mpsc::channel::<FromP<P>>(QUEUE);
    tokio::spawn(pump_frames(read_half, from_tx, P::NAME));
    let _ = to_tx.send(ToService::Init(inner.init.clone())).await;
    let ready = tokio::select! {
        r = tokio::time::timeout(READY_DEADLINE, from_rx.recv()) => r,
        _ = inner.stop.cancelled() => Ok(None),
    };
    let result = match ready {
        Ok(Some(FromService::Ready(info))) => {
            P::on_ready(pid, &info);
            inner.pid.store(pid, Ordering::Relaxed);
            if let Ok(mut r) = inner.ready_info.lock() {
                *r = Some(info);
            }
            if let Ok(mut l) = inner.link.lock() {
                *l = Some(to_tx);
            }
            set_state(inner, ServiceState::Running);
            inner.ready.notify_waiters();
            while let Some(msg) = tokio::select! {
                m = from_rx.recv() => m,
                _ = inner.stop.cancelled() => None,
            } {
                match msg {
                    FromService::Reply { id, result } => {
                        let waiter = inner.pending.lock().ok().and_then(|mut p| p.remove(&id));
                        if let Some(w) = waiter {
                            let _ = w.send(result);
                        }
                    }
                    FromService::Event { event } => (inner.events)(event),
                    FromService::Ready(_) => {}
                }
            }
            Ok(())
        }
        Ok(_) => Err("exited before it was ready".to_string()),
        Err(_) => Err(format!("not ready within {}s", READY_DEADLINE.as_secs())),
    };
    kill_group(pid);
    let _ = child.wait().await;
    codex_core::process::unregister_child(pid);
    result
}
