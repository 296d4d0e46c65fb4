//! The model client: one streamed sampling request per call, as a tower
//! [`Service`].
//!
//! Layer order (outermost first), built by [`model_service`]:
//!
//! 1. [`retry::RequestRetryLayer`]: re-sends the HTTP request on 5xx and
//!    connect errors with exponential backoff (honouring `retry-after`), up to
//!    `request_max_retries`. Only the request is retried here; a stream that
//!    breaks mid-way is retried by the turn loop, which owns the history.
//! 2. [`idle::IdleTimeoutLayer`]: turns a stream that goes quiet for
//!    `stream_idle_timeout_ms` into [`ModelError::IdleTimeout`].
//! 3. [`HttpModelClient`]: speaks the Responses API or Chat Completions over
//!    SSE, per the provider's `wire_api`.

mod chat;
mod error;
pub mod idle;
pub mod local;
mod responses;
pub mod retry;
pub mod sse;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::mpsc;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder};

pub use error::{parse_retry_after, parse_try_again_in, ModelError};

use crate::config::{ModelProviderInfo, ReasoningEffort, ReasoningSummary, Verbosity, WireApi};
use crate::protocol::{ResponseItem, TokenUsage};

/// Capacity of the channel between the HTTP reader and the consumer: bounded,
/// so a slow consumer slows the socket instead of growing memory.
const EVENT_CHANNEL_CAPACITY: usize = 256;
/// Deadline for TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One sampling request.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub model: String,
    /// The full input, base instructions first (as a developer message).
    pub input: Vec<ResponseItem>,
    /// Base instructions, for wire APIs that take them separately (chat).
    pub instructions: String,
    /// Tool definitions in Responses API shape.
    pub tools: Vec<Value>,
    pub reasoning: Option<ReasoningParams>,
    pub verbosity: Option<Verbosity>,
    /// JSON Schema the final answer must follow.
    pub output_schema: Option<Value>,
    pub thread_id: String,
    pub turn_id: String,
}

#[derive(Debug, Clone, Copy)]
pub struct ReasoningParams {
    pub effort: Option<ReasoningEffort>,
    pub summary: ReasoningSummary,
}

/// What a model stream yields.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    Created {
        response_id: String,
    },
    OutputItemAdded(ResponseItem),
    OutputItemDone(ResponseItem),
    OutputTextDelta {
        item_id: Option<String>,
        delta: String,
    },
    ReasoningSummaryDelta {
        item_id: Option<String>,
        delta: String,
    },
    ReasoningContentDelta {
        item_id: Option<String>,
        delta: String,
    },
    Completed {
        response_id: String,
        usage: Option<TokenUsage>,
    },
}

/// A stream of model events; ends after `Completed` or an error.
pub struct ModelStream {
    inner: Pin<Box<dyn Stream<Item = Result<ModelEvent, ModelError>> + Send>>,
}

impl ModelStream {
    pub fn new(inner: impl Stream<Item = Result<ModelEvent, ModelError>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }

    /// A bounded channel whose receiving end is the stream.
    pub fn channel() -> (mpsc::Sender<Result<ModelEvent, ModelError>>, ModelStream) {
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        (tx, ModelStream::new(ReceiverStream(rx)))
    }

    /// A stream that yields the given events, for tests and replays.
    pub fn from_events(events: Vec<Result<ModelEvent, ModelError>>) -> ModelStream {
        ModelStream::new(futures_util::stream::iter(events))
    }
}

impl Stream for ModelStream {
    type Item = Result<ModelEvent, ModelError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for ModelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelStream")
    }
}

struct ReceiverStream<T>(mpsc::Receiver<T>);

impl<T> Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// The composed model service the turn loop calls.
pub type ModelService = BoxCloneService<ModelRequest, ModelStream, ModelError>;

/// Credentials for a provider.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    Bearer(String),
    /// ChatGPT sign-in: tokens from the broker, refreshed on 401.
    Managed(crate::auth::SharedTokenSource),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("Credentials::None"),
            Credentials::Bearer(_) => f.write_str("Credentials::Bearer(<redacted>)"),
            Credentials::Managed(_) => f.write_str("Credentials::Managed"),
        }
    }
}

/// Identity headers sent with every request.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// `originator` header (`codex_exec`, `codex_sdk_ts`, an app-server client name).
    pub originator: String,
    pub user_agent: String,
}

impl ClientIdentity {
    pub fn new(originator: impl Into<String>) -> Self {
        let originator = originator.into();
        let user_agent = format!(
            "{originator}/{} ({}; {})",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        Self {
            originator,
            user_agent,
        }
    }
}

/// The HTTP leaf service.
#[derive(Clone)]
pub struct HttpModelClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    /// Built on first use: loading TLS roots costs milliseconds and memory
    /// that a thread which never calls the model should not pay.
    http: std::sync::OnceLock<Result<reqwest::Client, String>>,
    provider: ModelProviderInfo,
    credentials: Credentials,
    identity: ClientIdentity,
}

impl HttpModelClient {
    pub fn new(
        provider: ModelProviderInfo,
        credentials: Credentials,
        identity: ClientIdentity,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            inner: Arc::new(ClientInner {
                http: std::sync::OnceLock::new(),
                provider,
                credentials,
                identity,
            }),
        })
    }

    async fn send(inner: Arc<ClientInner>, req: ModelRequest) -> Result<ModelStream, ModelError> {
        let Credentials::Managed(source) = &inner.credentials else {
            return Self::send_with(&inner, &req, None).await;
        };
        let token = source.token().await.map_err(ModelError::Auth)?;
        match Self::send_with(&inner, &req, Some(&token)).await {
            // Refused: one refresh (shared with everyone who saw the same
            // token), then one retry.
            Err(ModelError::Http { status: 401, .. }) => {
                let fresh = source
                    .refresh(token.access_token.clone())
                    .await
                    .map_err(ModelError::Auth)?;
                Self::send_with(&inner, &req, Some(&fresh)).await
            }
            other => other,
        }
    }

    async fn send_with(
        inner: &ClientInner,
        req: &ModelRequest,
        token: Option<&crate::auth::AuthToken>,
    ) -> Result<ModelStream, ModelError> {
        let provider = &inner.provider;
        let url = provider.endpoint_url();
        let body = match provider.wire_api {
            WireApi::Responses => responses::build_body(req)?,
            WireApi::Chat => chat::build_body(req)?,
        };
        let http = inner
            .http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|message| ModelError::Transport {
                url: url.clone(),
                message: message.clone(),
            })?;
        let mut builder = http
            .post(&url)
            .header(http::header::ACCEPT, "text/event-stream")
            .header(http::header::USER_AGENT, &inner.identity.user_agent)
            .header("originator", &inner.identity.originator)
            .header("x-client-request-id", &req.thread_id)
            .header("session_id", &req.thread_id)
            .json(&body);
        if let Credentials::Bearer(token) = &inner.credentials {
            builder = builder.bearer_auth(token);
        }
        if let Some(t) = token {
            builder = builder.bearer_auth(&t.access_token);
            if let Some(account) = &t.account_id {
                builder = builder.header("chatgpt-account-id", account);
            }
        }
        for (k, v) in provider.http_headers.iter().flatten() {
            builder = builder.header(k, v);
        }
        for (header, var) in provider.env_http_headers.iter().flatten() {
            if let Ok(v) = std::env::var(var) {
                if !v.trim().is_empty() {
                    builder = builder.header(header, v);
                }
            }
        }
        let resp = tokio::time::timeout(provider.stream_idle_timeout(), builder.send())
            .await
            .map_err(|_| ModelError::Transport {
                url: url.clone(),
                message: format!(
                    "no response headers within {}s",
                    provider.stream_idle_timeout().as_secs_f64()
                ),
            })?
            .map_err(|e| ModelError::Transport {
                url: url.clone(),
                message: describe_transport(&e),
            })?;
        let status = resp.status();
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            // Bounded read of the error body.
            let body = tokio::time::timeout(Duration::from_secs(10), resp.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let body: String = body.chars().take(4096).collect();
            return Err(classify_http_error(status.as_u16(), body, retry_after));
        }
        let (tx, stream) = ModelStream::channel();
        let wire = provider.wire_api;
        tokio::spawn(async move {
            match wire {
                WireApi::Responses => sse::drive(resp, tx, responses::ResponsesHandler).await,
                WireApi::Chat => sse::drive(resp, tx, chat::ChatHandler::default()).await,
            }
        });
        Ok(stream)
    }
}

fn classify_http_error(status: u16, body: String, retry_after: Option<Duration>) -> ModelError {
    let code = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
        let e = v.get("error")?;
        e.get("code")
            .and_then(Value::as_str)
            .or_else(|| e.get("type").and_then(Value::as_str))
            .map(str::to_string)
    });
    match code.as_deref() {
        Some("context_length_exceeded") => ModelError::ContextWindowExceeded,
        Some("insufficient_quota") => ModelError::QuotaExceeded,
        _ => ModelError::Http {
            status,
            body,
            retry_after,
        },
    }
}

/// A short description of a transport failure: its kind and root cause
/// ("connection failed: Connection refused (os error 111)").
fn describe_transport(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    let cause = cause.strip_prefix("tcp connect error: ").unwrap_or(&cause);
    if e.is_connect() {
        format!("connection failed: {cause}")
    } else if e.is_timeout() {
        format!("timed out: {cause}")
    } else {
        cause.to_string()
    }
}

impl Service<ModelRequest> for HttpModelClient {
    type Response = ModelStream;
    type Error = ModelError;
    type Future = BoxFuture<'static, Result<ModelStream, ModelError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ModelError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ModelRequest) -> Self::Future {
        Box::pin(Self::send(self.inner.clone(), req))
    }
}

/// Builds the layered model service for a provider.
pub fn model_service(
    provider: &ModelProviderInfo,
    credentials: Credentials,
    identity: ClientIdentity,
) -> Result<ModelService, ModelError> {
    let leaf = HttpModelClient::new(provider.clone(), credentials, identity)?;
    let svc = ServiceBuilder::new()
        .layer(retry::RequestRetryLayer::new(
            provider.request_max_retries() as u32,
        ))
        .layer(idle::IdleTimeoutLayer::new(provider.stream_idle_timeout()))
        .service(leaf);
    Ok(BoxCloneService::new(svc))
}

/// The layered service of the embedded `local` provider (no request
/// retries: nothing goes over a network).
pub fn local_model_service(
    model_path: &std::path::Path,
    provider: &ModelProviderInfo,
) -> Result<ModelService, ModelError> {
    let leaf = local::LocalModelClient::new(model_path, provider.stream_idle_timeout())?;
    let svc = ServiceBuilder::new()
        .layer(idle::IdleTimeoutLayer::new(provider.stream_idle_timeout()))
        .service(leaf);
    Ok(BoxCloneService::new(svc))
}

/// Resolves the credentials a provider needs from the environment and
/// `$CODEX_HOME/auth.json`.
pub fn resolve_credentials(
    provider: &ModelProviderInfo,
    codex_home: &std::path::Path,
    token_source: Option<crate::auth::SharedTokenSource>,
    store_mode: crate::auth::CredentialsStoreMode,
) -> Result<Credentials, ModelError> {
    let from_env = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    if provider.requires_openai_auth {
        if let Some(key) = from_env("CODEX_API_KEY") {
            return Ok(Credentials::Bearer(key));
        }
    }
    if let Some(var) = &provider.env_key {
        if let Some(key) = from_env(var) {
            return Ok(Credentials::Bearer(key));
        }
    }
    if let Some(token) = &provider.experimental_bearer_token {
        return Ok(Credentials::Bearer(token.clone()));
    }
    if provider.requires_openai_auth {
        let (store, _) = crate::auth::store::open(store_mode, codex_home);
        if let Ok(Some(auth)) = store.load() {
            let chatgpt = auth.tokens.is_some() && auth.auth_mode.as_deref() != Some("apikey");
            if chatgpt {
                let source = token_source.unwrap_or_else(|| {
                    std::sync::Arc::new(crate::auth::LocalBroker::with_store(
                        codex_home.to_path_buf(),
                        store,
                        crate::auth::refresh::AuthEndpoints::from_env(),
                    ))
                });
                return Ok(Credentials::Managed(source));
            }
            if let Some(key) = auth.openai_api_key.filter(|k| !k.is_empty()) {
                return Ok(Credentials::Bearer(key));
            }
        }
        if let Some(source) = token_source {
            return Ok(Credentials::Managed(source));
        }
    }
    match &provider.env_key {
        Some(var) if !provider.is_local() => Err(ModelError::MissingApiKey {
            var: var.clone(),
            instructions: provider.env_key_instructions.clone(),
        }),
        _ => Ok(Credentials::None),
    }
}
