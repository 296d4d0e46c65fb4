//! OAuth for streamable HTTP MCP servers (`codex mcp login NAME`), as
//! upstream does it, and the store of the tokens it gets.
//!
//! The flow (MCP 2025-06-18 authorization): an unauthenticated request's
//! `401` names the protected-resource metadata (`WWW-Authenticate:
//! resource_metadata=…`, else `/.well-known/oauth-protected-resource`),
//! which names the authorization server, whose metadata
//! (`/.well-known/oauth-authorization-server`, then OpenID's) gives the
//! endpoints. Without a configured `oauth.client_id` the client registers
//! itself (RFC 7591, `client_name` "Codex"). The browser is sent to the
//! authorize URL (PKCE S256, a random `state`), comes back to a loopback
//! listener at `http://127.0.0.1:PORT/callback/<id>` (`<id>` derived from
//! the server URL, as upstream), and the code is exchanged for tokens.
//!
//! The store is upstream's, so either program reads what the other wrote:
//! keyring service `Codex MCP Credentials`, account `NAME|<16 hex of the
//! SHA-256 of {"type":"http","url":URL,"headers":{}}>`, value the JSON of
//! [`StoredToken`]; the file fallback is `$CODEX_HOME/.credentials.json`,
//! one flat entry per key, mode 0600. `mcp_oauth_credentials_store` picks
//! `auto` (keyring, then the file), `file` or `keyring`.
//!
//! Starting, finishing and saving are separate steps ([`start_login`],
//! [`PendingLogin::finish`], [`save_token`]) so the one credentials writer
//! (the broker) can run the save; [`login`] does all three for a CLI.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::{form_urlencoded, Url};

use super::config::{McpServerConfig, McpTransportConfig};
use super::http::HttpSpec;

/// Upstream's keyring service for MCP OAuth tokens.
pub const KEYRING_SERVICE: &str = "Codex MCP Credentials";
/// Upstream's file fallback, in `$CODEX_HOME`.
pub const CREDENTIALS_FILE: &str = ".credentials.json";
/// How long a login waits for the browser (upstream's default).
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);
/// A token this close to its expiry is refreshed first (upstream's skew).
pub const REFRESH_SKEW: Duration = Duration::from_secs(30);
/// The client name a dynamic registration gives.
const CLIENT_NAME: &str = "Codex";
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Metadata documents and token answers larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

// The callback listener's bounds (as `auth::login`'s): any local process
// can connect, so none may hold it up or make it grow.
const CALLBACK_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CALLBACK_MAX_HEAD: usize = 64 * 1024;
const CALLBACK_CONNECTION_DEADLINE: Duration = Duration::from_secs(70);
const CALLBACK_MAX_CONNECTIONS: usize = 64;
const CALLBACK_FLUSH_GRACE: Duration = Duration::from_secs(5);
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OAuthError(pub String);

fn oerr(e: impl std::fmt::Display) -> OAuthError {
    OAuthError(e.to_string())
}

/// `mcp_oauth_credentials_store`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum McpOAuthStoreMode {
    /// The keyring, falling back to the file when it fails.
    #[default]
    Auto,
    File,
    Keyring,
}

/// Upstream's `StoredOAuthTokens` (the keyring value).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredToken {
    pub server_name: String,
    pub url: String,
    pub client_id: String,
    pub token_response: TokenResponse,
    /// Unix milliseconds.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// An OAuth token response as `oauth2`'s `StandardTokenResponse`
/// serializes it (extra fields kept).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default = "bearer")]
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn bearer() -> String {
    "bearer".into()
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("server_name", &self.server_name)
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("token_response", &self.token_response)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl StoredToken {
    /// Whether the access token is (nearly) expired. Unknown expiry: no.
    pub fn needs_refresh(&self) -> bool {
        self.expires_at.is_some_and(|at| {
            now_ms().saturating_add(u64::try_from(REFRESH_SKEW.as_millis()).unwrap_or(0)) >= at
        })
    }

    /// Upstream's "usable": a client id, and an unexpired access token or a
    /// refresh token to get one.
    pub fn usable(&self) -> bool {
        if self.client_id.trim().is_empty() {
            return false;
        }
        if self.needs_refresh() {
            return self
                .token_response
                .refresh_token
                .as_deref()
                .is_some_and(|t| !t.trim().is_empty());
        }
        !self.token_response.access_token.trim().is_empty()
    }

    pub fn access_token(&self) -> &str {
        &self.token_response.access_token
    }

    fn scopes(&self) -> Vec<String> {
        self.token_response
            .scope
            .as_deref()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

// ---- the store --------------------------------------------------------------

/// Upstream's store key: `NAME|` + the first 16 hex digits of the SHA-256
/// of `{"type":"http","url":URL,"headers":{}}` (in that key order: upstream
/// builds serde_json with `preserve_order`).
pub fn store_key(server_name: &str, url: &str) -> String {
    let url_json = Value::String(url.to_string()).to_string();
    let payload = format!(r#"{{"type":"http","url":{url_json},"headers":{{}}}}"#);
    let digest = Sha256::digest(payload.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{server_name}|{}", &hex[..16])
}

/// One entry of `.credentials.json` (upstream's `FallbackTokenEntry`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    server_name: String,
    server_url: String,
    client_id: String,
    access_token: String,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

fn file_path(codex_home: &Path) -> PathBuf {
    codex_home.join(CREDENTIALS_FILE)
}

fn read_file(codex_home: &Path) -> Result<BTreeMap<String, FileEntry>, OAuthError> {
    let path = file_path(codex_home);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| OAuthError(format!("cannot parse {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(OAuthError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Temp file (0600) + rename; an empty store removes the file (upstream).
fn write_file(codex_home: &Path, store: &BTreeMap<String, FileEntry>) -> Result<(), OAuthError> {
    let path = file_path(codex_home);
    if store.is_empty() {
        return match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(OAuthError(format!("cannot remove {}: {e}", path.display()))),
        };
    }
    std::fs::create_dir_all(codex_home)
        .map_err(|e| OAuthError(format!("cannot create {}: {e}", codex_home.display())))?;
    let text = serde_json::to_string(store).map_err(oerr)?;
    crate::auth::store::write_private(&path, &text)
        .map_err(|e| OAuthError(format!("cannot write {}: {e}", path.display())))
}

fn load_from_file(
    codex_home: &Path,
    server_name: &str,
    url: &str,
) -> Result<Option<StoredToken>, OAuthError> {
    let key = store_key(server_name, url);
    let store = read_file(codex_home)?;
    Ok(store
        .values()
        .find(|e| store_key(&e.server_name, &e.server_url) == key)
        .map(|e| StoredToken {
            server_name: e.server_name.clone(),
            url: e.server_url.clone(),
            client_id: e.client_id.clone(),
            token_response: TokenResponse {
                access_token: e.access_token.clone(),
                token_type: bearer(),
                expires_in: e.expires_at.map(|at| at.saturating_sub(now_ms()) / 1000),
                refresh_token: e.refresh_token.clone(),
                scope: (!e.scopes.is_empty()).then(|| e.scopes.join(" ")),
                extra: Map::new(),
            },
            expires_at: e.expires_at,
        }))
}

fn save_to_file(codex_home: &Path, token: &StoredToken) -> Result<(), OAuthError> {
    let mut store = read_file(codex_home)?;
    store.insert(
        store_key(&token.server_name, &token.url),
        FileEntry {
            server_name: token.server_name.clone(),
            server_url: token.url.clone(),
            client_id: token.client_id.clone(),
            access_token: token.token_response.access_token.clone(),
            expires_at: token.expires_at,
            refresh_token: token.token_response.refresh_token.clone(),
            scopes: token.scopes(),
        },
    );
    write_file(codex_home, &store)
}

fn delete_from_file(codex_home: &Path, key: &str) -> Result<bool, OAuthError> {
    let mut store = read_file(codex_home)?;
    let removed = store.remove(key).is_some();
    if removed {
        write_file(codex_home, &store)?;
    }
    Ok(removed)
}

/// The OS keyring, on a thread of its own (the Secret Service client blocks
/// on a runtime of its own, which must not nest inside ours).
mod keyring_entry {
    use super::OAuthError;

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    fn with_entry<T: Send>(
        key: &str,
        f: impl FnOnce(&keyring::Entry) -> Result<T, keyring::Error> + Send,
    ) -> Result<T, OAuthError> {
        let kerr = |e: keyring::Error| OAuthError(format!("OS keyring: {e}"));
        let entry = keyring::Entry::new(super::KEYRING_SERVICE, key).map_err(kerr)?;
        std::thread::scope(|s| s.spawn(|| f(&entry)).join())
            .map_err(|_| OAuthError("OS keyring: the keyring client panicked".into()))?
            .map_err(kerr)
    }

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    pub fn load(key: &str) -> Result<Option<String>, OAuthError> {
        with_entry(key, |e| match e.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(err),
        })
    }

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    pub fn save(key: &str, value: &str) -> Result<(), OAuthError> {
        with_entry(key, |e| e.set_password(value))
    }

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    pub fn delete(key: &str) -> Result<bool, OAuthError> {
        with_entry(key, |e| match e.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(err) => Err(err),
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    pub fn load(_key: &str) -> Result<Option<String>, OAuthError> {
        Err(OAuthError(
            "OS keyring: not supported on this platform".into(),
        ))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    pub fn save(_key: &str, _value: &str) -> Result<(), OAuthError> {
        Err(OAuthError(
            "OS keyring: not supported on this platform".into(),
        ))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    pub fn delete(_key: &str) -> Result<bool, OAuthError> {
        Err(OAuthError(
            "OS keyring: not supported on this platform".into(),
        ))
    }
}

fn load_from_keyring(server_name: &str, url: &str) -> Result<Option<StoredToken>, OAuthError> {
    match keyring_entry::load(&store_key(server_name, url))? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| OAuthError(format!("OS keyring: unreadable MCP OAuth entry: {e}"))),
        None => Ok(None),
    }
}

fn save_to_keyring(codex_home: &Path, token: &StoredToken) -> Result<(), OAuthError> {
    let key = store_key(&token.server_name, &token.url);
    let text = serde_json::to_string(token).map_err(oerr)?;
    keyring_entry::save(&key, &text)?;
    // One copy only: the keyring's.
    if let Err(e) = delete_from_file(codex_home, &key) {
        tracing::warn!("failed to remove OAuth tokens from fallback storage: {e}");
    }
    Ok(())
}

/// The stored token of a server, `None` when there is none or it cannot be
/// read (`auto`: keyring, then the file). For startup: never fails.
pub fn load_token(codex_home: &Path, server_name: &str, url: &str) -> Option<StoredToken> {
    load_token_with(codex_home, server_name, url, McpOAuthStoreMode::Auto).unwrap_or_else(|e| {
        tracing::warn!("MCP server `{server_name}`: {e}");
        None
    })
}

/// [`load_token`] with a store mode, and its errors.
pub fn load_token_with(
    codex_home: &Path,
    server_name: &str,
    url: &str,
    mode: McpOAuthStoreMode,
) -> Result<Option<StoredToken>, OAuthError> {
    match mode {
        McpOAuthStoreMode::File => load_from_file(codex_home, server_name, url),
        McpOAuthStoreMode::Keyring => load_from_keyring(server_name, url),
        McpOAuthStoreMode::Auto => match load_from_keyring(server_name, url) {
            Ok(Some(t)) => Ok(Some(t)),
            Ok(None) => load_from_file(codex_home, server_name, url),
            Err(e) => {
                tracing::debug!("{e}; reading {CREDENTIALS_FILE} instead");
                load_from_file(codex_home, server_name, url)
            }
        },
    }
}

/// Where a running thread gets an HTTP server's OAuth access token.
pub trait McpTokenSource: Send + Sync + 'static {
    /// A usable access token for `server` at `url`, if one is stored (or,
    /// for a broker, can be refreshed).
    fn token(
        &self,
        server: &str,
        url: &str,
    ) -> futures_util::future::BoxFuture<'static, Option<String>>;
}

/// Reads the store (never writes: an expired token is not refreshed here,
/// since only the broker writes credentials).
#[derive(Debug, Clone)]
pub struct StoredTokens {
    pub codex_home: PathBuf,
    pub mode: McpOAuthStoreMode,
}

impl McpTokenSource for StoredTokens {
    fn token(
        &self,
        server: &str,
        url: &str,
    ) -> futures_util::future::BoxFuture<'static, Option<String>> {
        let t = load_token_with(&self.codex_home, server, url, self.mode)
            .ok()
            .flatten()
            .filter(|t| !t.needs_refresh() && t.usable())
            .map(|t| t.access_token().to_string());
        Box::pin(async move { t })
    }
}

/// The broker's side of [`McpTokenSource`]: the stored token, refreshed
/// (and saved) first when it is about to expire. Callers serialize it per
/// store (the broker's lock), so one refresh serves everyone.
pub async fn fresh_token(
    codex_home: &Path,
    server: &str,
    cfg: &McpServerConfig,
    mode: McpOAuthStoreMode,
) -> Result<Option<String>, OAuthError> {
    let (url, headers) = http_server(server, cfg)?;
    let Some(token) = load_token_with(codex_home, server, &url, mode)? else {
        return Ok(None);
    };
    if !token.needs_refresh() {
        return Ok(Some(token.access_token().to_string()).filter(|t| !t.trim().is_empty()));
    }
    if !token.usable() {
        return Ok(None);
    }
    let renewed = refresh(&token, &headers).await?;
    save_token(codex_home, &renewed, mode)?;
    Ok(Some(renewed.access_token().to_string()))
}

/// Saves a server's token (the broker's job: it is the one writer).
pub fn save_token(
    codex_home: &Path,
    token: &StoredToken,
    mode: McpOAuthStoreMode,
) -> Result<(), OAuthError> {
    match mode {
        McpOAuthStoreMode::File => save_to_file(codex_home, token),
        McpOAuthStoreMode::Keyring => save_to_keyring(codex_home, token),
        McpOAuthStoreMode::Auto => save_to_keyring(codex_home, token).or_else(|e| {
            tracing::warn!("falling back to file storage for OAuth tokens: {e}");
            save_to_file(codex_home, token)
        }),
    }
}

/// `codex mcp logout NAME`: removes the server's token from the keyring and
/// the file. Whether there was one. A keyring error fails `auto`/`keyring`
/// (upstream), not `file`.
pub fn logout(
    codex_home: &Path,
    server_name: &str,
    url: &str,
    mode: McpOAuthStoreMode,
) -> Result<bool, OAuthError> {
    let key = store_key(server_name, url);
    let from_keyring = match keyring_entry::delete(&key) {
        Ok(removed) => removed,
        Err(e) if mode == McpOAuthStoreMode::File => {
            tracing::debug!("{e}");
            false
        }
        Err(e) => return Err(e),
    };
    let from_file = delete_from_file(codex_home, &key)?;
    Ok(from_keyring || from_file)
}

// ---- discovery ----------------------------------------------------------------

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthServerMetadata {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    /// From the protected resource's metadata, else the server's.
    pub scopes_supported: Vec<String>,
}

fn http_client(headers: &[(String, String)]) -> Result<reqwest::Client, OAuthError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("authorization") {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(k.as_bytes()),
            reqwest::header::HeaderValue::from_str(v),
        ) {
            map.append(n, v);
        }
    }
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(HTTP_TIMEOUT)
        .default_headers(map)
        .build()
        .map_err(oerr)
}

/// A JSON document, or `None` when there is none at `url` (any non-2xx).
async fn get_json(client: &reqwest::Client, url: &str) -> Result<Option<Value>, OAuthError> {
    let resp = client
        .get(url)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| OAuthError(format!("cannot reach {url}: {e}")))?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    let body = read_limited(resp).await?;
    Ok(serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(Value::is_object))
}

async fn read_limited(resp: reqwest::Response) -> Result<Vec<u8>, OAuthError> {
    use futures_util::StreamExt as _;
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(oerr)?;
        if buf.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(OAuthError("an OAuth document is too large".into()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The `resource_metadata` parameter of a `WWW-Authenticate` header.
pub fn resource_metadata_url(www_authenticate: &str) -> Option<String> {
    let i = www_authenticate.find("resource_metadata=")?;
    let rest = &www_authenticate[i + "resource_metadata=".len()..];
    let value = match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_string())
}

/// `/.well-known/<name>` at `base`'s origin, with `base`'s path after it
/// (RFC 8414 §3.1, RFC 9728 §3.1), then without.
fn well_known(base: &Url, name: &str) -> Vec<String> {
    let origin = base.origin().ascii_serialization();
    let path = base.path().trim_end_matches('/');
    let mut out = Vec::new();
    if !path.is_empty() {
        out.push(format!("{origin}/.well-known/{name}{path}"));
    }
    out.push(format!("{origin}/.well-known/{name}"));
    out
}

/// Discovers the authorization server of an MCP server.
pub async fn discover(
    client: &reqwest::Client,
    server_url: &str,
) -> Result<AuthServerMetadata, OAuthError> {
    let url = Url::parse(server_url)
        .map_err(|e| OAuthError(format!("invalid MCP server URL `{server_url}`: {e}")))?;
    // 1. The protected resource's metadata: named by the 401, else well known.
    let mut candidates = Vec::new();
    if let Some(named) = probe_resource_metadata(client, server_url).await {
        candidates.push(named);
    }
    candidates.extend(well_known(&url, "oauth-protected-resource"));
    let mut resource = None;
    for c in &candidates {
        if let Some(doc) = get_json(client, c).await? {
            resource = Some(doc);
            break;
        }
    }
    let issuer = resource
        .as_ref()
        .and_then(|r| {
            r.get("authorization_servers")?
                .as_array()?
                .first()?
                .as_str()
        })
        .and_then(|s| Url::parse(s).ok())
        .unwrap_or_else(|| url.clone());
    let resource_scopes = resource
        .as_ref()
        .map(|r| strings(r.get("scopes_supported")))
        .unwrap_or_default();
    // 2. The authorization server's metadata.
    let mut docs = well_known(&issuer, "oauth-authorization-server");
    docs.extend(well_known(&issuer, "openid-configuration"));
    let issuer_path = issuer.path().trim_end_matches('/');
    if !issuer_path.is_empty() {
        docs.push(format!(
            "{}{issuer_path}/.well-known/openid-configuration",
            issuer.origin().ascii_serialization()
        ));
    }
    for d in &docs {
        let Some(meta) = get_json(client, d).await? else {
            continue;
        };
        let field = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(authorization_endpoint), Some(token_endpoint)) =
            (field("authorization_endpoint"), field("token_endpoint"))
        else {
            continue;
        };
        let methods = strings(meta.get("code_challenge_methods_supported"));
        if !methods.is_empty() && !methods.iter().any(|m| m == "S256") {
            return Err(OAuthError(format!(
                "the authorization server of `{server_url}` does not support PKCE S256"
            )));
        }
        return Ok(AuthServerMetadata {
            authorization_endpoint,
            token_endpoint,
            registration_endpoint: field("registration_endpoint"),
            scopes_supported: if resource_scopes.is_empty() {
                strings(meta.get("scopes_supported"))
            } else {
                resource_scopes
            },
        });
    }
    // 3. MCP 2025-03-26's defaults, at the server's origin.
    let origin = issuer.origin().ascii_serialization();
    if resource.is_none() {
        return Err(OAuthError(format!(
            "no OAuth metadata found for `{server_url}` (it may not support OAuth login)"
        )));
    }
    Ok(AuthServerMetadata {
        authorization_endpoint: format!("{origin}/authorize"),
        token_endpoint: format!("{origin}/token"),
        registration_endpoint: Some(format!("{origin}/register")),
        scopes_supported: resource_scopes,
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// An unauthenticated `initialize`; its `401` may name the metadata.
async fn probe_resource_metadata(client: &reqwest::Client, server_url: &str) -> Option<String> {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "codex-mcp-client", "version": env!("CARGO_PKG_VERSION")}}});
    let resp = client
        .post(server_url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return None;
    }
    resp.headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(resource_metadata_url)
}

// ---- registration, tokens -----------------------------------------------------

/// The client we act as.
#[derive(Clone)]
struct Client {
    id: String,
    secret: Option<String>,
}

/// RFC 7591 dynamic registration of a public client.
async fn register(
    client: &reqwest::Client,
    endpoint: &str,
    redirect_uri: &str,
) -> Result<Client, OAuthError> {
    let resp = client
        .post(endpoint)
        .json(&json!({
            "client_name": CLIENT_NAME,
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .map_err(|e| OAuthError(format!("cannot reach the registration endpoint: {e}")))?;
    let status = resp.status();
    let body = read_limited(resp).await?;
    if !status.is_success() {
        return Err(OAuthError(format!(
            "dynamic client registration failed (HTTP {}): {}",
            status.as_u16(),
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        )));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| OAuthError(format!("unreadable registration answer: {e}")))?;
    let id = v
        .get("client_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OAuthError("the registration answer has no client_id".into()))?;
    Ok(Client {
        id: id.to_string(),
        secret: v
            .get("client_secret")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A token request; the answer as a [`TokenResponse`].
async fn token_request(
    client: &reqwest::Client,
    endpoint: &str,
    pairs: &[(&str, &str)],
) -> Result<TokenResponse, OAuthError> {
    let resp = client
        .post(endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(form(pairs))
        .send()
        .await
        .map_err(|e| OAuthError(format!("cannot reach the token endpoint: {e}")))?;
    let status = resp.status();
    let body = read_limited(resp).await?;
    let v: Option<Value> = serde_json::from_slice(&body).ok();
    if !status.is_success() {
        let detail = v
            .as_ref()
            .and_then(|v| {
                v.get("error_description")
                    .or_else(|| v.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        return Err(OAuthError(format!(
            "token endpoint returned status {}: {detail}",
            status.as_u16()
        )));
    }
    let v = v.ok_or_else(|| OAuthError("the token endpoint answered something not JSON".into()))?;
    serde_json::from_value(v).map_err(|e| OAuthError(format!("unreadable tokens: {e}")))
}

fn expires_at(resp: &TokenResponse) -> Option<u64> {
    resp.expires_in
        .map(|s| now_ms().saturating_add(s.saturating_mul(1000)))
}

/// Refreshes a token (no save: the caller, the broker, saves it). The
/// endpoint is discovered again (upstream stores none); a response without
/// a refresh token keeps the old one.
pub async fn refresh(
    token: &StoredToken,
    headers: &[(String, String)],
) -> Result<StoredToken, OAuthError> {
    let refresh_token = token
        .token_response
        .refresh_token
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            OAuthError(format!(
                "the OAuth token of `{}` expired and cannot be refreshed (run `codex mcp login {}`)",
                token.server_name, token.server_name
            ))
        })?;
    let client = http_client(headers)?;
    let meta = discover(&client, &token.url).await?;
    let mut resp = token_request(
        &client,
        &meta.token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", &token.client_id),
        ],
    )
    .await?;
    if resp.refresh_token.is_none() {
        resp.refresh_token = Some(refresh_token);
    }
    if resp.scope.is_none() {
        resp.scope.clone_from(&token.token_response.scope);
    }
    Ok(StoredToken {
        server_name: token.server_name.clone(),
        url: token.url.clone(),
        client_id: token.client_id.clone(),
        expires_at: expires_at(&resp),
        token_response: resp,
    })
}

// ---- the login flow -----------------------------------------------------------

/// How a login runs (top-level config keys and the request's options).
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// `mcp_oauth_callback_port` (`None`: a random free port).
    pub callback_port: Option<u16>,
    /// `mcp_oauth_callback_url`: the redirect URI to register instead of
    /// the loopback one (the listener still binds `callback_port`).
    pub callback_url: Option<String>,
    /// Scopes asked for instead of the config's (`mcpServer/oauth/login`).
    pub scopes: Option<Vec<String>>,
    /// How long to wait for the browser.
    pub timeout: Duration,
}

impl Default for LoginOptions {
    fn default() -> Self {
        Self {
            callback_port: None,
            callback_url: None,
            scopes: None,
            timeout: DEFAULT_LOGIN_TIMEOUT,
        }
    }
}

/// A login waiting for the browser: show [`Self::authorization_url`], then
/// [`Self::finish`].
pub struct PendingLogin {
    pub authorization_url: String,
    pub redirect_uri: String,
    server_name: String,
    server_url: String,
    listener: TcpListener,
    callback_path: String,
    verifier: String,
    state: String,
    client: Client,
    token_endpoint: String,
    resource: Option<String>,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("server_name", &self.server_name)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

fn random_b64(n: usize) -> Result<String, OAuthError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)
        .map_err(|e| OAuthError(format!("cannot get random bytes from the OS: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Upstream's callback id: base64url of the first 9 bytes of the SHA-256 of
/// the server URL (fragment dropped).
pub fn callback_id(server_url: &str) -> Result<String, OAuthError> {
    let mut url = Url::parse(server_url)
        .map_err(|e| OAuthError(format!("invalid MCP server URL `{server_url}`: {e}")))?;
    if url.host_str().is_none() {
        return Err(OAuthError(format!(
            "MCP server URL `{server_url}` must include a host"
        )));
    }
    url.set_fragment(None);
    let digest = Sha256::digest(url.as_str().as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(&digest[..9]))
}

/// The redirect URI upstream's `codex mcp add` records as
/// `oauth.callback_url`: `mcp_oauth_callback_url` (or
/// `http://127.0.0.1/callback`) + `/` + the server URL's callback id.
pub fn callback_url(server_url: &str, base: Option<&str>) -> Result<String, OAuthError> {
    let base = base
        .map(|b| b.trim_end_matches('/'))
        .filter(|b| !b.is_empty())
        .unwrap_or("http://127.0.0.1/callback");
    // Upstream hashes the URL as `Url` prints it.
    let normalized = Url::parse(server_url)
        .map(|u| u.to_string())
        .map_err(|e| OAuthError(format!("invalid MCP server URL `{server_url}`: {e}")))?;
    Ok(format!("{base}/{}", callback_id(&normalized)?))
}

fn with_callback_id(redirect: &str, id: &str) -> Result<Url, OAuthError> {
    let mut url = Url::parse(redirect)
        .map_err(|e| OAuthError(format!("invalid MCP OAuth callback URL `{redirect}`: {e}")))?;
    let path = url.path().to_string();
    let path = if path.ends_with('/') {
        format!("{path}{id}")
    } else {
        format!("{path}/{id}")
    };
    url.set_path(&path);
    Ok(url)
}

/// The URL of an HTTP server, and the headers its OAuth requests carry.
fn http_server(
    server_name: &str,
    cfg: &McpServerConfig,
) -> Result<(String, Vec<(String, String)>), OAuthError> {
    let McpTransportConfig::StreamableHttp { url, .. } = &cfg.transport else {
        return Err(OAuthError(format!(
            "OAuth login is only supported for streamable HTTP servers; `{server_name}` is a stdio server"
        )));
    };
    let spec = HttpSpec::from_config(server_name, &cfg.transport, None).map_err(OAuthError)?;
    Ok((url.clone(), spec.headers))
}

/// Step 1: discovery, registration, the loopback listener, the authorize
/// URL.
pub async fn start_login(
    server_name: &str,
    cfg: &McpServerConfig,
    opts: &LoginOptions,
) -> Result<PendingLogin, OAuthError> {
    let (server_url, headers) = http_server(server_name, cfg)?;
    if opts.callback_port == Some(0) {
        return Err(OAuthError(
            "invalid MCP OAuth callback port `0`: port must be between 1 and 65535".into(),
        ));
    }
    // Upstream binds all interfaces only for a configured non-local URL.
    let bind_host = match opts
        .callback_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
    {
        Some(h) if !matches!(h.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1") => "0.0.0.0",
        _ => "127.0.0.1",
    };
    let listener = TcpListener::bind((bind_host, opts.callback_port.unwrap_or(0)))
        .await
        .map_err(|e| {
            OAuthError(format!(
                "cannot listen for the OAuth callback on {bind_host}: {e}"
            ))
        })?;
    let port = listener.local_addr().map_err(oerr)?.port();
    let id = callback_id(&server_url)?;
    let redirect = match &opts.callback_url {
        Some(u) => with_callback_id(u, &id)?,
        None => with_callback_id(&format!("http://127.0.0.1:{port}/callback"), &id)?,
    };
    let redirect_uri = redirect.to_string();
    let callback_path = redirect.path().to_string();

    let http = http_client(&headers)?;
    let meta = discover(&http, &server_url).await?;
    let client = match cfg.oauth_client_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => Client {
            id: id.to_string(),
            secret: cfg.oauth_client_secret.clone(),
        },
        _ => {
            let endpoint = meta.registration_endpoint.as_deref().ok_or_else(|| {
                OAuthError(format!(
                    "the authorization server of `{server_name}` does not support dynamic client registration; set `oauth.client_id` in [mcp_servers.{server_name}]"
                ))
            })?;
            register(&http, endpoint, &redirect_uri).await?
        }
    };
    let scopes = match &opts.scopes {
        Some(s) => s.clone(),
        None if !cfg.scopes.is_empty() => cfg.scopes.clone(),
        None => meta.scopes_supported.clone(),
    };
    let verifier = random_b64(64)?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random_b64(32)?;
    let resource = cfg
        .oauth_resource
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let mut auth = Url::parse(&meta.authorization_endpoint).map_err(|e| {
        OAuthError(format!(
            "invalid authorization endpoint `{}`: {e}",
            meta.authorization_endpoint
        ))
    })?;
    {
        let mut q = auth.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes.join(" "));
        }
        if let Some(r) = &resource {
            q.append_pair("resource", r);
        }
    }
    Ok(PendingLogin {
        authorization_url: auth.to_string(),
        redirect_uri,
        server_name: server_name.to_string(),
        server_url,
        listener,
        callback_path,
        verifier,
        state,
        client,
        token_endpoint: meta.token_endpoint,
        resource,
        http,
        timeout: opts.timeout,
    })
}

/// What a request to the callback listener asks of `finish`.
enum Callback {
    Code {
        code: String,
        page: oneshot::Sender<(StatusCode, String)>,
        closed: CancellationToken,
    },
    Ended {
        error: OAuthError,
        closed: CancellationToken,
    },
}

fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn page(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text.to_string())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn route(
    req: Request<hyper::body::Incoming>,
    path: &str,
    state: &str,
    events: &mpsc::Sender<Callback>,
    closed: CancellationToken,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET || req.uri().path() != path {
        return page(StatusCode::BAD_REQUEST, "Invalid OAuth callback");
    }
    let params: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if !get("state").is_some_and(|s| same_secret(s, state)) {
        return page(StatusCode::BAD_REQUEST, "Invalid OAuth callback");
    }
    if get("error").is_some() || get("error_description").is_some() {
        let error = match (get("error"), get("error_description")) {
            (Some(e), Some(d)) => format!("OAuth provider returned `{e}`: {d}"),
            (Some(e), None) => format!("OAuth provider returned `{e}`"),
            (None, Some(d)) => format!("OAuth error: {d}"),
            (None, None) => "OAuth provider returned an error".into(),
        };
        let _ = events
            .send(Callback::Ended {
                error: OAuthError(error.clone()),
                closed,
            })
            .await;
        return page(StatusCode::BAD_REQUEST, &error);
    }
    let Some(code) = get("code") else {
        return page(StatusCode::BAD_REQUEST, "Invalid OAuth callback");
    };
    let (tx, rx) = oneshot::channel();
    let asked = events
        .send(Callback::Code {
            code: code.to_string(),
            page: tx,
            closed,
        })
        .await;
    match (asked, rx.await) {
        (Ok(()), Ok((status, text))) => page(status, &text),
        _ => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "This login is no longer in progress.",
        ),
    }
}

async fn serve_connection(
    stream: TcpStream,
    path: Arc<str>,
    state: Arc<str>,
    events: mpsc::Sender<Callback>,
) {
    let closed = CancellationToken::new();
    let _closed_on_exit = closed.clone().drop_guard();
    let svc = service_fn(move |req| {
        let (path, state, events, closed) =
            (path.clone(), state.clone(), events.clone(), closed.clone());
        async move { Ok::<_, Infallible>(route(req, &path, &state, &events, closed).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CALLBACK_HEADER_TIMEOUT)
        .max_buf_size(CALLBACK_MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc);
    let _ = tokio::time::timeout(CALLBACK_CONNECTION_DEADLINE, conn).await;
}

impl PendingLogin {
    /// Step 2: waits for the browser's redirect (or `cancel`, or the
    /// timeout), exchanges the code, and returns the token to save.
    pub async fn finish(self, cancel: CancellationToken) -> Result<StoredToken, OAuthError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timed_out = || OAuthError("timed out waiting for OAuth callback".into());
        let cancelled = || OAuthError("OAuth login was cancelled".into());
        let path: Arc<str> = self.callback_path.clone().into();
        let state: Arc<str> = self.state.clone().into();
        let (events_tx, mut events) = mpsc::channel(CALLBACK_MAX_CONNECTIONS);
        let mut conns = JoinSet::new();
        let (outcome, closed) = loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) if conns.len() < CALLBACK_MAX_CONNECTIONS => {
                        conns.spawn(serve_connection(stream, path.clone(), state.clone(), events_tx.clone()));
                    }
                    Ok(_) => tracing::debug!("mcp oauth callback: too many connections, closing one"),
                    Err(e) => {
                        tracing::debug!("mcp oauth callback: accept failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                Some(event) = events.recv() => match event {
                    Callback::Code { code, page, closed } => {
                        let outcome = tokio::select! {
                            r = self.exchange(&code) => r,
                            _ = cancel.cancelled() => Err(cancelled()),
                            _ = tokio::time::sleep_until(deadline) => Err(timed_out()),
                        };
                        let _ = page.send(match &outcome {
                            Ok(_) => (StatusCode::OK, "Authentication complete. You may close this window.".to_string()),
                            Err(e) => (StatusCode::OK, format!("Authentication failed: {e}")),
                        });
                        break (outcome, closed);
                    }
                    Callback::Ended { error, closed } => break (Err(error), closed),
                },
                _ = cancel.cancelled() => return Err(cancelled()),
                _ = tokio::time::sleep_until(deadline) => return Err(timed_out()),
            }
        };
        let _ = tokio::time::timeout(CALLBACK_FLUSH_GRACE, closed.cancelled()).await;
        outcome
    }

    async fn exchange(&self, code: &str) -> Result<StoredToken, OAuthError> {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("client_id", self.client.id.as_str()),
            ("code_verifier", self.verifier.as_str()),
        ];
        if let Some(secret) = &self.client.secret {
            pairs.push(("client_secret", secret));
        }
        if let Some(r) = &self.resource {
            pairs.push(("resource", r));
        }
        let resp = token_request(&self.http, &self.token_endpoint, &pairs).await?;
        if resp.access_token.trim().is_empty() {
            return Err(OAuthError(
                "OAuth provider did not return credentials".into(),
            ));
        }
        Ok(StoredToken {
            server_name: self.server_name.clone(),
            url: self.server_url.clone(),
            client_id: self.client.id.clone(),
            expires_at: expires_at(&resp),
            token_response: resp,
        })
    }
}

/// `codex mcp login NAME` in one call: starts, hands the authorize URL to
/// `show` (print it, open the browser: [`open_browser`]), waits, saves.
pub async fn login(
    codex_home: &Path,
    server_name: &str,
    cfg: &McpServerConfig,
    opts: &LoginOptions,
    mode: McpOAuthStoreMode,
    show: impl FnOnce(&str),
    cancel: CancellationToken,
) -> Result<StoredToken, OAuthError> {
    let pending = start_login(server_name, cfg, opts).await?;
    show(&pending.authorization_url);
    let token = pending.finish(cancel).await?;
    save_token(codex_home, &token, mode)?;
    Ok(token)
}

/// Opens `url` in the desktop's browser; `false` if none could be started
/// (the caller has printed the URL anyway).
pub fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reaped off the caller's thread.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_key_matches_upstreams_scheme() {
        let key = store_key("test-server", "https://example.test");
        let payload = r#"{"type":"http","url":"https://example.test","headers":{}}"#;
        let hex: String = Sha256::digest(payload.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(key, format!("test-server|{}", &hex[..16]));
    }

    #[test]
    fn resource_metadata_is_read_from_www_authenticate() {
        assert_eq!(
            resource_metadata_url(
                r#"Bearer error="invalid_token", resource_metadata="https://a/.well-known/oauth-protected-resource""#
            )
            .as_deref(),
            Some("https://a/.well-known/oauth-protected-resource")
        );
        assert_eq!(
            resource_metadata_url("Bearer resource_metadata=https://b/x, realm=y").as_deref(),
            Some("https://b/x")
        );
        assert_eq!(resource_metadata_url("Bearer realm=y"), None);
    }

    #[test]
    fn well_known_urls_insert_the_path() {
        let u = Url::parse("https://h.example/tenant/mcp/").unwrap();
        assert_eq!(
            well_known(&u, "oauth-authorization-server"),
            vec![
                "https://h.example/.well-known/oauth-authorization-server/tenant/mcp",
                "https://h.example/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn the_callback_id_is_upstreams() {
        let id = callback_id("https://mcp.example.com/mcp").unwrap();
        let digest = Sha256::digest(b"https://mcp.example.com/mcp");
        assert_eq!(id, URL_SAFE_NO_PAD.encode(&digest[..9]));
        assert_eq!(
            with_callback_id("http://127.0.0.1:4321/callback", &id)
                .unwrap()
                .as_str(),
            format!("http://127.0.0.1:4321/callback/{id}")
        );
    }

    #[test]
    fn usability_and_refresh_need() {
        let mut t = StoredToken {
            server_name: "s".into(),
            url: "https://x".into(),
            client_id: "c".into(),
            token_response: TokenResponse {
                access_token: "a".into(),
                token_type: "bearer".into(),
                expires_in: None,
                refresh_token: None,
                scope: None,
                extra: Map::new(),
            },
            expires_at: None,
        };
        assert!(t.usable() && !t.needs_refresh());
        t.expires_at = Some(0);
        assert!(t.needs_refresh() && !t.usable());
        t.token_response.refresh_token = Some("r".into());
        assert!(t.usable());
        t.client_id = " ".into();
        assert!(!t.usable());
        assert!(!format!("{t:?}").contains("\"a\""));
    }

    #[test]
    fn the_file_store_is_upstreams_format() {
        let home = tempfile::tempdir().unwrap();
        let t = StoredToken {
            server_name: "srv".into(),
            url: "https://x/mcp".into(),
            client_id: "cid".into(),
            token_response: TokenResponse {
                access_token: "at".into(),
                token_type: "bearer".into(),
                expires_in: Some(3600),
                refresh_token: Some("rt".into()),
                scope: Some("a b".into()),
                extra: Map::new(),
            },
            expires_at: Some(now_ms() + 3_600_000),
        };
        save_token(home.path(), &t, McpOAuthStoreMode::File).unwrap();
        let path = home.path().join(CREDENTIALS_FILE);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let key = store_key("srv", "https://x/mcp");
        assert_eq!(v[&key]["server_url"], "https://x/mcp");
        assert_eq!(v[&key]["access_token"], "at");
        assert_eq!(v[&key]["refresh_token"], "rt");
        assert_eq!(v[&key]["scopes"], json!(["a", "b"]));
        let back = load_token_with(home.path(), "srv", "https://x/mcp", McpOAuthStoreMode::File)
            .unwrap()
            .unwrap();
        assert_eq!(back.access_token(), "at");
        assert_eq!(back.token_response.refresh_token.as_deref(), Some("rt"));
        assert_eq!(back.expires_at, t.expires_at);
        // Another URL is another entry.
        assert!(
            load_token_with(home.path(), "srv", "https://y/mcp", McpOAuthStoreMode::File)
                .unwrap()
                .is_none()
        );
        assert!(logout(home.path(), "srv", "https://x/mcp", McpOAuthStoreMode::File).unwrap());
        assert!(!path.exists());
        assert!(!logout(home.path(), "srv", "https://x/mcp", McpOAuthStoreMode::File).unwrap());
    }

    #[test]
    fn the_keyring_value_is_upstreams_stored_tokens() {
        let t: StoredToken = serde_json::from_value(json!({
            "server_name": "s", "url": "https://x", "client_id": "c",
            "token_response": {"access_token": "a", "token_type": "bearer",
                               "expires_in": 10, "refresh_token": "r", "scope": "x y", "vendor": 1},
            "expires_at": 5
        }))
        .unwrap();
        assert_eq!(t.token_response.extra["vendor"], 1);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["token_response"]["vendor"], 1);
        assert_eq!(v["expires_at"], 5);
    }
}
