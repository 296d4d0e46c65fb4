//! The runtime entry points: open, send, respond, poll, close.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use codex_daemon::runtime::{EmbeddedOptions, Endpoint, Runtime, RuntimeOptions};
use codex_ipc::app_server::methods::ClientInfo;
use codex_ipc::jsonrpc::RequestId;
use serde_json::Value;

use crate::delivery::{self, CallbackThread, Next, PollQueue, Userdata};
use crate::error::{fail, finish, FfiError};
use crate::handle::Registry;
use crate::CodexResult;

pub use crate::delivery::{codex_closed_fn, codex_event_fn, codex_free_fn, codex_str};
pub use crate::handle::codex_runtime;

/// `codex_runtime_options.flags`: no callback; events are queued for
/// `codex_next_event` and `codex_event_fd` is readable while any are.
pub const CODEX_OPEN_POLL: u32 = 1;
/// `codex_runtime_options.flags`: `initialize.capabilities.experimentalApi`.
pub const CODEX_OPEN_EXPERIMENTAL_API: u32 = 2;

/// The first id `codex_send` assigns; later ones count down from it
/// (-(2^62), -(2^62)-1, ...). The library's own requests use -1, -2, ...,
/// and the host's own ids should be non-negative integers or strings, so
/// the three never collide.
pub const CODEX_FIRST_AUTO_ID: i64 = -4_611_686_018_427_387_904;

/// Default bound of the event queue.
const DEFAULT_EVENT_CAPACITY: u32 = 4096;
/// Largest accepted `event_queue_cap`.
const MAX_EVENT_CAPACITY: u32 = 1 << 20;
/// Poll mode: the channel between the connection and the poll queue (the
/// poll queue itself holds `event_queue_cap`).
const POLL_CHANNEL: usize = 16;
/// How long `codex_runtime_open` waits in all (the runtime bounds connect
/// and `initialize` at 30 s itself).
const OPEN_WAIT: Duration = Duration::from_secs(120);
/// Added to `timeout_ms` before `codex_runtime_close` stops waiting.
const CLOSE_MARGIN: Duration = Duration::from_secs(5);
/// How long the library's threads get to finish once the runtime is down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How to open a runtime. Zero-initialize it, set `struct_size` to
/// `sizeof(codex_runtime_options)`, then the fields you need; every string
/// is NUL-terminated UTF-8, NULL (or empty) for the default, and read only
/// during `codex_runtime_open`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct codex_runtime_options {
    /// `sizeof(codex_runtime_options)`: lets later versions add fields.
    pub struct_size: u32,
    /// `CODEX_OPEN_POLL`, `CODEX_OPEN_EXPERIMENTAL_API`; other bits are
    /// rejected.
    pub flags: u32,
    /// NULL or "embedded": a supervisor in this process (each thread still
    /// runs in its own `codex-session` worker process);
    /// "unix:///path/to/codexd.sock": a running codexd
    /// (`codex app-server --listen unix://PATH`); "ws://host:port": a codexd
    /// listening on a WebSocket (with `ws_token`).
    pub endpoint: *const c_char,
    /// The capability token of a `ws://` endpoint.
    pub ws_token: *const c_char,
    /// Embedded: `CODEX_HOME` (NULL: `$CODEX_HOME`, else `~/.codex`).
    pub codex_home: *const c_char,
    /// Embedded: the default working directory of threads (NULL: the
    /// current one).
    pub cwd: *const c_char,
    /// Embedded: the `codex` binary that runs workers (NULL:
    /// `$CODEX_WORKER_PATH`, else a `codex` beside the library, or beside
    /// the executable when the library is linked statically).
    pub worker_path: *const c_char,
    /// `initialize.clientInfo.name` (it becomes threads' originator;
    /// NULL: "codex_ffi").
    pub client_name: *const c_char,
    /// `initialize.clientInfo.version` (NULL: the library version).
    pub client_version: *const c_char,
    /// Bound of the event queue (0: 4096; at most 1048576). A host that
    /// stops draining events stops the connection's reader once it is full;
    /// the server then sheds or disconnects it, as any slow client.
    pub event_queue_cap: u32,
    /// Called for every message from the server, on one library-owned
    /// thread, never concurrently and never from inside another codex_*
    /// call. Required unless `CODEX_OPEN_POLL` is set (then it must be
    /// NULL).
    pub on_event: codex_event_fn,
    /// Passed to `on_event`; the library never looks at it.
    pub userdata: *mut c_void,
    /// Called exactly once with `userdata`, by `codex_runtime_close`, after
    /// the last callback returned (NULL: nothing to free). Not called when
    /// `codex_runtime_open` fails: the caller still owns `userdata` then.
    pub free_userdata: codex_free_fn,
    /// Callback mode, optional: called once on the callback thread, after
    /// the last event, when the connection ended from the server's side
    /// (codexd exited, the socket broke); not when `codex_runtime_close`
    /// ended it. Calls then return `CODEX_RESULT_CLOSED`; the runtime must
    /// still be closed. (Poll mode: `codex_next_event` returns
    /// `CODEX_RESULT_CLOSED` once the queue is drained.)
    pub on_closed: codex_closed_fn,
}

/// An open runtime.
struct Shared {
    rt: Runtime,
    /// The `initialize` result, as JSON.
    initialize_result: String,
    /// Taken (and shut down) by `codex_runtime_close`.
    tokio: Mutex<Option<tokio::runtime::Runtime>>,
    delivery: Delivery,
    next_auto_id: AtomicI64,
    /// Taken (and released) by `codex_runtime_close`.
    userdata: Mutex<Option<Userdata>>,
}

enum Delivery {
    Callback(CallbackThread),
    Poll(Arc<PollQueue>),
}

static RUNTIMES: Registry<Shared> = Registry::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A NUL-terminated UTF-8 string, or `None` for NULL or empty.
///
/// # Safety
/// `p` must be null or a valid NUL-terminated string.
unsafe fn opt_str(p: *const c_char, what: &str) -> Result<Option<String>, FfiError> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller promises a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| FfiError::arg(format!("{what} is not UTF-8")))?;
    Ok((!s.is_empty()).then(|| s.to_string()))
}

/// A required NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` must be null or a valid NUL-terminated string.
unsafe fn req_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::arg(format!("{what} is null")));
    }
    // SAFETY: the caller promises a NUL-terminated string that outlives the
    // call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| FfiError::arg(format!("{what} is not UTF-8")))
}

enum Mode {
    Callback(
        unsafe extern "C" fn(*mut c_void, codex_str),
        codex_closed_fn,
        *mut c_void,
    ),
    Poll,
}

struct Parsed {
    ropts: RuntimeOptions,
    mode: Mode,
    capacity: usize,
}

/// # Safety
/// The string fields of `o` must be null or valid NUL-terminated strings.
unsafe fn parse_options(o: &codex_runtime_options) -> Result<Parsed, FfiError> {
    let known = CODEX_OPEN_POLL | CODEX_OPEN_EXPERIMENTAL_API;
    if o.flags & !known != 0 {
        return Err(FfiError::arg(format!(
            "unknown flags {:#x}",
            o.flags & !known
        )));
    }
    let mode = match (o.flags & CODEX_OPEN_POLL != 0, o.on_event) {
        (false, Some(f)) => Mode::Callback(f, o.on_closed, o.userdata),
        (true, None) => Mode::Poll,
        (false, None) => {
            return Err(FfiError::arg(
                "give on_event, or set CODEX_OPEN_POLL to poll with codex_next_event",
            ))
        }
        (true, Some(_)) => {
            return Err(FfiError::arg(
                "CODEX_OPEN_POLL and on_event exclude each other",
            ))
        }
    };
    if matches!(mode, Mode::Poll) && o.on_closed.is_some() {
        return Err(FfiError::arg(
            "on_closed is for callback mode (poll mode: codex_next_event returns CLOSED)",
        ));
    }
    let capacity = match o.event_queue_cap {
        0 => DEFAULT_EVENT_CAPACITY,
        n if n > MAX_EVENT_CAPACITY => {
            return Err(FfiError::arg(format!(
                "event_queue_cap {n} is over {MAX_EVENT_CAPACITY}"
            )))
        }
        n => n,
    } as usize;
    // SAFETY (all below): forwarded caller promise about the string fields.
    let endpoint = unsafe { opt_str(o.endpoint, "endpoint") }?;
    let ws_token = unsafe { opt_str(o.ws_token, "ws_token") }?;
    let codex_home = unsafe { opt_str(o.codex_home, "codex_home") }?;
    let cwd = unsafe { opt_str(o.cwd, "cwd") }?;
    let worker_path = unsafe { opt_str(o.worker_path, "worker_path") }?;
    let client_name = unsafe { opt_str(o.client_name, "client_name") }?;
    let client_version = unsafe { opt_str(o.client_version, "client_version") }?;
    let endpoint = match endpoint.as_deref() {
        None | Some("embedded") => {
            let codex_home = match codex_home {
                Some(h) => PathBuf::from(h),
                None => codex_core::config::find_codex_home()
                    .map_err(|e| FfiError::InvalidConfig(e.to_string()))?,
            };
            let mut e = EmbeddedOptions::new(codex_home);
            e.worker_exe = worker_path.map(PathBuf::from);
            e.cwd = cwd.map(PathBuf::from);
            Endpoint::Embedded(e)
        }
        Some(s) if s.starts_with("unix://") => {
            let path = &s["unix://".len()..];
            if path.is_empty() {
                return Err(FfiError::arg("the unix:// endpoint has no path"));
            }
            Endpoint::Unix(PathBuf::from(path))
        }
        Some(s) if s.starts_with("ws://") => Endpoint::WebSocket {
            url: s.to_string(),
            token: ws_token,
        },
        Some(other) => {
            return Err(FfiError::arg(format!(
                "unknown endpoint {other:?}: use NULL or \"embedded\", \
                 \"unix:///path/to/codexd.sock\" or \"ws://host:port\""
            )))
        }
    };
    let mut ropts = RuntimeOptions::new(endpoint);
    ropts.client_info = ClientInfo {
        name: client_name.unwrap_or_else(|| "codex_ffi".into()),
        version: client_version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").into()),
        title: None,
    };
    ropts.experimental_api = o.flags & CODEX_OPEN_EXPERIMENTAL_API != 0;
    ropts.event_capacity = match mode {
        Mode::Callback(..) => capacity,
        Mode::Poll => POLL_CHANNEL,
    };
    Ok(Parsed {
        ropts,
        mode,
        capacity,
    })
}

/// A host that did not choose otherwise must not die of `SIGPIPE` when a
/// server or worker goes away mid-write.
fn ignore_default_sigpipe() {
    // SAFETY: sigaction only reads and writes the local struct given; the
    // disposition is changed only if it is the default.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_DFL
        {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
}

/// Opens a runtime: starts the library's threads (a 2-worker tokio
/// runtime and, unless `CODEX_OPEN_POLL`, the callback thread), connects to
/// the endpoint (or starts the embedded supervisor) and performs
/// `initialize` / `initialized` with `client_name` / `client_version`.
/// The `initialize` result is not an event: read it with
/// `codex_initialize_result`. The first event is whatever the server sends
/// after the handshake.
///
/// On success `*out` is the handle, valid until `codex_runtime_close`. The
/// callback is not called before `*out` is stored, so it may read the
/// variable `out` points to.
/// Errors: `INVALID_ARGUMENT` (null pointers, `struct_size` too small, bad
/// option), `INVALID_CONFIG` (embedded: the configuration), `WORKER_NOT_FOUND`,
/// `IO` (connect, handshake), `TIMEOUT`. On failure nothing is kept:
/// `free_userdata` is not called and `*out` is untouched.
///
/// Also: if `SIGPIPE` has its default disposition it is set to ignored (a
/// closed socket must not kill the host); the tokio runtime installs a
/// `SIGCHLD` handler to reap the worker processes it starts.
///
/// # Safety
/// `opts` must be null or point to `opts->struct_size` readable bytes laid
/// out as `codex_runtime_options`, with valid strings; `out` must be null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn codex_runtime_open(
    opts: *const codex_runtime_options,
    out: *mut *mut codex_runtime,
) -> CodexResult {
    ffi_boundary!({
        if opts.is_null() || out.is_null() {
            return fail(FfiError::arg("opts and out must not be null"));
        }
        // SAFETY: the caller promises `opts` is readable; `struct_size` is
        // its first field.
        let size = unsafe { *opts.cast::<u32>() } as usize;
        if size < std::mem::size_of::<codex_runtime_options>() {
            return fail(FfiError::arg(format!(
                "opts->struct_size is {size}; set it to sizeof(codex_runtime_options) ({})",
                std::mem::size_of::<codex_runtime_options>()
            )));
        }
        // SAFETY: at least a whole `codex_runtime_options` is readable.
        let o = unsafe { &*opts };
        // SAFETY: forwarded caller promise about the strings.
        match unsafe { open(o) } {
            Ok((handle, shared)) => {
                // SAFETY: `out` is writable (checked non-null above).
                unsafe { *out = handle };
                // Only now: the callback may read the host's handle.
                if let Delivery::Callback(t) = &shared.delivery {
                    t.start();
                }
                CodexResult::Ok
            }
            Err(e) => fail(e),
        }
    })
}

/// # Safety
/// As [`codex_runtime_open`]'s strings.
unsafe fn open(o: &codex_runtime_options) -> Result<(*mut codex_runtime, Arc<Shared>), FfiError> {
    // SAFETY: forwarded.
    let parsed = unsafe { parse_options(o) }?;
    ignore_default_sigpipe();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_name("codex-ffi")
        .enable_all()
        .build()
        .map_err(|e| FfiError::Io(format!("cannot start the library's threads: {e}")))?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let ropts = parsed.ropts;
    tokio.spawn(async move {
        let _ = tx.send(Runtime::open(ropts).await);
    });
    let opened = match rx.recv_timeout(OPEN_WAIT) {
        Ok(r) => r.map_err(FfiError::from),
        Err(_) => Err(FfiError::Timeout(format!(
            "the runtime did not open within {OPEN_WAIT:?}"
        ))),
    };
    let (rt, events) = match opened {
        Ok(v) => v,
        Err(e) => {
            tokio.shutdown_timeout(SHUTDOWN_GRACE);
            return Err(e);
        }
    };
    let delivery = match parsed.mode {
        Mode::Callback(f, closed, userdata) => CallbackThread::spawn(events, f, closed, userdata)
            .map(Delivery::Callback)
            .map_err(|e| FfiError::Io(format!("cannot start the callback thread: {e}"))),
        Mode::Poll => match PollQueue::new(parsed.capacity) {
            Ok(q) => {
                let q = Arc::new(q);
                tokio.spawn(delivery::pump(events, q.clone()));
                Ok(Delivery::Poll(q))
            }
            Err(e) => Err(FfiError::Io(format!("cannot create the event fd: {e}"))),
        },
    };
    let delivery = match delivery {
        Ok(d) => d,
        Err(e) => {
            shut_down(&rt, tokio, Duration::ZERO);
            return Err(e);
        }
    };
    let shared = Arc::new(Shared {
        initialize_result: rt.server_info.to_string(),
        rt,
        tokio: Mutex::new(Some(tokio)),
        delivery,
        next_auto_id: AtomicI64::new(CODEX_FIRST_AUTO_ID),
        userdata: Mutex::new(Some(Userdata::new(o.userdata, o.free_userdata))),
    });
    match RUNTIMES.insert(shared.clone()) {
        Ok(h) => Ok((h, shared)),
        Err(e) => {
            // Undo without calling the host's destructor: the caller keeps
            // its userdata on failure.
            lock(&shared.userdata).take();
            teardown(&shared, Duration::ZERO);
            Err(e)
        }
    }
}

/// Closes `rt`'s connection (an embedded supervisor stops its workers within
/// `grace`), then stops the library's tokio runtime.
fn shut_down(rt: &Runtime, tokio: tokio::runtime::Runtime, grace: Duration) {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let r = rt.clone();
    tokio.spawn(async move {
        r.close(grace).await;
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(grace + CLOSE_MARGIN);
    tokio.shutdown_timeout(SHUTDOWN_GRACE);
}

/// Stops delivery, the connection, the threads; joins the callback thread.
fn teardown(shared: &Shared, grace: Duration) {
    match &shared.delivery {
        Delivery::Callback(t) => t.stop(),
        Delivery::Poll(q) => q.end(),
    }
    let tokio = lock(&shared.tokio).take();
    if let Some(tokio) = tokio {
        shut_down(&shared.rt, tokio, grace);
    }
    if let Delivery::Callback(t) = &shared.delivery {
        // The event channel's sender died with the tokio runtime, so the
        // thread ends as soon as a running callback returns.
        t.join();
    }
}

/// The result of `initialize` (JSON, e.g. `{"userAgent": ...}`), copied
/// NUL-terminated into `buf`; `*len_out` is its length without the NUL.
/// `BUFFER_TOO_SMALL`: nothing was written; `*len_out` is the length (the
/// buffer needs one more byte). `buf` may be NULL when `cap` is 0.
///
/// # Safety
/// `buf` must be null or point to `cap` writable bytes; `len_out` must point
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn codex_initialize_result(
    rt: *mut codex_runtime,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> CodexResult {
    ffi_boundary!({
        finish(RUNTIMES.get(rt).and_then(|shared| {
            // SAFETY: forwarded caller promise about `buf`/`len_out`.
            unsafe { copy_out(shared.initialize_result.as_bytes(), buf, cap, len_out) }
        }))
    })
}

/// Copies `text` plus a NUL into `buf` if it fits; reports its length.
///
/// # Safety
/// `buf` must be null or point to `cap` writable bytes; `len_out` must be
/// null or writable.
unsafe fn copy_out(
    text: &[u8],
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> Result<(), FfiError> {
    if len_out.is_null() {
        return Err(FfiError::arg("len_out is null"));
    }
    if buf.is_null() && cap > 0 {
        return Err(FfiError::arg("buf is null but cap is not 0"));
    }
    // SAFETY: `len_out` is non-null and the caller promises it is writable.
    unsafe { *len_out = text.len() };
    if text.len() >= cap {
        return Err(FfiError::BufferTooSmall(format!(
            "the output is {} bytes; the buffer holds {cap} (it needs {} with the NUL)",
            text.len(),
            text.len() + 1
        )));
    }
    // SAFETY: `text.len() + 1 <= cap` bytes are writable at `buf`.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}

/// Sends any client message: `len` bytes of UTF-8 JSON at `json` (no NUL
/// needed), one JSON-RPC object without the "jsonrpc" member: a request
/// (`"method"` and `"id"`), a notification (`"method"`, no `"id"`), or a
/// response to a server request (`"id"` with `"result"` or `"error"`; see
/// also `codex_respond`).
///
/// A message with `"method"` and no `"id"` is a request when
/// `request_id_out` is not NULL: the library assigns the id (counting down
/// from `CODEX_FIRST_AUTO_ID`), adds it, and writes it to
/// `*request_id_out`; with NULL it is sent as a notification. A message
/// with its own integer `"id"` has it written to `*request_id_out` (when
/// not NULL; a string id leaves it untouched). The id is written before the
/// message is queued: a host whose callback matches answers to ids holds
/// its own lock across `codex_send` and takes it in the callback.
///
/// The answer to a request arrives as an event (a response or an error
/// response with that id): an unknown method is an error response from the
/// server, not a result code here. Never blocks: `QUEUE_FULL` when too much
/// is queued for the server (nothing was sent), `CLOSED` after close or
/// once the server ended the connection, `INVALID_ARGUMENT` for a null or
/// empty message, invalid UTF-8 or JSON, or a JSON value that is not such
/// a message. May be called from any thread, including the callback.
///
/// # Safety
/// `json` must be null or point to `len` readable bytes; `request_id_out`
/// must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn codex_send(
    rt: *mut codex_runtime,
    json: *const c_char,
    len: usize,
    request_id_out: *mut i64,
) -> CodexResult {
    ffi_boundary!({
        // SAFETY: forwarded caller promises.
        finish(unsafe { send(rt, json, len, request_id_out) })
    })
}

/// # Safety
/// As [`codex_send`].
unsafe fn send(
    rt: *mut codex_runtime,
    json: *const c_char,
    len: usize,
    request_id_out: *mut i64,
) -> Result<(), FfiError> {
    let shared = RUNTIMES.get(rt)?;
    if json.is_null() {
        return Err(FfiError::arg("the message is null"));
    }
    if len == 0 {
        return Err(FfiError::arg("the message is empty (len is 0)"));
    }
    // SAFETY: the caller promises `len` readable bytes at `json`.
    let bytes = unsafe { std::slice::from_raw_parts(json.cast::<u8>(), len) };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| FfiError::arg(format!("the message is not UTF-8: {e}")))?;
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| FfiError::arg(format!("the message is not valid JSON: {e}")))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(FfiError::arg("the message is not a JSON object"));
    };
    let has_method = match obj.get("method") {
        None => false,
        Some(Value::String(_)) => true,
        Some(_) => return Err(FfiError::arg("\"method\" must be a string")),
    };
    let own_id = match obj.get("id") {
        None => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(Value::String(_)) => None,
        Some(_) => {
            return Err(FfiError::arg(
                "\"id\" must be an integer (in the int64 range) or a string",
            ))
        }
    };
    let has_id = obj.contains_key("id");
    if !has_method && !(has_id && (obj.contains_key("result") || obj.contains_key("error"))) {
        return Err(FfiError::arg(
            "not a JSON-RPC message: neither a request or notification (\"method\") \
             nor a response (\"id\" with \"result\" or \"error\")",
        ));
    }
    let id = if has_method && !has_id && !request_id_out.is_null() {
        let id = shared.next_auto_id.fetch_sub(1, Ordering::Relaxed);
        obj.insert("id".into(), Value::from(id));
        Some(id)
    } else {
        own_id
    };
    // Written before the message is queued, so that a callback seeing the
    // answer can already know the id (given the host's own locking).
    if let (Some(id), false) = (id, request_id_out.is_null()) {
        // SAFETY: non-null, and the caller promises it is writable.
        unsafe { *request_id_out = id };
    }
    Ok(shared.rt.send_line(&value.to_string())?)
}

/// Answers a server request (an approval such as
/// `item/commandExecution/requestApproval`): `id_json` is the request's
/// `"id"` as JSON (e.g. `0` or `"abc"`), `result_json` the result (e.g.
/// `{"decision":"accept"}`). To answer with an error, send
/// `{"id":..,"error":{..}}` with `codex_send`. Never blocks; errors as for
/// `codex_send`. May be called from any thread, including the callback.
///
/// # Safety
/// `id_json` and `result_json` must be null or valid NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn codex_respond(
    rt: *mut codex_runtime,
    id_json: *const c_char,
    result_json: *const c_char,
) -> CodexResult {
    ffi_boundary!({
        // SAFETY: forwarded caller promise about the strings.
        finish(unsafe { respond(rt, id_json, result_json) })
    })
}

/// # Safety
/// As [`codex_respond`].
unsafe fn respond(
    rt: *mut codex_runtime,
    id_json: *const c_char,
    result_json: *const c_char,
) -> Result<(), FfiError> {
    let shared = RUNTIMES.get(rt)?;
    // SAFETY: forwarded caller promise about the strings.
    let (id, result) = unsafe {
        (
            req_str(id_json, "id_json")?,
            req_str(result_json, "result_json")?,
        )
    };
    let id: RequestId = serde_json::from_str(id.trim()).map_err(|_| {
        FfiError::arg(format!(
            "id_json {id:?} is not a JSON integer or string (the server request's \"id\")"
        ))
    })?;
    let result: Value = serde_json::from_str(result)
        .map_err(|e| FfiError::arg(format!("result_json is not valid JSON: {e}")))?;
    Ok(shared.rt.respond(&id, result)?)
}

/// Poll mode (`CODEX_OPEN_POLL`): takes the next event (one JSON-RPC
/// message, as for the callback), copies it NUL-terminated into `buf` and
/// sets `*len_out` to its length without the NUL.
///
/// Waits up to `timeout_ms` for one (0: do not wait; negative: no limit):
/// `TIMEOUT` when none came. `BUFFER_TOO_SMALL`: the event stays queued,
/// nothing was written, `*len_out` is its length (the buffer needs one more
/// byte); `buf` may be NULL when `cap` is 0. `CLOSED` once the runtime is
/// closed (a waiting call returns when another thread closes it) or the
/// server ended the connection and every queued event was taken.
/// `INVALID_STATE` on a runtime opened with a callback. Any thread may
/// call it; concurrent callers each get different events.
///
/// # Safety
/// `buf` must be null or point to `cap` writable bytes; `len_out` must point
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn codex_next_event(
    rt: *mut codex_runtime,
    timeout_ms: i32,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> CodexResult {
    ffi_boundary!({
        // SAFETY: forwarded caller promise about `buf`/`len_out`.
        finish(unsafe { next_event(rt, timeout_ms, buf, cap, len_out) })
    })
}

/// # Safety
/// As [`codex_next_event`].
unsafe fn next_event(
    rt: *mut codex_runtime,
    timeout_ms: i32,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> Result<(), FfiError> {
    let shared = RUNTIMES.get(rt)?;
    let Delivery::Poll(q) = &shared.delivery else {
        return Err(FfiError::InvalidState(
            "codex_next_event needs a runtime opened with CODEX_OPEN_POLL \
             (this one delivers events to its callback)"
                .into(),
        ));
    };
    if len_out.is_null() {
        return Err(FfiError::arg("len_out is null"));
    }
    if buf.is_null() && cap > 0 {
        return Err(FfiError::arg("buf is null but cap is not 0"));
    }
    let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
    match q.next(timeout, cap)? {
        Next::Message(m) => {
            // SAFETY: `m` (with its NUL) fits the `cap` writable
            // bytes at `buf`; `len_out` is writable.
            unsafe {
                std::ptr::copy_nonoverlapping(m.as_ptr(), buf.cast::<u8>(), m.len());
                *len_out = m.len() - 1;
            }
            Ok(())
        }
        Next::TooSmall(n) => {
            // SAFETY: `len_out` is writable.
            unsafe { *len_out = n };
            Err(FfiError::BufferTooSmall(format!(
                "the next event is {n} bytes; the buffer holds {cap} (it needs {} with the NUL)",
                n + 1
            )))
        }
    }
}

/// Poll mode: a descriptor that is readable while events are queued (and
/// once the connection has ended), for epoll/kqueue/poll, a
/// `DispatchSource` or a `CFFileDescriptor`. Only wait for readability on
/// it: never read, write or close it. It stays open until
/// `codex_runtime_close` (remove it from your event loop before that).
/// -1 (and the last error set) for a bad or closed handle or a runtime
/// opened with a callback.
/// (Safe to call with any value: the handle is never dereferenced.)
#[no_mangle]
pub extern "C" fn codex_event_fd(rt: *mut codex_runtime) -> c_int {
    ffi_boundary!(-1, {
        let shared = match RUNTIMES.get(rt) {
            Ok(s) => s,
            Err(e) => {
                fail(e);
                return -1;
            }
        };
        match &shared.delivery {
            Delivery::Poll(q) => q.fd(),
            Delivery::Callback(_) => {
                fail(FfiError::InvalidState(
                    "codex_event_fd needs a runtime opened with CODEX_OPEN_POLL".into(),
                ));
                -1
            }
        }
    })
}

/// Closes the runtime: no callback starts after this call began, the
/// connection is closed (what is still queued for the server may be
/// dropped), an embedded supervisor stops its workers (gracefully, within
/// `timeout_ms`; 0: do not wait for them), the library's threads stop, a
/// callback that is running is waited for (however long it takes), then
/// `free_userdata` is called exactly once, and the handle is freed. Waiting
/// `codex_next_event` calls return `CLOSED`.
///
/// `INVALID_STATE` when called from the callback thread (it would wait for
/// itself; nothing was done: close from another thread). `CLOSED` when the
/// handle was already closed (a second close is harmless).
/// (Safe to call with any value: the handle is never dereferenced.)
#[no_mangle]
pub extern "C" fn codex_runtime_close(rt: *mut codex_runtime, timeout_ms: u32) -> CodexResult {
    ffi_boundary!({ finish(close(rt, timeout_ms)) })
}

fn close(rt: *mut codex_runtime, timeout_ms: u32) -> Result<(), FfiError> {
    let shared = RUNTIMES.get(rt)?;
    if let Delivery::Callback(t) = &shared.delivery {
        if t.is_current() {
            return Err(FfiError::InvalidState(
                "codex_runtime_close was called from the event callback; \
                 close the runtime from another thread"
                    .into(),
            ));
        }
    }
    drop(shared);
    // Only one of several concurrent closes gets it.
    let shared = RUNTIMES.remove(rt)?;
    teardown(&shared, Duration::from_millis(timeout_ms.into()));
    let userdata = lock(&shared.userdata).take();
    if let Some(u) = userdata {
        u.release();
    }
    Ok(())
}
