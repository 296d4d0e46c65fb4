//! C ABI over the codex runtime ([`codex_daemon::runtime`]).
//!
//! Shape (after rustls-ffi): every entry point returns a [`CodexResult`] (or
//! a value that cannot fail), takes and gives opaque handles, records the
//! text of its failure for [`codex_last_error`], and runs inside
//! [`ffi_boundary!`] so a Rust panic becomes `CODEX_RESULT_PANIC` instead of
//! unwinding into C.
//!
//! Messages are app-server JSON-RPC as UTF-8 JSON, in and out: the
//! app-server schema is the contract, exactly as for a socket client, and
//! the embedded supervisor and a running `codexd` differ only in how the
//! runtime is opened.
//!
//! - `runtime.rs`: `codex_runtime_open` / `codex_send` / `codex_respond` /
//!   `codex_next_event` / `codex_event_fd` / `codex_runtime_close`.
//! - `handle.rs`: handles are tokens in a registry, never addresses, so a
//!   stale or closed handle is an error code, not a use-after-free.
//! - `delivery.rs`: the callback thread, the poll queue and its wakeup fd.
//! - `error.rs`: result codes and the thread-local last error.
//!
//! The header `include/codex.h` is generated from this crate by cbindgen
//! (`cbindgen.toml`); `tests/header.rs` fails when it is stale, and
//! `CODEX_FFI_REGENERATE=1 cargo test -p codex-ffi --test header` rewrites
//! it.

use std::ffi::{c_char, CStr};
use std::path::PathBuf;

/// Runs `body`, converting a panic into `on_panic` (by default
/// [`CodexResult::Panic`]) and recording it for [`codex_last_error`].
macro_rules! ffi_boundary {
    ($body:block) => {
        ffi_boundary!($crate::CodexResult::Panic, $body)
    };
    ($on_panic:expr, $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(r) => r,
            Err(payload) => {
                $crate::error::record_panic(payload.as_ref());
                $on_panic
            }
        }
    }};
}

mod delivery;
mod error;
mod handle;
mod runtime;

pub use error::{codex_last_error, CodexResult};
pub use runtime::*;

static VERSION: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// The library version as a static NUL-terminated string (never freed).
#[no_mangle]
pub extern "C" fn codex_version() -> *const c_char {
    ffi_boundary!(std::ptr::null(), { VERSION.as_ptr().cast() })
}

/// Validates the configuration of `codex_home` (`config.toml` with its
/// profiles). On `CODEX_RESULT_INVALID_CONFIG` a NUL-terminated message is
/// written to `msg` (at most `msg_len` bytes including the NUL); when it
/// does not fit, it is truncated and the result is
/// `CODEX_RESULT_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `codex_home` must be a valid NUL-terminated string; `msg` must be null or
/// point to `msg_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn codex_config_check(
    codex_home: *const c_char,
    msg: *mut c_char,
    msg_len: usize,
) -> CodexResult {
    ffi_boundary!({
        if codex_home.is_null() {
            return error::fail(error::FfiError::InvalidArgument(
                "codex_home is null".into(),
            ));
        }
        // SAFETY: the caller promises a valid NUL-terminated string.
        let home = match unsafe { CStr::from_ptr(codex_home) }.to_str() {
            Ok(s) => PathBuf::from(s),
            Err(_) => {
                return error::fail(error::FfiError::InvalidArgument(
                    "codex_home is not UTF-8".into(),
                ))
            }
        };
        let result = codex_core::config::Config::load(codex_core::config::LoadOptions {
            codex_home: Some(home.clone()),
            cli_overrides: Vec::new(),
            overrides: codex_core::config::ConfigOverrides {
                cwd: Some(home),
                ..Default::default()
            },
        });
        match result {
            Ok(_) => CodexResult::Ok,
            Err(e) => {
                let text = e.to_string();
                // SAFETY: forwarded caller promise about `msg`/`msg_len`.
                let fits = unsafe { write_message(msg, msg_len, &text) };
                error::set_last_error(&text);
                if fits {
                    CodexResult::InvalidConfig
                } else {
                    CodexResult::BufferTooSmall
                }
            }
        }
    })
}

/// Copies `text` NUL-terminated into `buf` (truncated to fit); returns
/// whether all of it fit.
///
/// # Safety
/// `buf` must be null or point to `len` writable bytes.
unsafe fn write_message(buf: *mut c_char, len: usize, text: &str) -> bool {
    if buf.is_null() || len == 0 {
        return text.is_empty();
    }
    let bytes = text.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: `n < len` and the caller guarantees `len` writable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    n == bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn version_is_a_c_string() {
        // SAFETY: codex_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(codex_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn config_check_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let home = CString::new(dir.path().to_str().unwrap()).unwrap();
        let mut buf = vec![0 as c_char; 512];
        // SAFETY: valid string and buffer.
        let ok = unsafe { codex_config_check(home.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        assert_eq!(ok, CodexResult::Ok);
        std::fs::write(dir.path().join("config.toml"), "sandbox_mode = 3\n").unwrap();
        // SAFETY: as above.
        let bad = unsafe { codex_config_check(home.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        assert_eq!(bad, CodexResult::InvalidConfig);
        // SAFETY: the function NUL-terminated the buffer.
        let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
        assert!(msg.contains("sandbox_mode"), "{msg}");
        // SAFETY: null pointer is rejected, not dereferenced.
        let null = unsafe { codex_config_check(std::ptr::null(), buf.as_mut_ptr(), buf.len()) };
        assert_eq!(null, CodexResult::InvalidArgument);
        let mut tiny = vec![0 as c_char; 4];
        // SAFETY: valid string and buffer.
        let small = unsafe { codex_config_check(home.as_ptr(), tiny.as_mut_ptr(), tiny.len()) };
        assert_eq!(small, CodexResult::BufferTooSmall);
    }

    #[test]
    fn a_panic_becomes_a_result_code_and_a_message() {
        fn boom() -> CodexResult {
            ffi_boundary!({
                if std::hint::black_box(true) {
                    panic!("deliberate");
                }
                CodexResult::Ok
            })
        }
        assert_eq!(boom(), CodexResult::Panic);
        assert!(error::last_error_text().contains("deliberate"));
        let n: i32 = ffi_boundary!(-1, {
            if std::hint::black_box(true) {
                panic!("again");
            }
            0
        });
        assert_eq!(n, -1);
    }
}
