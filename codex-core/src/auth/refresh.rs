//! One refresh-token exchange with the OAuth token endpoint, and what its
//! failures mean for the user (sign in again, or try later).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AuthError;

/// Upstream's issuer and OAuth client.
pub const DEFAULT_ISSUER: &str = "https://auth.openai.com";
pub const DEFAULT_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// Deadline of one exchange.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// Overrides the whole token URL (upstream's variable).
pub const TOKEN_URL_ENV: &str = "CODEX_REFRESH_TOKEN_URL_OVERRIDE";
/// Override the issuer and client id (upstream's app-server variables).
pub const ISSUER_ENV: &str = "CODEX_APP_SERVER_LOGIN_ISSUER";
pub const CLIENT_ID_ENV: &str = "CODEX_APP_SERVER_LOGIN_CLIENT_ID";

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEndpoints {
    pub issuer: String,
    pub client_id: String,
    /// Refresh goes here (default: `{issuer}/oauth/token`).
    pub token_url: Option<String>,
}

impl Default for AuthEndpoints {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.into(),
            client_id: DEFAULT_CLIENT_ID.into(),
            token_url: None,
        }
    }
}

impl AuthEndpoints {
    /// The defaults, changed by upstream's environment variables.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let d = Self::default();
        Self {
            issuer: var(ISSUER_ENV).unwrap_or(d.issuer),
            client_id: var(CLIENT_ID_ENV).unwrap_or(d.client_id),
            token_url: var(TOKEN_URL_ENV),
        }
    }

    pub fn token_url(&self) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| format!("{}/oauth/token", self.issuer.trim_end_matches('/')))
    }
}

/// Why a refresh happens (upstream's `refresh_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshReason {
    /// The access token has expired (or is about to).
    ProactiveExpiry,
    /// A model call was refused with 401.
    UnauthorizedRecovery,
}

#[derive(Debug, Serialize)]
struct RefreshRequest<'a> {
    client_id: &'a str,
    grant_type: &'a str,
    refresh_reason: RefreshReason,
    refresh_token: &'a str,
}

/// New tokens (each may be absent: keep the old one then).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RefreshedTokens {
    pub id_token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

/// Exchanges `refresh_token` for new tokens.
pub async fn exchange(
    http: &reqwest::Client,
    endpoints: &AuthEndpoints,
    refresh_token: &str,
    reason: RefreshReason,
) -> Result<RefreshedTokens, AuthError> {
    let url = endpoints.token_url();
    let send = http
        .post(&url)
        .json(&RefreshRequest {
            client_id: &endpoints.client_id,
            grant_type: "refresh_token",
            refresh_reason: reason,
            refresh_token,
        })
        .send();
    let resp = match tokio::time::timeout(REFRESH_TIMEOUT, send).await {
        Err(_) => {
            return Err(AuthError::Transient(format!(
                "the token endpoint {url} did not answer within {}s",
                REFRESH_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => {
            return Err(AuthError::Transient(format!(
                "cannot reach the token endpoint {url}: {e}"
            )))
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let body = tokio::time::timeout(REFRESH_TIMEOUT, resp.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    if status.is_success() {
        return serde_json::from_str(&body).map_err(|e| {
            AuthError::Transient(format!("the token endpoint sent an unreadable answer: {e}"))
        });
    }
    Err(classify_failure(status.as_u16(), &body))
}

/// A failed exchange: permanent (sign in again) or transient.
pub fn classify_failure(status: u16, body: &str) -> AuthError {
    let code = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let from_error = v
            .get("error")
            .and_then(|e| e.as_str().or_else(|| e.get("code").and_then(Value::as_str)));
        from_error
            .or_else(|| v.get("code").and_then(Value::as_str))
            .map(str::to_ascii_lowercase)
    });
    let relogin = |why: &str| {
        AuthError::ReloginRequired(format!(
            "Your access token could not be refreshed because {why}. Please log out and sign in again (`codex logout`, then `codex login`)."
        ))
    };
    match (status, code.as_deref()) {
        (_, Some("refresh_token_expired")) => relogin("your refresh token has expired"),
        (_, Some("refresh_token_reused")) => relogin("your refresh token was already used"),
        (_, Some("refresh_token_invalidated")) => relogin("your refresh token was revoked"),
        (_, Some("invalid_grant")) => relogin("your refresh token is no longer valid"),
        (400 | 401 | 403, _) => relogin(&format!("the token endpoint refused it (HTTP {status})")),
        _ => AuthError::Transient(format!(
            "the token endpoint failed (HTTP {status}); it will be tried again shortly"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified() {
        assert!(matches!(
            classify_failure(401, r#"{"error": {"code": "refresh_token_reused"}}"#),
            AuthError::ReloginRequired(m) if m.contains("already used")
        ));
        assert!(matches!(
            classify_failure(400, r#"{"error": "refresh_token_expired"}"#),
            AuthError::ReloginRequired(m) if m.contains("expired")
        ));
        assert!(matches!(classify_failure(503, ""), AuthError::Transient(_)));
        assert!(matches!(
            classify_failure(401, "nope"),
            AuthError::ReloginRequired(_)
        ));
        assert_eq!(
            AuthEndpoints::default().token_url(),
            "https://auth.openai.com/oauth/token"
        );
    }
}
