//! Signing in: an API key, the device-code flow, and the browser flow (PKCE
//! with a loopback callback on 127.0.0.1), all ending in an `auth.json`
//! saved through a [`super::LocalBroker`] store. Upstream's endpoints, field
//! names and messages.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

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

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `application/x-www-form-urlencoded` (space as `+`).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters of a URL or request target.
pub fn query_params(target: &str) -> Vec<(String, String)> {
    let Some((_, q)) = target.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (urldecode(k), urldecode(v))
        })
        .collect()
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

/// A browser login waiting for its callback.
pub struct BrowserLogin {
    pub auth_url: String,
    listener: tokio::net::TcpListener,
    redirect_uri: String,
    verifier: String,
    state: String,
}

fn random_b64(n: usize) -> String {
    let mut bytes = Vec::with_capacity(n);
    while bytes.len() < n {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.truncate(n);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
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
        match tokio::net::TcpListener::bind(("127.0.0.1", p)).await {
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
    let verifier = random_b64(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let state = random_b64(32);
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

async fn respond(stream: &mut tokio::net::TcpStream, status: &str, ctype: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

impl BrowserLogin {
    /// Step 2: serves the loopback until the callback arrives (or `cancel`,
    /// or 15 minutes), exchanges the code, and returns the `auth.json`.
    pub async fn finish(
        self,
        endpoints: &AuthEndpoints,
        cancel: CancellationToken,
    ) -> Result<AuthDotJson, LoginError> {
        let deadline = tokio::time::Instant::now() + BROWSER_LOGIN_LIFETIME;
        loop {
            let (mut stream, _) = tokio::select! {
                a = self.listener.accept() => a.map_err(err)?,
                _ = cancel.cancelled() => return Err(err("Login was not completed")),
                _ = tokio::time::sleep_until(deadline) => return Err(err("Login was not completed within 15 minutes")),
            };
            let mut line = String::new();
            {
                let mut reader = BufReader::new(&mut stream);
                if tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
                    .await
                    .is_err()
                {
                    continue;
                }
                // Drain the headers.
                loop {
                    let mut h = String::new();
                    match tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut h))
                        .await
                    {
                        Ok(Ok(n)) if n > 2 => continue,
                        _ => break,
                    }
                }
            }
            let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let path = target.split('?').next().unwrap_or("/");
            match path {
                "/auth/callback" => {
                    let params = query_params(&target);
                    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                    if get("state").as_deref() != Some(self.state.as_str()) {
                        respond(
                            &mut stream,
                            "400 Bad Request",
                            "text/plain",
                            "State mismatch",
                        )
                        .await;
                        continue;
                    }
                    if let Some(e) = get("error") {
                        let why = get("error_description").unwrap_or(e);
                        respond(
                            &mut stream,
                            "200 OK",
                            "text/html; charset=utf-8",
                            &format!("<p>Sign-in failed: {why}</p>"),
                        )
                        .await;
                        return Err(LoginError(format!("Sign-in failed: {why}")));
                    }
                    let Some(code) = get("code") else {
                        respond(
                            &mut stream,
                            "400 Bad Request",
                            "text/plain",
                            "Missing authorization code. Sign-in could not be completed.",
                        )
                        .await;
                        continue;
                    };
                    let result =
                        exchange_code(endpoints, &code, &self.redirect_uri, &self.verifier).await;
                    match result {
                        Ok(tokens) => {
                            let api_key = exchange_api_key(endpoints, &tokens.id_token).await;
                            respond(
                                &mut stream,
                                "200 OK",
                                "text/html; charset=utf-8",
                                SUCCESS_PAGE,
                            )
                            .await;
                            return Ok(chatgpt_auth(tokens, api_key));
                        }
                        Err(e) => {
                            respond(
                                &mut stream,
                                "200 OK",
                                "text/html; charset=utf-8",
                                &format!("<p>Sign-in failed: {e}</p>"),
                            )
                            .await;
                            return Err(e);
                        }
                    }
                }
                "/cancel" => {
                    respond(&mut stream, "200 OK", "text/plain", "Login cancelled").await;
                    return Err(err("Login was not completed"));
                }
                _ => respond(&mut stream, "404 Not Found", "text/plain", "Not Found").await,
            }
        }
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
        assert_eq!(urlencode("a b/c:d"), "a+b%2Fc%3Ad");
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
}
