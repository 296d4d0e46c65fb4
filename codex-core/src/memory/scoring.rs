//! Scoring a memory on the local lane (`[memories] score_model`): the small
//! model answers one digit, 0–9, for how useful a note is to future coding
//! sessions with this user, and the memory's `score` becomes
//! `(digit + 1) / 10`, so every scored memory is in 0.1..=1.0 and a score
//! of 0 always means "not scored yet".
//!
//! Scores are derived, the memory files are the truth: a row reindexed
//! from its file (the file changed, or the index was rebuilt) starts
//! unscored again and is rescored in the background.

use super::generate::{GeneratePurpose, LocalGenerate};
use super::service::MemoryServiceError;

/// The one-digit answer.
pub const GRAMMAR: &str = "root ::= [0-9]";

/// A note longer than this is cut (at a character boundary) before it is
/// scored: a short prompt keeps each scoring, and so the lane's busy time,
/// short.
pub const MAX_NOTE_CHARS: usize = 1500;

/// Short on purpose: the prompt must fit small contexts too.
const SYSTEM: &str = "How useful is this note for future coding sessions with this user? \
Answer one digit: 0 useless, 9 essential.";

/// How the lane says a prompt does not fit (`codex_local::LocalError::
/// ContextOverflow`, through the memory service as text).
const CONTEXT_OVERFLOW: &str = "the context holds";

/// The generation that scores `text` (cut to [`MAX_NOTE_CHARS`]).
pub fn request(text: &str) -> LocalGenerate {
    request_within(text, MAX_NOTE_CHARS)
}

/// The same with the note cut to `max_chars`: the retry after
/// [`is_context_overflow`].
pub fn request_within(text: &str, max_chars: usize) -> LocalGenerate {
    let note: String = text.trim().chars().take(max_chars).collect();
    LocalGenerate {
        purpose: GeneratePurpose::Score,
        system: SYSTEM.into(),
        user: format!("Note:\n{note}\n\nDigit:"),
        // One digit; a second token lets the model end cleanly.
        max_tokens: 2,
        grammar: Some(GRAMMAR.into()),
    }
}

/// Whether the lane refused the prompt as longer than its context.
pub fn is_context_overflow(e: &MemoryServiceError) -> bool {
    matches!(e, MemoryServiceError::Failed(m) if m.contains(CONTEXT_OVERFLOW))
}

/// The stored score of the model's answer: the first non-blank character
/// as a digit `d` gives `(d + 1) / 10`; anything else is no score.
pub fn parse(answer: &str) -> Option<f64> {
    let d = answer.trim_start().chars().next()?.to_digit(10)?;
    Some(f64::from(d + 1) / 10.0)
}

/// How much a score lifts recall relevance: `1 + 0.2 * score`, so at most
/// 1.2x (a tiebreak between comparably relevant memories, never a way in
/// for an irrelevant one: only matches are boosted).
pub fn boost(score: f64) -> f64 {
    1.0 + 0.2 * score.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_map_above_zero_and_junk_is_no_score() {
        assert_eq!(parse("0"), Some(0.1));
        assert_eq!(parse(" 9\n"), Some(1.0));
        assert_eq!(parse("4"), Some(0.5));
        assert_eq!(parse(""), None);
        assert_eq!(parse("x"), None);
        assert_eq!(parse("-3"), None);
    }

    #[test]
    fn the_request_asks_for_one_digit_about_the_note() {
        let r = request("  prefers `cargo nextest` over `cargo test`  ");
        assert_eq!(r.purpose, GeneratePurpose::Score);
        assert_eq!(r.grammar.as_deref(), Some("root ::= [0-9]"));
        assert!(r.max_tokens <= 2);
        assert!(r.system.contains("future coding sessions with this user"));
        assert!(r
            .user
            .contains("Note:\nprefers `cargo nextest` over `cargo test`\n"));
        let long = "é".repeat(MAX_NOTE_CHARS * 2);
        let r = request(&long);
        assert_eq!(r.user.matches('é').count(), MAX_NOTE_CHARS);
        assert_eq!(request_within(&long, 10).user.matches('é').count(), 10);
    }

    #[test]
    fn an_overflow_is_told_apart() {
        assert!(is_context_overflow(&MemoryServiceError::Failed(
            "the prompt is 300 tokens; the context holds 256".into()
        )));
        assert!(!is_context_overflow(&MemoryServiceError::Timeout(5)));
    }

    #[test]
    fn boost_is_a_light_tiebreak() {
        assert_eq!(boost(0.0), 1.0);
        assert!((boost(1.0) - 1.2).abs() < 1e-12);
        assert!((boost(7.0) - 1.2).abs() < 1e-12);
    }
}
