//! `codexd`: the supervisor. It owns the transports, the connections and
//! their subscriptions, and one `codex-session` worker per loaded thread. It
//! never runs a model turn or a tool: requests about a thread are routed to
//! its worker over the link, and the worker's events are mapped to app-server
//! notifications and fanned out to every subscribed connection, in order.

mod account;
mod catalog;
pub(crate) mod conn;
mod handlers;
pub(crate) mod memory;
pub(crate) mod memory_pipeline;
mod monitor;
mod read_states;
mod send;
mod status;
mod thread;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_core::config::{CliOverride, Config, ConfigOverrides, LoadOptions};
use codex_ipc::app_server::notifications::{
    RemoteControlStatus, RemoteControlStatusChangedNotification, ServerNotification,
};
use codex_ipc::jsonrpc::{Incoming, RequestId, RpcError};
use codex_ipc::launcher::Launcher;
use serde_json::Value;

use crate::containment::Cgroups;
use crate::limits::Limits;
use send::ConnSend;

pub use catalog::Catalog;
pub use conn::Conn;
pub use memory::METHOD as MEMORY_METHOD;
pub use thread::LoadedThread;

/// How long a new worker may take to become ready.
pub const WORKER_START_DEADLINE: Duration = Duration::from_secs(30);
/// How long shutdown waits for workers to exit before killing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] codex_core::config::ConfigError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub codex_home: PathBuf,
    /// `-c key=value` overrides given to the daemon (apply to every thread).
    pub config_overrides: Vec<CliOverride>,
    /// The executable workers run (normally this binary).
    pub worker_exe: PathBuf,
    /// Default working directory of new threads.
    pub cwd: PathBuf,
    /// What the threads' commands must never reach besides the defaults:
    /// this daemon's sockets, its WebSocket token file.
    pub protected_paths: Vec<PathBuf>,
    /// How this daemon's threads are set up where a request does not say.
    pub thread_defaults: ThreadDefaults,
}

/// Settings of every thread a daemon starts that no request can express
/// (an embedding host's choices: `codex exec` records source `exec`,
/// never asks for approval unless configured to, adds `--add-dir` roots).
#[derive(Debug, Clone)]
pub struct ThreadDefaults {
    /// `source` recorded in session files.
    pub source: String,
    /// Used when nothing configures an approval policy.
    pub default_approval_policy: Option<codex_core::config::AskForApproval>,
    /// Writable roots added to every thread's policy.
    pub additional_writable_roots: Vec<PathBuf>,
    /// Ignore `$CODEX_HOME/config.toml` (only `-c` overrides count).
    pub ignore_user_config: bool,
}

impl Default for ThreadDefaults {
    fn default() -> Self {
        Self {
            source: "vscode".into(),
            default_approval_policy: None,
            additional_writable_roots: Vec::new(),
            ignore_user_config: false,
        }
    }
}

pub struct Server {
    opts: ServerOptions,
    launcher: Launcher,
    threads: Mutex<HashMap<String, Arc<LoadedThread>>>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_conn: AtomicU64,
    catalog: Catalog,
    installation_id: String,
    server_name: String,
    limits: Limits,
    /// The provider id, provider and model of new threads, for
    /// `model/list`.
    default_model: (String, codex_core::config::ModelProviderInfo, String),
    /// The supervised `codex-broker`.
    pub(crate) broker: codex_ipc::broker_link::BrokerClient,
    /// The supervised `codex-memory` (see `memory.rs`) and its cgroup.
    pub(crate) memory: codex_ipc::memory_link::MemoryClient,
    memory_cgroup: Option<crate::containment::WorkerCgroup>,
    /// `[features] memories` of the daemon's config.
    memory_enabled: bool,
    /// The memories pipeline's passes (see `memory_pipeline.rs`).
    pub(crate) pipeline: memory_pipeline::PipelineRunner,
    /// One loader at a time per thread id (loading from a session file).
    load_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per-worker cgroups, where a writable cgroup2 hierarchy exists.
    cgroups: Option<Cgroups>,
    started: Instant,
    /// Load shed so far (`codexd/status`).
    pub(crate) counters: Arc<conn::LoadCounters>,
    /// Threads' read state (`thread/readState/*`).
    pub(crate) read_states: read_states::ReadStates,
    /// Problems in the loaded config, told to each client (`configWarning`).
    config_warnings: Vec<String>,
}

impl Server {
    /// Loads (and so validates) the configuration and prepares the launcher.
    pub fn new(opts: ServerOptions) -> Result<Arc<Server>, ServerError> {
        // Loaded to fail fast on a bad config; threads load their own.
        let config = Config::load(LoadOptions {
            codex_home: Some(opts.codex_home.clone()),
            cli_overrides: opts.config_overrides.clone(),
            overrides: ConfigOverrides {
                cwd: Some(opts.cwd.clone()),
                ignore_user_config: opts.thread_defaults.ignore_user_config,
                ..Default::default()
            },
        })?;
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        let (limits, warnings) = Limits::from_config(&config.codexd);
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let launcher = Launcher::new(tokio::runtime::Handle::current())?;
        let (broker_events, broker_events_rx) = tokio::sync::mpsc::channel(64);
        let broker = codex_ipc::broker_link::BrokerClient::start(
            launcher.clone(),
            codex_ipc::launcher::LaunchSpec {
                ..codex_ipc::launcher::LaunchSpec::new(
                    codex_ipc::launcher::Role::Broker,
                    opts.worker_exe.clone(),
                )
            },
            codex_ipc::broker_link::BrokerInit {
                codex_home: opts.codex_home.clone(),
                store: config.cli_auth_credentials_store,
            },
            broker_events,
        );
        let cgroups = if limits.use_cgroups {
            Cgroups::detect()
        } else {
            None
        };
        let (memory, memory_cgroup) = memory::client(
            &launcher,
            &opts.worker_exe,
            memory::init(&opts.codex_home, &config),
            &limits,
            cgroups.as_ref(),
        );
        if config.memories.enabled {
            memory.start();
        }
        let default_model = (
            config.model_provider_id.clone(),
            config.model_provider.clone(),
            config.model.clone(),
        );
        let server = Arc::new(Server {
            default_model,
            broker,
            memory,
            memory_cgroup,
            memory_enabled: config.memories.enabled,
            pipeline: Default::default(),
            installation_id: installation_id(&opts.codex_home),
            server_name: hostname(),
            catalog: Catalog::new(opts.codex_home.clone()),
            opts,
            launcher,
            threads: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            load_locks: Mutex::new(HashMap::new()),
            cgroups,
            started: Instant::now(),
            counters: Arc::default(),
            read_states: Default::default(),
            config_warnings: config.warnings.clone(),
            limits,
        });
        tokio::spawn(monitor::run(Arc::downgrade(&server)));
        server.memory_pipeline_at_startup();
        tokio::spawn(account::forward_broker_events(
            Arc::downgrade(&server),
            broker_events_rx,
        ));
        Ok(server)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The lock serializing loads of thread `id`.
    pub(crate) fn load_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let Ok(mut locks) = self.load_locks.lock() else {
            return Arc::new(tokio::sync::Mutex::new(()));
        };
        // Forget locks nobody holds or waits on.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(id.to_string()).or_default().clone()
    }

    pub fn codex_home(&self) -> &std::path::Path {
        &self.opts.codex_home
    }

    fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a notification to every connection.
    pub(crate) fn broadcast(&self, note: &ServerNotification) {
        // Connection ids start at 1.
        self.broadcast_except(0, note);
    }

    /// Sends a notification to every connection but `except`.
    pub(crate) fn broadcast_except(&self, except: u64, note: &ServerNotification) {
        let Some((method, params)) = send::encode(note) else {
            return;
        };
        let conns: Vec<Arc<Conn>> = self
            .conns
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        for c in conns {
            if c.id != except && c.is_initialized() {
                c.notify(method, params.clone());
            }
        }
    }

    fn register_conn(&self, conn: Arc<Conn>) {
        if let Ok(mut c) = self.conns.lock() {
            c.insert(conn.id, conn);
        }
    }

    /// A client went away: it stops being a subscriber; its threads (and
    /// their running turns) carry on.
    fn unregister_conn(&self, id: u64) {
        let removed = self.conns.lock().ok().and_then(|mut c| c.remove(&id));
        if removed.is_none() {
            return;
        }
        for t in self.loaded_threads() {
            t.unsubscribe(self, id);
        }
    }

    pub(crate) fn conn(&self, id: u64) -> Option<Arc<Conn>> {
        self.conns.lock().ok()?.get(&id).cloned()
    }

    pub(crate) fn thread(&self, id: &str) -> Option<Arc<LoadedThread>> {
        self.threads.lock().ok()?.get(id).cloned()
    }

    pub(crate) fn loaded_threads(&self) -> Vec<Arc<LoadedThread>> {
        self.threads
            .lock()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn insert_thread(&self, t: Arc<LoadedThread>) {
        if let Ok(mut m) = self.threads.lock() {
            m.insert(t.id.clone(), t);
        }
    }

    pub(crate) fn remove_thread(&self, id: &str) -> Option<Arc<LoadedThread>> {
        self.threads.lock().ok()?.remove(id)
    }

    /// Number of loaded threads (worker processes).
    pub fn loaded_count(&self) -> usize {
        self.threads.lock().map(|t| t.len()).unwrap_or(0)
    }

    async fn handle_message(self: &Arc<Self>, conn: &Arc<Conn>, msg: Incoming) {
        match msg {
            Incoming::Request { id, method, params } => {
                if method != "initialize" && !conn.is_initialized() {
                    conn.error(&id, &RpcError::invalid_request("Not initialized"));
                    return;
                }
                // A request that subscribes this connection to a thread it
                // starts: the thread's own notifications (an MCP server's
                // startup status, ...) follow the answer and `thread/started`.
                let subscribes = matches!(
                    method.as_str(),
                    "thread/start" | "thread/resume" | "thread/fork"
                );
                if subscribes {
                    conn.hold();
                }
                match self.dispatch(conn, &id, &method, params).await {
                    Reply::Now(Ok(result)) => conn.respond(&id, result),
                    Reply::Now(Err(e)) => conn.error(&id, &e),
                    Reply::NowThen(result, then) => {
                        conn.respond(&id, result);
                        for note in &then {
                            conn.send_notification(note);
                        }
                    }
                    Reply::Deferred => {}
                }
                if subscribes {
                    conn.release();
                }
            }
            Incoming::Notification { method, .. } => {
                if method == "initialized" && conn.is_initialized() && conn.mark_announced() {
                    // Upstream sends these first.
                    for w in &self.config_warnings {
                        conn.send_notification(
                            &codex_ipc::app_server::client_features::ConfigWarningNotification {
                                summary: w.clone(),
                                details: None,
                            }
                            .into(),
                        );
                    }
                    conn.send_notification(
                        &RemoteControlStatusChangedNotification {
                            status: RemoteControlStatus::Disabled,
                            installation_id: self.installation_id.clone(),
                            server_name: self.server_name.clone(),
                            environment_id: None,
                        }
                        .into(),
                    );
                }
                // Other client notifications are ignored, as upstream does.
            }
            Incoming::Response { id, result } => self.client_answered(conn, id, Ok(result)).await,
            Incoming::Error { id, error } => self.client_answered(conn, id, Err(error)).await,
        }
    }

    /// A client's answer to one of our requests (an approval).
    async fn client_answered(
        &self,
        conn: &Arc<Conn>,
        id: RequestId,
        answer: Result<Value, RpcError>,
    ) {
        let RequestId::Int(n) = id else {
            tracing::debug!("answer to unknown request id {id}");
            return;
        };
        let Some(pending) = conn.take_pending(n) else {
            // Late or duplicate answers are ignored harmlessly.
            tracing::debug!("answer to request {n} that is no longer pending");
            return;
        };
        if let Some(t) = self.thread(&pending.thread_id) {
            if pending.tool_call {
                t.resolve_tool_call(self, pending.approval_id, n, answer);
            } else {
                t.resolve_approval(self, pending.approval_id, n, answer)
                    .await;
            }
        }
    }

    /// Shuts every worker down (gracefully, then by force), and with them
    /// everything they started.
    pub async fn shutdown(&self) {
        let threads = self.loaded_threads();
        futures_util::future::join(
            futures_util::future::join_all(threads.iter().map(|t| t.stop())),
            self.stop_memory_pipeline(),
        )
        .await;
        self.broker.stop();
        self.memory.stop();
        if let Some(cg) = &self.memory_cgroup {
            cg.kill_and_remove(Duration::from_millis(200));
        }
        // Wait (bounded) for the pumps to finish their sweeps.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for t in &threads {
            let _ = tokio::time::timeout_at(deadline, t.exited()).await;
        }
    }

    /// Serves one client on a byte stream (JSONL) until it closes; the
    /// daemon keeps running (an embedding host shuts it down).
    pub async fn serve_stream<R, W>(self: &Arc<Self>, reader: R, writer: W)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        conn::serve(self.clone(), tokio::io::BufReader::new(reader), writer).await;
    }

    /// Serves one client on stdin/stdout until stdin closes, then shuts
    /// down.
    pub async fn serve_stdio(self: &Arc<Self>) {
        let reader = tokio::io::BufReader::new(tokio::io::stdin());
        conn::serve(self.clone(), reader, tokio::io::stdout()).await;
        self.shutdown().await;
    }

    /// Serves any number of clients on a unix socket at `path` (created 0600
    /// in a 0700 directory, as [`crate::transport::bind_unix`] lays it out);
    /// only the daemon's own user may connect.
    pub async fn serve_unix(self: &Arc<Self>, path: &std::path::Path) -> std::io::Result<()> {
        let layout = crate::transport::Layout::for_path(path);
        let (listener, files) = crate::transport::bind_unix(path, layout)?;
        tracing::info!("codexd listening on unix://{}", path.display());
        let served = self.serve_unix_listener(listener).await;
        files.remove();
        served
    }

    /// Serves any number of clients on a listening unix socket (bound here
    /// or inherited from the service manager). Only the daemon's own user
    /// may connect (`SO_PEERCRED`); each connection speaks WebSocket or
    /// JSONL, as its first bytes say.
    pub async fn serve_unix_listener(
        self: &Arc<Self>,
        listener: tokio::net::UnixListener,
    ) -> std::io::Result<()> {
        let me = crate::transport::effective_uid();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == me => {}
                Ok(cred) => {
                    tracing::warn!(
                        "refused a connection from uid {} (only uid {me} may connect)",
                        cred.uid()
                    );
                    drop(stream);
                    continue;
                }
                Err(e) => {
                    tracing::warn!("refused a connection: cannot read peer credentials: {e}");
                    continue;
                }
            }
            tokio::spawn(crate::unix_ws::serve(self.clone(), stream));
        }
    }
}

/// A request's answer (an encoded codex-ipc result): now, now followed by
/// notifications, or later (sent by whoever completes it).
pub(crate) enum Reply {
    Now(Result<Value, RpcError>),
    NowThen(Value, Vec<ServerNotification>),
    Deferred,
}

impl Reply {
    /// Answers now with a typed result.
    pub(crate) fn now<T: serde::Serialize>(result: Result<T, RpcError>) -> Reply {
        Reply::Now(result.and_then(|r| codex_ipc::app_server::to_value(&r)))
    }

    /// Answers now, then sends `notes` to the same client.
    pub(crate) fn now_then<T: serde::Serialize>(
        result: &T,
        notes: Vec<ServerNotification>,
    ) -> Reply {
        match codex_ipc::app_server::to_value(result) {
            Ok(v) => Reply::NowThen(v, notes),
            Err(e) => Reply::Now(Err(e)),
        }
    }
}

fn installation_id(codex_home: &std::path::Path) -> String {
    let path = codex_home.join("installation_id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return s;
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let _ = std::fs::create_dir_all(codex_home);
    let _ = std::fs::write(&path, &id);
    id
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
