//! Rollout (session) files, upstream-compatible:
//! `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-YYYY-MM-DDThh-mm-ss-<thread id>.jsonl`
//! (local time of creation). Each line is `{timestamp, type, payload}` with
//! `type` one of `session_meta`, `turn_context`, `response_item`,
//! `event_msg`, `compacted` (others written by newer versions are kept
//! when reading and ignored).
//!
//! Append-only; the writer fsyncs at turn boundaries, before a turn is
//! reported complete. The reader ignores a torn last line.

mod fork;
mod history;
mod line;
mod list;
mod reader;
mod turns;
mod writer;

pub use fork::write_fork;
pub use history::{page, CursorScope, HistoryCursor, InvalidCursor, Page, SortDirection};
pub use line::*;
pub use list::{find_thread_file, latest_thread_file, list_threads, ThreadSummary};
pub use reader::{read_rollout, LoadedRollout, ReadError, RecordedUsage};
pub use turns::{
    parse_turn_item, preview, recorded_turns, recorded_turns_at, RecordedItem, RecordedTurn,
    RecordedTurnStatus,
};
pub use writer::RolloutWriter;

pub const SESSIONS_SUBDIR: &str = "sessions";
pub const ARCHIVED_SESSIONS_SUBDIR: &str = "archived_sessions";

/// `rollout-<local time>-<id>.jsonl` under `sessions/YYYY/MM/DD`.
pub fn rollout_path(
    sessions_dir: &std::path::Path,
    thread_id: &str,
    created: chrono::DateTime<chrono::Local>,
) -> std::path::PathBuf {
    sessions_dir
        .join(created.format("%Y").to_string())
        .join(created.format("%m").to_string())
        .join(created.format("%d").to_string())
        .join(format!(
            "rollout-{}-{thread_id}.jsonl",
            created.format("%Y-%m-%dT%H-%M-%S")
        ))
}

/// [`rollout_path`] for a thread created now.
pub fn new_rollout_path(sessions_dir: &std::path::Path, thread_id: &str) -> std::path::PathBuf {
    rollout_path(sessions_dir, thread_id, chrono::Local::now())
}

/// Extracts the thread id from a rollout file name.
pub fn thread_id_from_file_name(name: &str) -> Option<String> {
    let stem = name.strip_prefix("rollout-")?;
    let stem = stem
        .strip_suffix(".jsonl")
        .or_else(|| stem.strip_suffix(".jsonl.zst"))?;
    // A UUID is 36 characters at the end.
    if stem.len() < 36 {
        return None;
    }
    let id = &stem[stem.len() - 36..];
    uuid::Uuid::parse_str(id).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let created = chrono::Local::now();
        let id = uuid::Uuid::now_v7().to_string();
        let p = rollout_path(std::path::Path::new("/s"), &id, created);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("rollout-"));
        assert_eq!(thread_id_from_file_name(name), Some(id));
        assert_eq!(thread_id_from_file_name("rollout-x.jsonl"), None);
    }
}
