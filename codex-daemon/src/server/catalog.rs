//! The thread catalog: what `thread/list`, `thread/read` and friends know
//! about threads on disk. The session files are the truth; the catalog is a
//! derived in-memory index (keyed by path, size and mtime) that is rebuilt
//! from the files whenever they change, so it can never drift from them.
//! Names set with `thread/name/set` live in `$CODEX_HOME/session_index.jsonl`
//! (append-only, last entry wins).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use codex_core::rollout::{
    read_rollout, recorded_turns, recorded_turns_at, thread_id_from_file_name, ReadError,
    RecordedTurn, RecordedTurnStatus, SessionMeta, ARCHIVED_SESSIONS_SUBDIR, SESSIONS_SUBDIR,
};
use codex_ipc::app_server::items::ItemView;
use codex_ipc::app_server::methods::HistoryModeParam;
use codex_ipc::app_server::objects::{
    ItemsView, ThreadStatusView, ThreadView, TurnError, TurnStatusView, TurnView,
};
use serde_json::Value;

/// How much of a file is scanned for its preview.
const PREVIEW_SCAN_BYTES: u64 = 1024 * 1024;
pub const SESSION_INDEX_FILE: &str = "session_index.jsonl";

/// One line of the session index (upstream's file format).
#[derive(serde::Serialize)]
struct SessionIndexEntry<'a> {
    id: &'a str,
    thread_name: &'a str,
    updated_at: String,
}

/// A file's turns for paging (see [`Catalog::history`]).
#[derive(Debug, Clone)]
pub struct RecordedHistory {
    pub meta: SessionMeta,
    pub turns: Vec<RecordedTurn>,
    /// Bytes of the file read: cursors point below it.
    pub len: u64,
}

/// One thread file, summarized.
#[derive(Debug, Clone)]
pub struct ThreadSummary {
    pub id: String,
    pub path: PathBuf,
    pub archived: bool,
    pub meta: SessionMeta,
    pub preview: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ThreadSummary {
    pub fn source(&self) -> String {
        match &self.meta.source {
            Value::String(s) => s.clone(),
            Value::Null => "vscode".into(),
            other => other
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    len: u64,
    mtime: i64,
    summary: ThreadSummary,
}

pub struct Catalog {
    codex_home: PathBuf,
    cache: Mutex<HashMap<PathBuf, Cached>>,
    /// The last few files paged, while unchanged: a client pages turns and
    /// items of the same thread in a row.
    histories: Mutex<VecDeque<CachedHistory>>,
}

/// Files whose parsed history is kept ([`Catalog::history`]).
const HISTORY_CACHE_FILES: usize = 4;

struct CachedHistory {
    path: PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    history: Arc<RecordedHistory>,
}

impl Catalog {
    pub fn new(codex_home: PathBuf) -> Self {
        Self {
            codex_home,
            cache: Mutex::new(HashMap::new()),
            histories: Mutex::new(VecDeque::new()),
        }
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.codex_home.join(SESSIONS_SUBDIR)
    }

    pub fn archived_dir(&self) -> PathBuf {
        self.codex_home.join(ARCHIVED_SESSIONS_SUBDIR)
    }

    /// Every thread file (active and archived), newest first.
    pub fn all(&self) -> Vec<ThreadSummary> {
        let mut files: Vec<(PathBuf, bool)> = Vec::new();
        walk(&self.sessions_dir(), &mut files, false, 3);
        walk(&self.archived_dir(), &mut files, true, 0);
        let mut out: Vec<ThreadSummary> = files
            .into_iter()
            .filter_map(|(p, archived)| self.summary(&p, archived))
            .collect();
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| file_name(&b.path).cmp(&file_name(&a.path)))
        });
        out
    }

    /// The file of thread `id`: (path, archived).
    pub fn find(&self, id: &str) -> Option<(PathBuf, bool)> {
        let id = id.to_ascii_lowercase();
        if let Some(p) = codex_core::rollout::find_thread_file(&self.sessions_dir(), &id) {
            return Some((p, false));
        }
        std::fs::read_dir(self.archived_dir())
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(thread_id_from_file_name)
                    .is_some_and(|t| t == id)
            })
            .map(|p| (p, true))
    }

    pub fn summary(&self, path: &Path, archived: bool) -> Option<ThreadSummary> {
        let md = std::fs::metadata(path).ok()?;
        let mtime = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if let Ok(cache) = self.cache.lock() {
            if let Some(c) = cache.get(path) {
                if c.len == md.len() && c.mtime == mtime && c.summary.archived == archived {
                    return Some(c.summary.clone());
                }
            }
        }
        let summary = summarize(path, archived, mtime)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                path.to_path_buf(),
                Cached {
                    len: md.len(),
                    mtime,
                    summary: summary.clone(),
                },
            );
        }
        Some(summary)
    }

    /// Forgets a path (after a move).
    pub fn invalidate(&self, path: &Path) {
        if let Ok(mut c) = self.cache.lock() {
            c.remove(path);
        }
    }

    /// The thread object of a file, with its turns if asked for.
    pub fn view(
        &self,
        path: &Path,
        archived: bool,
        status: ThreadStatusView,
        include_turns: bool,
    ) -> Option<ThreadView> {
        let summary = self.summary(path, archived)?;
        let mut view = view_of(&summary, status, self.name_of(&summary.id));
        if include_turns {
            if let Ok(loaded) = read_rollout(path) {
                view.turns = turn_views(&recorded_turns(&loaded.items));
                if matches!(status, ThreadStatusView::NotLoaded) {
                    // Nobody runs this thread: a turn without a recorded end
                    // died with its worker (or daemon).
                    for t in &mut view.turns {
                        if matches!(t.status, TurnStatusView::InProgress) {
                            t.status = TurnStatusView::Interrupted;
                        }
                    }
                }
            }
        }
        Some(view)
    }

    /// The recorded turns of a file, with their rollout ordinals, for paging
    /// (`thread/turns/list`, `thread/items/list`, resume cursors, fork
    /// points). A turn without a recorded end is `InProgress` here; callers
    /// that know nobody runs the thread read it as interrupted.
    pub fn history(&self, path: &Path) -> Result<Arc<RecordedHistory>, ReadError> {
        // The file only grows: same length and mtime, same history.
        let md = std::fs::metadata(path).ok();
        let (len, modified) = (
            md.as_ref().map(|m| m.len()).unwrap_or(0),
            md.and_then(|m| m.modified().ok()),
        );
        if let Ok(cache) = self.histories.lock() {
            if let Some(c) = cache
                .iter()
                .find(|c| c.path == path && c.len == len && c.modified == modified)
            {
                return Ok(c.history.clone());
            }
        }
        // Issue 14 wants the newest page without reading the whole file: the
        // ordinals are byte offsets, so a reader that seeks to the cursor (or
        // the end) and scans can serve a page without the rest.
        let loaded = read_rollout(path)?;
        let history = Arc::new(RecordedHistory {
            turns: recorded_turns_at(&loaded.items, &loaded.ordinals),
            len: loaded.len,
            meta: loaded.meta,
        });
        if let Ok(mut cache) = self.histories.lock() {
            cache.retain(|c| c.path != path);
            if cache.len() >= HISTORY_CACHE_FILES {
                cache.pop_front();
            }
            cache.push_back(CachedHistory {
                path: path.to_path_buf(),
                len,
                modified,
                history: history.clone(),
            });
        }
        Ok(history)
    }

    /// Names from the session index (last entry per id wins).
    pub fn names(&self) -> HashMap<String, String> {
        let mut names = HashMap::new();
        let Ok(f) = std::fs::File::open(self.codex_home.join(SESSION_INDEX_FILE)) else {
            return names;
        };
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let (Some(id), Some(name)) = (
                v.get("id").and_then(Value::as_str),
                v.get("thread_name").and_then(Value::as_str),
            ) {
                names.insert(id.to_string(), name.to_string());
            }
        }
        names
    }

    pub fn name_of(&self, id: &str) -> Option<String> {
        self.names().remove(id)
    }

    /// Records a thread name.
    pub fn set_name(&self, id: &str, name: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.codex_home)?;
        let line = serde_json::to_string(&SessionIndexEntry {
            id,
            thread_name: name,
            updated_at: codex_core::rollout::timestamp_now(),
        })?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.codex_home.join(SESSION_INDEX_FILE))?;
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_data()
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Collects rollout files under `dir`, `depth` directory levels down.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, bool)>, archived: bool, depth: u32) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if depth > 0 {
                walk(&p, out, archived, depth - 1);
            }
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(thread_id_from_file_name)
            .is_some()
        {
            out.push((p, archived));
        }
    }
}

fn summarize(path: &Path, archived: bool, mtime: i64) -> Option<ThreadSummary> {
    let id = thread_id_from_file_name(path.file_name()?.to_str()?)?;
    let file = std::fs::File::open(path).ok()?;
    let mut meta: Option<SessionMeta> = None;
    let mut first_user: Option<String> = None;
    let reader = BufReader::new(file.take(PREVIEW_SCAN_BYTES));
    for line in reader.lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let payload = v.get("payload");
        match v.get("type").and_then(Value::as_str) {
            Some("session_meta") if meta.is_none() => {
                meta = payload.and_then(|p| serde_json::from_value(p.clone()).ok());
            }
            Some("event_msg") => {
                let p = payload.cloned().unwrap_or_default();
                let text = match p.get("type").and_then(Value::as_str) {
                    Some("user_message") => {
                        p.get("message").and_then(Value::as_str).map(str::to_string)
                    }
                    Some("item_completed")
                        if p.pointer("/item/type").and_then(Value::as_str)
                            == Some("UserMessage") =>
                    {
                        p.pointer("/item/content/0/text")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    }
                    _ => None,
                };
                if first_user.is_none() {
                    first_user = text;
                }
            }
            _ => {}
        }
        if meta.is_some() && first_user.is_some() {
            break;
        }
    }
    let meta = meta?;
    let created_at = chrono_parse(&meta.timestamp).unwrap_or(mtime);
    Some(ThreadSummary {
        id,
        path: path.to_path_buf(),
        archived,
        preview: first_user.unwrap_or_default(),
        created_at,
        updated_at: mtime.max(created_at),
        meta,
    })
}

/// `2025-01-02T03:04:05.678Z` → Unix seconds.
fn chrono_parse(ts: &str) -> Option<i64> {
    // Avoid a date library here: the format is fixed (UTC, RFC 3339).
    let b = ts.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

pub fn view_of(s: &ThreadSummary, status: ThreadStatusView, name: Option<String>) -> ThreadView {
    ThreadView {
        id: s.id.clone(),
        path: Some(s.path.clone()),
        cwd: s.meta.cwd.clone(),
        model: None,
        model_provider: s
            .meta
            .model_provider
            .clone()
            .unwrap_or_else(|| "openai".into()),
        reasoning_effort: None,
        preview: s.preview.clone(),
        name,
        created_at: s.created_at,
        updated_at: s.updated_at,
        source: s.source(),
        originator: Some(s.meta.originator.clone()).filter(|o| !o.is_empty()),
        cli_version: s.meta.cli_version.clone(),
        ephemeral: false,
        status,
        turns: Vec::new(),
        forked_from_id: s.meta.forked_from_id.clone(),
        history_mode: match s.meta.history_mode.as_deref() {
            Some("legacy") => Some(HistoryModeParam::Legacy),
            Some("paginated") => Some(HistoryModeParam::Paginated),
            _ => None,
        },
        thread_source: s.meta.thread_source.clone(),
    }
}

pub fn turn_views(turns: &[RecordedTurn]) -> Vec<TurnView> {
    turns.iter().map(turn_view).collect()
}

/// The `Turn` of a recorded turn, with all its items.
pub fn turn_view(t: &RecordedTurn) -> TurnView {
    TurnView {
        id: t.id.clone(),
        status: match t.status {
            RecordedTurnStatus::InProgress => TurnStatusView::InProgress,
            RecordedTurnStatus::Completed => TurnStatusView::Completed,
            RecordedTurnStatus::Failed => TurnStatusView::Failed,
            RecordedTurnStatus::Interrupted => TurnStatusView::Interrupted,
        },
        items: t.items.iter().map(item_view).collect(),
        items_view: ItemsView::Full,
        error: t.error.as_deref().map(TurnError::recorded),
        started_at: t.started_at,
        completed_at: t.completed_at,
        duration_ms: t.duration_ms,
    }
}

pub fn item_view(i: &codex_core::rollout::RecordedItem) -> ItemView {
    ItemView {
        item: i.item.clone(),
        started_at_ms: i.started_at_ms,
        completed_at_ms: i.completed_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339() {
        assert_eq!(chrono_parse("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            chrono_parse("2026-01-02T03:04:05.678Z"),
            Some(1_767_323_045)
        );
        assert_eq!(chrono_parse("junk"), None);
    }
}
