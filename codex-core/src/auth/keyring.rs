//! The OS keyring store. Not available in this build: `keyring` mode says
//! so, and `auto` falls back to the file.

use std::path::Path;

use super::store::CredentialStore;
use super::{AuthDotJson, AuthError};

/// The keyring (Secret Service on Linux, Keychain on macOS).
#[derive(Debug)]
pub struct KeyringStore;

impl KeyringStore {
    /// Connects to the OS keyring, if there is one.
    pub fn probe(_codex_home: &Path) -> Result<Self, AuthError> {
        Err(AuthError::Store(
            "this build has no OS keyring support".into(),
        ))
    }
}

impl CredentialStore for KeyringStore {
    fn name(&self) -> &'static str {
        "keyring"
    }
    fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        Ok(None)
    }
    fn save(&self, _auth: &AuthDotJson) -> Result<(), AuthError> {
        Err(AuthError::Store("no OS keyring".into()))
    }
    fn delete(&self) -> Result<(), AuthError> {
        Ok(())
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
