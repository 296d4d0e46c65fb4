//! Turning user text into an FTS5 query that cannot be a syntax error.

/// Terms beyond this are dropped: a query is a handful of words, and each
/// term costs an index lookup.
const MAX_TERMS: usize = 32;

/// The FTS5 `MATCH` expression for free text, or `None` when the text has
/// no searchable word.
///
/// Words are runs of alphanumeric characters; everything else —
/// quotes, parentheses, `*`, `:`, `-`, `^` — only separates them, so user
/// punctuation never reaches FTS5 as syntax. Each word is a quoted string
/// (so `AND`, `NOT`, `NEAR` are plain words) and words are joined with `OR`:
/// a memory matching any word is a candidate, and BM25 ranks the ones that
/// match more, and rarer, words first.
pub fn fts_query(text: &str) -> Option<String> {
    let mut terms: Vec<&str> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || terms.contains(&word) {
            continue;
        }
        terms.push(word);
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    if terms.is_empty() {
        return None;
    }
    let quoted: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
    Some(quoted.join(" OR "))
}
