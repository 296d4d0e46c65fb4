//! The one client API: open a runtime, then drive threads over the
//! app-server protocol, wherever the supervisor runs.
//!
//! - [`Endpoint::Embedded`]: a supervisor in this process (codexd's router,
//!   its broker and the one launcher); every thread still runs in its own
//!   `codex-session` worker process, so a crashing turn cannot take the host
//!   down.
//! - [`Endpoint::Unix`] / [`Endpoint::WebSocket`]: a running `codexd`;
//!   [`Endpoint::UnixWebSocket`]: codexd or upstream's daemon on its socket.
//!
//! Either way the host speaks upstream's app-server protocol (the schema is
//! the contract): [`Runtime::request`] for a request and its answer, the
//! event receiver for notifications and server requests (approvals) in the
//! order the server sent them, [`Runtime::respond`] to answer those.
//! `codex exec`, `codex app-server proxy` and the C ABI are thin users of it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), codex_daemon::runtime::RuntimeError> {
//! use codex_daemon::runtime::{Endpoint, EmbeddedOptions, Runtime, RuntimeOptions};
//! use serde_json::json;
//!
//! let opts = RuntimeOptions::new(Endpoint::Embedded(EmbeddedOptions::new("/home/me/.codex")));
//! let (rt, mut events) = Runtime::open(opts).await?;
//! let thread = rt.request("thread/start", json!({})).await?;
//! let id = thread["thread"]["id"].as_str().unwrap_or_default();
//! rt.request("turn/start", json!({"threadId": id, "input": [{"type": "text", "text": "hi"}]}))
//!     .await?;
//! while let Some(m) = events.recv().await {
//!     if m.method() == Some("turn/completed") {
//!         break;
//!     }
//! }
//! rt.close(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use codex_core::config::CliOverride;
use codex_ipc::app_server::connection::{self, Connection, ConnectionError, ServerMessage};
use codex_ipc::app_server::methods::{Capabilities, ClientInfo, InitializeParams};
use codex_ipc::jsonrpc::RequestId;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::server::{Server, ServerOptions, ThreadDefaults};

pub use codex_ipc::app_server::connection::ServerMessage as Message;

/// Environment variable naming the `codex` binary that runs workers.
pub const WORKER_PATH_ENV: &str = "CODEX_WORKER_PATH";
/// How long opening (connect + `initialize`) may take.
const OPEN_DEADLINE: Duration = Duration::from_secs(30);
/// Bound of the in-process stream between the host and an embedded
/// supervisor.
const EMBEDDED_PIPE_BYTES: usize = 1024 * 1024;

/// Where the supervisor is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Embedded(EmbeddedOptions),
    /// A `codexd` listening on `--listen unix://PATH`, spoken as JSONL.
    Unix(PathBuf),
    /// Any app-server daemon's unix socket, spoken as WebSocket over it the
    /// way upstream's clients speak it: codexd or upstream's daemon (which
    /// does not speak JSONL).
    UnixWebSocket(PathBuf),
    /// A `codexd` listening on `--listen ws://IP:PORT`, with its capability
    /// token.
    WebSocket {
        url: String,
        token: Option<String>,
    },
}

/// An in-process supervisor.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub codex_home: PathBuf,
    /// The `codex` binary workers run; `None`: [`find_worker_exe`].
    pub worker_exe: Option<PathBuf>,
    /// Default working directory of threads (`None`: the current one).
    pub cwd: Option<PathBuf>,
    /// `-c key=value` overrides applied to every thread.
    pub config_overrides: Vec<CliOverride>,
    pub thread_defaults: ThreadDefaults,
}

impl EmbeddedOptions {
    pub fn new(codex_home: impl Into<PathBuf>) -> Self {
        Self {
            codex_home: codex_home.into(),
            worker_exe: None,
            cwd: None,
            config_overrides: Vec::new(),
            thread_defaults: ThreadDefaults::default(),
        }
    }
}

/// How to open a runtime.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub endpoint: Endpoint,
    /// `initialize.clientInfo` (its name becomes threads' originator).
    pub client_info: ClientInfo,
    /// `initialize.capabilities.experimentalApi`.
    pub experimental_api: bool,
    /// Notifications the server should not send.
    pub opt_out_notifications: Vec<String>,
    /// Bound of the event queue.
    pub event_capacity: usize,
    /// Do the `initialize` handshake (a proxy forwards its client's own).
    pub initialize: bool,
}

impl RuntimeOptions {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            client_info: ClientInfo {
                name: "codex_runtime".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                title: None,
            },
            experimental_api: false,
            opt_out_notifications: Vec::new(),
            event_capacity: 4096,
            initialize: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("cannot start the embedded supervisor: {0}")]
    Embedded(String),
    #[error("{0}")]
    WorkerNotFound(String),
}

/// An open runtime. Cheap to clone; all clones are one connection.
#[derive(Clone)]
pub struct Runtime {
    conn: Connection,
    embedded: Option<Arc<Server>>,
    /// The `initialize` result (`Null` when the handshake was not done).
    pub server_info: Value,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("conn", &self.conn)
            .field("embedded", &self.embedded.is_some())
            .finish()
    }
}

impl Runtime {
    /// Opens the runtime and (unless told not to) completes the handshake.
    /// The receiver yields every notification and server request, and the
    /// answers to lines sent with [`Runtime::send_line`].
    pub async fn open(
        opts: RuntimeOptions,
    ) -> Result<(Runtime, mpsc::Receiver<ServerMessage>), RuntimeError> {
        let (conn, events, embedded) = match &opts.endpoint {
            Endpoint::Embedded(e) => {
                let server = start_embedded(e)?;
                let (ours, theirs) = tokio::io::duplex(EMBEDDED_PIPE_BYTES);
                let (sr, sw) = tokio::io::split(theirs);
                let s = server.clone();
                tokio::spawn(async move { s.serve_stream(sr, sw).await });
                let (r, w) = tokio::io::split(ours);
                let (conn, events) = Connection::spawn(r, w, opts.event_capacity);
                (conn, events, Some(server))
            }
            Endpoint::Unix(path) => {
                let stream = connection::connect_unix(path, OPEN_DEADLINE).await?;
                let (r, w) = stream.into_split();
                let (conn, events) = Connection::spawn(r, w, opts.event_capacity);
                (conn, events, None)
            }
            Endpoint::UnixWebSocket(path) => {
                let stream = connection::connect_unix_ws(path, OPEN_DEADLINE).await?;
                let (r, w) = tokio::io::split(stream);
                let (conn, events) = Connection::spawn(r, w, opts.event_capacity);
                (conn, events, None)
            }
            Endpoint::WebSocket { url, token } => {
                let stream = connection::connect_ws(url, token.as_deref(), OPEN_DEADLINE).await?;
                let (r, w) = tokio::io::split(stream);
                let (conn, events) = Connection::spawn(r, w, opts.event_capacity);
                (conn, events, None)
            }
        };
        let mut rt = Runtime {
            conn,
            embedded,
            server_info: Value::Null,
        };
        if opts.initialize {
            let params = InitializeParams {
                client_info: opts.client_info.clone(),
                capabilities: Some(Capabilities {
                    experimental_api: opts.experimental_api,
                    opt_out_notification_methods: (!opts.opt_out_notifications.is_empty())
                        .then(|| opts.opt_out_notifications.clone()),
                }),
            };
            match rt.conn.initialize(&params, OPEN_DEADLINE).await {
                Ok(info) => rt.server_info = info,
                Err(e) => {
                    rt.close(Duration::from_secs(5)).await;
                    return Err(e.into());
                }
            }
        }
        Ok((rt, events))
    }

    /// Sends a request and waits for its result.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RuntimeError> {
        Ok(self.conn.request(method, params).await?)
    }

    /// Answers a server request (`{"decision": "accept"}` for an approval).
    pub fn respond(&self, id: &RequestId, result: Value) -> Result<(), RuntimeError> {
        Ok(self.conn.respond(id, result)?)
    }

    /// Sends a client notification.
    pub fn notify(&self, method: &str, params: Option<Value>) -> Result<(), RuntimeError> {
        Ok(self.conn.notify(method, params)?)
    }

    /// Sends any message the host built (a request with the host's own id,
    /// whose answer then arrives as an event; a response; a notification).
    /// Never waits: a full queue is [`ConnectionError::Full`].
    pub fn send_line(&self, json: &str) -> Result<(), RuntimeError> {
        Ok(self.conn.send_line(json)?)
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Closes the connection; an embedded supervisor shuts down (its
    /// workers record what they were doing and exit), within `deadline`.
    pub async fn close(&self, deadline: Duration) {
        self.conn.close();
        if let Some(server) = &self.embedded {
            let _ = tokio::time::timeout(deadline, server.shutdown()).await;
        }
    }
}

fn start_embedded(e: &EmbeddedOptions) -> Result<Arc<Server>, RuntimeError> {
    let worker_exe = find_worker_exe(e.worker_exe.as_deref())?;
    let cwd = match &e.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir().map_err(|err| {
            RuntimeError::Embedded(format!(
                "no working directory given and none current: {err}"
            ))
        })?,
    };
    Server::new(ServerOptions {
        codex_home: e.codex_home.clone(),
        config_overrides: e.config_overrides.clone(),
        worker_exe,
        cwd,
        protected_paths: Vec::new(),
        thread_defaults: e.thread_defaults.clone(),
    })
    .map_err(|err| RuntimeError::Embedded(err.to_string()))
}

/// The `codex` binary workers run, found explicitly: `explicit`, else
/// `$CODEX_WORKER_PATH`, else the current executable when it *is* `codex`,
/// else a `codex` beside the library this code was linked into (a C or Swift
/// host ships the two together).
pub fn find_worker_exe(explicit: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let usable = |p: &Path| p.is_file();
    if let Some(p) = explicit {
        return if usable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(RuntimeError::WorkerNotFound(format!(
                "the worker binary {} does not exist",
                p.display()
            )))
        };
    }
    if let Some(p) = std::env::var_os(WORKER_PATH_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if usable(&p) {
            Ok(p)
        } else {
            Err(RuntimeError::WorkerNotFound(format!(
                "{WORKER_PATH_ENV}={} does not exist",
                p.display()
            )))
        };
    }
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if exe.file_name().is_some_and(|n| n == "codex") {
            return Ok(exe);
        }
        tried.push(format!(
            "the current executable {} is not `codex`",
            exe.display()
        ));
    }
    if let Some(dir) = library_dir() {
        let p = dir.join("codex");
        if usable(&p) {
            return Ok(p);
        }
        tried.push(format!("no {}", p.display()));
    }
    Err(RuntimeError::WorkerNotFound(format!(
        "cannot find the `codex` binary that runs workers ({}); set {WORKER_PATH_ENV} or pass its path",
        tried.join("; ")
    )))
}

/// The directory of the shared object (or executable) this code is in.
fn library_dir() -> Option<PathBuf> {
    #[cfg(unix)]
    {
        let mut info = libc::Dl_info {
            dli_fname: std::ptr::null(),
            dli_fbase: std::ptr::null_mut(),
            dli_sname: std::ptr::null(),
            dli_saddr: std::ptr::null_mut(),
        };
        let here = library_dir as *const () as *const libc::c_void;
        // SAFETY: dladdr only reads the loader's tables and fills `info`,
        // which outlives the call.
        if unsafe { libc::dladdr(here, &mut info) } == 0 || info.dli_fname.is_null() {
            return None;
        }
        // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
        let path = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
        let path = PathBuf::from(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path.to_bytes()),
        );
        std::fs::canonicalize(path)
            .ok()?
            .parent()
            .map(Path::to_path_buf)
    }
    #[cfg(not(unix))]
    None
}
