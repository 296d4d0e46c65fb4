//! The `apply_patch` tool: upstream's patch format, verified in full before
//! anything is written, each file written atomically.

mod apply;
mod parser;

use std::path::Path;

pub use apply::{commit, plan, seek_sequence, write_atomic, ApplyError, PlannedChange};
pub use parser::{parse_patch, Hunk, ParseError, UpdateChunk};

/// The outcome of applying a patch, as told to the model and the user.
#[derive(Debug)]
pub struct PatchResult {
    pub changes: Vec<PlannedChange>,
    /// `Success. Updated the following files:` + `A/M/D path` lines.
    pub summary: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Parses and plans `patch` against `cwd` without touching the disk.
pub fn verify(patch: &str, cwd: &Path) -> Result<Vec<PlannedChange>, PatchError> {
    let hunks = parse_patch(patch)?;
    Ok(plan(&hunks, cwd)?)
}

/// Writes a verified plan and builds the summary.
pub fn apply_planned(changes: Vec<PlannedChange>) -> Result<PatchResult, PatchError> {
    commit(&changes)?;
    Ok(PatchResult {
        summary: summarize(&changes),
        changes,
    })
}

fn summarize(changes: &[PlannedChange]) -> String {
    use crate::protocol::FileChangeKind;
    let mut added = Vec::new();
    let mut modified = Vec::new();
    let mut deleted = Vec::new();
    for c in changes {
        match &c.kind {
            FileChangeKind::Add => added.push(&c.display_path),
            FileChangeKind::Delete => deleted.push(&c.display_path),
            FileChangeKind::Update { .. } => {
                modified.push(c.display_move_to.as_ref().unwrap_or(&c.display_path))
            }
        }
    }
    let mut s = String::from("Success. Updated the following files:\n");
    for (tag, paths) in [("A", added), ("M", modified), ("D", deleted)] {
        for p in paths {
            s.push_str(&format!("{tag} {}\n", p.display()));
        }
    }
    s
}

/// Recognizes a shell command that only invokes `apply_patch` (as models do
/// through `exec_command`): `apply_patch <<'EOF' ... EOF`, optionally after
/// `cd DIR &&`, or `apply_patch '<patch>'`. Returns the patch text and the
/// directory to apply it in (relative to the command's workdir).
pub fn extract_from_shell(script: &str) -> Option<(String, Option<String>)> {
    let s = script.trim();
    let (dir, rest) = match s.strip_prefix("cd ") {
        Some(after) => {
            let (d, r) = after.split_once("&&")?;
            (Some(unquote(d.trim())), r.trim_start())
        }
        None => (None, s),
    };
    let rest = rest
        .strip_prefix("apply_patch")
        .or_else(|| rest.strip_prefix("applypatch"))?;
    if !rest.starts_with(char::is_whitespace) && !rest.starts_with('<') {
        return None;
    }
    let rest = rest.trim_start();
    if let Some(h) = rest.strip_prefix("<<") {
        let h = h.trim_start_matches('-');
        let (delim_raw, body) = h.split_once('\n')?;
        let delim = unquote(delim_raw.trim());
        if delim.is_empty() {
            return None;
        }
        let end = body
            .rfind(&format!("\n{delim}"))
            .map(|i| i + 1)
            .or_else(|| body.starts_with(&delim).then_some(0))?;
        let after = body[end + delim.len()..].trim();
        if !after.is_empty() {
            return None;
        }
        return Some((body[..end].to_string(), dir));
    }
    let arg = rest.trim();
    let quoted = (arg.starts_with('\'') && arg.ends_with('\''))
        || (arg.starts_with('"') && arg.ends_with('"'));
    if quoted && arg.len() >= 2 {
        return Some((arg[1..arg.len() - 1].to_string(), dir));
    }
    None
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    if t.len() >= 2
        && ((t.starts_with('\'') && t.ends_with('\'')) || (t.starts_with('"') && t.ends_with('"')))
    {
        t[1..t.len() - 1].to_string()
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_heredoc_invocations() {
        let script =
            "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: a\n+x\n*** End Patch\nEOF\n";
        let (patch, dir) = extract_from_shell(script).unwrap();
        assert!(patch.starts_with("*** Begin Patch"));
        assert!(patch.trim_end().ends_with("*** End Patch"));
        assert!(dir.is_none());
        let script =
            "cd sub && apply_patch <<EOF\n*** Begin Patch\n*** Delete File: a\n*** End Patch\nEOF";
        let (_, dir) = extract_from_shell(script).unwrap();
        assert_eq!(dir.as_deref(), Some("sub"));
        assert!(extract_from_shell("apply_patcher foo").is_none());
        assert!(extract_from_shell("echo hi").is_none());
        assert!(extract_from_shell("apply_patch <<'EOF'\nx\nEOF\nrm -rf /").is_none());
    }

    #[test]
    fn summary_lists_files() {
        let dir = tempfile::tempdir().unwrap();
        let changes = verify(
            "*** Begin Patch\n*** Add File: n.txt\n+hi\n*** End Patch",
            dir.path(),
        )
        .unwrap();
        let res = apply_planned(changes).unwrap();
        assert_eq!(
            res.summary,
            "Success. Updated the following files:\nA n.txt\n"
        );
    }
}
