//! Errors of a model call, classified by what the caller should do next.

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// No credentials for a provider that needs them.
    #[error("missing API key: set the {var} environment variable{}", instructions.as_deref().map(|i| format!(" ({i})")).unwrap_or_default())]
    MissingApiKey {
        var: String,
        instructions: Option<String>,
    },
    /// The server answered with an error status.
    #[error("{}", describe_http(*status, body))]
    Http {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// Connecting or sending failed.
    #[error("error sending request to {url}: {message}")]
    Transport { url: String, message: String },
    /// The stream broke before `response.completed`.
    #[error("stream disconnected before completion: {0}")]
    Stream(String),
    /// No bytes for longer than the idle timeout.
    #[error("stream disconnected before completion: idle timeout waiting for SSE ({}s)", .0.as_secs_f64())]
    IdleTimeout(Duration),
    /// `response.failed` with a retryable cause.
    #[error("{message}")]
    ResponseFailed {
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("Codex ran out of room in the model's context window. Start a new thread or clear earlier history before retrying.")]
    ContextWindowExceeded,
    #[error("Quota exceeded. Check your plan and billing details.")]
    QuotaExceeded,
    /// `response.incomplete` (max tokens, content filter).
    #[error("Incomplete response returned, reason: {0}")]
    Incomplete(String),
    /// Request could not be built (bad output schema, unreadable image, ...).
    #[error("invalid model request: {0}")]
    InvalidRequest(String),
    /// No usable sign-in (expired and not refreshable, broker down, ...).
    #[error("{0}")]
    Auth(crate::auth::AuthError),
}

fn describe_http(status: u16, body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message").or(Some(e)))
                .and_then(|m| m.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| body.chars().take(500).collect());
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    if detail.is_empty() {
        format!("unexpected status {status} {reason}")
    } else {
        format!("unexpected status {status} {reason}: {detail}")
    }
}

impl ModelError {
    /// Worth retrying the HTTP request itself (before any stream events).
    pub fn is_retryable_request(&self) -> bool {
        match self {
            ModelError::Http { status, .. } => *status >= 500,
            ModelError::Transport { .. } => true,
            _ => false,
        }
    }

    /// Worth re-running the whole sampling request (the turn-level retry).
    pub fn is_retryable_stream(&self) -> bool {
        match self {
            ModelError::Stream(_) | ModelError::IdleTimeout(_) => true,
            ModelError::ResponseFailed { .. } => true,
            ModelError::Http { status, .. } => *status == 429 || *status >= 500,
            ModelError::Transport { .. } => true,
            _ => false,
        }
    }

    /// A server-requested delay before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ModelError::Http { retry_after, .. }
            | ModelError::ResponseFailed { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            ModelError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Parses "Please try again in 11.054s" / "in 20ms" / "in 3 seconds".
pub fn parse_try_again_in(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    let idx = lower.find("try again in")?;
    let rest = lower[idx + "try again in".len()..].trim_start();
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let value: f64 = rest[..num_end].parse().ok()?;
    let unit = rest[num_end..].trim_start();
    if unit.starts_with("ms") {
        Some(Duration::from_secs_f64(value / 1000.0))
    } else if unit.starts_with('s') {
        Some(Duration::from_secs_f64(value))
    } else {
        None
    }
}

/// Parses a `retry-after` header: delta-seconds (integer or decimal).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim().parse::<f64>().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_delays() {
        assert_eq!(
            parse_try_again_in("Rate limit. Please try again in 11.054s. Thanks"),
            Some(Duration::from_millis(11_054))
        );
        assert_eq!(
            parse_try_again_in("try again in 20ms"),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            parse_try_again_in("Try again in 3 seconds"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(parse_try_again_in("nothing"), None);
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015"), None);
    }

    #[test]
    fn http_error_message_uses_body() {
        let e = ModelError::Http {
            status: 400,
            body: r#"{"error":{"message":"bad model"}}"#.into(),
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "unexpected status 400 Bad Request: bad model"
        );
    }
}
