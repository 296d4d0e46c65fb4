//! C ABI over `codex-core`.
//!
//! Shape (after rustls-ffi): every entry point returns a [`CodexResult`] (or
//! a value that cannot fail), takes and gives opaque handles, and runs inside
//! [`ffi_boundary!`] so a Rust panic becomes `CODEX_RESULT_PANIC` instead of
//! unwinding into C. The header is `include/codex.h`.
//!
//! Today the surface is small: the library version and config validation.

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Result codes of every fallible entry point.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodexResult {
    Ok = 0,
    /// A required pointer was null or a string was not UTF-8.
    InvalidArgument = 1,
    /// The configuration is invalid; the message buffer says why.
    InvalidConfig = 2,
    /// The message did not fit the caller's buffer (it was truncated).
    BufferTooSmall = 3,
    /// A bug: Rust panicked inside the call.
    Panic = 100,
}

/// Runs `body`, converting a panic into [`CodexResult::Panic`].
macro_rules! ffi_boundary {
    ($body:block) => {{
        match catch_unwind(AssertUnwindSafe(|| $body)) {
            Ok(r) => r,
            Err(_) => CodexResult::Panic,
        }
    }};
}

static VERSION: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// The library version as a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn codex_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// Validates the configuration of `codex_home` (`config.toml` with its
/// profiles). On `CODEX_RESULT_INVALID_CONFIG` a NUL-terminated message is
/// written to `msg` (at most `msg_len` bytes including the NUL).
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
            return CodexResult::InvalidArgument;
        }
        // SAFETY: the caller promises a valid NUL-terminated string.
        let home = match unsafe { CStr::from_ptr(codex_home) }.to_str() {
            Ok(s) => PathBuf::from(s),
            Err(_) => return CodexResult::InvalidArgument,
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
                // SAFETY: forwarded caller promise about `msg`/`msg_len`.
                let fits = unsafe { write_message(msg, msg_len, &e.to_string()) };
                if fits {
                    CodexResult::InvalidConfig
                } else {
                    CodexResult::BufferTooSmall
                }
            }
        }
    })
}

/// Copies `text` NUL-terminated into `buf`; returns whether it fit.
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
}
