//! Paging a thread's recorded history (`thread/turns/list`,
//! `thread/items/list`) with upstream's keyset cursors.
//!
//! A position is a rollout ordinal: the byte offset of a line in the
//! session file. A turn's ordinal is its `task_started` line, an item's the
//! line that recorded it. The file is append-only, so ordinals never move:
//! a cursor stays valid while the thread grows, and it locates its page by
//! itself: a reader can seek there (or to the end of the file, for the
//! newest page) and scan, without counting or parsing what lies before.
//!
//! The cursor text is upstream's:
//! `{"requestedThreadId":…,"rolloutOrdinal":N,"includeAnchor":bool,"scope":{"kind":…}}`.
//! Clients treat it as opaque; it names its thread and its listing, so a
//! cursor of another thread or listing, or one pointing past the end of
//! the file, is refused.

use serde::{Deserialize, Serialize};

/// Which listing a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CursorScope {
    Turns,
    ItemsByCreatedAtOrdinal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryCursor {
    pub requested_thread_id: String,
    pub rollout_ordinal: u64,
    /// Whether the row at `rollout_ordinal` itself is on the page.
    pub include_anchor: bool,
    pub scope: CursorScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDirection {
    Asc,
    #[default]
    Desc,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid cursor: {0}")]
pub struct InvalidCursor(pub String);

impl HistoryCursor {
    /// A cursor whose page starts with (and includes) the row at `ordinal`.
    pub fn anchor(thread_id: &str, scope: CursorScope, ordinal: u64) -> String {
        Self {
            requested_thread_id: thread_id.to_string(),
            rollout_ordinal: ordinal,
            include_anchor: true,
            scope,
        }
        .encode()
    }

    pub fn encode(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes a client's cursor for `thread_id`'s `scope` listing; a file
    /// of `len` bytes bounds the ordinal.
    pub fn parse(
        text: &str,
        thread_id: &str,
        scope: CursorScope,
        len: u64,
    ) -> Result<Self, InvalidCursor> {
        let invalid = || InvalidCursor(text.to_string());
        let c: Self = serde_json::from_str(text).map_err(|_| invalid())?;
        if !c.requested_thread_id.eq_ignore_ascii_case(thread_id)
            || c.scope != scope
            || c.rollout_ordinal >= len
        {
            return Err(invalid());
        }
        Ok(c)
    }
}

/// One page of rows, and where the next one (and the way back) starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// Continues in the same direction after the last row; `None` at the end.
    pub next_cursor: Option<String>,
    /// With the opposite direction, starts again at the first row
    /// (included); `None` for an empty page.
    pub backwards_cursor: Option<String>,
}

/// Pages `rows` (ascending by ordinal, as recorded) in `direction` from
/// `cursor` (the newest or oldest row without one), at most `limit` rows.
pub fn page<T: Clone>(
    rows: &[T],
    ordinal: impl Fn(&T) -> u64,
    thread_id: &str,
    scope: CursorScope,
    cursor: Option<&HistoryCursor>,
    direction: SortDirection,
    limit: usize,
) -> Page<T> {
    let limit = limit.max(1);
    // The rows on the cursor's side, as a range of `rows` (binary search:
    // ordinals only grow).
    let (lo, hi) = match (cursor, direction) {
        (None, _) => (0, rows.len()),
        (Some(c), SortDirection::Asc) => {
            let at = rows.partition_point(|r| {
                let o = ordinal(r);
                o < c.rollout_ordinal || (o == c.rollout_ordinal && !c.include_anchor)
            });
            (at, rows.len())
        }
        (Some(c), SortDirection::Desc) => {
            let at = rows.partition_point(|r| {
                let o = ordinal(r);
                o < c.rollout_ordinal || (o == c.rollout_ordinal && c.include_anchor)
            });
            (0, at)
        }
    };
    let window = &rows[lo..hi];
    let (taken, has_more): (Vec<T>, bool) = match direction {
        SortDirection::Asc => (
            window.iter().take(limit).cloned().collect(),
            window.len() > limit,
        ),
        SortDirection::Desc => (
            window.iter().rev().take(limit).cloned().collect(),
            window.len() > limit,
        ),
    };
    let at = |row: &T, include_anchor: bool| {
        HistoryCursor {
            requested_thread_id: thread_id.to_string(),
            rollout_ordinal: ordinal(row),
            include_anchor,
            scope,
        }
        .encode()
    };
    Page {
        backwards_cursor: taken.first().map(|r| at(r, true)),
        next_cursor: if has_more {
            taken.last().map(|r| at(r, false))
        } else {
            None
        },
        rows: taken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(text: &str) -> HistoryCursor {
        HistoryCursor::parse(text, "t", CursorScope::Turns, 1000).unwrap()
    }

    #[test]
    fn pages_backwards_to_the_start_and_back() {
        let rows: Vec<u64> = vec![3, 7, 10, 15, 21];
        let p = page(
            &rows,
            |r| *r,
            "t",
            CursorScope::Turns,
            None,
            SortDirection::Desc,
            2,
        );
        assert_eq!(p.rows, vec![21, 15]);
        let p2 = page(
            &rows,
            |r| *r,
            "t",
            CursorScope::Turns,
            Some(&cursor(p.next_cursor.as_deref().unwrap())),
            SortDirection::Desc,
            2,
        );
        assert_eq!(p2.rows, vec![10, 7]);
        let p3 = page(
            &rows,
            |r| *r,
            "t",
            CursorScope::Turns,
            Some(&cursor(p2.next_cursor.as_deref().unwrap())),
            SortDirection::Desc,
            2,
        );
        assert_eq!(p3.rows, vec![3]);
        assert_eq!(p3.next_cursor, None);
        // The backwards cursor of a page, reversed, starts at its first row.
        let back = page(
            &rows,
            |r| *r,
            "t",
            CursorScope::Turns,
            Some(&cursor(p2.backwards_cursor.as_deref().unwrap())),
            SortDirection::Asc,
            10,
        );
        assert_eq!(back.rows, vec![10, 15, 21]);
        // An anchor cursor includes its row.
        let anchored = HistoryCursor::anchor("t", CursorScope::Turns, 21);
        let p = page(
            &rows,
            |r| *r,
            "t",
            CursorScope::Turns,
            Some(&cursor(&anchored)),
            SortDirection::Desc,
            1,
        );
        assert_eq!(p.rows, vec![21]);
    }

    #[test]
    fn foreign_or_tampered_cursors_are_refused() {
        let c = HistoryCursor::anchor("t", CursorScope::Turns, 5);
        assert_eq!(
            c,
            r#"{"requestedThreadId":"t","rolloutOrdinal":5,"includeAnchor":true,"scope":{"kind":"turns"}}"#
        );
        assert!(HistoryCursor::parse(&c, "t", CursorScope::Turns, 6).is_ok());
        for (text, scope, lines) in [
            (c.as_str(), CursorScope::ItemsByCreatedAtOrdinal, 6),
            (c.as_str(), CursorScope::Turns, 5),
            ("garbage", CursorScope::Turns, 6),
        ] {
            let e = HistoryCursor::parse(text, "t", scope, lines).unwrap_err();
            assert_eq!(e.to_string(), format!("invalid cursor: {text}"));
        }
        assert!(HistoryCursor::parse(&c, "other", CursorScope::Turns, 6).is_err());
    }
}
