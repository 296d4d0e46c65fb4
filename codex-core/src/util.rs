//! Small helpers shared across subsystems.

use std::time::Duration;

/// Joins an argv into one shell-quoted string the way POSIX shells read it:
/// `["/bin/bash", "-lc", "echo hello"]` becomes `/bin/bash -lc 'echo hello'`.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes one word for a POSIX shell, leaving "safe" words bare.
pub fn shell_quote(word: &str) -> String {
    if word.is_empty() {
        return "''".to_string();
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "+-./:@]_".contains(c);
    if word.chars().all(safe) {
        return word.to_string();
    }
    if !word.contains('\'') {
        return format!("'{word}'");
    }
    if !word.contains(['"', '\\', '$', '`', '!']) {
        return format!("\"{word}\"");
    }
    // Close the single-quoted run around each embedded quote: 'a'"'"'b'.
    format!("'{}'", word.replace('\'', "'\"'\"'"))
}

/// The byte-per-token heuristic used to size model-facing output.
pub fn approx_token_count(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Cuts `text` to at most `max_bytes` (on char boundaries), keeping its head and
/// tail and marking what was removed in the middle.
pub fn truncate_middle(text: &str, max_tokens: u64) -> String {
    let budget = (max_tokens as usize).saturating_mul(4);
    if text.len() <= budget {
        return text.to_string();
    }
    let left = budget / 2;
    let right = budget - left;
    let mut head_end = left.min(text.len());
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len().saturating_sub(right).max(head_end);
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let removed_tokens = ((text.len() - budget) as u64).div_ceil(4);
    format!(
        "{}…{removed_tokens} tokens truncated…{}",
        &text[..head_end],
        &text[tail_start..]
    )
}

/// A small, dependency-free jitter source (xorshift seeded from the clock).
pub fn jitter_fraction() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Exponential backoff with ±10% jitter: 200 ms, 400 ms, 800 ms, ... capped.
pub fn backoff(attempt: u32) -> Duration {
    let base_ms = 200f64 * 2f64.powi(attempt.saturating_sub(1).min(16) as i32);
    let jittered = base_ms * (0.9 + 0.2 * jitter_fraction());
    Duration::from_millis(jittered.min(30_000.0) as u64)
}

/// Six random lowercase hex characters (a chunk id for tool output).
pub fn short_hex_id() -> String {
    let v = (jitter_fraction() * (1u64 << 24) as f64) as u64;
    format!("{v:06x}")
}

/// Text for an HTML (or XML-ish) text node or attribute value: `&`, `<`,
/// `>`, `"` and `'` escaped.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_a_shell() {
        let argv: Vec<String> = ["/bin/bash", "-lc", "echo hello"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_join(&argv), "/bin/bash -lc 'echo hello'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), "\"it's\"");
        assert_eq!(shell_quote("it's $HOME"), "'it'\"'\"'s $HOME'");
    }

    #[test]
    fn truncation_keeps_head_and_tail() {
        let text = "a".repeat(100) + &"b".repeat(100);
        let out = truncate_middle(&text, 10);
        assert!(out.starts_with(&"a".repeat(20)));
        assert!(out.ends_with(&"b".repeat(20)));
        assert!(out.contains("tokens truncated"));
        assert_eq!(truncate_middle("short", 10), "short");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let text = "é".repeat(100);
        let out = truncate_middle(&text, 5);
        assert!(out.contains('…'));
    }

    #[test]
    fn backoff_grows() {
        assert!(backoff(1) < Duration::from_millis(250));
        assert!(backoff(3) > Duration::from_millis(700));
        assert!(backoff(100) <= Duration::from_secs(30));
    }

    #[test]
    fn token_estimate() {
        assert_eq!(approx_token_count("hello\n"), 2);
    }
}
