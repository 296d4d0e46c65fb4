//! The memory files, which are the source of truth (the database is only
//! their index): which files hold memories, how each splits into rows, and
//! the ad-hoc notes `remember` writes.
//!
//! Units, one row each:
//! - an ad-hoc note (`extensions/ad_hoc/notes/*.md`): the whole note;
//! - `MEMORY.md` and `raw_memories.md`: each markdown section (a heading and
//!   what follows it up to the next heading; text before the first heading
//!   is a section of its own);
//! - a rollout summary (`rollout_summaries/*.md`): the whole file.
//!
//! `memory_summary.md` is not indexed: it is inlined into every thread's
//! developer message already.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::error::MemoryError;
use super::layout::MemoryLayout;
use super::store::{FileStamp, NewMemory};

/// The first line of a note written for a thread names it.
const THREAD_MARKER: &str = "<!-- source_thread_id: ";

/// One memory file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    /// Relative to `memories/`, `/`-separated.
    pub rel: String,
    pub stamp: FileStamp,
}

/// The memory files of one `$CODEX_HOME`.
#[derive(Debug, Clone)]
pub struct MemoryFiles {
    layout: MemoryLayout,
}

impl MemoryFiles {
    pub fn new(layout: MemoryLayout) -> Self {
        Self { layout }
    }

    pub fn layout(&self) -> &MemoryLayout {
        &self.layout
    }

    pub fn abs(&self, rel: &str) -> PathBuf {
        self.layout.root().join(rel)
    }

    /// Every file that holds memories, sorted by path. Missing directories
    /// are no files; unreadable entries are skipped with a log line.
    pub fn scan(&self) -> Vec<FoundFile> {
        let root = self.layout.root();
        let mut found = Vec::new();
        for name in ["MEMORY.md", "raw_memories.md"] {
            push_file(&root, name, &mut found);
        }
        for dir in ["rollout_summaries", "extensions/ad_hoc/notes"] {
            let Ok(entries) = fs::read_dir(root.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.ends_with(".md") && !name.starts_with('.') {
                    push_file(&root, &format!("{dir}/{name}"), &mut found);
                }
            }
        }
        found.sort_by(|a, b| a.rel.cmp(&b.rel));
        found
    }

    /// The rows of file `rel` as it is now; `None` when it is gone.
    pub fn read_entries(&self, rel: &str) -> Result<Option<Vec<NewMemory>>, MemoryError> {
        let path = self.abs(rel);
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(MemoryError::Io { path, source }),
        };
        Ok(Some(split(rel, &text)))
    }

    /// Writes a new ad-hoc note (atomically: a temp file renamed into
    /// place) and returns its path relative to `memories/`.
    pub fn write_note(
        &self,
        text: &str,
        source_thread_id: Option<&str>,
    ) -> Result<String, MemoryError> {
        let dir = self.layout.ad_hoc_notes();
        fs::create_dir_all(&dir).map_err(|source| MemoryError::Io {
            path: dir.clone(),
            source,
        })?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ").to_string();
        let slug = slug(text);
        let mut name = format!("{stamp}-{slug}.md");
        let mut n = 1;
        while dir.join(&name).exists() {
            name = format!("{stamp}-{slug}-{n}.md");
            n += 1;
        }
        let mut body = String::new();
        if let Some(t) = source_thread_id.filter(|t| !t.contains("-->") && !t.contains('\n')) {
            body.push_str(&format!("{THREAD_MARKER}{t} -->\n"));
        }
        body.push_str(text.trim_end());
        body.push('\n');
        atomic_write(&dir.join(&name), body.as_bytes())?;
        Ok(format!("extensions/ad_hoc/notes/{name}"))
    }

    /// Takes one memory out of file `rel`: an ad-hoc note or a rollout
    /// summary is deleted; from `MEMORY.md` or `raw_memories.md` the
    /// section whose text is `text` is cut (the file rewritten atomically).
    pub fn remove_entry(&self, rel: &str, text: &str) -> Result<(), MemoryError> {
        let path = self.abs(rel);
        if !is_sectioned(rel) {
            return match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(MemoryError::Io { path, source }),
            };
        }
        let content = match fs::read_to_string(&path) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(MemoryError::Io { path, source }),
        };
        let kept: Vec<String> = sections(&content)
            .into_iter()
            .filter(|s| s.trim() != text.trim())
            .collect();
        atomic_write(&path, kept.concat().as_bytes())
    }

    /// Deletes everything under `memories/` (the files and directories in
    /// it; the directory itself stays). Returns what was removed, relative
    /// to `memories/`.
    pub fn remove_all(&self) -> Result<Vec<String>, MemoryError> {
        let root = self.layout.root();
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(MemoryError::Io { path: root, source }),
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let done = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            done.map_err(|source| MemoryError::Io {
                path: path.clone(),
                source,
            })?;
            removed.push(entry.file_name().to_string_lossy().into_owned());
        }
        removed.sort();
        Ok(removed)
    }
}

fn push_file(root: &Path, rel: &str, found: &mut Vec<FoundFile>) {
    match fs::metadata(root.join(rel)) {
        Ok(meta) if meta.is_file() => found.push(FoundFile {
            rel: rel.to_string(),
            stamp: stamp(&meta),
        }),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("memory file {rel}: {e} (skipped)"),
    }
}

fn stamp(meta: &fs::Metadata) -> FileStamp {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    FileStamp {
        size: i64::try_from(meta.len()).unwrap_or(i64::MAX),
        mtime_ns,
    }
}

fn is_sectioned(rel: &str) -> bool {
    rel == "MEMORY.md" || rel == "raw_memories.md"
}

/// The rows of file `rel` with contents `text`.
fn split(rel: &str, text: &str) -> Vec<NewMemory> {
    if is_sectioned(rel) {
        return sections(text)
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| NewMemory {
                text: s.trim().to_string(),
                ..NewMemory::default()
            })
            .collect();
    }
    let (thread, body) = match text.strip_prefix(THREAD_MARKER) {
        Some(rest) => match rest.split_once(" -->\n") {
            Some((id, body)) => (Some(id.to_string()), body),
            None => (None, text),
        },
        None => (None, text),
    };
    if body.trim().is_empty() {
        return Vec::new();
    }
    vec![NewMemory {
        text: body.trim().to_string(),
        source_thread_id: thread,
        ..NewMemory::default()
    }]
}

/// `text` cut before each markdown heading line (outside code fences);
/// concatenating the pieces gives `text` back.
fn sections(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut fenced = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
        }
        if !fenced && trimmed.starts_with('#') && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Up to 6 words of `text`, lower-case ASCII letters and digits joined by
/// `-` (`note` when none).
fn slug(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(6)
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let s = words.join("-");
    if s.is_empty() {
        "note".into()
    } else {
        s.chars().take(60).collect()
    }
}

/// Writes `bytes` to a temp file beside `path`, syncs it and renames it
/// over `path`: readers see the old file or the new one, never half.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), MemoryError> {
    let io_err = |source| MemoryError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(io_err)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip_and_split_at_headings() {
        let text = "intro\n# A\none\n```\n# not a heading\n```\n## B\ntwo\n";
        let s = sections(text);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s.concat(), text);
        let rows = split("MEMORY.md", text);
        assert_eq!(rows.len(), 3);
        assert!(rows[1].text.contains("# not a heading"));
    }

    #[test]
    fn notes_keep_their_thread() {
        let dir = tempfile::tempdir().unwrap();
        let files = MemoryFiles::new(MemoryLayout::new(dir.path()));
        let rel = files.write_note("Use cargo nextest!", Some("t-1")).unwrap();
        assert!(rel.starts_with("extensions/ad_hoc/notes/"), "{rel}");
        assert!(rel.ends_with("-use-cargo-nextest.md"), "{rel}");
        let rows = files.read_entries(&rel).unwrap().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].text, "Use cargo nextest!");
        assert_eq!(rows[0].source_thread_id.as_deref(), Some("t-1"));
        assert_eq!(files.scan().len(), 1);
        files.remove_entry(&rel, "").unwrap();
        assert!(files.scan().is_empty());
    }
}
