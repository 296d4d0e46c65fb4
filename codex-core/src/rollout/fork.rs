//! The session file of a forked thread, as upstream writes one: a new
//! `session_meta` (the new id, `forked_from_id` naming the source), then the
//! source's lines up to the fork point, so the fork's history (what the
//! model sees and what clients page) is the source's.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use super::line::{timestamp_now, RolloutItem, RolloutLine, SessionMeta};

/// Writes `dest` (atomically: a temporary file renamed into place) from
/// `src`: `meta`, then every complete line of `src` that starts before byte
/// `cut` (a rollout ordinal; all of them for `None`) except its
/// `session_meta` lines.
pub fn write_fork(
    src: &Path,
    dest: &Path,
    meta: SessionMeta,
    cut: Option<u64>,
) -> std::io::Result<()> {
    let bytes = std::fs::read(src)?;
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() + 1024);
    let first = RolloutLine {
        timestamp: timestamp_now(),
        item: RolloutItem::SessionMeta(meta),
        ordinal: Some(0),
    };
    serde_json::to_writer(&mut out, &first).map_err(std::io::Error::other)?;
    out.push(b'\n');
    let mut next_ordinal = 1u64;
    let mut offset = 0u64;
    for raw in bytes.split(|b| *b == b'\n') {
        let start = offset;
        offset += raw.len() as u64 + 1;
        if cut.is_some_and(|c| start >= c) {
            break;
        }
        // A torn line (the source's writer died mid-line) is not copied.
        let Ok(mut v) = serde_json::from_slice::<Value>(raw) else {
            continue;
        };
        if v.get("type").and_then(Value::as_str) == Some("session_meta") {
            continue;
        }
        if let Some(o) = v.get_mut("ordinal") {
            *o = Value::from(next_ordinal);
        }
        serde_json::to_writer(&mut out, &v).map_err(std::io::Error::other)?;
        out.push(b'\n');
        next_ordinal += 1;
    }
    let dir = dest
        .parent()
        .ok_or_else(|| std::io::Error::other("fork destination has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dest.with_extension("jsonl.tmp");
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::read_rollout;

    #[test]
    fn copies_history_up_to_the_cut_under_a_new_meta() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.jsonl");
        std::fs::write(
            &src,
            concat!(
                r#"{"timestamp":"t","type":"session_meta","payload":{"id":"a","timestamp":"2026-01-01T00:00:00.000Z","cwd":"/w"},"ordinal":0}"#,
                "\n",
                r#"{"timestamp":"t","type":"event_msg","payload":{"type":"task_started","turn_id":"t1"},"ordinal":1}"#,
                "\n\n",
                r#"{"timestamp":"t","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]},"ordinal":2}"#,
                "\n",
                r#"{"timestamp":"t","type":"event_msg","payload":{"type":"task_started","turn_id":"t2"},"ordinal":3}"#,
                "\n",
                r#"{"torn"#,
            ),
        )
        .unwrap();
        let meta = |id: &str| SessionMeta {
            id: id.into(),
            session_id: Some(id.into()),
            forked_from_id: Some("a".into()),
            timestamp: timestamp_now(),
            cwd: "/w".into(),
            originator: String::new(),
            cli_version: String::new(),
            source: Value::Null,
            model_provider: None,
            base_instructions: None,
            git: None,
            history_mode: None,
            thread_source: None,
            dynamic_tools: None,
        };
        let whole = dir.path().join("sub/whole.jsonl");
        write_fork(&src, &whole, meta("b"), None).unwrap();
        let r = read_rollout(&whole).unwrap();
        assert_eq!(r.meta.id, "b");
        assert_eq!(r.meta.forked_from_id.as_deref(), Some("a"));
        assert_eq!(r.items.len(), 4, "meta + 3 copied lines, torn line dropped");
        assert_eq!(r.skipped_lines, 0);
        assert_eq!(r.history.len(), 1);
        let cut = dir.path().join("cut.jsonl");
        let at = std::fs::read_to_string(&src)
            .unwrap()
            .find(r#"{"timestamp":"t","type":"event_msg","payload":{"type":"task_started","turn_id":"t2"#)
            .unwrap() as u64;
        write_fork(&src, &cut, meta("c"), Some(at)).unwrap();
        let r = read_rollout(&cut).unwrap();
        assert_eq!(r.items.len(), 3);
        assert_eq!(r.unfinished_turn_id.as_deref(), Some("t1"));
        let text = std::fs::read_to_string(&cut).unwrap();
        assert!(text.lines().nth(2).unwrap().contains(r#""ordinal":2"#));
    }
}
