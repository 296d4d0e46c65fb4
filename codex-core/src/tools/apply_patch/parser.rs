//! Parser for the apply_patch format:
//!
//! ```text
//! *** Begin Patch
//! *** Add File: path        (then `+line`s)
//! *** Delete File: path
//! *** Update File: path
//! *** Move to: new/path     (optional)
//! @@ optional context line
//!  context / -old / +new lines
//! *** End of File           (optional)
//! *** End Patch
//! ```

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hunk {
    Add {
        path: PathBuf,
        contents: String,
    },
    Delete {
        path: PathBuf,
    },
    Update {
        path: PathBuf,
        move_path: Option<PathBuf>,
        chunks: Vec<UpdateChunk>,
    },
}

impl Hunk {
    pub fn path(&self) -> &PathBuf {
        match self {
            Hunk::Add { path, .. } | Hunk::Delete { path } | Hunk::Update { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateChunk {
    /// A line (`@@ <ctx>`) to locate before matching `old_lines`.
    pub change_context: Option<String>,
    pub old_lines: Vec<String>,
    pub new_lines: Vec<String>,
    /// The chunk must match at the end of the file.
    pub is_end_of_file: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid patch: {0}")]
    InvalidPatch(String),
    #[error("invalid hunk at line {line}, {message}")]
    InvalidHunk { line: usize, message: String },
}

const BEGIN: &str = "*** Begin Patch";
const END: &str = "*** End Patch";
const ADD: &str = "*** Add File: ";
const DELETE: &str = "*** Delete File: ";
const UPDATE: &str = "*** Update File: ";
const MOVE: &str = "*** Move to: ";
const EOF_MARKER: &str = "*** End of File";

pub fn parse_patch(text: &str) -> Result<Vec<Hunk>, ParseError> {
    let all: Vec<&str> = text.trim().lines().collect();
    let lines = strip_heredoc(&all);
    let first = lines.first().map(|l| l.trim());
    if first != Some(BEGIN) {
        return Err(ParseError::InvalidPatch(
            "The first line of the patch must be '*** Begin Patch'".into(),
        ));
    }
    if lines.len() < 2 || lines.last().map(|l| l.trim()) != Some(END) {
        return Err(ParseError::InvalidPatch(
            "The last line of the patch must be '*** End Patch'".into(),
        ));
    }
    let body = &lines[1..lines.len() - 1];
    let mut hunks = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let line_no = i + 2;
        let line = body[i].trim();
        if line.is_empty() {
            i += 1;
            continue;
        }
        if let Some(path) = line.strip_prefix(ADD.trim_end()).map(str::trim) {
            let path = non_empty_path(path, line_no)?;
            i += 1;
            let mut contents = String::new();
            while i < body.len() {
                if let Some(rest) = body[i].strip_prefix('+') {
                    contents.push_str(rest);
                    contents.push('\n');
                    i += 1;
                } else {
                    break;
                }
            }
            hunks.push(Hunk::Add { path, contents });
        } else if let Some(path) = line.strip_prefix(DELETE.trim_end()).map(str::trim) {
            let path = non_empty_path(path, line_no)?;
            hunks.push(Hunk::Delete { path });
            i += 1;
        } else if let Some(path) = line.strip_prefix(UPDATE.trim_end()).map(str::trim) {
            let path = non_empty_path(path, line_no)?;
            i += 1;
            let mut move_path = None;
            if let Some(dest) = body
                .get(i)
                .and_then(|l| l.trim().strip_prefix(MOVE.trim_end()))
            {
                move_path = Some(non_empty_path(dest.trim(), i + 2)?);
                i += 1;
            }
            let (chunks, next) = parse_update_chunks(body, i, &path)?;
            if chunks.is_empty() {
                return Err(ParseError::InvalidHunk {
                    line: line_no,
                    message: format!("Update file hunk for path '{}' is empty", path.display()),
                });
            }
            i = next;
            hunks.push(Hunk::Update {
                path,
                move_path,
                chunks,
            });
        } else {
            return Err(ParseError::InvalidHunk {
                line: line_no,
                message: format!(
                    "'{line}' is not a valid hunk header. Valid hunk headers: '*** Add File: {{path}}', '*** Delete File: {{path}}', '*** Update File: {{path}}'"
                ),
            });
        }
    }
    if hunks.is_empty() {
        return Err(ParseError::InvalidPatch(
            "the patch contains no file operations".into(),
        ));
    }
    Ok(hunks)
}

/// Accepts a patch still wrapped in a shell heredoc (`<<'EOF'` ... `EOF`).
fn strip_heredoc<'a>(lines: &'a [&'a str]) -> &'a [&'a str] {
    if lines.len() >= 4 {
        let first = lines[0].trim();
        let last = lines[lines.len() - 1].trim();
        if (first == "<<EOF" || first == "<<'EOF'" || first == "<<\"EOF\"") && last == "EOF" {
            return &lines[1..lines.len() - 1];
        }
    }
    lines
}

fn non_empty_path(path: &str, line: usize) -> Result<PathBuf, ParseError> {
    if path.is_empty() {
        return Err(ParseError::InvalidHunk {
            line,
            message: "missing file path".into(),
        });
    }
    Ok(PathBuf::from(path))
}

fn parse_update_chunks(
    body: &[&str],
    mut i: usize,
    path: &std::path::Path,
) -> Result<(Vec<UpdateChunk>, usize), ParseError> {
    let mut chunks: Vec<UpdateChunk> = Vec::new();
    let mut current: Option<UpdateChunk> = None;
    while i < body.len() {
        let raw = body[i];
        let trimmed = raw.trim();
        if trimmed.starts_with("*** ") && trimmed != EOF_MARKER {
            break;
        }
        if trimmed == EOF_MARKER {
            let chunk = current.get_or_insert_with(UpdateChunk::default);
            chunk.is_end_of_file = true;
            i += 1;
            continue;
        }
        if trimmed == "@@" || raw.starts_with("@@ ") {
            if let Some(c) = current.take() {
                chunks.push(c);
            }
            let ctx = raw.strip_prefix("@@ ").map(str::to_string);
            current = Some(UpdateChunk {
                change_context: ctx,
                ..Default::default()
            });
            i += 1;
            continue;
        }
        if current.is_none() && chunks.is_empty() && !raw.is_empty() {
            // The first chunk may omit its `@@`.
            if !matches!(raw.chars().next(), Some(' ' | '+' | '-')) {
                return Err(ParseError::InvalidHunk {
                    line: i + 2,
                    message: format!(
                        "Expected update hunk to start with a @@ context marker, got: '{raw}'"
                    ),
                });
            }
        }
        let chunk = current.get_or_insert_with(UpdateChunk::default);
        if chunk.is_end_of_file {
            return Err(ParseError::InvalidHunk {
                line: i + 2,
                message: "lines after '*** End of File' in the same hunk".into(),
            });
        }
        match raw.chars().next() {
            None => {
                // An empty line is an empty context line.
                chunk.old_lines.push(String::new());
                chunk.new_lines.push(String::new());
            }
            Some(' ') => {
                chunk.old_lines.push(raw[1..].to_string());
                chunk.new_lines.push(raw[1..].to_string());
            }
            Some('-') => chunk.old_lines.push(raw[1..].to_string()),
            Some('+') => chunk.new_lines.push(raw[1..].to_string()),
            Some(_) => {
                return Err(ParseError::InvalidHunk {
                    line: i + 2,
                    message: format!(
                        "Unexpected line found in update hunk for '{}': '{raw}'. Every line should start with ' ' (context line), '+' (added line), or '-' (removed line)",
                        path.display()
                    ),
                });
            }
        }
        i += 1;
    }
    if let Some(c) = current.take() {
        chunks.push(c);
    }
    // Drop trailing blank context lines that were only separators.
    for c in &mut chunks {
        while c.old_lines.last().is_some_and(String::is_empty)
            && c.new_lines.last().is_some_and(String::is_empty)
            && c.old_lines.len() > 1
        {
            c.old_lines.pop();
            c.new_lines.pop();
        }
    }
    chunks.retain(|c| !(c.old_lines.is_empty() && c.new_lines.is_empty()));
    Ok((chunks, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_operations() {
        let patch = "*** Begin Patch\n*** Add File: hello.txt\n+Hello\n+world\n*** Update File: src/app.py\n*** Move to: src/main.py\n@@ def greet():\n-print(\"Hi\")\n+print(\"Hello\")\n*** Delete File: old.txt\n*** End Patch\n";
        let hunks = parse_patch(patch).unwrap();
        assert_eq!(hunks.len(), 3);
        assert_eq!(
            hunks[0],
            Hunk::Add {
                path: "hello.txt".into(),
                contents: "Hello\nworld\n".into()
            }
        );
        match &hunks[1] {
            Hunk::Update {
                move_path, chunks, ..
            } => {
                assert_eq!(
                    move_path.as_deref(),
                    Some(std::path::Path::new("src/main.py"))
                );
                assert_eq!(chunks[0].change_context.as_deref(), Some("def greet():"));
                assert_eq!(chunks[0].old_lines, vec!["print(\"Hi\")"]);
                assert_eq!(chunks[0].new_lines, vec!["print(\"Hello\")"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            hunks[2],
            Hunk::Delete {
                path: "old.txt".into()
            }
        );
    }

    #[test]
    fn rejects_bad_envelopes() {
        assert!(matches!(
            parse_patch("hello"),
            Err(ParseError::InvalidPatch(_))
        ));
        assert!(matches!(
            parse_patch("*** Begin Patch\n*** Add File: a\n+x\n"),
            Err(ParseError::InvalidPatch(_))
        ));
        let err =
            parse_patch("*** Begin Patch\n*** Frobnicate File: a\n*** End Patch").unwrap_err();
        assert!(err.to_string().contains("not a valid hunk header"), "{err}");
        let err = parse_patch("*** Begin Patch\n*** Update File: a\n*** End Patch").unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }

    #[test]
    fn accepts_heredoc_and_missing_first_marker() {
        let patch =
            "<<'EOF'\n*** Begin Patch\n*** Update File: a.txt\n-old\n+new\n*** End Patch\nEOF";
        let hunks = parse_patch(patch).unwrap();
        assert_eq!(hunks.len(), 1);
    }

    #[test]
    fn end_of_file_marker() {
        let patch =
            "*** Begin Patch\n*** Update File: a\n@@\n-x\n+y\n*** End of File\n*** End Patch";
        match &parse_patch(patch).unwrap()[0] {
            Hunk::Update { chunks, .. } => assert!(chunks[0].is_end_of_file),
            other => panic!("{other:?}"),
        }
    }
}
