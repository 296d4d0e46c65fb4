//! Paged history: `thread/turns/list`, `thread/items/list`, and the
//! backwards cursors (and optional first page) of `thread/resume`. Pages
//! come from the session file (loaded or not) through the catalog; cursors
//! are `codex_core::rollout::HistoryCursor`s, opaque to clients.

use std::path::PathBuf;
use std::sync::Arc;

use codex_core::protocol::ThreadItem;
use codex_core::rollout::{
    page, CursorScope, HistoryCursor, RecordedItem, RecordedTurn, RecordedTurnStatus, SortDirection,
};
use codex_ipc::app_server::history::{
    ItemAnchor, ItemsCursorParam, SortDirectionParam, ThreadItemEntry, ThreadItemsListParams,
    ThreadItemsListResponse, ThreadTurnsListParams, ThreadTurnsListResponse, TurnItemsViewParam,
};
use codex_ipc::app_server::methods::{self, HistoryModeParam};
use codex_ipc::app_server::notifications::DeprecationNoticeNotification;
use codex_ipc::app_server::objects::{ItemsView, ThreadView, TurnView};
use codex_ipc::jsonrpc::RpcError;
use serde_json::Value;

use super::not_loaded;
use crate::server::catalog::{item_view, turn_view, RecordedHistory};
use crate::server::conn::Conn;
use crate::server::send::ConnSend;
use crate::server::Server;

/// Upstream's page sizes (`THREAD_TURNS_*_LIMIT`, `THREAD_ITEMS_*_LIMIT`).
const DEFAULT_LIMIT: u32 = 25;
const MAX_LIMIT: u32 = 100;

fn limit_of(limit: Option<u32>) -> usize {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize
}

fn direction(d: Option<SortDirectionParam>, default: SortDirection) -> SortDirection {
    match d {
        Some(SortDirectionParam::Asc) => SortDirection::Asc,
        Some(SortDirectionParam::Desc) => SortDirection::Desc,
        None => default,
    }
}

/// One item of a thread, in file order, for `thread/items/list`.
#[derive(Clone, Copy)]
struct Entry<'a> {
    turn_id: &'a str,
    item: &'a RecordedItem,
}

/// The recorded items of `turns` (all, or those of `turn_id`) that are v2
/// `ThreadItem`s, in file order.
fn entries<'a>(turns: &'a [RecordedTurn], turn_id: Option<&str>) -> Vec<Entry<'a>> {
    let mut out: Vec<Entry<'a>> = turns
        .iter()
        .filter(|t| turn_id.is_none_or(|id| t.id == id))
        .flat_map(|t| {
            t.items.iter().map(|item| Entry {
                turn_id: &t.id,
                item,
            })
        })
        .filter(|e| !matches!(e.item.item, ThreadItem::TodoList(_) | ThreadItem::Error(_)))
        .collect();
    out.sort_by_key(|e| e.item.ordinal);
    out
}

/// A turn as a page shows it: no items, a summary (the first user message
/// and the last agent message, as upstream), or all of them.
fn listed_turn(t: &RecordedTurn, view: TurnItemsViewParam) -> TurnView {
    let mut v = turn_view(t);
    match view {
        TurnItemsViewParam::Full => {}
        TurnItemsViewParam::NotLoaded => {
            v.items.clear();
            v.items_view = ItemsView::NotLoaded;
        }
        TurnItemsViewParam::Summary => {
            let first_user = t
                .items
                .iter()
                .find(|i| matches!(i.item, ThreadItem::UserMessage(_)));
            let last_agent = t
                .items
                .iter()
                .rev()
                .find(|i| matches!(i.item, ThreadItem::AgentMessage(_)));
            v.items = first_user
                .into_iter()
                .chain(last_agent)
                .map(item_view)
                .collect();
            v.items_view = ItemsView::Summary;
        }
    }
    v
}

fn invalid_cursor(e: codex_core::rollout::InvalidCursor) -> RpcError {
    RpcError::invalid_request(e.to_string())
}

/// Which full-history read a [`Server::hydration_notice`] is about.
pub(super) enum Hydration {
    Read,
    Resume,
}

/// Upstream's own client, which upstream spares the notice.
const UPSTREAM_TUI: &str = "codex-tui";

impl Server {
    /// Upstream's `deprecationNotice` for a full-history read of a paginated
    /// thread, sent before the result as upstream does.
    pub(super) fn hydration_notice(&self, conn: &Conn, thread: &ThreadView, read: Hydration) {
        let paginated = !matches!(thread.history_mode, Some(HistoryModeParam::Legacy));
        if !paginated || conn.client_name().as_deref() == Some(UPSTREAM_TUI) {
            return;
        }
        let summary = match read {
            Hydration::Read => "Full-history hydration is deprecated for paginated threads; omit `includeTurns` or set it to `false`, then page with `thread/turns/list` and `thread/items/list`.",
            Hydration::Resume => "Full-history hydration is deprecated for paginated threads; use `excludeTurns: true`, then page with `thread/turns/list` and `thread/items/list`.",
        };
        conn.send_notification(
            &DeprecationNoticeNotification {
                summary: summary.into(),
                details: None,
            }
            .into(),
        );
    }

    /// The recorded history of thread `id` for `method`: its session file
    /// whether or not a worker runs it. A turn without an end is
    /// interrupted unless the thread is loaded (then it may be running).
    pub(super) fn recorded_history(
        &self,
        id: &str,
        method: &str,
    ) -> Result<Arc<RecordedHistory>, RpcError> {
        let (path, loaded): (PathBuf, bool) = match self.thread(id) {
            Some(t) => {
                let path = t.ready().rollout_path.clone().filter(|p| p.exists());
                let path = path.ok_or_else(|| {
                    RpcError::invalid_request(format!(
                        "thread {id} is not materialized yet; {method} is unavailable before first user message"
                    ))
                })?;
                (path, true)
            }
            None => (
                self.catalog.find(id).ok_or_else(|| not_loaded(id))?.0,
                false,
            ),
        };
        let mut history = self
            .catalog
            .history(&path)
            .map_err(|e| RpcError::invalid_request(e.to_string()))?;
        if !loaded
            && history
                .turns
                .iter()
                .any(|t| t.status == RecordedTurnStatus::InProgress)
        {
            for t in &mut Arc::make_mut(&mut history).turns {
                if t.status == RecordedTurnStatus::InProgress {
                    t.status = RecordedTurnStatus::Interrupted;
                }
            }
        }
        Ok(history)
    }

    /// A `thread/turns/list` page of `history`.
    pub(super) fn turns_page(
        &self,
        thread_id: &str,
        history: &RecordedHistory,
        cursor: Option<&str>,
        limit: Option<u32>,
        sort: Option<SortDirectionParam>,
        items_view: Option<TurnItemsViewParam>,
    ) -> Result<ThreadTurnsListResponse, RpcError> {
        let cursor = cursor
            .map(|c| HistoryCursor::parse(c, thread_id, CursorScope::Turns, history.len))
            .transpose()
            .map_err(invalid_cursor)?;
        let p = page(
            &history.turns,
            |t| t.ordinal,
            thread_id,
            CursorScope::Turns,
            cursor.as_ref(),
            direction(sort, SortDirection::Desc),
            limit_of(limit),
        );
        let view = items_view.unwrap_or(TurnItemsViewParam::Summary);
        Ok(ThreadTurnsListResponse {
            data: p.rows.iter().map(|t| listed_turn(t, view)).collect(),
            next_cursor: p.next_cursor,
            backwards_cursor: p.backwards_cursor,
        })
    }

    pub(super) fn thread_turns_list(
        &self,
        params: &Value,
    ) -> Result<ThreadTurnsListResponse, RpcError> {
        let p: ThreadTurnsListParams = methods::parse(params)?;
        let history = self.recorded_history(&p.thread_id, "thread/turns/list")?;
        self.turns_page(
            &p.thread_id,
            &history,
            p.cursor.as_deref(),
            p.limit,
            p.sort_direction,
            p.items_view,
        )
    }

    pub(super) fn thread_items_list(
        &self,
        params: &Value,
    ) -> Result<ThreadItemsListResponse, RpcError> {
        let p: ThreadItemsListParams = methods::parse(params)?;
        if let Some(defer) = p.defer_output.as_ref().and_then(Value::as_object) {
            if let Some((k, _)) = defer.iter().find(|(_, v)| v.as_bool() == Some(true)) {
                return Err(RpcError::invalid_request(format!(
                    "deferOutput.{k} is not supported: this server keeps no separately readable outputs (thread/items/read)"
                )));
            }
        }
        let history = self.recorded_history(&p.thread_id, "thread/items/list")?;
        let turn_id = p.turn_id.as_deref().filter(|t| !t.is_empty());
        let rows = entries(&history.turns, turn_id);
        let cursor = match &p.cursor {
            None => None,
            Some(ItemsCursorParam::Cursor(c)) => Some(
                HistoryCursor::parse(
                    c,
                    &p.thread_id,
                    CursorScope::ItemsByCreatedAtOrdinal,
                    history.len,
                )
                .map_err(invalid_cursor)?,
            ),
            Some(ItemsCursorParam::Anchor(ItemAnchor::Item { item_id })) => {
                if turn_id.is_none() {
                    return Err(RpcError::invalid_request(
                        "turnId is required when cursor is an item anchor",
                    ));
                }
                let at = rows
                    .iter()
                    .find(|e| !item_id.is_empty() && e.item.item.id() == item_id)
                    .ok_or_else(|| {
                        RpcError::invalid_request(
                            "cursor.itemId does not identify an item in the requested history scope",
                        )
                    })?;
                Some(HistoryCursor {
                    requested_thread_id: p.thread_id.clone(),
                    rollout_ordinal: at.item.ordinal,
                    include_anchor: false,
                    scope: CursorScope::ItemsByCreatedAtOrdinal,
                })
            }
        };
        let pg = page(
            &rows,
            |e| e.item.ordinal,
            &p.thread_id,
            CursorScope::ItemsByCreatedAtOrdinal,
            cursor.as_ref(),
            direction(p.sort_direction, SortDirection::Asc),
            limit_of(p.limit),
        );
        Ok(ThreadItemsListResponse {
            data: pg
                .rows
                .iter()
                .map(|e| ThreadItemEntry {
                    turn_id: e.turn_id.to_string(),
                    item: item_view(e.item),
                    started_at_ms: e.item.started_at_ms,
                    completed_at_ms: e.item.completed_at_ms,
                })
                .collect(),
            next_cursor: pg.next_cursor,
            backwards_cursor: pg.backwards_cursor,
        })
    }
}

/// `thread/resume`'s `turnsBackwardsCursor` and `itemsBackwardsCursor`:
/// anchored at the newest turn and item, so a descending page from them
/// starts with (and includes) those. `None` for a thread without any.
pub(super) fn backwards_cursors(
    thread_id: &str,
    history: &RecordedHistory,
) -> (Option<String>, Option<String>) {
    let turns = history
        .turns
        .last()
        .map(|t| HistoryCursor::anchor(thread_id, CursorScope::Turns, t.ordinal));
    let items = entries(&history.turns, None).last().map(|e| {
        HistoryCursor::anchor(
            thread_id,
            CursorScope::ItemsByCreatedAtOrdinal,
            e.item.ordinal,
        )
    });
    (turns, items)
}
