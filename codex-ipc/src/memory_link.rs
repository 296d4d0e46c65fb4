//! The supervisor's side of the `codex-memory` process (a
//! [`crate::supervised::Supervisor`]): one per daemon, launched through the
//! one launcher, restarted with backoff, and a client that implements the
//! memory service's requests with a deadline on every call. A process that
//! is down, starting, stopped or slow costs a caller at most its deadline
//! (a turn's recall: 50 ms by default), never more.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_core::memory::{MemoryRequest, MemoryResponse, MemoryServiceError, MemoryStatus};
use serde::{Deserialize, Serialize};

use crate::launcher::{LaunchSpec, Launcher};
use crate::supervised::{FromService, Protocol, ServiceState, Supervisor, ToService};

/// How long a caller with a longer deadline waits for a process that is
/// (re)starting.
const STARTING_WAIT: Duration = Duration::from_secs(5);
/// Deadline of a call through the [`tower::Service`] face.
pub const SERVICE_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryInit {
    pub codex_home: PathBuf,
    /// `[memories] embedding_model`, for the local lane (named in a
    /// warning while this build has none).
    #[serde(default)]
    pub embedding_model: Option<PathBuf>,
    /// `[memories] extract_model` when it names a GGUF (resolved against
    /// `$CODEX_HOME`): phase-1 extraction on the local lane.
    #[serde(default)]
    pub extract_model: Option<PathBuf>,
    /// `[context_shaping] model`: the local model that condenses oversized
    /// tool output. The same file as `extract_model` is one instance.
    #[serde(default)]
    pub shape_model: Option<PathBuf>,
    /// `[memories] score_model` (a GGUF, resolved against `$CODEX_HOME`):
    /// the background scorer's model. The same file as another purpose's
    /// is one instance.
    #[serde(default)]
    pub score_model: Option<PathBuf>,
}

/// The `ready` message: the index as it opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryReady {
    pub status: MemoryStatus,
}

/// What `codex-memory` reports on its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemoryEvent {
    /// The index changed (count, warnings).
    Status { status: MemoryStatus },
}

pub type ToMemory = ToService<MemoryInit, MemoryRequest>;
pub type FromMemory =
    FromService<MemoryReady, Result<MemoryResponse, MemoryServiceError>, MemoryEvent>;

pub struct MemoryProtocol;

impl Protocol for MemoryProtocol {
    const NAME: &'static str = "codex-memory";
    const WHAT: &'static str = "codex-memory";
    type Init = MemoryInit;
    type Ready = MemoryReady;
    type Request = MemoryRequest;
    type Reply = Result<MemoryResponse, MemoryServiceError>;
    type Event = MemoryEvent;

    fn unavailable(reason: String) -> Self::Reply {
        Err(MemoryServiceError::Unavailable(reason))
    }

    fn timed_out(deadline: Duration) -> Self::Reply {
        Err(MemoryServiceError::Timeout(deadline.as_millis() as u64))
    }

    fn on_ready(pid: u32, ready: &MemoryReady) {
        for w in &ready.status.warnings {
            tracing::warn!("codex-memory: {w}");
        }
        tracing::info!(
            "codex-memory ready (pid {pid}, {} memories in {})",
            ready.status.count,
            ready.status.db_path.display()
        );
    }
}

/// A supervised `codex-memory` and the last status it reported.
#[derive(Clone)]
pub struct MemoryClient {
    inner: Supervisor<MemoryProtocol>,
    last_status: Arc<Mutex<Option<MemoryStatus>>>,
}

impl MemoryClient {
    /// A client whose process starts on [`Self::start`] or the first call.
    pub fn new(launcher: Launcher, spec: LaunchSpec, init: MemoryInit) -> Self {
        let last_status: Arc<Mutex<Option<MemoryStatus>>> = Arc::default();
        let sink = last_status.clone();
        let inner = Supervisor::new(
            launcher,
            spec,
            init,
            STARTING_WAIT,
            Box::new(move |MemoryEvent::Status { status }| {
                if let Ok(mut s) = sink.lock() {
                    *s = Some(status);
                }
            }),
        );
        Self { inner, last_status }
    }

    pub fn start(&self) {
        self.inner.start();
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    pub fn restarts(&self) -> u64 {
        self.inner.restarts()
    }

    pub fn state(&self) -> ServiceState {
        self.inner.state()
    }

    /// The newest status the process reported (on ready, after changes).
    pub fn last_status(&self) -> Option<MemoryStatus> {
        let reported = self.last_status.lock().ok().and_then(|s| s.clone());
        reported.or_else(|| self.inner.ready_info().map(|r| r.status))
    }

    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Asks codex-memory, waiting at most `deadline` in all.
    pub async fn call(
        &self,
        request: MemoryRequest,
        deadline: Duration,
    ) -> Result<MemoryResponse, MemoryServiceError> {
        self.inner.call(request, deadline).await
    }
}

impl tower::Service<MemoryRequest> for MemoryClient {
    type Response = MemoryResponse;
    type Error = MemoryServiceError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<MemoryResponse, MemoryServiceError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), MemoryServiceError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: MemoryRequest) -> Self::Future {
        let me = self.clone();
        Box::pin(async move { me.call(request, SERVICE_DEADLINE).await })
    }
}

/// The JSON-RPC error for a failed memory request: `-32001` when shed.
pub fn rpc_error(error: MemoryServiceError) -> crate::jsonrpc::RpcError {
    match error {
        MemoryServiceError::Overloaded => crate::jsonrpc::RpcError::overloaded(),
        e => crate::jsonrpc::RpcError::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let to = ToMemory::Request {
            id: 3,
            request: MemoryRequest::Recall {
                query: "q".into(),
                limit: 2,
            },
            deadline_ms: Some(50),
        };
        let line = crate::link::encode(&to).unwrap();
        let back: ToMemory = serde_json::from_slice(&line).unwrap();
        assert_eq!(format!("{back:?}"), format!("{to:?}"));
        let from: Vec<FromMemory> = vec![
            FromService::Ready(MemoryReady {
                status: MemoryStatus::default(),
            }),
            FromService::Reply {
                id: 1,
                result: Err(MemoryServiceError::Timeout(50)),
            },
            FromService::Reply {
                id: 2,
                result: Ok(MemoryResponse::Forgot { found: true }),
            },
            FromService::Event {
                event: MemoryEvent::Status {
                    status: MemoryStatus::default(),
                },
            },
        ];
        for m in from {
            let line = crate::link::encode(&m).unwrap();
            let back: FromMemory = serde_json::from_slice(&line).unwrap();
            assert_eq!(format!("{back:?}"), format!("{m:?}"));
        }
    }
}
