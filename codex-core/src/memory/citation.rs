//! Memory citations: the `<oai-mem-citation>` block the "## Memory" section
//! asks the model to append, stripped from what users see and kept as
//! structured data (`agentMessage.memoryCitation` on the wire).
//!
//! Grammar (upstream's, from its read-path prompt and parser):
//!
//! ```text
//! <oai-mem-citation>
//! <citation_entries>
//! MEMORY.md:1-2|note=[how it was used]
//! </citation_entries>
//! <rollout_ids>            (or <thread_ids>)
//! 01a230ef-7800-7a61-8e6d-9bab1d73a2ca
//! </rollout_ids>
//! </oai-mem-citation>
//! ```
//!
//! The stripping happens once, in codex-core's turn loop, so every surface
//! (app-server deltas and items, `codex exec`, the rollout's `item_completed`)
//! agrees; the model's own history keeps the raw text, as upstream does.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub const CITATION_OPEN: &str = "<oai-mem-citation>";
pub const CITATION_CLOSE: &str = "</oai-mem-citation>";
/// A block that grows past this without its closing tag is not a citation:
/// it is given back as text (so the parser's buffer stays bounded).
pub const MAX_CITATION_BYTES: usize = 64 * 1024;

/// One cited memory file range. Serialized as upstream's rollout writes it
/// (`lineStart`/`lineEnd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryCitationEntry {
    /// Relative to the memory base path (`MEMORY.md`, `rollout_summaries/…`).
    pub path: String,
    pub line_start: u32,
    pub line_end: u32,
    pub note: String,
}

/// What one agent message cited. `rollout_ids` are the threads whose
/// memories were used (upstream's wire calls them `threadIds`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryCitation {
    pub entries: Vec<MemoryCitationEntry>,
    #[serde(default, alias = "threadIds")]
    pub rollout_ids: Vec<String>,
}

/// Strips citation blocks from text that arrives in pieces. Text that might
/// be the start of an opening tag is held back until the next piece decides;
/// nothing else is delayed.
#[derive(Debug, Default)]
pub struct CitationStreamParser {
    /// Held text: a possible opening-tag prefix, or the body of an open tag.
    buf: String,
    inside: bool,
    bodies: Vec<String>,
}

impl CitationStreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one piece; returns the text that is safe to show now.
    pub fn push(&mut self, chunk: &str) -> String {
        self.buf.push_str(chunk);
        let mut visible = String::new();
        loop {
            if self.inside {
                if let Some(i) = self.buf.find(CITATION_CLOSE) {
                    self.bodies.push(self.buf[..i].to_string());
                    self.buf.drain(..i + CITATION_CLOSE.len());
                    self.inside = false;
                    continue;
                }
                if self.buf.len() > MAX_CITATION_BYTES {
                    // Runaway block: not a citation after all.
                    visible.push_str(CITATION_OPEN);
                    visible.push_str(&self.buf);
                    self.buf.clear();
                    self.inside = false;
                }
                return visible;
            }
            if let Some(i) = self.buf.find(CITATION_OPEN) {
                visible.push_str(&self.buf[..i]);
                self.buf.drain(..i + CITATION_OPEN.len());
                self.inside = true;
                continue;
            }
            // The held suffix is an ASCII tag prefix, so the cut is on a char
            // boundary.
            let keep = open_prefix_suffix_len(&self.buf);
            let cut = self.buf.len() - keep;
            visible.push_str(&self.buf[..cut]);
            self.buf.drain(..cut);
            return visible;
        }
    }

    /// Ends the stream: a held tag prefix is text after all; an unterminated
    /// block is closed (upstream's behaviour). Returns the last visible text.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.buf);
        if std::mem::take(&mut self.inside) {
            self.bodies.push(rest);
            String::new()
        } else {
            rest
        }
    }

    /// The citation of everything stripped so far (`None` when no block held
    /// an entry or an id).
    pub fn citation(&self) -> Option<MemoryCitation> {
        parse_memory_citation(&self.bodies)
    }
}

/// The longest suffix of `text` that is a proper prefix of the opening tag.
fn open_prefix_suffix_len(text: &str) -> usize {
    (1..CITATION_OPEN.len())
        .rev()
        .find(|&k| text.ends_with(&CITATION_OPEN[..k]))
        .unwrap_or(0)
}

/// Strips every citation block from a complete text: `(visible, citation)`.
pub fn strip_citations(text: &str) -> (String, Option<MemoryCitation>) {
    let mut p = CitationStreamParser::new();
    let mut visible = p.push(text);
    visible.push_str(&p.finish());
    (visible, p.citation())
}

/// Parses the bodies of citation blocks; ids are deduplicated in order.
pub fn parse_memory_citation(bodies: &[String]) -> Option<MemoryCitation> {
    let mut out = MemoryCitation::default();
    let mut seen = HashSet::new();
    for body in bodies {
        if let Some(block) = block(body, "<citation_entries>", "</citation_entries>") {
            out.entries.extend(block.lines().filter_map(parse_entry));
        }
        let ids = block(body, "<rollout_ids>", "</rollout_ids>")
            .or_else(|| block(body, "<thread_ids>", "</thread_ids>"));
        for id in ids.into_iter().flat_map(str::lines).map(str::trim) {
            if !id.is_empty() && seen.insert(id.to_string()) {
                out.rollout_ids.push(id.to_string());
            }
        }
    }
    (!out.entries.is_empty() || !out.rollout_ids.is_empty()).then_some(out)
}

/// `path:start-end|note=[note]`; anything else is skipped.
fn parse_entry(line: &str) -> Option<MemoryCitationEntry> {
    let line = line.trim();
    let (location, note) = line.rsplit_once("|note=[")?;
    let note = note.strip_suffix(']')?.trim();
    let (path, range) = location.rsplit_once(':')?;
    let (start, end) = range.split_once('-')?;
    Some(MemoryCitationEntry {
        path: path.trim().to_string(),
        line_start: start.trim().parse().ok()?,
        line_end: end.trim().parse().ok()?,
        note: note.to_string(),
    })
}

fn block<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(open)?;
    let (body, _) = rest.split_once(close)?;
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = "You like tabs.\n<oai-mem-citation>\n<citation_entries>\nMEMORY.md:1-2|note=[demo]\n</citation_entries>\n<rollout_ids>\n01a230ef-7800-7a61-8e6d-9bab1d73a2ca\n</rollout_ids>\n</oai-mem-citation>";

    fn golden_citation() -> MemoryCitation {
        MemoryCitation {
            entries: vec![MemoryCitationEntry {
                path: "MEMORY.md".into(),
                line_start: 1,
                line_end: 2,
                note: "demo".into(),
            }],
            rollout_ids: vec!["01a230ef-7800-7a61-8e6d-9bab1d73a2ca".into()],
        }
    }

    fn streamed(chunks: &[&str]) -> (String, Option<MemoryCitation>) {
        let mut p = CitationStreamParser::new();
        let mut out = String::new();
        for c in chunks {
            out.push_str(&p.push(c));
        }
        out.push_str(&p.finish());
        (out, p.citation())
    }

    #[test]
    fn the_golden_reply_is_stripped() {
        let (text, c) = strip_citations(GOLDEN);
        assert_eq!(text, "You like tabs.\n");
        assert_eq!(c, Some(golden_citation()));
        // Serialized as upstream's rollout records it.
        assert_eq!(
            serde_json::to_value(golden_citation()).unwrap(),
            serde_json::json!({"entries": [{"path": "MEMORY.md", "lineStart": 1,
                "lineEnd": 2, "note": "demo"}],
                "rolloutIds": ["01a230ef-7800-7a61-8e6d-9bab1d73a2ca"]})
        );
    }

    #[test]
    fn split_at_every_char_position() {
        let text = format!("héllo 👋 {GOLDEN} après");
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &a in &cuts {
            let (t, c) = streamed(&[&text[..a], &text[a..]]);
            assert_eq!(t, "héllo 👋 You like tabs.\n après", "cut at {a}");
            assert_eq!(c, Some(golden_citation()), "cut at {a}");
        }
        // Three pieces too, and one char at a time.
        for &a in cuts.iter().step_by(7) {
            for &b in cuts.iter().filter(|&&b| b >= a).step_by(5) {
                let (t, _) = streamed(&[&text[..a], &text[a..b], &text[b..]]);
                assert_eq!(t, "héllo 👋 You like tabs.\n après");
            }
        }
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(streamed(&refs).0, "héllo 👋 You like tabs.\n après");
    }

    #[test]
    fn only_a_possible_tag_prefix_is_held_back() {
        let mut p = CitationStreamParser::new();
        assert_eq!(p.push("a < b <oai-mem"), "a < b ");
        assert_eq!(p.push("-x"), "<oai-mem-x");
        assert_eq!(p.push("done <"), "done ");
        assert_eq!(p.finish(), "<");
        assert_eq!(p.citation(), None);
    }

    #[test]
    fn multiple_blocks_merge_and_ids_dedupe() {
        let text = "a<oai-mem-citation><citation_entries>\nMEMORY.md:1-2|note=[x]\n</citation_entries><rollout_ids>\nid1\nid2\n</rollout_ids></oai-mem-citation>b<oai-mem-citation><citation_entries>\nskills/s/SKILL.md:3-4|note=[y: z]\nbad line\n</citation_entries><thread_ids>\nid2\nid3\n</thread_ids></oai-mem-citation>c";
        let (t, c) = strip_citations(text);
        assert_eq!(t, "abc");
        let c = c.unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[1].path, "skills/s/SKILL.md");
        assert_eq!(c.entries[1].note, "y: z");
        assert_eq!(c.rollout_ids, vec!["id1", "id2", "id3"]);
    }

    #[test]
    fn malformed_input_never_panics() {
        // Unterminated: closed at the end (upstream), its text hidden.
        assert_eq!(
            strip_citations("x<oai-mem-citation><rollout_ids>\nr\n</rollout_ids>"),
            (
                "x".to_string(),
                Some(MemoryCitation {
                    entries: vec![],
                    rollout_ids: vec!["r".into()]
                })
            )
        );
        // A block without entries or ids is stripped but cites nothing.
        assert_eq!(
            strip_citations("x<oai-mem-citation>junk</oai-mem-citation>y"),
            ("xy".to_string(), None)
        );
        // Bad entries are skipped.
        let (_, c) = strip_citations(
            "<oai-mem-citation><citation_entries>\nMEMORY.md:a-2|note=[n]\nMEMORY.md:1|note=[n]\nMEMORY.md:1-2|note=n\n</citation_entries></oai-mem-citation>",
        );
        assert_eq!(c, None);
        // A stray closing tag is text.
        assert_eq!(
            strip_citations("a</oai-mem-citation>b").0,
            "a</oai-mem-citation>b"
        );
        // A runaway block is given back as text.
        let long = format!("{CITATION_OPEN}{}", "é".repeat(MAX_CITATION_BYTES));
        let (t, c) = strip_citations(&long);
        assert_eq!(t, long);
        assert_eq!(c, None);
    }

    #[test]
    fn plain_text_passes_through() {
        let (t, c) = strip_citations("no citations here ✓");
        assert_eq!(t, "no citations here ✓");
        assert!(c.is_none());
    }
}
