//! Applying a parsed patch: every change is computed in memory first (so a
//! patch that does not fit changes nothing), then each file is written
//! atomically (temp file + fsync + rename). If a write fails midway, the
//! files already written are restored.

use std::path::{Path, PathBuf};

use super::parser::{Hunk, UpdateChunk};
use crate::protocol::{FileChangeKind, FileUpdateChange};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("Failed to find context '{context}' in {path}")]
    ContextNotFound { path: PathBuf, context: String },
    #[error("Failed to find expected lines in {path}:\n{lines}")]
    LinesNotFound { path: PathBuf, lines: String },
    #[error("Failed to read file to update {path}: {source}")]
    ReadUpdate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Failed to read {path}: {source}")]
    ReadDelete {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("File to add already exists and is a directory: {0}")]
    AddIsDirectory(PathBuf),
    #[error("Failed to write file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Failed to delete file {path}: {source}")]
    Delete {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One file operation, fully computed.
#[derive(Debug, Clone)]
pub struct PlannedChange {
    pub path: PathBuf,
    /// Path as written in the patch (for the summary shown to the model).
    pub display_path: PathBuf,
    pub kind: FileChangeKind,
    pub old_contents: Option<String>,
    pub new_contents: Option<String>,
    pub move_to: Option<PathBuf>,
    pub display_move_to: Option<PathBuf>,
}

impl PlannedChange {
    pub fn to_update(&self) -> FileUpdateChange {
        let old = self.old_contents.as_deref().unwrap_or("");
        let new = self.new_contents.as_deref().unwrap_or("");
        let diff = similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .to_string();
        FileUpdateChange {
            path: self.path.clone(),
            kind: self.kind.clone(),
            diff,
        }
    }
}

/// Resolves every hunk against `cwd` and computes the resulting contents.
pub fn plan(hunks: &[Hunk], cwd: &Path) -> Result<Vec<PlannedChange>, ApplyError> {
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let mut out = Vec::with_capacity(hunks.len());
    for hunk in hunks {
        match hunk {
            Hunk::Add { path, contents } => {
                let abs = resolve(path);
                if abs.is_dir() {
                    return Err(ApplyError::AddIsDirectory(abs));
                }
                out.push(PlannedChange {
                    old_contents: std::fs::read_to_string(&abs).ok(),
                    path: abs,
                    display_path: path.clone(),
                    kind: FileChangeKind::Add,
                    new_contents: Some(contents.clone()),
                    move_to: None,
                    display_move_to: None,
                });
            }
            Hunk::Delete { path } => {
                let abs = resolve(path);
                let old =
                    std::fs::read_to_string(&abs).map_err(|source| ApplyError::ReadDelete {
                        path: abs.clone(),
                        source,
                    })?;
                out.push(PlannedChange {
                    path: abs,
                    display_path: path.clone(),
                    kind: FileChangeKind::Delete,
                    old_contents: Some(old),
                    new_contents: None,
                    move_to: None,
                    display_move_to: None,
                });
            }
            Hunk::Update {
                path,
                move_path,
                chunks,
            } => {
                let abs = resolve(path);
                let old =
                    std::fs::read_to_string(&abs).map_err(|source| ApplyError::ReadUpdate {
                        path: abs.clone(),
                        source,
                    })?;
                let new = apply_chunks(&old, chunks, &abs)?;
                let move_to = move_path.as_deref().map(resolve);
                out.push(PlannedChange {
                    path: abs,
                    display_path: path.clone(),
                    kind: FileChangeKind::Update {
                        move_path: move_to.clone(),
                    },
                    old_contents: Some(old),
                    new_contents: Some(new),
                    move_to,
                    display_move_to: move_path.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Writes planned changes. On failure, files already changed are restored.
pub fn commit(changes: &[PlannedChange]) -> Result<(), ApplyError> {
    let mut undo: Vec<(PathBuf, Option<String>)> = Vec::new();
    let result = (|| {
        for c in changes {
            match (&c.kind, &c.new_contents) {
                (FileChangeKind::Delete, _) => {
                    undo.push((c.path.clone(), c.old_contents.clone()));
                    std::fs::remove_file(&c.path).map_err(|source| ApplyError::Delete {
                        path: c.path.clone(),
                        source,
                    })?;
                }
                (_, Some(new)) => {
                    let dest = c.move_to.as_ref().unwrap_or(&c.path);
                    undo.push((dest.clone(), std::fs::read_to_string(dest).ok()));
                    write_atomic(dest, new)?;
                    if let Some(to) = &c.move_to {
                        if to != &c.path {
                            undo.push((c.path.clone(), c.old_contents.clone()));
                            std::fs::remove_file(&c.path).map_err(|source| ApplyError::Delete {
                                path: c.path.clone(),
                                source,
                            })?;
                        }
                    }
                }
                (_, None) => {}
            }
        }
        Ok(())
    })();
    if result.is_err() {
        for (path, contents) in undo.into_iter().rev() {
            match contents {
                Some(text) => {
                    let _ = write_atomic(&path, &text);
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
    result
}

/// Writes `contents` to `path` via a temp file in the same directory, fsync,
/// and rename, keeping the file's permissions when it already exists.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), ApplyError> {
    use std::io::Write;
    let err = |source| ApplyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile_in(dir).map_err(err)?;
    let result = (|| {
        tmp.1.write_all(contents.as_bytes())?;
        if let Ok(meta) = std::fs::metadata(path) {
            tmp.1.set_permissions(meta.permissions())?;
        }
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp.0);
    }
    result.map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    for attempt in 0..16u32 {
        let name = format!(
            ".codex-patch-{}-{}-{attempt}.tmp",
            std::process::id(),
            crate::util::short_hex_id()
        );
        let p = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "could not create a temporary file",
    ))
}

fn apply_chunks(old: &str, chunks: &[UpdateChunk], path: &Path) -> Result<String, ApplyError> {
    let mut lines: Vec<String> = old.split('\n').map(str::to_string).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut replacements: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let mut cursor = 0usize;
    for chunk in chunks {
        if let Some(ctx) = &chunk.change_context {
            match seek_sequence(&lines, std::slice::from_ref(ctx), cursor, false) {
                Some(idx) => cursor = idx + 1,
                None => {
                    return Err(ApplyError::ContextNotFound {
                        path: path.to_path_buf(),
                        context: ctx.clone(),
                    })
                }
            }
        }
        if chunk.old_lines.is_empty() {
            // Pure insertion: at the end of the file.
            let at = if lines.last().is_some_and(String::is_empty) {
                lines.len() - 1
            } else {
                lines.len()
            };
            replacements.push((at, 0, chunk.new_lines.clone()));
            continue;
        }
        let mut pattern: &[String] = &chunk.old_lines;
        let mut new_lines: &[String] = &chunk.new_lines;
        let mut found = seek_sequence(&lines, pattern, cursor, chunk.is_end_of_file);
        if found.is_none() && pattern.last().is_some_and(String::is_empty) {
            pattern = &pattern[..pattern.len() - 1];
            if new_lines.last().is_some_and(String::is_empty) {
                new_lines = &new_lines[..new_lines.len() - 1];
            }
            found = seek_sequence(&lines, pattern, cursor, chunk.is_end_of_file);
        }
        match found {
            Some(idx) => {
                replacements.push((idx, pattern.len(), new_lines.to_vec()));
                cursor = idx + pattern.len();
            }
            None => {
                return Err(ApplyError::LinesNotFound {
                    path: path.to_path_buf(),
                    lines: chunk.old_lines.join("\n"),
                })
            }
        }
    }
    replacements.sort_by_key(|r| r.0);
    for (start, len, new) in replacements.into_iter().rev() {
        lines.splice(start..start + len, new);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

/// Finds `pattern` in `lines` at or after `start`, trying progressively
/// looser comparisons: exact, ignoring trailing whitespace, ignoring
/// surrounding whitespace, and with typographic punctuation normalized.
pub fn seek_sequence(
    lines: &[String],
    pattern: &[String],
    start: usize,
    eof: bool,
) -> Option<usize> {
    if pattern.is_empty() {
        return Some(start);
    }
    if pattern.len() > lines.len() {
        return None;
    }
    let last_start = lines.len() - pattern.len();
    let from = if eof {
        last_start
    } else {
        start.min(last_start + 1)
    };
    let passes: [fn(&str) -> String; 4] = [
        |s| s.to_string(),
        |s| s.trim_end().to_string(),
        |s| s.trim().to_string(),
        |s| normalize_punctuation(s.trim()),
    ];
    for norm in passes {
        for i in from..=last_start {
            if (0..pattern.len()).all(|j| norm(&lines[i + j]) == norm(&pattern[j])) {
                return Some(i);
            }
        }
    }
    if eof && from > start {
        return seek_sequence(lines, pattern, start, false);
    }
    None
}

fn normalize_punctuation(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            '\u{2018}'..='\u{201B}' => '\'',
            '\u{201C}'..='\u{201F}' => '"',
            '\u{00A0}' | '\u{2002}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => ' ',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse_patch;
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn seek_is_lenient_step_by_step() {
        let file = lines(&["a", "b  ", "  c", "d\u{2014}e"]);
        assert_eq!(seek_sequence(&file, &lines(&["b"]), 0, false), Some(1));
        assert_eq!(seek_sequence(&file, &lines(&["c"]), 0, false), Some(2));
        assert_eq!(seek_sequence(&file, &lines(&["d-e"]), 0, false), Some(3));
        assert_eq!(seek_sequence(&file, &lines(&["x"]), 0, false), None);
    }

    #[test]
    fn applies_update_with_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("f.py"),
            "def a():\n    return 1\n\ndef b():\n    return 1\n",
        )
        .unwrap();
        let patch = "*** Begin Patch\n*** Update File: f.py\n@@ def b():\n-    return 1\n+    return 2\n*** End Patch";
        let changes = plan(&parse_patch(patch).unwrap(), dir.path()).unwrap();
        commit(&changes).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f.py")).unwrap(),
            "def a():\n    return 1\n\ndef b():\n    return 2\n"
        );
        assert!(changes[0].to_update().diff.contains("+    return 2"));
    }

    #[test]
    fn bad_patch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\n").unwrap();
        let patch = "*** Begin Patch\n*** Add File: new.txt\n+hi\n*** Update File: a.txt\n-missing\n+x\n*** End Patch";
        let err = plan(&parse_patch(patch).unwrap(), dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("Failed to find expected lines"),
            "{err}"
        );
        assert!(!dir.path().join("new.txt").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
            "one\n"
        );
    }

    #[test]
    fn move_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "x\ny\n").unwrap();
        std::fs::write(dir.path().join("gone.txt"), "bye\n").unwrap();
        let patch = "*** Begin Patch\n*** Update File: a.txt\n*** Move to: sub/b.txt\n@@\n x\n-y\n+z\n*** Delete File: gone.txt\n*** End Patch";
        commit(&plan(&parse_patch(patch).unwrap(), dir.path()).unwrap()).unwrap();
        assert!(!dir.path().join("a.txt").exists());
        assert!(!dir.path().join("gone.txt").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/b.txt")).unwrap(),
            "x\nz\n"
        );
    }

    #[test]
    fn pure_addition_appends() {
        let out = apply_chunks(
            "a\n",
            &[UpdateChunk {
                new_lines: lines(&["b"]),
                ..Default::default()
            }],
            Path::new("f"),
        )
        .unwrap();
        assert_eq!(out, "a\nb\n");
    }
}
