//! A thread (conversation): its config, its model client, its tools, its
//! rollout file, its history, and the turn service that runs its turns.
//!
//! A thread is built from services that can each be replaced or wrapped
//! ([`ThreadBuilder`]): the model service, the tool set, the sandbox, the
//! approval handler and the token source. [`Thread::start`] and
//! [`Thread::resume`] build one from [`ThreadOptions`] with the defaults.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::approval::{ApprovalHandler, DeclineAll};
use crate::client::{
    model_service, resolve_credentials, ClientIdentity, ModelError, ModelRequest, ModelService,
    ModelStream,
};
use crate::config::Config;
use crate::exec::{Sandbox, Unconfined};
use crate::protocol::{Event, ResponseItem};
use crate::rollout::{
    read_rollout, rollout_path, BaseInstructions, LoadedRollout, ReadError, RolloutItem,
    RolloutWriter, SessionMeta,
};
use crate::tools::{
    ToolInvocation, ToolOutput, ToolService, ToolSet, ToolSpec, ToolTimeoutLayer,
    DEFAULT_TOOL_TIMEOUT,
};
use crate::turn::sink::EventSink;
use crate::turn::{
    context, ThreadShared, ThreadState, TurnOutcome, TurnRejected, TurnRequest, TurnService,
    DEFAULT_TURN_QUEUE, MAX_TURN_QUEUE,
};

/// Bound of the event channel between a thread and its front end.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot create session file {path}: {source}")]
    Rollout {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// How a thread is hosted (the plain settings; [`ThreadBuilder`] adds the
/// tool set and the layers).
pub struct ThreadOptions {
    pub identity: ClientIdentity,
    /// `source` recorded in the session file (`exec`, `cli`, `vscode`, ...).
    pub source: String,
    pub sandbox: Arc<dyn Sandbox>,
    pub approvals: Arc<dyn ApprovalHandler>,
    /// Do not write a session file.
    pub ephemeral: bool,
    /// Replaces the HTTP model stack (tests, embedders with their own client).
    pub model_service: Option<ModelService>,
    pub event_capacity: usize,
    /// Id of a new thread (default: a fresh UUIDv7).
    pub thread_id: Option<String>,
    /// How tool commands are grouped (see [`crate::exec::Isolation`]).
    pub command_isolation: crate::exec::Isolation,
    /// Where ChatGPT sign-in tokens come from (the broker); `None`: a
    /// broker in this process, over `$CODEX_HOME/auth.json`.
    pub token_source: Option<crate::auth::SharedTokenSource>,
    /// `historyMode` recorded in the session file (`legacy`, `paginated`).
    pub history_mode: Option<String>,
    /// `threadSource` recorded in the session file.
    pub thread_source: Option<String>,
    /// A new thread's client-defined tools (a resumed thread's come from
    /// its session file).
    pub dynamic_tools: Vec<crate::tools::dynamic::DynamicTool>,
    /// Who answers dynamic tool calls; without it none is offered.
    pub dynamic_client: Option<Arc<dyn crate::tools::dynamic::DynamicToolClient>>,
    /// OAuth tokens of HTTP MCP servers (a worker: the broker, which
    /// refreshes them); default: read from the store.
    pub mcp_tokens: Option<Arc<dyn crate::mcp::oauth::McpTokenSource>>,
    /// Per-turn memory recall (`None`: memories off for this thread).
    pub memory_recall: Option<Arc<dyn crate::memory::MemoryRecall>>,
    /// The local small-model lane (context shaping); `None`: oversized
    /// tool outputs are truncated.
    pub local_generator: Option<Arc<dyn crate::memory::Generator>>,
}

impl ThreadOptions {
    pub fn new(originator: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            identity: ClientIdentity::new(originator),
            source: source.into(),
            sandbox: Arc::new(Unconfined),
            approvals: Arc::new(DeclineAll),
            ephemeral: false,
            model_service: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            thread_id: None,
            command_isolation: crate::exec::Isolation::OwnSession,
            token_source: None,
            history_mode: None,
            thread_source: None,
            dynamic_tools: Vec::new(),
            dynamic_client: None,
            mcp_tokens: None,
            memory_recall: None,
            local_generator: None,
        }
    }
}

type ModelMap = Box<dyn FnOnce(ModelService) -> ModelService + Send>;
type ToolMap = Box<dyn FnOnce(ToolService) -> ToolService + Send>;

/// Builds a [`Thread`] from parts that can each be replaced or wrapped.
///
/// | part | default | replace | wrap |
/// |---|---|---|---|
/// | model service | the HTTP stack of [`crate::client::model_service`] (retry → idle timeout → HTTP) | [`model_service`](Self::model_service) | [`map_model`](Self::map_model), [`model_layer`](Self::model_layer) |
/// | tools | [`ToolSet::builtin`] | [`tools`](Self::tools); add one: [`tool`](Self::tool) | [`map_tools`](Self::map_tools), [`tool_layer`](Self::tool_layer) |
/// | sandbox | [`Unconfined`] | [`sandbox`](Self::sandbox) | — |
/// | approvals | [`DeclineAll`] | [`approvals`](Self::approvals) | — |
/// | token source | a broker in this process over `$CODEX_HOME/auth.json` | [`token_source`](Self::token_source) | — |
///
/// Wrappers apply in the order given, each around the previous result (the
/// last one is outermost). The thread then adds its own layers: around the
/// tools, outermost, a [`ToolTimeoutLayer`] (custom tools only,
/// [`tool_timeout`](Self::tool_timeout)); around turns, the bounded queue of
/// [`TurnService`] ([`turn_queue`](Self::turn_queue)).
///
/// ```no_run
/// use codex_core::config::{Config, LoadOptions};
/// use codex_core::tools::{ToolInvocation, ToolOutput, ToolSpec};
/// use codex_core::{ThreadBuilder, TurnRequest};
/// use serde_json::json;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::load(LoadOptions::default())?;
/// let (thread, _events) = ThreadBuilder::new(config)
///     .tool(
///         ToolSpec::function("lookup_weather", "Current weather.", json!({"type": "object"})),
///         tower::service_fn(|_inv: ToolInvocation| async {
///             Ok::<_, std::convert::Infallible>(ToolOutput::ok("sunny"))
///         }),
///     )
///     .map_model(|inner| tower::ServiceBuilder::new().concurrency_limit(1).service(inner))
///     .ephemeral(true)
///     .start()?;
/// let outcome = thread.run_turn(TurnRequest::text("What is the weather in Paris?")).await?;
/// println!("{:?}", outcome.last_agent_message);
/// # Ok(())
/// # }
/// ```
pub struct ThreadBuilder {
    config: Config,
    opts: ThreadOptions,
    tools: ToolSet,
    model_maps: Vec<ModelMap>,
    tool_maps: Vec<ToolMap>,
    tool_timeout: Duration,
    turn_queue: usize,
}

impl std::fmt::Debug for ThreadBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadBuilder")
            .field("tools", &self.tools)
            .field("model_layers", &self.model_maps.len())
            .field("tool_layers", &self.tool_maps.len())
            .field("tool_timeout", &self.tool_timeout)
            .field("turn_queue", &self.turn_queue)
            .finish_non_exhaustive()
    }
}

impl ThreadBuilder {
    /// A builder with the defaults, for an embedder: originator
    /// `codex_sdk_rs`, session source `unknown`.
    pub fn new(config: Config) -> Self {
        Self::from_options(config, ThreadOptions::new("codex_sdk_rs", "unknown"))
    }

    /// A builder starting from `opts`.
    pub fn from_options(config: Config, opts: ThreadOptions) -> Self {
        Self {
            config,
            opts,
            tools: ToolSet::builtin(),
            model_maps: Vec::new(),
            tool_maps: Vec::new(),
            tool_timeout: DEFAULT_TOOL_TIMEOUT,
            turn_queue: DEFAULT_TURN_QUEUE,
        }
    }

    /// The plain settings, to change several at once.
    pub fn options_mut(&mut self) -> &mut ThreadOptions {
        &mut self.opts
    }

    /// The `originator` header and the user agent of model requests.
    pub fn originator(mut self, originator: impl Into<String>) -> Self {
        self.opts.identity = ClientIdentity::new(originator);
        self
    }

    /// `source` recorded in the session file.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.opts.source = source.into();
        self
    }

    /// Replaces the HTTP model stack: the thread calls `service` for every
    /// sampling request (the turn loop still retries broken streams).
    pub fn model_service<S>(mut self, service: S) -> Self
    where
        S: Service<ModelRequest, Response = ModelStream, Error = ModelError>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        self.opts.model_service = Some(BoxCloneService::new(service));
        self
    }

    /// Wraps the model service (the default HTTP stack or the replaced one).
    pub fn map_model<F, S>(mut self, f: F) -> Self
    where
        F: FnOnce(ModelService) -> S + Send + 'static,
        S: Service<ModelRequest, Response = ModelStream, Error = ModelError>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        self.model_maps
            .push(Box::new(move |inner| BoxCloneService::new(f(inner))));
        self
    }

    /// Wraps the model service with a tower [`Layer`].
    pub fn model_layer<L>(self, layer: L) -> Self
    where
        L: Layer<ModelService> + Send + 'static,
        L::Service: Service<ModelRequest, Response = ModelStream, Error = ModelError>
            + Clone
            + Send
            + 'static,
        <L::Service as Service<ModelRequest>>::Future: Send + 'static,
    {
        self.map_model(move |inner| layer.layer(inner))
    }

    /// Replaces the tools (definitions and service).
    pub fn tools(mut self, tools: ToolSet) -> Self {
        self.tools = tools;
        self
    }

    /// Adds one tool in front of the current ones (see [`ToolSet::with_tool`]).
    pub fn tool<S>(mut self, spec: ToolSpec, service: S) -> Self
    where
        S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.tools = self.tools.with_tool(spec, service);
        self
    }

    /// Wraps the tool service (every call, built-in or not).
    pub fn map_tools<F, S>(mut self, f: F) -> Self
    where
        F: FnOnce(ToolService) -> S + Send + 'static,
        S: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.tool_maps
            .push(Box::new(move |inner| crate::tools::boxed(f(inner))));
        self
    }

    /// Wraps the tool service with a tower [`Layer`].
    pub fn tool_layer<L>(self, layer: L) -> Self
    where
        L: Layer<ToolService> + Send + 'static,
        L::Service: Service<ToolInvocation, Response = ToolOutput> + Clone + Send + 'static,
        <L::Service as Service<ToolInvocation>>::Error: Into<BoxError>,
        <L::Service as Service<ToolInvocation>>::Future: Send + 'static,
    {
        self.map_tools(move |inner| layer.layer(inner))
    }

    /// Deadline of each call to a tool that is not built in (default
    /// [`DEFAULT_TOOL_TIMEOUT`]).
    pub fn tool_timeout(mut self, timeout: Duration) -> Self {
        self.tool_timeout = timeout;
        self
    }

    /// How many turns may wait behind the running one before more are
    /// refused with [`TurnRejected::Overloaded`] (default
    /// [`DEFAULT_TURN_QUEUE`], at most [`MAX_TURN_QUEUE`]).
    pub fn turn_queue(mut self, waiting: usize) -> Self {
        self.turn_queue = waiting.min(MAX_TURN_QUEUE);
        self
    }

    /// How commands are confined.
    pub fn sandbox(mut self, sandbox: Arc<dyn Sandbox>) -> Self {
        self.opts.sandbox = sandbox;
        self
    }

    /// Who decides what policy says needs a human's consent.
    pub fn approvals(mut self, approvals: Arc<dyn ApprovalHandler>) -> Self {
        self.opts.approvals = approvals;
        self
    }

    /// Where ChatGPT sign-in tokens come from.
    pub fn token_source(mut self, source: crate::auth::SharedTokenSource) -> Self {
        self.opts.token_source = Some(source);
        self
    }

    /// Do not write a session file.
    pub fn ephemeral(mut self, ephemeral: bool) -> Self {
        self.opts.ephemeral = ephemeral;
        self
    }

    /// Id of a new thread (default: a fresh UUIDv7).
    pub fn thread_id(mut self, id: impl Into<String>) -> Self {
        self.opts.thread_id = Some(id.into());
        self
    }

    /// How tool commands are grouped.
    pub fn command_isolation(mut self, isolation: crate::exec::Isolation) -> Self {
        self.opts.command_isolation = isolation;
        self
    }

    /// Bound of the event channel (default [`DEFAULT_EVENT_CAPACITY`]).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.opts.event_capacity = capacity;
        self
    }

    /// Starts a new thread (its session file appears with the first turn).
    pub fn start(self) -> Result<(Thread, mpsc::Receiver<Event>), ThreadError> {
        let id = self
            .opts
            .thread_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let config = Arc::new(self.config.clone());
        let base = context::base_instructions(&config);
        let (writer, path) = if self.opts.ephemeral {
            (None, None)
        } else {
            let path = rollout_path(&config.sessions_dir(), &id, chrono::Local::now());
            let meta = SessionMeta {
                id: id.clone(),
                session_id: Some(id.clone()),
                forked_from_id: None,
                timestamp: crate::rollout::timestamp_now(),
                cwd: config.cwd.clone(),
                originator: self.opts.identity.originator.clone(),
                cli_version: env!("CARGO_PKG_VERSION").to_string(),
                source: serde_json::Value::String(self.opts.source.clone()),
                model_provider: Some(config.model_provider_id.clone()),
                base_instructions: Some(BaseInstructions { text: base.clone() }),
                git: None,
                history_mode: self.opts.history_mode.clone(),
                thread_source: self.opts.thread_source.clone(),
                dynamic_tools: (!self.opts.dynamic_tools.is_empty())
                    .then(|| self.opts.dynamic_tools.clone()),
            };
            // The file appears with the first turn.
            let w = RolloutWriter::deferred(&path, Some(RolloutItem::SessionMeta(meta)));
            (Some(w), Some(path))
        };
        let dynamic = self.opts.dynamic_tools.clone();
        self.assemble(id, config, base, writer, path, Vec::new(), dynamic)
    }

    /// Resumes a thread from its session file. The history is rebuilt from
    /// the file; new turns append to it. A turn the file shows as unfinished
    /// (the process died mid-turn) is closed as interrupted.
    pub fn resume(
        self,
        path: &Path,
    ) -> Result<(Thread, mpsc::Receiver<Event>, LoadedRollout), ThreadError> {
        let loaded = read_rollout(path)?;
        let config = Arc::new(self.config.clone());
        let base = loaded
            .meta
            .base_instructions
            .as_ref()
            .map(|b| b.text.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| context::base_instructions(&config));
        let writer = if self.opts.ephemeral {
            None
        } else {
            let mut w = RolloutWriter::open_append(path, loaded.line_count).map_err(|source| {
                ThreadError::Rollout {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            if let Some(turn_id) = &loaded.unfinished_turn_id {
                w.append(RolloutItem::EventMsg(serde_json::json!({
                    "type": "turn_aborted",
                    "turn_id": turn_id,
                    "reason": "interrupted",
                })))
                .and_then(|()| w.sync())
                .map_err(|source| ThreadError::Rollout {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            Some(w)
        };
        // A crash mid-tool leaves calls without outputs; the next request
        // needs one for each.
        let mut history = loaded.history.clone();
        let missing = crate::turn::missing_call_outputs(&history);
        history.extend(missing);
        let total_usage = loaded
            .last_token_usage
            .as_ref()
            .map(|u| u.total)
            .unwrap_or_default();
        let rollout_path = writer.is_some().then(|| path.to_path_buf());
        let dynamic = loaded.meta.dynamic_tools.clone().unwrap_or_default();
        let (thread, rx) = self.assemble(
            loaded.meta.id.clone(),
            config,
            base,
            writer,
            rollout_path,
            history,
            dynamic,
        )?;
        if let Ok(mut st) = thread.shared.state.try_lock() {
            st.total_usage = total_usage;
        }
        Ok((thread, rx, loaded))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        self,
        id: String,
        config: Arc<Config>,
        base: String,
        writer: Option<RolloutWriter>,
        path: Option<PathBuf>,
        history: Vec<ResponseItem>,
        dynamic: Vec<crate::tools::dynamic::DynamicTool>,
    ) -> Result<(Thread, mpsc::Receiver<Event>), ThreadError> {
        let ThreadBuilder {
            opts,
            tools,
            model_maps,
            tool_maps,
            tool_timeout,
            turn_queue,
            ..
        } = self;
        let model = model_maps
            .into_iter()
            .fold(build_model(&config, &opts)?, |svc, wrap| wrap(svc));
        // `tool_timeout_ms` in the config wins over the builder's default.
        let tool_timeout = config.tool_timeout.unwrap_or(tool_timeout);
        let mut outer_timeout = tool_timeout;
        let tools = match &opts.dynamic_client {
            Some(client) if !dynamic.is_empty() => {
                // A dynamic call keeps its own deadline (it reports the
                // timed-out item); the outer one is only a backstop.
                outer_timeout = tool_timeout + Duration::from_secs(1);
                crate::tools::dynamic::DynamicTools::new(dynamic, client.clone(), tool_timeout)
                    .install(tools)
            }
            _ => tools,
        };
        let approvals: Arc<dyn crate::approval::ApprovalHandler> = Arc::new(
            crate::approval::WithDeadline::new(opts.approvals, config.approval_timeout),
        );
        let (tx, rx) = mpsc::channel(opts.event_capacity.max(1));
        let sink = EventSink::new(tx, writer.map(|w| Arc::new(Mutex::new(w))), id.clone());
        // MCP servers start now, in the background; their tools are offered
        // as each becomes ready.
        // (A manager without servers costs nothing and lets a reload add
        // some; without a runtime there is nothing to run them on.)
        let mcp = tokio::runtime::Handle::try_current().is_ok().then(|| {
            crate::mcp::McpTools::new(
                start_mcp(
                    &config,
                    &id,
                    approvals.clone(),
                    sink.clone(),
                    opts.mcp_tokens.clone(),
                ),
                &id,
            )
        });
        let tools = match &mcp {
            Some(m) => tools.with_provider(
                Arc::new(crate::mcp::McpToolProvider(m.manager().clone())),
                m.clone(),
            ),
            None => tools,
        };
        let tools = tool_maps
            .into_iter()
            .fold(tools, |set, wrap| set.map_service(wrap))
            .map_service(|svc| ToolTimeoutLayer::new(outer_timeout).layer(svc));
        let audit = Arc::new(crate::audit::AuditLog::new(
            &config.codex_home,
            &id,
            crate::audit::Redactor::from_env(std::env::vars()),
        ));
        if config.context_shaping.active() && opts.local_generator.is_none() {
            warn_shaping_needs_a_lane();
        }
        let shared = Arc::new(ThreadShared {
            audit,
            id,
            config: Mutex::new(config),
            model: Mutex::new(model),
            tools: Mutex::new(tools),
            turn_slots: Arc::new(tokio::sync::Semaphore::new(1 + turn_queue)),
            turn_queue,
            sandbox: opts.sandbox,
            approvals,
            mcp,
            sink,
            state: tokio::sync::Mutex::new(ThreadState {
                history,
                ..Default::default()
            }),
            session_approvals: Arc::new(Mutex::new(HashSet::new())),
            base_instructions: base,
            warned_unknown_model: std::sync::atomic::AtomicBool::new(false),
            command_isolation: opts.command_isolation,
            memory_recall: opts.memory_recall.clone(),
            local_generator: opts.local_generator.clone(),
        });
        Ok((
            Thread {
                shared,
                rollout_path: path,
            },
            rx,
        ))
    }
}

/// Once per process: `[context_shaping]` is on, but this thread has no
/// local lane (the model is hosted by codex-memory, under codexd or the
/// embedded supervisor of `codex exec`); a model is not loaded per thread.
fn warn_shaping_needs_a_lane() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "context shaping needs codex-memory (codexd or `codex exec`'s supervisor) to host \
             its model; this thread truncates oversized tool outputs instead"
        )
    });
}

/// Starts the thread's MCP servers; their state changes become
/// [`Event::McpStartupStatus`] events, in order.
fn start_mcp(
    config: &Config,
    thread_id: &str,
    approvals: Arc<dyn crate::approval::ApprovalHandler>,
    sink: EventSink,
    tokens: Option<Arc<dyn crate::mcp::oauth::McpTokenSource>>,
) -> Arc<crate::mcp::McpManager> {
    let (status_tx, mut status_rx) = mpsc::channel::<Event>(256);
    tokio::spawn(async move {
        while let Some(ev) = status_rx.recv().await {
            sink.emit(ev).await;
        }
    });
    let host = crate::mcp::ServerHost {
        thread_id: thread_id.to_string(),
        cwd: config.cwd.clone(),
        approvals,
        on_status: Arc::new(move |st: &crate::mcp::ServerStatus| {
            let ev = Event::McpStartupStatus {
                server: st.name.clone(),
                status: st.state,
                error: st.error.clone(),
            };
            if status_tx.try_send(ev).is_err() {
                tracing::warn!("mcp server {}: status event dropped (queue full)", st.name);
            }
        }),
        oauth_tokens: tokens.unwrap_or_else(|| {
            Arc::new(crate::mcp::oauth::StoredTokens {
                codex_home: config.codex_home.clone(),
                mode: config.mcp_oauth_credentials_store,
            })
        }),
    };
    crate::mcp::McpManager::start(&config.mcp_servers, host)
}

/// A live thread. Cheap to clone.
#[derive(Clone)]
pub struct Thread {
    shared: Arc<ThreadShared>,
    rollout_path: Option<PathBuf>,
}

impl std::fmt::Debug for Thread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Thread {
    /// The thread's MCP servers and the service that calls them (none when
    /// the thread was built outside a tokio runtime).
    pub fn mcp(&self) -> Option<crate::mcp::McpTools> {
        self.shared.mcp.clone()
    }

    /// Waits for the `required` MCP servers; `Err` says which could not
    /// start (a host fails the thread start with it).
    pub async fn wait_required_mcp(&self) -> Result<(), String> {
        match &self.shared.mcp {
            Some(m) => m.manager().wait_required().await,
            None => Ok(()),
        }
    }

    /// Stops what the thread runs beside its turns: its MCP servers (their
    /// whole trees are killed).
    pub async fn shutdown(&self) {
        if let Some(m) = &self.shared.mcp {
            m.manager().shutdown().await;
        }
    }

    /// A builder for a thread with replaceable parts.
    pub fn builder(config: Config) -> ThreadBuilder {
        ThreadBuilder::new(config)
    }

    /// Starts a new thread (and its session file) with the default tools
    /// and layers.
    pub fn start(
        config: Config,
        opts: ThreadOptions,
    ) -> Result<(Thread, mpsc::Receiver<Event>), ThreadError> {
        ThreadBuilder::from_options(config, opts).start()
    }

    /// Resumes a thread from its session file (see [`ThreadBuilder::resume`]).
    pub fn resume(
        config: Config,
        path: &Path,
        opts: ThreadOptions,
    ) -> Result<(Thread, mpsc::Receiver<Event>, LoadedRollout), ThreadError> {
        ThreadBuilder::from_options(config, opts).resume(path)
    }

    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The thread's current settings.
    pub fn config(&self) -> Arc<Config> {
        self.shared.current_config()
    }

    /// The session file, unless the thread is ephemeral.
    pub fn rollout_path(&self) -> Option<&Path> {
        self.rollout_path.as_deref()
    }

    /// The turn loop of this thread as a tower service.
    pub fn turn_service(&self) -> TurnService {
        TurnService::new(self.shared.clone())
    }

    /// Runs one turn to its end, through the thread's [`TurnService`]: it
    /// waits for a turn already running, and is refused at once
    /// ([`TurnRejected::Overloaded`]) when the queue behind it is full.
    pub async fn run_turn(&self, req: TurnRequest) -> Result<TurnOutcome, TurnRejected> {
        self.turn_service().oneshot(req).await
    }

    /// The unknown-model warning, the first time it is asked for (later
    /// turns, and the turn loop itself, then stay quiet about it).
    pub fn take_model_warning(&self) -> Option<String> {
        let model = self.config().model.clone();
        // A local model is a file, not a catalog entry.
        let local = self.config().uses_embedded_model();
        if local || crate::models::find_model(&model).is_some() {
            return None;
        }
        let already = self
            .shared
            .warned_unknown_model
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        (!already).then(|| crate::models::unknown_model_warning(&model))
    }

    /// A copy of the model-visible history.
    pub async fn history(&self) -> Vec<ResponseItem> {
        self.shared.state.lock().await.history.clone()
    }
}

/// The model service a thread with `config` and `opts` talks to (also the
/// memories pipeline's extraction model, built like a thread's).
pub fn build_model(config: &Config, opts: &ThreadOptions) -> Result<ModelService, ThreadError> {
    if let Some(m) = &opts.model_service {
        return Ok(m.clone());
    }
    if config.uses_embedded_model() {
        let svc =
            crate::client::local_model_service(&config.local_model_path, &config.model_provider)?;
        return Ok(svc);
    }
    let creds = resolve_credentials(
        &config.model_provider,
        &config.codex_home,
        opts.token_source.clone(),
        config.cli_auth_credentials_store,
    )?;
    // A ChatGPT sign-in talks to the ChatGPT backend, not the API, when the
    // built-in OpenAI provider is used as is (upstream's behaviour).
    let mut provider = config.model_provider.clone();
    let default_openai = config.model_provider_id == crate::config::OPENAI_PROVIDER_ID
        && provider
            .base_url
            .as_deref()
            .is_none_or(|u| u == crate::config::DEFAULT_OPENAI_BASE_URL);
    if default_openai && matches!(creds, crate::client::Credentials::Managed(_)) {
        provider.base_url = Some(format!(
            "{}/codex",
            config.chatgpt_base_url.trim_end_matches('/')
        ));
    }
    Ok(model_service(&provider, creds, opts.identity.clone())?)
}
