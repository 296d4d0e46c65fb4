//! The supervisor's side of the `codex-broker` process: launched through the
//! one launcher, restarted with backoff when it dies, and a request API that
//! never hangs: while the broker is down (or restarting mid-refresh) callers
//! get [`AuthError::Unavailable`] at once and may retry.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_core::auth::broker::BrokerEvent;
use codex_core::auth::{AuthError, BrokerRequest, BrokerResponse, CredentialsStoreMode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::launcher::{kill_group, LaunchSpec, Launcher};
use crate::link::{pump_frames, write_frames};

/// How long a started broker may take to be ready.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Backoff between restarts: from the first to the last value, doubling.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A broker that lived this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How long a caller waits for a broker that is (re)starting.
const STARTING_WAIT: Duration = Duration::from_secs(2);
/// Bound of the queue to the broker.
const QUEUE: usize = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerInit {
    pub codex_home: PathBuf,
    pub store: CredentialsStoreMode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToBroker {
    Init(BrokerInit),
    Request { id: u64, request: BrokerRequest },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromBroker {
    Ready {
        store: String,
        note: Option<String>,
    },
    Reply {
        id: u64,
        result: Result<BrokerResponse, AuthError>,
    },
    /// Something the broker reports on its own (a sign-in finished, ...).
    Event {
        event: BrokerEvent,
    },
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<BrokerResponse, AuthError>>>>;

struct Inner {
    launcher: Launcher,
    spec: LaunchSpec,
    init: BrokerInit,
    link: Mutex<Option<mpsc::Sender<ToBroker>>>,
    ready: Notify,
    pending: Pending,
    next: AtomicU64,
    pid: AtomicU32,
    restarts: AtomicU64,
    stop: CancellationToken,
    events: mpsc::Sender<BrokerEvent>,
}

/// A supervised `codex-broker`.
#[derive(Clone)]
pub struct BrokerClient {
    inner: Arc<Inner>,
}

impl BrokerClient {
    /// Starts the broker and its supervisor task; what the broker reports
    /// on its own goes to `events`.
    pub fn start(
        launcher: Launcher,
        spec: LaunchSpec,
        init: BrokerInit,
        events: mpsc::Sender<BrokerEvent>,
    ) -> Self {
        let inner = Arc::new(Inner {
            launcher,
            spec,
            init,
            link: Mutex::new(None),
            ready: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            pid: AtomicU32::new(0),
            restarts: AtomicU64::new(0),
            stop: CancellationToken::new(),
            events,
        });
        tokio::spawn(supervise(inner.clone()));
        Self { inner }
    }

    /// The broker's pid (0 while it is down).
    pub fn pid(&self) -> u32 {
        self.inner.pid.load(Ordering::Relaxed)
    }

    /// How many times it was restarted.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    /// Stops supervising and kills the broker.
    pub fn stop(&self) {
        self.inner.stop.cancel();
        let pid = self.pid();
        if pid > 0 {
            kill_group(pid);
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<ToBroker>> {
        self.inner.link.lock().ok()?.clone()
    }

    /// Asks the broker; an error at once if it is down, or if it dies
    /// before answering, or after `deadline`.
    pub async fn call(
        &self,
        request: BrokerRequest,
        deadline: Duration,
    ) -> Result<BrokerResponse, AuthError> {
        let tx = match self.sender() {
            Some(tx) => tx,
            None => {
                let _ = tokio::time::timeout(STARTING_WAIT, self.inner.ready.notified()).await;
                self.sender().ok_or_else(|| {
                    AuthError::Unavailable("the broker is starting; try again".into())
                })?
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
        if tx.try_send(ToBroker::Request { id, request }).is_err() {
            forget();
            return Err(AuthError::Unavailable("the broker is busy or gone".into()));
        }
        match tokio::time::timeout(deadline, reply_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AuthError::Unavailable(
                "the broker exited before answering; it is being restarted".into(),
            )),
            Err(_) => {
                forget();
                Err(AuthError::Unavailable(format!(
                    "the broker did not answer within {}s",
                    deadline.as_secs()
                )))
            }
        }
    }
}

/// How long a request through the [`tower::Service`] face of
/// [`BrokerClient`] waits for its answer.
pub const SERVICE_DEADLINE: Duration = Duration::from_secs(30);

/// The broker in its own process, as the same service as the in-process
/// one ([`codex_core::auth::broker::BrokerService`]): each call is
/// [`BrokerClient::call`] with [`SERVICE_DEADLINE`].
impl tower::Service<BrokerRequest> for BrokerClient {
    type Response = BrokerResponse;
    type Error = AuthError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<BrokerResponse, AuthError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), AuthError>> {
        // Never waits: a broker that is down, busy or overloaded answers the
        // call at once.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: BrokerRequest) -> Self::Future {
        let me = self.clone();
        Box::pin(async move { me.call(request, SERVICE_DEADLINE).await })
    }
}

/// The JSON-RPC error for a failed broker request: `-32001` when the broker
/// shed it ([`AuthError::Overloaded`]), otherwise an internal error with
/// `context` (if any) and the reason.
pub fn rpc_error(error: AuthError, context: Option<&str>) -> crate::jsonrpc::RpcError {
    match (error, context) {
        (AuthError::Overloaded, _) => crate::jsonrpc::RpcError::overloaded(),
        (e, Some(c)) => crate::jsonrpc::RpcError::internal(format!("{c}: {e}")),
        (e, None) => crate::jsonrpc::RpcError::internal(e.to_string()),
    }
}

fn fail_pending(inner: &Inner) {
    let drained: Vec<_> = inner
        .pending
        .lock()
        .map(|mut p| p.drain().collect())
        .unwrap_or_default();
    for (_, tx) in drained {
        let _ = tx.send(Err(AuthError::Unavailable(
            "the broker exited before answering; it is being restarted".into(),
        )));
    }
}

async fn supervise(inner: Arc<Inner>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if inner.stop.is_cancelled() {
            return;
        }
        let started = Instant::now();
        match run_once(&inner).await {
            Ok(()) => {}
            Err(e) => tracing::warn!("codex-broker: {e}"),
        }
        if let Ok(mut l) = inner.link.lock() {
            *l = None;
        }
        inner.pid.store(0, Ordering::Relaxed);
        fail_pending(&inner);
        if inner.stop.is_cancelled() {
            return;
        }
        if started.elapsed() > HEALTHY_AFTER {
            backoff = BACKOFF_MIN;
        }
        tracing::warn!(
            "codex-broker exited; restarting in {} ms",
            backoff.as_millis()
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = inner.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        inner.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

/// One life of the broker: launch, init, serve replies until EOF.
async fn run_once(inner: &Arc<Inner>) -> Result<(), String> {
    let launched = inner
        .launcher
        .launch(inner.spec.clone())
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    let pid = launched.pid;
    let mut child = launched.child;
    let (read_half, write_half) = launched.link.into_split();
    let (to_tx, to_rx) = mpsc::channel::<ToBroker>(QUEUE);
    tokio::spawn(write_frames(write_half, to_rx));
    let (from_tx, mut from_rx) = mpsc::channel::<FromBroker>(QUEUE);
    tokio::spawn(pump_frames(read_half, from_tx, "codex-broker"));
    let _ = to_tx.send(ToBroker::Init(inner.init.clone())).await;
    let ready = tokio::time::timeout(READY_DEADLINE, from_rx.recv()).await;
    let result = match ready {
        Ok(Some(FromBroker::Ready { store, note })) => {
            if let Some(n) = note {
                tracing::warn!("codex-broker: {n}");
            }
            tracing::info!("codex-broker ready (pid {pid}, credentials in {store})");
            inner.pid.store(pid, Ordering::Relaxed);
            if let Ok(mut l) = inner.link.lock() {
                *l = Some(to_tx);
            }
            inner.ready.notify_waiters();
            while let Some(msg) = tokio::select! {
                m = from_rx.recv() => m,
                _ = inner.stop.cancelled() => None,
            } {
                match msg {
                    FromBroker::Reply { id, result } => {
                        let waiter = inner.pending.lock().ok().and_then(|mut p| p.remove(&id));
                        if let Some(w) = waiter {
                            let _ = w.send(result);
                        }
                    }
                    FromBroker::Event { event } => {
                        let _ = inner.events.try_send(event);
                    }
                    FromBroker::Ready { .. } => {}
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

#[cfg(test)]
mod tests {
    #[test]
    fn an_overloaded_broker_is_a_32001() {
        let e = super::rpc_error(AuthError::Overloaded, Some("cannot list the models"));
        assert_eq!(e.code, crate::jsonrpc::SERVER_OVERLOADED);
        let e = super::rpc_error(AuthError::NotSignedIn, Some("account/read"));
        assert_eq!(e.code, crate::jsonrpc::INTERNAL_ERROR);
        assert!(
            e.message.starts_with("account/read: not signed in"),
            "{}",
            e.message
        );
    }

    use super::*;
    use codex_core::auth::broker::{AccountInfo, BrokerEvent};

    /// Every message survives the link encoding (nested tagged enums must
    /// not share a tag field).
    #[test]
    fn messages_round_trip() {
        let msgs = vec![
            FromBroker::Event {
                event: BrokerEvent::LoginCompleted {
                    login_id: "l".into(),
                    success: true,
                    error: None,
                },
            },
            FromBroker::Event {
                event: BrokerEvent::AccountUpdated(AccountInfo::default()),
            },
            FromBroker::Reply {
                id: 1,
                result: Ok(BrokerResponse::Done),
            },
        ];
        for m in msgs {
            let line = crate::link::encode(&m).unwrap();
            let back: FromBroker = serde_json::from_slice(&line).unwrap();
            assert_eq!(format!("{back:?}"), format!("{m:?}"));
        }
        let req = ToBroker::Request {
            id: 2,
            request: BrokerRequest::LoginCancel {
                login_id: "x".into(),
            },
        };
        let back: ToBroker = serde_json::from_slice(&crate::link::encode(&req).unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{req:?}"));
    }
}
