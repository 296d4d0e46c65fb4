//! The audit trail: one JSONL record per command and per patch (what ran,
//! where, under which policy and backend, who decided, how it ended),
//! appended to `$CODEX_HOME/audit/<thread id>.jsonl` and to the all-threads
//! `$CODEX_HOME/audit/audit.jsonl`. Files are append-only, created 0600 in a
//! 0700 directory; each record is one `write(2)` of one line.
//!
//! Secrets never reach it: values of credential-like environment variables,
//! `Authorization`/`Bearer` tokens, `NAME=value` assignments of
//! credential-like names and `sk-...` keys are replaced by `[REDACTED]`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::env::looks_secret;

/// Directory under `$CODEX_HOME`.
pub const AUDIT_DIR: &str = "audit";
/// The all-threads log.
pub const ALL_THREADS_FILE: &str = "audit.jsonl";
const REDACTED: &str = "[REDACTED]";
/// Secret values shorter than this are not searched for (too many false
/// positives, too little to leak).
const MIN_SECRET_LEN: usize = 6;

/// Who made the decision that let an action run (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The approval policy (nothing was asked).
    Policy,
    /// A person, through a client.
    Client,
    /// An earlier "approve for this session".
    Session,
}

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub timestamp: String,
    pub thread_id: String,
    pub turn_id: String,
    pub call_id: String,
    /// `command` or `patch`.
    pub kind: String,
    /// The command line (redacted), for commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Files written, for patches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    pub cwd: String,
    /// The sandbox policy it ran under (`danger-full-access` when it was
    /// allowed out of the sandbox).
    pub policy: String,
    /// The backend that enforced it (`landlock`, `seatbelt`, `none`).
    pub backend: String,
    /// `approved`, `approved_for_session`, `denied`, `abort`, or `auto`
    /// (no approval needed).
    pub decision: String,
    pub decided_by: DecidedBy,
    /// `completed`, `failed`, `declined`, `refused`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// A note (why it was refused, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Replaces secrets in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    /// Knows the values of credential-like variables in `env`.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut values: Vec<String> = env
            .into_iter()
            .filter(|(k, v)| looks_secret(k) && v.len() >= MIN_SECRET_LEN)
            .map(|(_, v)| v)
            .collect();
        // Longest first, so a value containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self { values }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        let out = redact_after_marker(&out, "Bearer ");
        let out = redact_after_marker(&out, "bearer ");
        let out = redact_assignments(&out);
        redact_prefixed(&out, "sk-")
    }
}

/// `MARKER token` → `MARKER [REDACTED]` (token: up to whitespace or quote).
fn redact_after_marker(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        let (head, tail) = rest.split_at(i + marker.len());
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        if end > 0 && &tail[..end] != REDACTED {
            out.push_str(REDACTED);
        } else {
            out.push_str(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `SECRET_NAME=value` (and `--secret-name=value`) → `NAME=[REDACTED]`.
fn redact_assignments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (head, tail) = rest.split_at(eq);
        let name_start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let name = &head[name_start..];
        out.push_str(head);
        out.push('=');
        let value = &tail[1..];
        let end = value
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '&' || c == ';')
            .unwrap_or(value.len());
        if !name.is_empty() && looks_secret(&name.replace('-', "_")) && end > 0 {
            out.push_str(REDACTED);
        } else {
            out.push_str(&value[..end]);
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// `sk-XXXXXXXXXX...` (API-key shaped) → `[REDACTED]`.
fn redact_prefixed(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let body = &tail[prefix.len()..];
        let end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(body.len());
        let boundary = head
            .chars()
            .last()
            .is_none_or(|c| !c.is_ascii_alphanumeric());
        if boundary && end >= 10 {
            out.push_str(REDACTED);
        } else {
            out.push_str(&tail[..prefix.len() + end]);
        }
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

/// Where one thread's records go.
#[derive(Debug, Clone)]
pub struct AuditLog {
    thread_id: String,
    thread_file: PathBuf,
    all_file: PathBuf,
    redactor: Redactor,
}

impl AuditLog {
    pub fn new(codex_home: &Path, thread_id: &str, redactor: Redactor) -> Self {
        let dir = codex_home.join(AUDIT_DIR);
        Self {
            thread_id: thread_id.to_string(),
            thread_file: dir.join(format!("{thread_id}.jsonl")),
            all_file: dir.join(ALL_THREADS_FILE),
            redactor,
        }
    }

    pub fn thread_id(&self) -> &str {
        &self.thread_id
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Appends `record` (its text fields redacted) to both logs. Failures
    /// are logged, never fatal to the action.
    pub fn append(&self, mut record: AuditRecord) {
        record.command = record.command.map(|c| self.redactor.redact(&c));
        record.note = record.note.map(|n| self.redactor.redact(&n));
        let Ok(mut line) = serde_json::to_vec(&record) else {
            return;
        };
        line.push(b'\n');
        for path in [&self.thread_file, &self.all_file] {
            if let Err(e) = append_line(path, &line) {
                tracing::warn!("audit log {}: {e}", path.display());
            }
        }
    }
}

fn append_line(path: &Path, line: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(line)
}

/// Reads a log, skipping lines that do not parse (a torn last line).
pub fn read_log(path: &Path) -> std::io::Result<Vec<AuditRecord>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let r = Redactor::from_env(vec![
            ("MY_TOKEN".to_string(), "hunter2-very-secret".to_string()),
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ]);
        let text = "curl -H 'Authorization: Bearer abc.def' https://x && echo hunter2-very-secret && OPENAI_API_KEY=sk-live-123 cmd --api-key=zzz && use sk-abcdefghijklmnop key; PATH=/bin ls";
        let out = r.redact(text);
        for secret in [
            "abc.def",
            "hunter2-very-secret",
            "sk-live-123",
            "zzz",
            "sk-abcdefghijklmnop",
        ] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        assert!(out.contains("PATH=/bin ls"), "{out}");
        assert!(out.contains("Authorization: Bearer [REDACTED]"), "{out}");
        assert_eq!(r.redact("task-list sk-1"), "task-list sk-1");
    }

    #[test]
    fn append_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path(), "t1", Redactor::default());
        let rec = AuditRecord {
            timestamp: "2026-01-01T00:00:00Z".into(),
            thread_id: "t1".into(),
            turn_id: "u".into(),
            call_id: "c".into(),
            kind: "command".into(),
            command: Some("echo TOKEN=abc123".into()),
            files: vec![],
            cwd: "/w".into(),
            policy: "workspace-write".into(),
            backend: "landlock".into(),
            decision: "auto".into(),
            decided_by: DecidedBy::Policy,
            status: "completed".into(),
            exit_code: Some(0),
            duration_ms: Some(3),
            note: None,
        };
        log.append(rec.clone());
        log.append(rec);
        let got = read_log(&dir.path().join("audit/t1.jsonl")).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].command.as_deref(), Some("echo TOKEN=[REDACTED]"));
        assert_eq!(
            read_log(&dir.path().join("audit/audit.jsonl"))
                .unwrap()
                .len(),
            2
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("audit/t1.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
