//! Where credentials live: `$CODEX_HOME/auth.json` (written atomically,
//! mode 0600), and the lock that serializes refreshes across processes.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{AuthDotJson, AuthError};

pub const AUTH_FILE: &str = "auth.json";
/// Held (flock) while a refresh runs. Upstream takes the same lock (blocking)
/// around its own saves, so a refresh here and a save there never overlap.
pub const LOCK_FILE: &str = "auth.lock";

/// `cli_auth_credentials_store`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialsStoreMode {
    #[default]
    File,
    Keyring,
    Auto,
    /// In this process's memory only.
    Ephemeral,
}

/// A place that holds one `auth.json` document.
pub trait CredentialStore: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    fn load(&self) -> Result<Option<AuthDotJson>, AuthError>;
    fn save(&self, auth: &AuthDotJson) -> Result<(), AuthError>;
    fn delete(&self) -> Result<(), AuthError>;
}

/// `$CODEX_HOME/auth.json`.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(codex_home: &Path) -> Self {
        Self {
            path: codex_home.join(AUTH_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn store_err(what: &str, path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::Store(format!("{what} {}: {e}", path.display()))
}

impl CredentialStore for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| store_err("cannot parse", &self.path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_err("cannot read", &self.path, e)),
        }
    }

    /// Temp file (0600) + fsync + rename: readers see the old or the new
    /// document, never half of one.
    fn save(&self, auth: &AuthDotJson) -> Result<(), AuthError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| store_err("cannot create", dir, e))?;
        let text = serde_json::to_string_pretty(auth)
            .map_err(|e| store_err("cannot encode", &self.path, e))?;
        write_private(&self.path, &text).map_err(|e| store_err("cannot write", &self.path, e))
    }

    fn delete(&self) -> Result<(), AuthError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(store_err("cannot remove", &self.path, e)),
        }
    }
}

/// Credentials kept in memory (`ephemeral`).
#[derive(Debug, Default)]
pub struct MemoryStore(std::sync::Mutex<Option<AuthDotJson>>);

impl CredentialStore for MemoryStore {
    fn name(&self) -> &'static str {
        "ephemeral"
    }
    fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        Ok(self.0.lock().map(|g| g.clone()).unwrap_or_default())
    }
    fn save(&self, auth: &AuthDotJson) -> Result<(), AuthError> {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(auth.clone());
        }
        Ok(())
    }
    fn delete(&self) -> Result<(), AuthError> {
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
        Ok(())
    }
}

/// An exclusive advisory lock (`flock`) on `$CODEX_HOME/auth.json.lock`,
/// released on drop.
#[derive(Debug)]
pub struct RefreshLock {
    _file: std::fs::File,
}

impl RefreshLock {
    /// Waits (polling, up to `deadline`) for the lock. Blocking: call it off
    /// the async threads.
    pub fn acquire(codex_home: &Path, deadline: Duration) -> Result<Self, AuthError> {
        let path = codex_home.join(LOCK_FILE);
        std::fs::create_dir_all(codex_home)
            .map_err(|e| store_err("cannot create", codex_home, e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| store_err("cannot open", &path, e))?;
        let until = Instant::now() + deadline;
        loop {
            // SAFETY: flock on a descriptor we own; LOCK_NB never blocks.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(Self { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(store_err("cannot lock", &path, err));
            }
            if Instant::now() >= until {
                return Err(AuthError::Transient(format!(
                    "another process held {} for over {}s",
                    path.display(),
                    deadline.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn inner(e: &AuthError) -> String {
    match e {
        AuthError::Store(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The store `mode` asks for. `Auto` prefers the keyring and falls back to
/// the file (saying so in the returned note).
pub fn open(
    mode: CredentialsStoreMode,
    codex_home: &Path,
) -> (Box<dyn CredentialStore>, Option<String>) {
    match mode {
        CredentialsStoreMode::File => (Box::new(FileStore::new(codex_home)), None),
        CredentialsStoreMode::Ephemeral => (Box::new(MemoryStore::default()), None),
        CredentialsStoreMode::Keyring => match super::keyring::KeyringStore::probe(codex_home) {
            Ok(k) => (Box::new(k), None),
            Err(e) => {
                let why = format!("the OS keyring is not available ({})", inner(&e));
                (
                    Box::new(super::keyring::Unavailable(why.clone())),
                    Some(why),
                )
            }
        },
        CredentialsStoreMode::Auto => match super::keyring::KeyringStore::probe(codex_home) {
            Ok(k) => (
                Box::new(super::keyring::AutoStore {
                    keyring: k,
                    file: FileStore::new(codex_home),
                }),
                None,
            ),
            Err(e) => (
                Box::new(FileStore::new(codex_home)),
                Some(format!(
                    "the OS keyring is not available ({}); using {}",
                    inner(&e),
                    codex_home.join(AUTH_FILE).display()
                )),
            ),
        },
    }
}

/// Writes a credentials file: a temp file created 0600 in the same
/// directory, fsynced, renamed over `path` (readers see the old or the new
/// document, never half of one); the temp file is removed on failure.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn file_store_round_trip_keeps_unknown_keys_and_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        std::fs::write(
            store.path(),
            r#"{"OPENAI_API_KEY": null, "tokens": {"id_token": "i", "access_token": "a", "refresh_token": "r", "account_id": "x"}, "last_refresh": "2025-01-01T00:00:00Z", "future_key": 7}"#,
        )
        .unwrap();
        let mut auth = store.load().unwrap().unwrap();
        assert_eq!(auth.tokens.as_ref().unwrap().access_token, "a");
        auth.tokens.as_mut().unwrap().access_token = "b".into();
        store.save(&auth).unwrap();
        let back = store.load().unwrap().unwrap();
        assert_eq!(back.tokens.unwrap().access_token, "b");
        assert_eq!(back.extra["future_key"], 7);
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        store.delete().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }

    #[test]
    fn refresh_lock_excludes_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let held = RefreshLock::acquire(dir.path(), Duration::from_secs(1)).unwrap();
        let err = RefreshLock::acquire(dir.path(), Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, AuthError::Transient(_)), "{err:?}");
        drop(held);
        RefreshLock::acquire(dir.path(), Duration::from_millis(50)).unwrap();
    }
}
