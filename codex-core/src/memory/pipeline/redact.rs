//! Secret redaction of everything the memories pipeline stores or sends.
//!
//! Upstream's `codex-secrets` sanitizer is four regexes applied in order;
//! this is the same four rules as hand-written matchers (the workspace has no
//! regex engine), with the same leftmost-first, greedy semantics and the same
//! replacements:
//!
//! 1. `sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{16,}|sk-[A-Za-z0-9]{20,}` → `[REDACTED_SECRET]`
//! 2. `\bAKIA[0-9A-Z]{16}\b` → `[REDACTED_SECRET]`
//! 3. `(?i)\bBearer\s+[A-Za-z0-9._\-]{16,}\b` → `Bearer [REDACTED_SECRET]`
//! 4. `(?i)\b(api[_-]?key|token|secret|password)\b(\s*[:=]\s*)(["']?)[^\s"']{8,}` → `$1$2$3[REDACTED_SECRET]`
//!
//! Two rules of ours follow (upstream has none for these): PEM private-key
//! blocks, and the password of a URL's `user:password@`.

/// The placeholder upstream writes in place of a secret.
pub const REDACTED: &str = "[REDACTED_SECRET]";

/// Removes secrets from `input`, best effort.
pub fn redact_secrets(input: &str) -> String {
    let s = replace_all(input, openai_key);
    let s = replace_all(&s, aws_access_key_id);
    let s = replace_all(&s, bearer_token);
    let s = replace_all(&s, secret_assignment);
    let s = replace_all(&s, pem_private_key);
    replace_all(&s, url_password)
}

/// A match at a position: where it ends and what replaces it.
type Matcher = fn(&[char], usize) -> Option<(usize, String)>;

/// Non-overlapping, left to right, like `Regex::replace_all`.
fn replace_all(input: &str, matcher: Matcher) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        match matcher(&chars, i) {
            Some((end, replacement)) if end > i => {
                out.push_str(&replacement);
                i = end;
            }
            _ => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// Unicode `\w`, as the regex crate's `\b` sees it.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `\b` between `at - 1` and `at`.
fn boundary(c: &[char], at: usize) -> bool {
    let before = at
        .checked_sub(1)
        .and_then(|i| c.get(i))
        .is_some_and(|&x| is_word(x));
    let after = c.get(at).is_some_and(|&x| is_word(x));
    before != after
}

fn starts_with(c: &[char], at: usize, lit: &str, ignore_case: bool) -> bool {
    let mut i = at;
    for l in lit.chars() {
        match c.get(i) {
            Some(&x) if x == l || (ignore_case && x.eq_ignore_ascii_case(&l)) => i += 1,
            _ => return false,
        }
    }
    true
}

fn run(c: &[char], at: usize, class: impl Fn(char) -> bool) -> usize {
    c[at.min(c.len())..]
        .iter()
        .take_while(|&&x| class(x))
        .count()
}

fn openai_key(c: &[char], i: usize) -> Option<(usize, String)> {
    if !starts_with(c, i, "sk-", false) {
        return None;
    }
    for prefix in ["proj-", "svcacct-", "admin-"] {
        if starts_with(c, i + 3, prefix, false) {
            let tail_at = i + 3 + prefix.len();
            let n = run(c, tail_at, |x| {
                x.is_ascii_alphanumeric() || x == '_' || x == '-'
            });
            if n >= 16 {
                return Some((tail_at + n, REDACTED.to_string()));
            }
        }
    }
    let n = run(c, i + 3, |x| x.is_ascii_alphanumeric());
    (n >= 20).then(|| (i + 3 + n, REDACTED.to_string()))
}

fn aws_access_key_id(c: &[char], i: usize) -> Option<(usize, String)> {
    if !boundary(c, i) || !starts_with(c, i, "AKIA", false) {
        return None;
    }
    let n = run(c, i + 4, |x| x.is_ascii_digit() || x.is_ascii_uppercase());
    let end = i + 20;
    (n >= 16 && boundary(c, end)).then(|| (end, REDACTED.to_string()))
}

fn bearer_token(c: &[char], i: usize) -> Option<(usize, String)> {
    if !boundary(c, i) || !starts_with(c, i, "bearer", true) {
        return None;
    }
    let ws = run(c, i + 6, char::is_whitespace);
    if ws == 0 {
        return None;
    }
    let tok_at = i + 6 + ws;
    let n = run(c, tok_at, |x| {
        x.is_ascii_alphanumeric() || x == '.' || x == '_' || x == '-'
    });
    // Greedy, then back off to the last length that ends on a `\b`.
    (16..=n)
        .rev()
        .find(|&len| boundary(c, tok_at + len))
        .map(|len| (tok_at + len, format!("Bearer {REDACTED}")))
}

fn secret_assignment(c: &[char], i: usize) -> Option<(usize, String)> {
    if !boundary(c, i) {
        return None;
    }
    let key_len = if starts_with(c, i, "api", true) {
        let sep = usize::from(matches!(c.get(i + 3), Some('_' | '-')));
        if starts_with(c, i + 3 + sep, "key", true) {
            Some(3 + sep + 3)
        } else {
            None
        }
    } else {
        None
    }
    .or_else(|| {
        ["token", "secret", "password"]
            .into_iter()
            .find(|k| starts_with(c, i, k, true))
            .map(str::len)
    })?;
    let key_end = i + key_len;
    if !boundary(c, key_end) {
        return None;
    }
    let mut j = key_end + run(c, key_end, char::is_whitespace);
    if !matches!(c.get(j), Some(':' | '=')) {
        return None;
    }
    j += 1;
    j += run(c, j, char::is_whitespace);
    let quote = usize::from(matches!(c.get(j), Some('"' | '\'')));
    let value_at = j + quote;
    let n = run(c, value_at, |x| !x.is_whitespace() && x != '"' && x != '\'');
    if n < 8 {
        return None;
    }
    let kept: String = c[i..value_at].iter().collect();
    Some((value_at + n, format!("{kept}{REDACTED}")))
}

fn pem_private_key(c: &[char], i: usize) -> Option<(usize, String)> {
    if !starts_with(c, i, "-----BEGIN ", false) {
        return None;
    }
    let header_end =
        (i + 11..c.len().saturating_sub(4)).find(|&j| starts_with(c, j, "-----", false))?;
    let label: String = c[i + 11..header_end].iter().collect();
    if !label.ends_with("PRIVATE KEY") || label.contains('\n') {
        return None;
    }
    let footer = format!("-----END {label}-----");
    let body_at = header_end + 5;
    let end = (body_at..c.len()).find(|&j| starts_with(c, j, &footer, false))?;
    Some((end + footer.chars().count(), REDACTED.to_string()))
}

fn url_password(c: &[char], i: usize) -> Option<(usize, String)> {
    if !starts_with(c, i, "://", false) {
        return None;
    }
    let userinfo = |x: char| !x.is_whitespace() && !matches!(x, '/' | '@' | ':' | '?' | '#');
    let user = run(c, i + 3, userinfo);
    let colon = i + 3 + user;
    if c.get(colon) != Some(&':') {
        return None;
    }
    let pass = run(c, colon + 1, userinfo);
    let at = colon + 1 + pass;
    if pass == 0 || c.get(at) != Some(&'@') {
        return None;
    }
    let kept: String = c[i..=colon].iter().collect();
    Some((at, format!("{kept}{REDACTED}")))
}

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn upstream_rules() {
        for (input, expected) in [
            (
                "key sk-abcdefghijklmnopqrst end",
                "key [REDACTED_SECRET] end",
            ),
            ("sk-proj-ab_cd-efghijklmnopq", "[REDACTED_SECRET]"),
            ("sk-short", "sk-short"),
            ("id AKIA0123456789ABCDEF.", "id [REDACTED_SECRET]."),
            ("XAKIA0123456789ABCDEF", "XAKIA0123456789ABCDEF"),
            (
                "Authorization: bearer abcdefghijklmnop.qrs.",
                "Authorization: Bearer [REDACTED_SECRET].",
            ),
            ("Bearer short", "Bearer short"),
            ("password=hunter2hunter2", "password=[REDACTED_SECRET]"),
            (
                "API_KEY: \"abcdefgh1\" x",
                "API_KEY: \"[REDACTED_SECRET]\" x",
            ),
            ("token = 'abc'", "token = 'abc'"),
            ("access_token=abcdefghijk", "access_token=abcdefghijk"),
            ("my-secret:abcdefghij", "my-secret:[REDACTED_SECRET]"),
            ("harmless text", "harmless text"),
        ] {
            assert_eq!(redact_secrets(input), expected, "{input}");
        }
    }

    #[test]
    fn extra_rules() {
        assert_eq!(
            redact_secrets(
                "a -----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- b"
            ),
            "a [REDACTED_SECRET] b"
        );
        assert_eq!(
            redact_secrets("postgres://bob:s3cr3t@db:5432/x and https://h/p"),
            "postgres://bob:[REDACTED_SECRET]@db:5432/x and https://h/p"
        );
    }
}
