//! Result codes and the thread-local text of the last failure.

use std::cell::RefCell;
use std::ffi::c_char;

/// Result codes of every fallible entry point. Every code but
/// `CODEX_RESULT_OK` also sets the calling thread's last error
/// (`codex_last_error`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodexResult {
    Ok = 0,
    /// A required pointer was null, a string was not UTF-8 or not valid
    /// JSON, a message was not a JSON-RPC message, an option was out of
    /// range, or the handle was never returned by `codex_runtime_open`.
    InvalidArgument = 1,
    /// The configuration is invalid; the message says why.
    InvalidConfig = 2,
    /// The output did not fit the caller's buffer (see each function for
    /// what was written and how the needed size is reported).
    BufferTooSmall = 3,
    /// The runtime was closed (by `codex_runtime_close`, or the server ended
    /// the connection).
    Closed = 4,
    /// Nothing happened within the time given.
    Timeout = 5,
    /// Too many messages are queued for the server; retry later. Nothing was
    /// sent.
    QueueFull = 6,
    /// Connecting, the `initialize` handshake or starting the library's
    /// threads failed.
    Io = 7,
    /// The call is not allowed here: `codex_runtime_close` from the event
    /// callback, `codex_next_event` on a runtime opened with a callback.
    InvalidState = 8,
    /// The `codex` binary that runs workers was not found (embedded mode).
    WorkerNotFound = 9,
    /// A bug: Rust panicked inside the call.
    Panic = 100,
}

/// A failure of an entry point: its result code and its text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FfiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    BufferTooSmall(String),
    #[error("{0}")]
    Closed(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    QueueFull(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    WorkerNotFound(String),
}

impl FfiError {
    pub(crate) fn code(&self) -> CodexResult {
        match self {
            FfiError::InvalidArgument(_) => CodexResult::InvalidArgument,
            FfiError::InvalidConfig(_) => CodexResult::InvalidConfig,
            FfiError::BufferTooSmall(_) => CodexResult::BufferTooSmall,
            FfiError::Closed(_) => CodexResult::Closed,
            FfiError::Timeout(_) => CodexResult::Timeout,
            FfiError::QueueFull(_) => CodexResult::QueueFull,
            FfiError::Io(_) => CodexResult::Io,
            FfiError::InvalidState(_) => CodexResult::InvalidState,
            FfiError::WorkerNotFound(_) => CodexResult::WorkerNotFound,
        }
    }

    pub(crate) fn closed() -> Self {
        FfiError::Closed("the runtime is closed".into())
    }

    pub(crate) fn arg(text: impl Into<String>) -> Self {
        FfiError::InvalidArgument(text.into())
    }
}

impl From<codex_ipc::app_server::connection::ConnectionError> for FfiError {
    fn from(e: codex_ipc::app_server::connection::ConnectionError) -> Self {
        use codex_ipc::app_server::connection::ConnectionError as E;
        let text = e.to_string();
        match e {
            E::Closed => FfiError::Closed(text),
            E::Full => FfiError::QueueFull(text),
            E::Invalid(_) => FfiError::InvalidArgument(text),
            E::Timeout { .. } => FfiError::Timeout(text),
            E::Rpc { .. } | E::Connect { .. } => FfiError::Io(text),
        }
    }
}

impl From<codex_daemon::runtime::RuntimeError> for FfiError {
    fn from(e: codex_daemon::runtime::RuntimeError) -> Self {
        use codex_daemon::runtime::RuntimeError as E;
        match e {
            E::Connection(c) => c.into(),
            E::Embedded(text) => {
                FfiError::InvalidConfig(format!("cannot start the embedded supervisor: {text}"))
            }
            E::WorkerNotFound(text) => FfiError::WorkerNotFound(text),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(text: &str) {
    LAST_ERROR.with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.clear();
            e.push_str(text);
        }
    });
}

pub(crate) fn last_error_text() -> String {
    LAST_ERROR.with(|e| e.try_borrow().map(|e| e.clone()).unwrap_or_default())
}

/// Records `e` as the last error and returns its code.
pub(crate) fn fail(e: FfiError) -> CodexResult {
    set_last_error(&e.to_string());
    e.code()
}

/// The code of `r`, recording a failure.
pub(crate) fn finish(r: Result<(), FfiError>) -> CodexResult {
    match r {
        Ok(()) => CodexResult::Ok,
        Err(e) => fail(e),
    }
}

pub(crate) fn record_panic(payload: &(dyn std::any::Any + Send)) {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    set_last_error(&format!("internal error (a bug): {what}"));
}

/// Copies the calling thread's last error text, NUL-terminated, into `buf`
/// and sets `*len_out` (when not null) to its length without the NUL. The
/// text is empty when nothing failed on this thread yet; it is set by every
/// call that returns other than `CODEX_RESULT_OK` (this one excepted) and
/// is not cleared by calls that succeed.
///
/// `CODEX_RESULT_BUFFER_TOO_SMALL`: the text was truncated to `cap - 1`
/// bytes (and NUL-terminated when `cap > 0`); `*len_out` is its full length.
/// `buf` may be null when `cap` is 0 (to ask for the length).
///
/// # Safety
/// `buf` must be null or point to `cap` writable bytes; `len_out` must be
/// null or point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn codex_last_error(
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> CodexResult {
    ffi_boundary!({
        if buf.is_null() && cap > 0 {
            return CodexResult::InvalidArgument;
        }
        let text = last_error_text();
        if !len_out.is_null() {
            // SAFETY: the caller promises a writable size_t.
            unsafe { *len_out = text.len() };
        }
        // SAFETY: the caller promises `cap` writable bytes at `buf`.
        let fits = unsafe { crate::write_message(buf, cap, &text) };
        if fits {
            CodexResult::Ok
        } else {
            CodexResult::BufferTooSmall
        }
    })
}
