//! Handles: tokens in a registry, never addresses.
//!
//! A `codex_runtime *` the library hands out is `id << 4` for an id that is
//! never reused; the library never dereferences it. Every call looks the id
//! up: a live runtime is found (and kept alive by an `Arc` for the call's
//! duration, even if another thread closes it meanwhile); an id that was
//! issued but is gone is `CODEX_RESULT_CLOSED`; anything else is
//! `CODEX_RESULT_INVALID_ARGUMENT`. Double close, calls after close and
//! made-up handles are therefore detected, never a use-after-free.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::FfiError;

/// The opaque runtime type of the C API; only pointers to it exist, and
/// they are tokens, not addresses.
#[allow(non_camel_case_types)]
pub struct codex_runtime {
    _private: [u8; 0],
}

/// Low bits that are zero in every handle.
const TAG_BITS: u32 = 4;

pub(crate) struct Registry<T> {
    inner: Mutex<Slots<T>>,
}

struct Slots<T> {
    /// The next id to hand out (ids start at 1, so no handle is null).
    next: u64,
    live: BTreeMap<u64, Arc<T>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new() -> Self {
        Self {
            inner: Mutex::new(Slots {
                next: 1,
                live: BTreeMap::new(),
            }),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots<T>> {
        // A panic while the lock was held cannot leave the map inconsistent
        // (each operation is one insert, lookup or remove).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `value`; returns its handle.
    pub(crate) fn insert(&self, value: Arc<T>) -> Result<*mut codex_runtime, FfiError> {
        let mut s = self.slots();
        let id = s.next;
        let limit = (usize::MAX >> TAG_BITS) as u64;
        if id >= limit {
            return Err(FfiError::Io("no more runtime handles".into()));
        }
        s.next += 1;
        s.live.insert(id, value);
        Ok(((id as usize) << TAG_BITS) as *mut codex_runtime)
    }

    fn id_of(&self, handle: *const codex_runtime) -> Result<u64, FfiError> {
        if handle.is_null() {
            return Err(FfiError::arg("the runtime handle is null"));
        }
        let raw = handle as usize;
        let id = (raw >> TAG_BITS) as u64;
        let issued = self.slots().next;
        if raw & ((1 << TAG_BITS) - 1) != 0 || id == 0 || id >= issued {
            return Err(FfiError::arg(
                "not a runtime handle (never returned by codex_runtime_open)",
            ));
        }
        Ok(id)
    }

    /// The live value behind `handle`.
    pub(crate) fn get(&self, handle: *const codex_runtime) -> Result<Arc<T>, FfiError> {
        let id = self.id_of(handle)?;
        self.slots()
            .live
            .get(&id)
            .cloned()
            .ok_or_else(FfiError::closed)
    }

    /// Unregisters `handle`; only one caller ever gets its value back.
    pub(crate) fn remove(&self, handle: *const codex_runtime) -> Result<Arc<T>, FfiError> {
        let id = self.id_of(handle)?;
        self.slots().live.remove(&id).ok_or_else(FfiError::closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodexResult;

    #[test]
    fn stale_made_up_and_null_handles_are_errors() {
        let r: Registry<u32> = Registry::new();
        let a = r.insert(Arc::new(7)).unwrap();
        assert!(!a.is_null());
        assert_eq!(*r.get(a).unwrap(), 7);
        assert_eq!(*r.remove(a).unwrap(), 7);
        assert_eq!(r.get(a).unwrap_err().code(), CodexResult::Closed);
        assert_eq!(r.remove(a).unwrap_err().code(), CodexResult::Closed);
        let b = r.insert(Arc::new(8)).unwrap();
        assert_ne!(a, b, "ids are never reused");
        let null = std::ptr::null_mut();
        assert_eq!(
            r.get(null).unwrap_err().code(),
            CodexResult::InvalidArgument
        );
        let odd = (b as usize + 1) as *mut codex_runtime;
        assert_eq!(r.get(odd).unwrap_err().code(), CodexResult::InvalidArgument);
        let future = (b as usize + (1 << TAG_BITS)) as *mut codex_runtime;
        assert_eq!(
            r.get(future).unwrap_err().code(),
            CodexResult::InvalidArgument
        );
    }
}
