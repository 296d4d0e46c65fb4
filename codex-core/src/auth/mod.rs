//! Credentials: upstream's `auth.json` (an API key, or ChatGPT tokens), the
//! stores that hold it (file, OS keyring), and the broker logic that hands
//! out access tokens and refreshes them once for everyone
//! ([`broker::LocalBroker`]).
//!
//! Nothing here knows about processes or sockets: the `codex-broker` process
//! serves [`broker::BrokerRequest`]s over its link, and a worker reaches it
//! through a [`TokenSource`] that its host provides.

pub mod broker;
pub mod catalog;
pub mod jwt;
pub mod keyring;
pub mod login;
pub mod refresh;
pub mod store;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use broker::{BrokerEvent, BrokerRequest, BrokerResponse, LocalBroker};
pub use store::{CredentialStore, CredentialsStoreMode};

/// `$CODEX_HOME/auth.json`, as upstream writes it. Unknown keys are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthDotJson {
    /// `apikey`, `chatgpt`, ... (absent in older files: then an API key
    /// means `apikey`, tokens mean `chatgpt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    #[serde(rename = "OPENAI_API_KEY", default)]
    pub openai_api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// ChatGPT sign-in tokens.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenData {
    /// The raw id token (a JWT).
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for TokenData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenData")
            .field("id_token", &"<redacted>")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// What a model request authenticates with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthToken {
    pub access_token: String,
    /// The ChatGPT account (sent as `chatgpt-account-id`).
    #[serde(default)]
    pub account_id: Option<String>,
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthToken")
            .field("access_token", &"<redacted>")
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AuthError {
    /// Nobody is signed in (no tokens stored).
    #[error("not signed in: run `codex login`")]
    NotSignedIn,
    /// The refresh token is no longer valid: only a new sign-in helps.
    #[error("{0}")]
    ReloginRequired(String),
    /// The token endpoint failed; trying later may help.
    #[error("{0}")]
    Transient(String),
    /// The credential store could not be read or written.
    #[error("credential store: {0}")]
    Store(String),
    /// The broker could not be reached (restarting); the request may be
    /// retried.
    #[error("the credential broker is unavailable: {0}")]
    Unavailable(String),
    /// The broker is at its limit of requests in flight and shed this one
    /// without starting it; the request may be retried (front ends answer
    /// JSON-RPC `-32001`).
    #[error("the credential broker is overloaded; retry later")]
    Overloaded,
}

/// Where a model client gets its bearer token: the broker, directly or
/// through a link.
pub trait TokenSource: Send + Sync {
    /// The current access token (refreshed first if it has expired).
    fn token(&self) -> BoxFuture<'static, Result<AuthToken, AuthError>>;
    /// The server rejected `stale`: refresh (once, for every caller that saw
    /// the same token) and return the new one.
    fn refresh(&self, stale: String) -> BoxFuture<'static, Result<AuthToken, AuthError>>;
}

impl std::fmt::Debug for dyn TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSource")
    }
}

pub type SharedTokenSource = Arc<dyn TokenSource>;
