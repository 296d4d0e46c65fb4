//! The memory read path: the "## Memory" developer section, upstream's
//! template (`templates/read_path.md`, verbatim) with the memory folder and
//! `memory_summary.md` filled in.
//!
//! As upstream: the summary is trimmed and cut to
//! [`SUMMARY_TOKEN_LIMIT`] tokens (head and tail kept); the section is left
//! out when the file is missing, unreadable or blank. Ours on top: the read
//! itself is bounded ([`MAX_SUMMARY_READ_BYTES`]), so a huge file costs no
//! more than the section it can produce.

use std::io::Read;
use std::path::Path;

use super::mode::{self, ThreadMemoryMode};
use super::MemoryLayout;
use crate::config::Config;

pub const READ_PATH_TEMPLATE: &str = include_str!("templates/read_path.md");
/// Upstream's `MEMORY_TOOL_DEVELOPER_INSTRUCTIONS_SUMMARY_TOKEN_LIMIT`
/// (`ext/memories`, the version whose template this is).
pub const SUMMARY_TOKEN_LIMIT: u64 = 2_500;
/// Read at most this much of `memory_summary.md`: far past what survives the
/// token cut, so the cut's head and tail are still the file's own.
pub const MAX_SUMMARY_READ_BYTES: u64 = 1024 * 1024;

/// `memory_summary.md`, trimmed and truncated; `None` when missing,
/// unreadable or blank.
pub fn read_memory_summary(layout: &MemoryLayout) -> Option<String> {
    let file = std::fs::File::open(layout.memory_summary()).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_SUMMARY_READ_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let summary = crate::util::truncate_middle(text.trim(), SUMMARY_TOKEN_LIMIT);
    (!summary.is_empty()).then_some(summary)
}

/// The section for a memory folder, or `None` without a summary.
pub fn build_memory_section(layout: &MemoryLayout) -> Option<String> {
    let summary = read_memory_summary(layout)?;
    Some(render(&layout.root(), &summary))
}

fn render(base_path: &Path, summary: &str) -> String {
    // The summary goes in last so text in it is never taken for a placeholder.
    READ_PATH_TEMPLATE
        .replace("{{ base_path }}", &base_path.display().to_string())
        .replace("{{ memory_summary }}", summary)
}

/// Whether a thread's model requests may use memories: `[features] memories`,
/// `use_memories`, and the thread's mode is `enabled`.
pub fn memories_usable(config: &Config, thread_id: &str) -> bool {
    config.memories.enabled
        && config.memories.use_memories
        && mode::load(&config.codex_home, thread_id, &config.memories) == ThreadMemoryMode::Enabled
}

/// The section for a thread's developer message, when it may use memories.
pub fn memory_section_for(config: &Config, thread_id: &str) -> Option<String> {
    if !memories_usable(config, thread_id) {
        return None;
    }
    build_memory_section(&MemoryLayout::new(&config.codex_home))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_with(summary: Option<&str>) -> (tempfile::TempDir, MemoryLayout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = MemoryLayout::new(dir.path());
        std::fs::create_dir_all(layout.root()).unwrap();
        if let Some(s) = summary {
            std::fs::write(layout.memory_summary(), s).unwrap();
        }
        (dir, layout)
    }

    #[test]
    fn the_template_is_upstreams() {
        use sha2::Digest;
        let sha = sha2::Sha256::digest(READ_PATH_TEMPLATE.as_bytes());
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "2bc7736029884b714860a6f0d6b2fd26598bba58f2213b787f01fe2a491f4326"
        );
    }

    #[test]
    fn section_with_summary() {
        let (_d, layout) = layout_with(Some("\n  v1\nYou like tabs.\n\n"));
        let s = build_memory_section(&layout).unwrap();
        let base = layout.root().display().to_string();
        assert!(s.starts_with("## Memory\n\nYou have access to a memory folder"));
        assert!(s.contains(&format!(
            "- {base}/memory_summary.md (already provided below; do NOT open again)"
        )));
        assert!(s.contains(
            "========= MEMORY_SUMMARY BEGINS =========\nv1\nYou like tabs.\n========= MEMORY_SUMMARY ENDS ========="
        ));
        assert!(!s.contains("{{"));
        assert!(s.contains(&format!("{base}/extensions/ad_hoc/notes/")));
    }

    #[test]
    fn no_section_without_a_summary() {
        let (_d, layout) = layout_with(None);
        assert_eq!(build_memory_section(&layout), None);
        let (_d, layout) = layout_with(Some(" \n\t\n"));
        assert_eq!(build_memory_section(&layout), None);
    }

    #[test]
    fn a_long_summary_keeps_head_and_tail() {
        let body = format!("HEAD{}TAIL", "x".repeat(40_000));
        let (_d, layout) = layout_with(Some(&body));
        let summary = read_memory_summary(&layout).unwrap();
        assert!(summary.starts_with("HEAD"));
        assert!(summary.ends_with("TAIL"));
        assert!(summary.contains("tokens truncated"));
        assert!(summary.len() < (SUMMARY_TOKEN_LIMIT as usize) * 4 + 64);
        // A placeholder-looking summary stays as written.
        let (_d, layout) = layout_with(Some("{{ base_path }}"));
        let s = build_memory_section(&layout).unwrap();
        assert!(s.contains("BEGINS =========\n{{ base_path }}\n========="));
    }

    #[test]
    fn the_read_is_bounded() {
        let big = "é".repeat(MAX_SUMMARY_READ_BYTES as usize);
        let (_d, layout) = layout_with(Some(&big));
        let summary = read_memory_summary(&layout).unwrap();
        assert!(summary.len() < (SUMMARY_TOKEN_LIMIT as usize) * 4 + 64);
    }
}
