//! Reading rollout files written by us or by upstream Codex.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::line::{RolloutItem, SessionMeta, TurnContextItem};
use crate::protocol::ResponseItem;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read session file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("session file {0} is empty")]
    Empty(PathBuf),
    #[error("session file {0} has no session_meta line")]
    NoMeta(PathBuf),
}

/// A `token_count` record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedUsage {
    pub turn_id: Option<String>,
    pub last: crate::protocol::TokenUsage,
    pub total: crate::protocol::TokenUsage,
    pub model_context_window: Option<u64>,
}

/// Everything a resume needs from a rollout.
#[derive(Debug, Clone)]
pub struct LoadedRollout {
    pub path: PathBuf,
    pub meta: SessionMeta,
    /// Every parsed item, in file order.
    pub items: Vec<RolloutItem>,
    /// The byte offset in the file of the line of each of `items`: the
    /// rollout ordinal history cursors point at (stable: the file only
    /// grows).
    pub ordinals: Vec<u64>,
    /// Bytes read (the file's length when read).
    pub len: u64,
    /// The model-visible history rebuilt from `response_item` and
    /// `compacted` lines.
    pub history: Vec<ResponseItem>,
    pub last_turn_context: Option<TurnContextItem>,
    /// A turn that started but has neither `task_complete` nor `turn_aborted`
    /// (the process died mid-turn).
    pub unfinished_turn_id: Option<String>,
    /// The last recorded token accounting.
    pub last_token_usage: Option<RecordedUsage>,
    /// Lines that could not be parsed (a torn last line counts here).
    pub skipped_lines: usize,
    /// Number of lines, to continue the ordinal sequence.
    pub line_count: u64,
}

/// Reads a rollout. Unparsable lines (e.g. a torn last line after a crash)
/// are skipped and counted, never fatal.
pub fn read_rollout(path: &Path) -> Result<LoadedRollout, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ReadError::Empty(path.to_path_buf()));
    }
    let mut meta: Option<SessionMeta> = None;
    let mut items = Vec::new();
    let mut ordinals = Vec::new();
    let mut history: Vec<ResponseItem> = Vec::new();
    let mut last_turn_context = None;
    let mut open_turn: Option<String> = None;
    let mut current_turn: Option<String> = None;
    let mut last_token_usage = None;
    let mut skipped = 0;
    let mut line_count = 0;
    let mut offset = 0u64;
    for raw in bytes.split(|b| *b == b'\n') {
        let start = offset;
        offset += raw.len() as u64 + 1;
        // Each line on its own, so offsets stay those of the file.
        let line = String::from_utf8_lossy(raw);
        let line = line.as_ref();
        if line.trim().is_empty() {
            continue;
        }
        line_count += 1;
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            skipped += 1;
            continue;
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let payload = v.get("payload").cloned().unwrap_or(Value::Null);
        let item = match kind {
            "session_meta" => match serde_json::from_value::<SessionMeta>(payload) {
                Ok(m) => {
                    if meta.is_none() {
                        meta = Some(m.clone());
                    }
                    RolloutItem::SessionMeta(m)
                }
                Err(_) => {
                    skipped += 1;
                    continue;
                }
            },
            "response_item" => match serde_json::from_value::<ResponseItem>(payload) {
                Ok(ri) => {
                    history.push(ri.clone());
                    RolloutItem::ResponseItem(ri)
                }
                Err(_) => {
                    skipped += 1;
                    continue;
                }
            },
            "turn_context" => match serde_json::from_value::<TurnContextItem>(payload) {
                Ok(tc) => {
                    last_turn_context = Some(tc.clone());
                    RolloutItem::TurnContext(tc)
                }
                // Newer upstream shapes: keep going, the history is what matters.
                Err(_) => continue,
            },
            "compacted" => {
                if let Some(replacement) =
                    crate::turn::compact::history_after_compacted(&payload, &history)
                {
                    history = replacement;
                }
                RolloutItem::Compacted(payload)
            }
            "event_msg" => {
                let ev_type = payload
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let turn_id = payload
                    .get("turn_id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match ev_type {
                    "task_started" | "turn_started" => {
                        open_turn = Some(turn_id.clone().unwrap_or_default());
                        current_turn = turn_id;
                    }
                    "token_count" => {
                        let usage = |k: &str| {
                            payload
                                .pointer(&format!("/info/{k}"))
                                .and_then(|u| serde_json::from_value(u.clone()).ok())
                        };
                        if let (Some(last), Some(total)) =
                            (usage("last_token_usage"), usage("total_token_usage"))
                        {
                            last_token_usage = Some(RecordedUsage {
                                turn_id: current_turn.clone(),
                                last,
                                total,
                                model_context_window: payload
                                    .pointer("/info/model_context_window")
                                    .and_then(Value::as_u64),
                            });
                        }
                    }
                    "task_complete" | "turn_complete" | "turn_aborted" => open_turn = None,
                    _ => {}
                }
                RolloutItem::EventMsg(payload)
            }
            // Line types of newer versions (world_state, token_usage_record, ...).
            _ => continue,
        };
        items.push(item);
        ordinals.push(start);
    }
    let meta = meta.ok_or_else(|| ReadError::NoMeta(path.to_path_buf()))?;
    Ok(LoadedRollout {
        path: path.to_path_buf(),
        meta,
        items,
        ordinals,
        len: bytes.len() as u64,
        history,
        last_turn_context,
        unfinished_turn_id: open_turn,
        last_token_usage,
        skipped_lines: skipped,
        line_count,
    })
}
