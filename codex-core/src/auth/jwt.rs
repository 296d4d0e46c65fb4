//! Reading (not verifying) the claims of the tokens we hold: when the
//! access token expires, and who signed in. The token endpoint is trusted
//! (TLS); the claims only steer when to refresh and what to show.

use base64::Engine as _;
use serde_json::Value;

/// The payload of a JWT, if it has one.
pub fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `exp` (seconds since the epoch).
pub fn expires_at(token: &str) -> Option<i64> {
    claims(token)?.get("exp")?.as_i64()
}

/// The signed-in user's email (id token).
pub fn email(id_token: &str) -> Option<String> {
    let c = claims(id_token)?;
    c.get("email")
        .and_then(Value::as_str)
        .or_else(|| {
            c.get("https://api.openai.com/profile")?
                .get("email")?
                .as_str()
        })
        .map(str::to_string)
}

/// The ChatGPT plan (`plus`, `pro`, ...) and account id (id token).
pub fn plan_and_account(id_token: &str) -> (Option<String>, Option<String>) {
    let Some(c) = claims(id_token) else {
        return (None, None);
    };
    let auth = c.get("https://api.openai.com/auth");
    let get = |k: &str| {
        auth.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    (get("chatgpt_plan_type"), get("chatgpt_account_id"))
}

/// A token with the given claims (unsigned: `alg: none`), for tests and
/// mock servers.
pub fn unsigned(claims: &Value) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig",
        e.encode(br#"{"alg":"none","typ":"JWT"}"#),
        e.encode(claims.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_claims() {
        let t = unsigned(&json!({"exp": 1700000000, "email": "a@b.c",
            "https://api.openai.com/auth": {"chatgpt_plan_type": "pro", "chatgpt_account_id": "acc"}}));
        assert_eq!(expires_at(&t), Some(1_700_000_000));
        assert_eq!(email(&t).as_deref(), Some("a@b.c"));
        assert_eq!(
            plan_and_account(&t),
            (Some("pro".into()), Some("acc".into()))
        );
        assert_eq!(expires_at("not-a-jwt"), None);
    }
}
