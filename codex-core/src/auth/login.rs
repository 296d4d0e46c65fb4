//! Signing in: an API key, the device-code flow, and the browser flow (PKCE
//! with a loopback callback on 127.0.0.1), all ending in an `auth.json`
//! saved through a [`super::LocalBroker`] store. Upstream's endpoints, field
//! names and messages.

use crate::util::html_escape;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::form_urlencoded;

use super::refresh::AuthEndpoints;
use super::{jwt, AuthDotJson, TokenData};

/// How long a device code stays valid.
pub const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long the browser flow waits for the callback.
pub const BROWSER_LOGIN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Loopback ports of the browser flow (upstream's), and our variable to
/// choose another (tests).
pub const DEFAULT_CALLBACK_PORT: u16 = 1455;
pub const FALLBACK_CALLBACK_PORT: u16 = 1457;
pub const CALLBACK_PORT_ENV: &str = "CODEX_LOGIN_CALLBACK_PORT";
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const SCOPE: &str = "openid profile email offline_access";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoginError(pub String);

fn err(e: impl std::fmt::Display) -> LoginError {
    LoginError(e.to_string())
}

/// An `auth.json` holding only an API key (`codex login --with-api-key`).
pub fn api_key_auth(key: &str) -> AuthDotJson {
    AuthDotJson {
        auth_mode: Some("apikey".into()),
        openai_api_key: Some(key.to_string()),
        ..Default::default()
    }
}

/// Tokens from the token endpoint, as an `auth.json` of a ChatGPT sign-in.
pub fn chatgpt_auth(tokens: ExchangedTokens, api_key: Option<String>) -> AuthDotJson {
    let (_, account) = jwt::plan_and_account(&tokens.id_token);
    AuthDotJson {
        auth_mode: Some("chatgpt".into()),
        openai_api_key: api_key,
        tokens: Some(TokenData {
            id_token: tokens.id_token,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            account_id: account,
            extra: Default::default(),
        }),
        last_refresh: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        extra: Default::default(),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExchangedTokens {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: String,
}

fn http() -> Result<reqwest::Client, LoginError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(err)
}

/// `application/x-www-form-urlencoded` (space as `+`).
fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Lenient, as browsers are: a malformed escape stays as written, invalid
/// UTF-8 becomes U+FFFD. Never fails.
fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// The query parameters of a URL or request target.
pub fn query_params(target: &str) -> Vec<(String, String)> {
    target
        .split_once('?')
        .map(|(_, q)| parse_query(q))
        .unwrap_or_default()
}

/// Exchanges an authorization code for tokens.
async fn exchange_code(
    endpoints: &AuthEndpoints,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<ExchangedTokens, LoginError> {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", &endpoints.client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ]);
    let resp = http()?
        .post(endpoints.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| LoginError(format!("cannot reach the token endpoint: {e}")))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("error_description")
                    .and_then(Value::as_str)
                    .or_else(|| v.get("error")?.get("message")?.as_str())
                    .or_else(|| v.get("error")?.as_str())
                    .map(str::to_string)
            })
            .unwrap_or(text);
        return Err(LoginError(format!(
            "token endpoint returned status {status}: {detail}"
        )));
    }
    serde_json::from_str(&text).map_err(|e| LoginError(format!("unreadable tokens: {e}")))
}

/// Best effort: an API key for the signed-in user (token exchange).
async fn exchange_api_key(endpoints: &AuthEndpoints, id_token: &str) -> Option<String> {
    let body = form(&[
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("client_id", &endpoints.client_id),
        ("requested_token", "openai-api-key"),
        ("subject_token", id_token),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:id_token",
        ),
    ]);
    let resp = http()
        .ok()?
        .post(endpoints.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let v: Value = resp.json().await.ok()?;
    v.get("access_token")?.as_str().map(str::to_string)
}

// ---- device code ----------------------------------------------------------

/// A device code to show the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCode {
    pub device_auth_id: String,
    pub user_code: String,
    pub interval: Duration,
    pub verification_url: String,
}

/// Step 1: asks for a device code.
pub async fn device_code_start(endpoints: &AuthEndpoints) -> Result<DeviceCode, LoginError> {
    let base = endpoints.issuer.trim_end_matches('/');
    let resp = http()?
        .post(format!("{base}/api/accounts/deviceauth/usercode"))
        .json(&serde_json::json!({"client_id": endpoints.client_id}))
        .send()
        .await
        .map_err(|e| LoginError(format!("cannot reach {base}: {e}")))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(LoginError("device code login is not enabled for this Codex server. Use the browser login or verify the server URL.".into()));
    }
    if !resp.status().is_success() {
        return Err(LoginError(format!(
            "device code request failed with status {}",
            resp.status()
        )));
    }
    let v: Value = resp.json().await.map_err(err)?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let interval = v
        .get("interval")
        .and_then(|i| {
            i.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| i.as_u64())
        })
        .unwrap_or(5);
    Ok(DeviceCode {
        device_auth_id: s("device_auth_id").ok_or_else(|| err("no device_auth_id"))?,
        user_code: s("user_code")
            .or_else(|| s("usercode"))
            .ok_or_else(|| err("no user_code"))?,
        interval: Duration::from_secs(interval).max(Duration::from_millis(100)),
        verification_url: format!("{base}/codex/device"),
    })
}

/// Step 2: polls until the user approved (or 15 minutes, or `cancel`), then
/// exchanges the code. Returns the `auth.json` to save.
pub async fn device_code_finish(
    endpoints: &AuthEndpoints,
    code: &DeviceCode,
    cancel: CancellationToken,
) -> Result<AuthDotJson, LoginError> {
    let base = endpoints.issuer.trim_end_matches('/');
    let client = http()?;
    let deadline = tokio::time::Instant::now() + DEVICE_CODE_LIFETIME;
    let approved: Value = loop {
        if tokio::time::Instant::now() >= deadline {
            return Err(err("device auth timed out after 15 minutes"));
        }
        let resp = client
            .post(format!("{base}/api/accounts/deviceauth/token"))
            .json(&serde_json::json!({
                "device_auth_id": code.device_auth_id,
                "user_code": code.user_code,
            }))
            .send()
            .await
            .map_err(|e| LoginError(format!("cannot reach {base}: {e}")))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            break resp.json().await.map_err(err)?;
        }
        if status != 403 && status != 404 {
            return Err(LoginError(format!(
                "device auth failed with status {status}"
            )));
        }
        tokio::select! {
            _ = tokio::time::sleep(code.interval) => {}
            _ = cancel.cancelled() => return Err(err("Login was not completed")),
        }
    };
    let field = |k: &str| {
        approved
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| LoginError(format!("device auth answer lacks {k}")))
    };
    let tokens = exchange_code(
        endpoints,
        &field("authorization_code")?,
        &format!("{base}/deviceauth/callback"),
        &field("code_verifier")?,
    )
    .await?;
    Ok(chatgpt_auth(tokens, None))
}

// ---- browser (PKCE + loopback) --------------------------------------------

// Any local process can connect to the callback server, so no connection may
// hold it up or make it grow: each one is served in its own task, within
// these bounds.

/// The request head (request line and headers) must arrive within this long,
/// counted from the connection, however slowly it trickles in.
const CALLBACK_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head. Generous: the browser sends the cookies of every
/// server that ever ran on 127.0.0.1.
const CALLBACK_MAX_HEAD: usize = 64 * 1024;
/// Backstop for one connection: the head, then the code exchange (two token
/// requests) that the callback's page waits for.
const CALLBACK_CONNECTION_DEADLINE: Duration =
    Duration::from_secs(2 * HTTP_TIMEOUT.as_secs() + CALLBACK_HEADER_TIMEOUT.as_secs());
/// Connections served at once; more are closed on arrival.
const CALLBACK_MAX_CONNECTIONS: usize = 64;
/// How long the last page gets to reach the browser before the server stops.
const CALLBACK_FLUSH_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (out of descriptors, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A browser login waiting for its callback.
pub struct BrowserLogin {
    pub auth_url: String,
    listener: TcpListener,
    redirect_uri: String,
    verifier: String,
    state: String,
}

/// `n` bytes from the OS's generator, base64url without padding.
fn random_b64(n: usize) -> Result<String, LoginError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)
        .map_err(|e| LoginError(format!("cannot get random bytes from the OS: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A PKCE pair (RFC 7636): a verifier of 64 random bytes (86 characters of
/// base64url), and its S256 challenge.
fn pkce_pair() -> Result<(String, String), LoginError> {
    let verifier = random_b64(64)?;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Ok((verifier, challenge))
}

/// Step 1: binds the loopback server and builds the authorize URL.
pub async fn browser_start(
    endpoints: &AuthEndpoints,
    originator: &str,
) -> Result<BrowserLogin, LoginError> {
    let ports: Vec<u16> = match std::env::var(CALLBACK_PORT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
    {
        Some(p) => vec![p],
        None => vec![DEFAULT_CALLBACK_PORT, FALLBACK_CALLBACK_PORT],
    };
    let mut listener = None;
    let mut last_err = None;
    for p in ports {
        match TcpListener::bind(("127.0.0.1", p)).await {
            Ok(l) => {
                listener = Some(l);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let listener = listener.ok_or_else(|| {
        LoginError(format!(
            "cannot listen for the login callback on 127.0.0.1: {}",
            last_err.map(|e| e.to_string()).unwrap_or_default()
        ))
    })?;
    let port = listener.local_addr().map_err(err)?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/auth/callback");
    let (verifier, challenge) = pkce_pair()?;
    let state = random_b64(32)?;
    let auth_url = format!(
        "{}/oauth/authorize?{}",
        endpoints.issuer.trim_end_matches('/'),
        form(&[
            ("response_type", "code"),
            ("client_id", &endpoints.client_id),
            ("redirect_uri", &redirect_uri),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", &state),
            ("scope", SCOPE),
            ("id_token_add_organizations", "true"),
            ("codex_cli_simplified_flow", "true"),
            ("originator", originator),
        ])
    );
    Ok(BrowserLogin {
        auth_url,
        listener,
        redirect_uri,
        verifier,
        state,
    })
}

const SUCCESS_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signed in to Codex</title></head><body style=\"font-family:sans-serif;margin:4em\"><h1>Signed in to Codex</h1><p>You can close this tab and return to your terminal or editor.</p></body></html>";

/// An answer of the callback server.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    content_type: &'static str,
    body: String,
}

impl Page {
    fn text(status: StatusCode, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }

    fn success() -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: SUCCESS_PAGE.to_string(),
        }
    }

    /// `why` is text from the redirect's query or an error: never markup.
    fn failure(why: &str) -> Self {
        Self {
            status: StatusCode::OK,
            content_type: "text/html; charset=utf-8",
            body: format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head><body style=\"font-family:sans-serif;margin:4em\"><h1>Sign-in failed</h1><p>{}</p></body></html>",
                html_escape(why)
            ),
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from(self.body)));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Our pages run no script and load nothing, whatever ends up in them.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        );
        resp
    }
}

/// What a request to the callback server asks of [`BrowserLogin::finish`].
/// `closed` fires when that request's connection is done, i.e. its page
/// has been written.
enum Callback {
    /// The provider's redirect with a code: `finish` exchanges it, and
    /// answers with the page to show.
    Code {
        code: String,
        page: oneshot::Sender<Page>,
        closed: CancellationToken,
    },
    /// The sign-in ended here (a provider error, `/cancel`); already answered.
    Ended {
        error: LoginError,
        closed: CancellationToken,
    },
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell a prober how much of the state it guessed.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn route(
    req: Request<hyper::body::Incoming>,
    state: &str,
    events: &mpsc::Sender<Callback>,
    closed: CancellationToken,
) -> Page {
    let not_found = || Page::text(StatusCode::NOT_FOUND, "Not Found");
    if req.method() != Method::GET {
        return not_found();
    }
    match req.uri().path() {
        "/auth/callback" => {
            let params = parse_query(req.uri().query().unwrap_or(""));
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            if !get("state").is_some_and(|s| same_secret(s, state)) {
                return Page::text(StatusCode::BAD_REQUEST, "State mismatch");
            }
            if let Some(e) = get("error") {
                let why = get("error_description").unwrap_or(e);
                let error = LoginError(format!("Sign-in failed: {why}"));
                let _ = events.send(Callback::Ended { error, closed }).await;
                return Page::failure(why);
            }
            let Some(code) = get("code") else {
                return Page::text(
                    StatusCode::BAD_REQUEST,
                    "Missing authorization code. Sign-in could not be completed.",
                );
            };
            let (page, answer) = oneshot::channel();
            let code = code.to_string();
            let asked = events.send(Callback::Code { code, page, closed }).await;
            match (asked, answer.await) {
                (Ok(()), Ok(page)) => page,
                _ => Page::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "This sign-in is no longer in progress.",
                ),
            }
        }
        "/cancel" => {
            let error = err("Login was not completed");
            let _ = events.send(Callback::Ended { error, closed }).await;
            Page::text(StatusCode::OK, "Login cancelled")
        }
        _ => not_found(),
    }
}

/// Serves one connection: one request (no keep-alive), its head bounded in
/// size and time, the whole connection in time.
async fn serve_connection(stream: TcpStream, state: Arc<str>, events: mpsc::Sender<Callback>) {
    let closed = CancellationToken::new();
    // Fires `closed` however this task ends, aborted included.
    let _closed_on_exit = closed.clone().drop_guard();
    let svc = service_fn(move |req| {
        let (state, events, closed) = (state.clone(), events.clone(), closed.clone());
        async move { Ok::<_, Infallible>(route(req, &state, &events, closed).await.into_response()) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CALLBACK_HEADER_TIMEOUT)
        .max_buf_size(CALLBACK_MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc);
    // Malformed, oversized or late requests were answered by hyper (400,
    // 431, ...) or dropped: nothing for the sign-in to hear about.
    let _ = tokio::time::timeout(CALLBACK_CONNECTION_DEADLINE, conn).await;
}

async fn sign_in(
    endpoints: &AuthEndpoints,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<AuthDotJson, LoginError> {
    let tokens = exchange_code(endpoints, code, redirect_uri, verifier).await?;
    let api_key = exchange_api_key(endpoints, &tokens.id_token).await;
    Ok(chatgpt_auth(tokens, api_key))
}

impl BrowserLogin {
    /// Step 2: serves the loopback until the callback arrives (or `cancel`,
    /// or 15 minutes), exchanges the code, and returns the `auth.json`.
    pub async fn finish(
        self,
        endpoints: &AuthEndpoints,
        cancel: CancellationToken,
    ) -> Result<AuthDotJson, LoginError> {
        let BrowserLogin {
            listener,
            redirect_uri,
            verifier,
            state,
            ..
        } = self;
        let deadline = tokio::time::Instant::now() + BROWSER_LOGIN_LIFETIME;
        let not_completed = || err("Login was not completed");
        let timed_out = || err("Login was not completed within 15 minutes");
        let state: Arc<str> = state.into();
        let (events_tx, mut events) = mpsc::channel(CALLBACK_MAX_CONNECTIONS);
        // Dropped on return, which aborts the connections still open.
        let mut conns = JoinSet::new();
        let (outcome, closed) = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) if conns.len() < CALLBACK_MAX_CONNECTIONS => {
                        conns.spawn(serve_connection(stream, state.clone(), events_tx.clone()));
                    }
                    Ok(_) => tracing::debug!("login callback: too many connections, closing one"),
                    Err(e) => {
                        tracing::debug!("login callback: accept failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                Some(event) = events.recv() => match event {
                    Callback::Code { code, page, closed } => {
                        let outcome = tokio::select! {
                            r = sign_in(endpoints, &code, &redirect_uri, &verifier) => r,
                            _ = cancel.cancelled() => Err(not_completed()),
                            _ = tokio::time::sleep_until(deadline) => Err(timed_out()),
                        };
                        let _ = page.send(match &outcome {
                            Ok(_) => Page::success(),
                            Err(e) => Page::failure(&e.0),
                        });
                        break (outcome, closed);
                    }
                    Callback::Ended { error, closed } => break (Err(error), closed),
                },
                _ = cancel.cancelled() => return Err(not_completed()),
                _ = tokio::time::sleep_until(deadline) => return Err(timed_out()),
            }
        };
        let _ = tokio::time::timeout(CALLBACK_FLUSH_GRACE, closed.cancelled()).await;
        outcome
    }
}

/// `sk-abcdef***vwxyz` (upstream's masking).
pub fn mask_key(key: &str) -> String {
    if key.len() <= 13 {
        return "***".into();
    }
    format!("{}***{}", &key[..8], &key[key.len() - 5..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_masking() {
        assert_eq!(form(&[("a b", "/c:d")]), "a+b=%2Fc%3Ad");
        let q = query_params("/auth/callback?code=x%2Fy&state=s+t");
        assert_eq!(
            q,
            vec![
                ("code".into(), "x/y".into()),
                ("state".into(), "s t".into())
            ]
        );
        assert_eq!(
            mask_key("sk-fake-test-1234567890abcdef"),
            "sk-fake-***bcdef"
        );
        assert_eq!(mask_key("short"), "***");
        let a = api_key_auth("sk-1");
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-1"})
        );
    }

    #[test]
    fn query_parsing_takes_any_input() {
        // `%` before a multibyte character, cut-off escapes, invalid UTF-8:
        // kept as written or replaced, never a panic.
        assert_eq!(
            query_params("/?a=%a\u{e9}&b=%&c=%zz&%=%%"),
            vec![
                ("a".into(), "%a\u{e9}".into()),
                ("b".into(), "%".into()),
                ("c".into(), "%zz".into()),
                ("%".into(), "%%".into()),
            ]
        );
        assert_eq!(
            query_params("/?s=%C3%28"),
            vec![("s".into(), "\u{fffd}(".into())]
        );
        for c in ['\u{e9}', '\u{20ac}', '\u{1f600}', '%', '+', '&', '='] {
            for prefix in ["%", "%a", "%A", "%%", "a=%", "=%a"] {
                query_params(&format!("/?{prefix}{c}{prefix}"));
            }
        }
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            html_escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        let page = Page::failure("<img src=x onerror=alert(1)>");
        assert!(!page.body.contains("<img"), "{}", page.body);
        assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }

    #[test]
    fn pkce_verifier_is_random_and_the_challenge_is_its_s256() {
        let (v1, c1) = pkce_pair().unwrap();
        let (v2, _) = pkce_pair().unwrap();
        // 64 bytes as base64url without padding; within RFC 7636's 43..=128
        // characters of its unreserved alphabet.
        assert_eq!(v1.len(), 86);
        assert!(v1
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&v1).unwrap().len(), 64);
        assert_ne!(v1, v2);
        // Not UUIDv4 bytes: those fix the version nibble and variant bits of
        // every 16-byte block (chance of a random pair matching: 2^-48).
        let uuid_like = |v: &str| {
            let b = URL_SAFE_NO_PAD.decode(v).unwrap();
            b.chunks(16).all(|c| c[6] >> 4 == 4 && c[8] >> 6 == 0b10)
        };
        assert!(!(uuid_like(&v1) && uuid_like(&v2)));
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&c1).unwrap(),
            Sha256::digest(v1.as_bytes()).to_vec()
        );
        // RFC 7636, appendix B.
        let rfc_verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(rfc_verifier.as_bytes())),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
