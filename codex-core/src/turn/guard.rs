//! Guard against an agent stuck calling the same tool with the same
//! arguments over and over.

use serde_json::Value;

/// After this many identical consecutive calls the call is not executed;
/// the model is told to change course.
pub const REFUSE_AFTER: u32 = 3;
/// After this many the turn fails.
pub const FAIL_AFTER: u32 = 6;

#[derive(Debug, Default)]
pub struct RepeatGuard {
    last: Option<String>,
    count: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Run,
    Refuse(u32),
    Fail(u32),
}

impl RepeatGuard {
    pub fn check(&mut self, name: &str, arguments: &str) -> Verdict {
        // Normalize JSON so whitespace or key order does not hide a repeat.
        let args = serde_json::from_str::<Value>(arguments)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| arguments.to_string());
        let sig = format!("{name}\u{0}{args}");
        if self.last.as_deref() == Some(sig.as_str()) {
            self.count += 1;
        } else {
            self.last = Some(sig);
            self.count = 1;
        }
        if self.count >= FAIL_AFTER {
            Verdict::Fail(self.count)
        } else if self.count >= REFUSE_AFTER {
            Verdict::Refuse(self.count)
        } else {
            Verdict::Run
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalates_on_repeats() {
        let mut g = RepeatGuard::default();
        assert_eq!(g.check("t", r#"{"a":1}"#), Verdict::Run);
        assert_eq!(g.check("t", r#"{ "a": 1 }"#), Verdict::Run);
        assert_eq!(g.check("t", r#"{"a":1}"#), Verdict::Refuse(3));
        assert_eq!(g.check("t", r#"{"a":2}"#), Verdict::Run);
        for _ in 0..4 {
            g.check("t", r#"{"a":2}"#);
        }
        assert_eq!(g.check("t", r#"{"a":2}"#), Verdict::Fail(6));
    }
}
