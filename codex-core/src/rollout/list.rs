//! Finding rollout files: by thread id, the newest one, or a newest-first
//! listing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::line::SessionMeta;
use super::thread_id_from_file_name;

/// A thread as seen from its file name and first line.
#[derive(Debug, Clone)]
pub struct ThreadSummary {
    pub id: String,
    pub path: PathBuf,
    pub meta: Option<SessionMeta>,
}

/// Every rollout file under `sessions_dir`, newest first (by the creation
/// time in the path, then by file name).
fn rollout_files_newest_first(sessions_dir: &Path) -> Vec<PathBuf> {
    fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        v.reverse();
        v
    }
    let mut out = Vec::new();
    for year in sorted_dirs(sessions_dir).into_iter().filter(|p| p.is_dir()) {
        for month in sorted_dirs(&year).into_iter().filter(|p| p.is_dir()) {
            for day in sorted_dirs(&month).into_iter().filter(|p| p.is_dir()) {
                for f in sorted_dirs(&day) {
                    let is_rollout = f
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| thread_id_from_file_name(n).is_some());
                    if is_rollout && f.is_file() {
                        out.push(f);
                    }
                }
            }
        }
    }
    out
}

/// Reads the `session_meta` from the first line of a rollout (bounded).
pub fn read_meta(path: &Path) -> Option<SessionMeta> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = BufReader::new(file).take(4 * 1024 * 1024);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if v.get("type")?.as_str()? != "session_meta" {
        return None;
    }
    serde_json::from_value(v.get("payload")?.clone()).ok()
}

use std::io::Read;

/// The rollout file of thread `id`, if any.
pub fn find_thread_file(sessions_dir: &Path, id: &str) -> Option<PathBuf> {
    let id = id.to_ascii_lowercase();
    rollout_files_newest_first(sessions_dir)
        .into_iter()
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(thread_id_from_file_name)
                .is_some_and(|t| t == id)
        })
}

/// The newest thread, optionally only among those started in `cwd`.
pub fn latest_thread_file(sessions_dir: &Path, cwd: Option<&Path>) -> Option<PathBuf> {
    rollout_files_newest_first(sessions_dir)
        .into_iter()
        .find(|p| match cwd {
            None => true,
            Some(cwd) => read_meta(p).is_some_and(|m| m.cwd == cwd),
        })
}

/// Newest-first listing, `offset`/`limit` paged.
pub fn list_threads(sessions_dir: &Path, offset: usize, limit: usize) -> Vec<ThreadSummary> {
    rollout_files_newest_first(sessions_dir)
        .into_iter()
        .skip(offset)
        .take(limit)
        .filter_map(|path| {
            let id = thread_id_from_file_name(path.file_name()?.to_str()?)?;
            Some(ThreadSummary {
                meta: read_meta(&path),
                id,
                path,
            })
        })
        .collect()
}
