//! The broker logic: hands out the current access token and refreshes it
//! **once** for everyone who finds it stale.
//!
//! - In this process, callers queue on one async lock; whoever gets it first
//!   refreshes, the others find the new token when they get the lock.
//! - Across processes (another broker, a second `codex exec`, an upstream
//!   `codex` sharing `$CODEX_HOME`), the refresh runs under `flock` on
//!   `$CODEX_HOME/auth.lock`, and the store is re-read under the lock: if
//!   somebody else refreshed meanwhile, their token is used.
//! - A failed refresh opens a circuit breaker: for `breaker_window` (or, for
//!   a refresh token the server rejected, until the stored tokens change)
//!   every caller gets the same error without the endpoint being asked.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::refresh::{self, AuthEndpoints, RefreshReason};
use super::store::{self, CredentialStore, CredentialsStoreMode, RefreshLock};
use super::{jwt, AuthDotJson, AuthError, AuthToken, TokenSource};

/// Refresh when the access token expires within this margin.
const EXPIRY_MARGIN_SECS: i64 = 60;
/// Without an `exp` claim: refresh tokens older than this (upstream: 8 days).
const MAX_TOKEN_AGE: chrono::Duration = chrono::Duration::days(8);
/// How long a transient refresh failure is answered from the breaker.
pub const DEFAULT_BREAKER_WINDOW: Duration = Duration::from_secs(30);
/// How long to wait for another process's refresh lock.
const CROSS_PROCESS_LOCK_DEADLINE: Duration = Duration::from_secs(45);

/// What the broker is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrokerRequest {
    /// The current access token.
    GetToken,
    /// `stale` was refused by the server: refresh (once for everyone).
    Refresh {
        stale: String,
    },
    /// The models a provider offers (`GET {base_url}/models`, cached).
    ListModels {
        provider: Box<crate::config::ModelProviderInfo>,
    },
    /// Who is signed in.
    Account,
    /// Saves an API key as the sign-in.
    LoginApiKey {
        api_key: String,
    },
    /// Starts a ChatGPT sign-in; its end is a [`BrokerEvent::LoginCompleted`].
    LoginStart {
        kind: LoginKind,
        originator: String,
    },
    LoginCancel {
        login_id: String,
    },
    Logout,
    /// Starts an OAuth login to the streamable HTTP MCP server `server`
    /// (its `[mcp_servers]` entry); its end is a
    /// [`BrokerEvent::McpLoginCompleted`]. Cancelled with `LoginCancel`.
    McpLoginStart {
        server: String,
        #[serde(default)]
        scopes: Option<Vec<String>>,
    },
    /// A usable OAuth access token of an MCP server, refreshed (and saved)
    /// first when it is about to expire; one refresh at a time.
    McpToken {
        server: String,
    },
    /// Deletes the stored OAuth tokens of an MCP server.
    McpLogout {
        server: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginKind {
    /// PKCE in a browser, callback on 127.0.0.1.
    Browser,
    DeviceCode,
}

/// Who is signed in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// `apikey` or `chatgpt`; `None`: not signed in.
    pub auth_mode: Option<String>,
    pub email: Option<String>,
    pub plan_type: Option<String>,
}

/// A sign-in that started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginStarted {
    pub login_id: String,
    pub auth_url: Option<String>,
    pub user_code: Option<String>,
    pub verification_url: Option<String>,
}

/// Things the broker reports on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrokerEvent {
    LoginCompleted {
        login_id: String,
        success: bool,
        error: Option<String>,
    },
    AccountUpdated(AccountInfo),
    McpLoginCompleted {
        login_id: String,
        server: String,
        success: bool,
        error: Option<String>,
    },
}

/// What it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrokerResponse {
    Token(AuthToken),
    Models(super::catalog::ModelList),
    Account(AccountInfo),
    LoginStarted(LoginStarted),
    LoginCancelled {
        found: bool,
    },
    /// `McpLogout`: whether there were tokens to delete.
    McpLoggedOut {
        found: bool,
    },
    /// `McpToken` (none stored, or not renewable).
    McpToken {
        access_token: Option<String>,
    },
    Done,
}

struct Breaker {
    since: Instant,
    error: AuthError,
    /// The refresh token that failed: a permanent failure holds until it
    /// changes.
    refresh_token: String,
}

struct Inner {
    codex_home: PathBuf,
    store: Box<dyn CredentialStore>,
    endpoints: AuthEndpoints,
    http: std::sync::OnceLock<Result<reqwest::Client, String>>,
    refresh_lock: tokio::sync::Mutex<()>,
    /// One MCP OAuth refresh at a time (the store is one file or keyring).
    mcp_refresh_lock: tokio::sync::Mutex<()>,
    breaker: Mutex<Option<Breaker>>,
    breaker_window: Duration,
    refreshes: AtomicU64,
    catalog: super::catalog::RemoteCatalog,
    /// Sign-ins in progress.
    logins: Mutex<std::collections::HashMap<String, tokio_util::sync::CancellationToken>>,
    events: Mutex<Option<tokio::sync::mpsc::Sender<BrokerEvent>>>,
}

/// The broker logic in this process (also what the `codex-broker` process
/// runs).
#[derive(Clone)]
pub struct LocalBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBroker")
            .field("codex_home", &self.inner.codex_home)
            .field("store", &self.inner.store.name())
            .finish()
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Whether `auth`'s access token should be refreshed before use.
pub fn needs_refresh(auth: &AuthDotJson) -> bool {
    let Some(tokens) = &auth.tokens else {
        return false;
    };
    match jwt::expires_at(&tokens.access_token) {
        Some(exp) => exp <= chrono::Utc::now().timestamp() + EXPIRY_MARGIN_SECS,
        None => auth
            .last_refresh
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_none_or(|t| chrono::Utc::now() - t.with_timezone(&chrono::Utc) > MAX_TOKEN_AGE),
    }
}

fn token_of(auth: &AuthDotJson) -> Result<AuthToken, AuthError> {
    let t = auth.tokens.as_ref().ok_or(AuthError::NotSignedIn)?;
    Ok(AuthToken {
        access_token: t.access_token.clone(),
        account_id: t.account_id.clone(),
    })
}

impl LocalBroker {
    /// A broker over the credential store `mode` selects. The returned note
    /// says when `auto` fell back to the file.
    pub fn open(
        codex_home: PathBuf,
        mode: CredentialsStoreMode,
        endpoints: AuthEndpoints,
    ) -> (Self, Option<String>) {
        let (store, note) = store::open(mode, &codex_home);
        (Self::with_store(codex_home, store, endpoints), note)
    }

    pub fn with_store(
        codex_home: PathBuf,
        store: Box<dyn CredentialStore>,
        endpoints: AuthEndpoints,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                codex_home,
                store,
                endpoints,
                http: std::sync::OnceLock::new(),
                refresh_lock: tokio::sync::Mutex::new(()),
                mcp_refresh_lock: tokio::sync::Mutex::new(()),
                breaker: Mutex::new(None),
                breaker_window: DEFAULT_BREAKER_WINDOW,
                refreshes: AtomicU64::new(0),
                catalog: super::catalog::RemoteCatalog::default(),
                logins: Mutex::new(std::collections::HashMap::new()),
                events: Mutex::new(None),
            }),
        }
    }

    /// Refresh exchanges made by this broker so far.
    pub fn refresh_count(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    pub fn store_name(&self) -> &'static str {
        self.inner.store.name()
    }

    /// Reads the store (off the async threads).
    pub async fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.store.load())
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?
    }

    pub async fn save(&self, auth: AuthDotJson) -> Result<(), AuthError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.store.save(&auth))
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?
    }

    pub async fn delete(&self) -> Result<(), AuthError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.store.delete())
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?
    }

    /// The current access token, refreshed first if it has expired.
    pub async fn get_token(&self) -> Result<AuthToken, AuthError> {
        let auth = self.load().await?.ok_or(AuthError::NotSignedIn)?;
        let token = token_of(&auth)?;
        if !needs_refresh(&auth) {
            return Ok(token);
        }
        self.refresh_once(RefreshReason::ProactiveExpiry, token.access_token)
            .await
    }

    /// `stale` was refused: a fresh token, refreshing only if nobody did yet.
    pub async fn refresh_stale(&self, stale: String) -> Result<AuthToken, AuthError> {
        self.refresh_once(RefreshReason::UnauthorizedRecovery, stale)
            .await
    }

    async fn refresh_once(
        &self,
        reason: RefreshReason,
        stale: String,
    ) -> Result<AuthToken, AuthError> {
        let _one_at_a_time = self.inner.refresh_lock.lock().await;
        // Somebody ahead of us in the queue may have refreshed already.
        let auth = self.load().await?.ok_or(AuthError::NotSignedIn)?;
        if let Some(fresh) = already_fresh(&auth, &stale) {
            return Ok(fresh);
        }
        let refresh_token = refresh_token_of(&auth)?;
        self.check_breaker(&refresh_token)?;

        // Across processes: under the lock, re-read before asking.
        let home = self.inner.codex_home.clone();
        let lock = tokio::task::spawn_blocking(move || {
            RefreshLock::acquire(&home, CROSS_PROCESS_LOCK_DEADLINE)
        })
        .await
        .map_err(|e| AuthError::Store(e.to_string()))??;
        let mut auth = self.load().await?.ok_or(AuthError::NotSignedIn)?;
        if let Some(fresh) = already_fresh(&auth, &stale) {
            drop(lock);
            return Ok(fresh);
        }
        let refresh_token = refresh_token_of(&auth)?;
        let http = self.http()?;
        self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!("refreshing the access token ({reason:?})");
        let result = refresh::exchange(&http, &self.inner.endpoints, &refresh_token, reason).await;
        let new = match result {
            Ok(n) => n,
            Err(error) => {
                tracing::warn!("token refresh failed: {error}");
                if let Ok(mut b) = self.inner.breaker.lock() {
                    *b = Some(Breaker {
                        since: Instant::now(),
                        error: error.clone(),
                        refresh_token,
                    });
                }
                return Err(error);
            }
        };
        if let Some(tokens) = auth.tokens.as_mut() {
            if let Some(v) = new.id_token {
                tokens.id_token = v;
            }
            if let Some(v) = new.access_token {
                tokens.access_token = v;
            }
            if let Some(v) = new.refresh_token {
                tokens.refresh_token = v;
            }
        }
        auth.last_refresh = Some(now_rfc3339());
        self.save(auth.clone()).await?;
        drop(lock);
        if let Ok(mut b) = self.inner.breaker.lock() {
            *b = None;
        }
        token_of(&auth)
    }

    fn check_breaker(&self, refresh_token: &str) -> Result<(), AuthError> {
        let Ok(b) = self.inner.breaker.lock() else {
            return Ok(());
        };
        match &*b {
            Some(br) if br.refresh_token == refresh_token => {
                let permanent = matches!(br.error, AuthError::ReloginRequired(_));
                if permanent || br.since.elapsed() < self.inner.breaker_window {
                    return Err(br.error.clone());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn http(&self) -> Result<reqwest::Client, AuthError> {
        self.inner
            .http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(AuthError::Transient)
    }

    /// Answers one request.
    pub async fn handle(&self, req: BrokerRequest) -> Result<BrokerResponse, AuthError> {
        match req {
            BrokerRequest::GetToken => self.get_token().await.map(BrokerResponse::Token),
            BrokerRequest::Refresh { stale } => {
                self.refresh_stale(stale).await.map(BrokerResponse::Token)
            }
            BrokerRequest::ListModels { provider } => self
                .list_models(&provider)
                .await
                .map(BrokerResponse::Models),
            BrokerRequest::Account => self.account().await.map(BrokerResponse::Account),
            BrokerRequest::LoginApiKey { api_key } => {
                self.save(super::login::api_key_auth(&api_key)).await?;
                Ok(BrokerResponse::Done)
            }
            BrokerRequest::LoginStart { kind, originator } => self
                .login_start(kind, &originator)
                .await
                .map(BrokerResponse::LoginStarted),
            BrokerRequest::LoginCancel { login_id } => {
                let token = self
                    .inner
                    .logins
                    .lock()
                    .ok()
                    .and_then(|mut l| l.remove(&login_id));
                let found = token.is_some();
                if let Some(t) = token {
                    t.cancel();
                }
                Ok(BrokerResponse::LoginCancelled { found })
            }
            BrokerRequest::McpLoginStart { server, scopes } => self
                .mcp_login_start(&server, scopes)
                .await
                .map(BrokerResponse::LoginStarted),
            BrokerRequest::McpToken { server } => {
                let (config, cfg, _url) = self.mcp_server(&server)?;
                let _one_at_a_time = self.inner.mcp_refresh_lock.lock().await;
                let access_token = crate::mcp::oauth::fresh_token(
                    &self.inner.codex_home,
                    &server,
                    &cfg,
                    config.mcp_oauth_credentials_store,
                )
                .await
                .map_err(|e| AuthError::Transient(e.to_string()))?;
                Ok(BrokerResponse::McpToken { access_token })
            }
            BrokerRequest::McpLogout { server } => {
                let (config, cfg, url) = self.mcp_server(&server)?;
                let _ = cfg;
                let found = crate::mcp::oauth::logout(
                    &self.inner.codex_home,
                    &server,
                    &url,
                    config.mcp_oauth_credentials_store,
                )
                .map_err(|e| AuthError::Transient(e.to_string()))?;
                Ok(BrokerResponse::McpLoggedOut { found })
            }
            BrokerRequest::Logout => {
                self.delete().await?;
                if let Ok(mut b) = self.inner.breaker.lock() {
                    *b = None;
                }
                Ok(BrokerResponse::Done)
            }
        }
    }

    /// Where [`BrokerEvent`]s go.
    pub fn set_event_sink(&self, tx: tokio::sync::mpsc::Sender<BrokerEvent>) {
        if let Ok(mut e) = self.inner.events.lock() {
            *e = Some(tx);
        }
    }

    fn emit(&self, ev: BrokerEvent) {
        let tx = self.inner.events.lock().ok().and_then(|e| e.clone());
        if let Some(tx) = tx {
            let _ = tx.try_send(ev);
        }
    }

    /// Who is signed in (from the stored credentials).
    pub async fn account(&self) -> Result<AccountInfo, AuthError> {
        Ok(account_of(self.load().await?.as_ref()))
    }

    /// Starts a ChatGPT sign-in; it finishes in the background, saves the
    /// credentials, and reports [`BrokerEvent::LoginCompleted`].
    pub async fn login_start(
        &self,
        kind: LoginKind,
        originator: &str,
    ) -> Result<LoginStarted, AuthError> {
        use super::login;
        type Finish = BoxFuture<'static, Result<AuthDotJson, login::LoginError>>;
        let endpoints = self.inner.endpoints.clone();
        let login_id = uuid::Uuid::new_v4().to_string();
        let cancel = tokio_util::sync::CancellationToken::new();
        let (started, finish): (LoginStarted, Finish) = match kind {
            LoginKind::DeviceCode => {
                let code = login::device_code_start(&endpoints)
                    .await
                    .map_err(|e| AuthError::Transient(e.0))?;
                let started = LoginStarted {
                    login_id: login_id.clone(),
                    auth_url: None,
                    user_code: Some(code.user_code.clone()),
                    verification_url: Some(code.verification_url.clone()),
                };
                let c = cancel.clone();
                let e = endpoints.clone();
                (
                    started,
                    Box::pin(async move { login::device_code_finish(&e, &code, c).await }),
                )
            }
            LoginKind::Browser => {
                let b = login::browser_start(&endpoints, originator)
                    .await
                    .map_err(|e| AuthError::Transient(e.0))?;
                let started = LoginStarted {
                    login_id: login_id.clone(),
                    auth_url: Some(b.auth_url.clone()),
                    user_code: None,
                    verification_url: None,
                };
                let c = cancel.clone();
                let e = endpoints.clone();
                (started, Box::pin(async move { b.finish(&e, c).await }))
            }
        };
        if let Ok(mut l) = self.inner.logins.lock() {
            l.insert(login_id.clone(), cancel);
        }
        let me = self.clone();
        tokio::spawn(async move {
            let result = match finish.await {
                Ok(auth) => me.save(auth).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.0),
            };
            if let Ok(mut l) = me.inner.logins.lock() {
                l.remove(&login_id);
            }
            if result.is_ok() {
                if let Ok(mut b) = me.inner.breaker.lock() {
                    *b = None;
                }
            }
            me.emit(BrokerEvent::LoginCompleted {
                login_id,
                success: result.is_ok(),
                error: result.err(),
            });
            if let Ok(info) = me.account().await {
                me.emit(BrokerEvent::AccountUpdated(info));
            }
        });
        Ok(started)
    }

    /// The configured streamable HTTP MCP server `name`.
    fn mcp_server(
        &self,
        name: &str,
    ) -> Result<(crate::config::Config, crate::mcp::McpServerConfig, String), AuthError> {
        let config = crate::config::Config::load(crate::config::LoadOptions {
            codex_home: Some(self.inner.codex_home.clone()),
            ..Default::default()
        })
        .map_err(|e| AuthError::Transient(format!("Error loading configuration: {e}")))?;
        let Some(cfg) = config.mcp_servers.get(name).cloned() else {
            return Err(AuthError::Transient(format!(
                "No MCP server named '{name}' found."
            )));
        };
        let crate::mcp::McpTransportConfig::StreamableHttp { url, .. } = &cfg.transport else {
            return Err(AuthError::Transient(format!(
                "OAuth login is only supported for streamable HTTP servers; '{name}' is a stdio server."
            )));
        };
        let url = url.clone();
        Ok((config, cfg, url))
    }

    /// Starts an MCP OAuth login; it finishes in the background (the
    /// browser's callback), saves the tokens and reports
    /// [`BrokerEvent::McpLoginCompleted`].
    pub async fn mcp_login_start(
        &self,
        server: &str,
        scopes: Option<Vec<String>>,
    ) -> Result<LoginStarted, AuthError> {
        use crate::mcp::oauth;
        let (config, cfg, _url) = self.mcp_server(server)?;
        let opts = oauth::LoginOptions {
            callback_port: config.mcp_oauth_callback_port,
            callback_url: config.mcp_oauth_callback_url.clone(),
            scopes,
            ..Default::default()
        };
        let pending = oauth::start_login(server, &cfg, &opts)
            .await
            .map_err(|e| AuthError::Transient(e.to_string()))?;
        let login_id = uuid::Uuid::new_v4().to_string();
        let cancel = tokio_util::sync::CancellationToken::new();
        if let Ok(mut l) = self.inner.logins.lock() {
            l.insert(login_id.clone(), cancel.clone());
        }
        let started = LoginStarted {
            login_id: login_id.clone(),
            auth_url: Some(pending.authorization_url.clone()),
            user_code: None,
            verification_url: None,
        };
        let me = self.clone();
        let server = server.to_string();
        let mode = config.mcp_oauth_credentials_store;
        tokio::spawn(async move {
            let result = match pending.finish(cancel).await {
                Ok(token) => {
                    oauth::save_token(&me.inner.codex_home, &token, mode).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Ok(mut l) = me.inner.logins.lock() {
                l.remove(&login_id);
            }
            me.emit(BrokerEvent::McpLoginCompleted {
                login_id,
                server,
                success: result.is_ok(),
                error: result.err(),
            });
        });
        Ok(started)
    }

    /// A provider's models, authenticated as its model requests are.
    pub async fn list_models(
        &self,
        provider: &crate::config::ModelProviderInfo,
    ) -> Result<super::catalog::ModelList, AuthError> {
        let env = |v: &str| std::env::var(v).ok().filter(|s| !s.trim().is_empty());
        let bearer = match provider.env_key.as_deref().and_then(env) {
            Some(k) => Some(k),
            None => match &provider.experimental_bearer_token {
                Some(t) => Some(t.clone()),
                None if provider.requires_openai_auth => {
                    self.get_token().await.ok().map(|t| t.access_token)
                }
                None => None,
            },
        };
        self.inner
            .catalog
            .list(provider, bearer)
            .await
            .map_err(AuthError::Transient)
    }

    /// Model-list fetches made so far.
    pub fn model_fetch_count(&self) -> u64 {
        self.inner.catalog.fetch_count()
    }

    /// Refreshes ahead of expiry, forever (for a long-lived broker): wakes
    /// up a little before the access token expires, with jitter so that
    /// several brokers sharing a home do not all wake at once.
    pub async fn run_proactive_refresh(self) {
        loop {
            let wait = match self.load().await {
                Ok(Some(auth)) => match auth
                    .tokens
                    .as_ref()
                    .and_then(|t| jwt::expires_at(&t.access_token))
                {
                    Some(exp) => {
                        let jitter = (uuid::Uuid::new_v4().as_u128() % 30) as i64;
                        let secs = exp - chrono::Utc::now().timestamp() - 120 - jitter;
                        Duration::from_secs(secs.clamp(5, 3600) as u64)
                    }
                    None => Duration::from_secs(3600),
                },
                _ => Duration::from_secs(60),
            };
            tokio::time::sleep(wait).await;
            if let Ok(Some(auth)) = self.load().await {
                if needs_refresh(&auth) {
                    if let Ok(t) = token_of(&auth) {
                        let _ = self
                            .refresh_once(RefreshReason::ProactiveExpiry, t.access_token)
                            .await;
                    }
                }
            }
        }
    }
}

/// Who `auth` signs in.
pub fn account_of(auth: Option<&AuthDotJson>) -> AccountInfo {
    let Some(auth) = auth else {
        return AccountInfo::default();
    };
    let has_key = auth
        .openai_api_key
        .as_deref()
        .is_some_and(|k| !k.is_empty());
    let mode = match (auth.auth_mode.as_deref(), &auth.tokens, has_key) {
        (Some(m), _, _) => Some(m.to_string()),
        (None, _, true) => Some("apikey".to_string()),
        (None, Some(_), false) => Some("chatgpt".to_string()),
        (None, None, false) => None,
    };
    let (email, plan_type) = match (&mode, &auth.tokens) {
        (Some(m), Some(t)) if m == "chatgpt" => (
            jwt::email(&t.id_token),
            jwt::plan_and_account(&t.id_token).0,
        ),
        _ => (None, None),
    };
    AccountInfo {
        auth_mode: mode,
        email,
        plan_type,
    }
}

fn refresh_token_of(auth: &AuthDotJson) -> Result<String, AuthError> {
    auth.tokens
        .as_ref()
        .map(|t| t.refresh_token.clone())
        .ok_or(AuthError::NotSignedIn)
}

/// The stored token, if it is not the stale one and not expired.
fn already_fresh(auth: &AuthDotJson, stale: &str) -> Option<AuthToken> {
    let t = token_of(auth).ok()?;
    (t.access_token != stale && !needs_refresh(auth)).then_some(t)
}

impl TokenSource for LocalBroker {
    fn token(&self) -> BoxFuture<'static, Result<AuthToken, AuthError>> {
        let me = self.clone();
        Box::pin(async move { me.get_token().await })
    }

    fn refresh(&self, stale: String) -> BoxFuture<'static, Result<AuthToken, AuthError>> {
        let me = self.clone();
        Box::pin(async move { me.refresh_stale(stale).await })
    }
}

/// A broker as a service: the in-process [`LocalBroker`] behind its layers,
/// or a client of a broker in another process; callers cannot tell.
pub type BrokerService = tower::util::BoxCloneService<BrokerRequest, BrokerResponse, AuthError>;

/// Requests a broker works on at once by default (see [`broker_service`]).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// `broker` (a [`LocalBroker`], or any service that answers the same
/// requests) with its layers, outermost first: load shed (a request beyond
/// the limit is answered [`AuthError::Overloaded`] at once, never queued) →
/// concurrency limit (`max_in_flight` requests at a time, at least 1) →
/// `broker`. No timeout layer: each external wait inside has its own
/// deadline (the token exchange, the cross-process lock), and each caller
/// bounds its own wait.
///
/// ```no_run
/// use codex_core::auth::broker::{broker_service, BrokerRequest};
/// use codex_core::auth::{AuthError, LocalBroker};
/// use tower::ServiceExt;
///
/// # async fn demo(broker: LocalBroker) {
/// let svc = broker_service(broker, 64);
/// match svc.oneshot(BrokerRequest::GetToken).await {
///     Err(AuthError::Overloaded) => eprintln!("busy, retry later"),
///     other => println!("{other:?}"),
/// }
/// # }
/// ```
pub fn broker_service<S>(broker: S, max_in_flight: usize) -> BrokerService
where
    S: tower::Service<BrokerRequest, Response = BrokerResponse, Error = AuthError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let svc = tower::ServiceBuilder::new()
        .map_err(shed_to_auth)
        .load_shed()
        .concurrency_limit(max_in_flight.max(1))
        .service(broker);
    tower::util::BoxCloneService::new(svc)
}

fn shed_to_auth(e: tower::BoxError) -> AuthError {
    match e.downcast::<AuthError>() {
        Ok(e) => *e,
        Err(e) if e.is::<tower::load_shed::error::Overloaded>() => AuthError::Overloaded,
        Err(e) => AuthError::Transient(e.to_string()),
    }
}

impl tower::Service<BrokerRequest> for LocalBroker {
    type Response = BrokerResponse;
    type Error = AuthError;
    type Future = BoxFuture<'static, Result<BrokerResponse, AuthError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), AuthError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: BrokerRequest) -> Self::Future {
        let me = self.clone();
        Box::pin(async move { me.handle(req).await })
    }
}
