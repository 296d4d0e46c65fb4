//! The OS keyring store (Secret Service on Linux, Keychain on macOS), with
//! upstream's entry: service `Codex Auth`, account `cli|` + the first 16 hex
//! digits of the SHA-256 of the canonical `$CODEX_HOME`, value the whole
//! `auth.json` document (compact JSON). After a keyring save the file copy
//! is removed, as upstream does.
//!
//! `auto` ([`AutoStore`]) reads the keyring first and then the file, and
//! saves to the keyring, falling back to the file when the keyring fails.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::store::{CredentialStore, FileStore};
use super::{AuthDotJson, AuthError};

pub const SERVICE: &str = "Codex Auth";

/// The keyring account of a `$CODEX_HOME`.
pub fn account_for(codex_home: &Path) -> String {
    let canonical = std::fs::canonicalize(codex_home).unwrap_or_else(|_| codex_home.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cli|{}", &hex[..16])
}

/// Runs `f` on a thread of its own: the Secret Service client blocks on a
/// runtime of its own, which must not nest inside ours.
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn isolated<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, AuthError> {
    std::thread::scope(|s| s.spawn(f).join())
        .map_err(|_| AuthError::Store("OS keyring: the keyring client panicked".into()))
}

fn kerr(e: impl std::fmt::Display) -> AuthError {
    AuthError::Store(format!("OS keyring: {e}"))
}

/// The keyring.
#[derive(Debug)]
pub struct KeyringStore {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    entry: keyring::Entry,
    file: FileStore,
}

impl KeyringStore {
    /// Connects to the OS keyring; an error if there is none (no Secret
    /// Service on the session bus, no session bus, ...).
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    pub fn probe(codex_home: &Path) -> Result<Self, AuthError> {
        let entry = keyring::Entry::new(SERVICE, &account_for(codex_home)).map_err(kerr)?;
        match isolated(|| entry.get_password())? {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(Self {
                entry,
                file: FileStore::new(codex_home),
            }),
            Err(e) => Err(kerr(e)),
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    pub fn probe(_codex_home: &Path) -> Result<Self, AuthError> {
        Err(kerr("not supported on this platform"))
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
impl CredentialStore for KeyringStore {
    fn name(&self) -> &'static str {
        "keyring"
    }

    fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        match isolated(|| self.entry.get_password())? {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| kerr(format!("unreadable entry: {e}"))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(kerr(e)),
        }
    }

    fn save(&self, auth: &AuthDotJson) -> Result<(), AuthError> {
        let text = serde_json::to_string(auth).map_err(kerr)?;
        isolated(|| self.entry.set_password(&text))?.map_err(kerr)?;
        // One copy only: the keyring's.
        self.file.delete()
    }

    fn delete(&self) -> Result<(), AuthError> {
        match isolated(|| self.entry.delete_credential())? {
            Ok(()) | Err(keyring::Error::NoEntry) => {}
            Err(e) => return Err(kerr(e)),
        }
        self.file.delete()
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
impl CredentialStore for KeyringStore {
    fn name(&self) -> &'static str {
        "keyring"
    }
    fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        Err(kerr("not supported on this platform"))
    }
    fn save(&self, _auth: &AuthDotJson) -> Result<(), AuthError> {
        Err(kerr("not supported on this platform"))
    }
    fn delete(&self) -> Result<(), AuthError> {
        self.file.delete()
    }
}

/// `auto`: the keyring first, the file as the fallback.
#[derive(Debug)]
pub struct AutoStore {
    pub keyring: KeyringStore,
    pub file: FileStore,
}

impl CredentialStore for AutoStore {
    fn name(&self) -> &'static str {
        "auto (keyring)"
    }

    fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        match self.keyring.load() {
            Ok(Some(a)) => Ok(Some(a)),
            Ok(None) => self.file.load(),
            Err(e) => {
                tracing::warn!("{e}; reading the file instead");
                self.file.load()
            }
        }
    }

    fn save(&self, auth: &AuthDotJson) -> Result<(), AuthError> {
        match self.keyring.save(auth) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!("failed to save auth to keyring, falling back to file storage: {e}");
                self.file.save(auth)
            }
        }
    }

    fn delete(&self) -> Result<(), AuthError> {
        let k = self.keyring.delete();
        self.file.delete()?;
        k
    }
}

/// A store that cannot be used (`keyring` mode without a keyring): every
/// operation reports why.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl CredentialStore for Unavailable {
    fn name(&self) -> &'static str {
        "keyring"
    }
    fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        Err(AuthError::Store(self.0.clone()))
    }
    fn save(&self, _auth: &AuthDotJson) -> Result<(), AuthError> {
        Err(AuthError::Store(self.0.clone()))
    }
    fn delete(&self) -> Result<(), AuthError> {
        Err(AuthError::Store(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_stable_and_short() {
        let dir = tempfile::tempdir().unwrap();
        let a = account_for(dir.path());
        assert!(a.starts_with("cli|"));
        assert_eq!(a.len(), 4 + 16);
        assert_eq!(a, account_for(dir.path()));
    }
}
