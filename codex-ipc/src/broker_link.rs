//! The supervisor's side of the `codex-broker` process (a
//! [`crate::supervised::Supervisor`]): launched through the one launcher,
//! restarted with backoff when it dies, and a request API that never hangs:
//! while the broker is down (or restarting mid-refresh) callers get
//! [`AuthError::Unavailable`] at once and may retry.

use std::path::PathBuf;
use std::time::Duration;

use codex_core::auth::broker::BrokerEvent;
use codex_core::auth::{AuthError, BrokerRequest, BrokerResponse, CredentialsStoreMode};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::launcher::{LaunchSpec, Launcher};
use crate::supervised::{FromService, Protocol, Supervisor, ToService};

/// How long a caller waits for a broker that is (re)starting.
const STARTING_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerInit {
    pub codex_home: PathBuf,
    pub store: CredentialsStoreMode,
}

/// The broker's `ready` message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerReady {
    pub store: String,
    pub note: Option<String>,
}

pub type ToBroker = ToService<BrokerInit, BrokerRequest>;
pub type FromBroker = FromService<BrokerReady, Result<BrokerResponse, AuthError>, BrokerEvent>;

/// The broker's messages.
pub struct BrokerProtocol;

impl Protocol for BrokerProtocol {
    const NAME: &'static str = "codex-broker";
    const WHAT: &'static str = "the broker";
    type Init = BrokerInit;
    type Ready = BrokerReady;
    type Request = BrokerRequest;
    type Reply = Result<BrokerResponse, AuthError>;
    type Event = BrokerEvent;

    fn unavailable(reason: String) -> Self::Reply {
        Err(AuthError::Unavailable(reason))
    }

    fn timed_out(deadline: Duration) -> Self::Reply {
        Err(AuthError::Unavailable(format!(
            "the broker did not answer within {}s",
            deadline.as_secs()
        )))
    }

    fn on_ready(pid: u32, ready: &BrokerReady) {
        if let Some(n) = &ready.note {
            tracing::warn!("codex-broker: {n}");
        }
        tracing::info!(
            "codex-broker ready (pid {pid}, credentials in {})",
            ready.store
        );
    }
}

/// A supervised `codex-broker`.
#[derive(Clone)]
pub struct BrokerClient {
    inner: Supervisor<BrokerProtocol>,
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
        let inner = Supervisor::new(
            launcher,
            spec,
            init,
            STARTING_WAIT,
            Box::new(move |e| {
                let _ = events.try_send(e);
            }),
        );
        inner.start();
        Self { inner }
    }

    /// The broker's pid (0 while it is down).
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// How many times it was restarted.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts()
    }

    /// Stops supervising and kills the broker.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Asks the broker; an error at once if it is down, or if it dies
    /// before answering, or after `deadline`.
    pub async fn call(
        &self,
        request: BrokerRequest,
        deadline: Duration,
    ) -> Result<BrokerResponse, AuthError> {
        self.inner.call(request, deadline).await
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
            deadline_ms: None,
        };
        let back: ToBroker = serde_json::from_slice(&crate::link::encode(&req).unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{req:?}"));
    }
}
