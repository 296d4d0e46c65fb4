//! Params and results of the history methods: `thread/turns/list`,
//! `thread/items/list` (paged with opaque cursors) and `thread/fork`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::items::ItemView;
use super::objects::TurnView;
use super::responses::ThreadSessionSettings;

/// `SortDirection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SortDirectionParam {
    Asc,
    Desc,
}

/// `TurnItemsView` as a client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TurnItemsViewParam {
    NotLoaded,
    Summary,
    Full,
}

/// `thread/turns/list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTurnsListParams {
    pub thread_id: String,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    /// Default: descending (newest first).
    pub sort_direction: Option<SortDirectionParam>,
    /// Default: `summary`.
    pub items_view: Option<TurnItemsViewParam>,
}

/// `thread/items/list` `cursor`: a cursor string, or an exclusive item
/// anchor within `turnId`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ItemsCursorParam {
    Cursor(String),
    Anchor(ItemAnchor),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ItemAnchor {
    #[serde(rename_all = "camelCase")]
    Item { item_id: String },
}

/// `thread/items/list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadItemsListParams {
    pub thread_id: String,
    pub turn_id: Option<String>,
    pub cursor: Option<ItemsCursorParam>,
    pub limit: Option<u32>,
    /// Default: ascending (oldest first).
    pub sort_direction: Option<SortDirectionParam>,
    /// Deferring outputs (`thread/items/read`) is not served.
    pub defer_output: Option<Value>,
}

/// `thread/resume` `initialTurnsPage`: a `thread/turns/list` page to
/// include in the result.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitialTurnsPageParams {
    pub limit: Option<u32>,
    pub sort_direction: Option<SortDirectionParam>,
    pub items_view: Option<TurnItemsViewParam>,
}

/// `thread/turns/list` result (and `TurnsPage`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTurnsListResponse {
    pub data: Vec<TurnView>,
    pub next_cursor: Option<String>,
    pub backwards_cursor: Option<String>,
}

/// `ThreadItemEntry`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadItemEntry {
    pub turn_id: String,
    pub item: ItemView,
    pub started_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
}

/// `thread/items/list` result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadItemsListResponse {
    pub data: Vec<ThreadItemEntry>,
    pub next_cursor: Option<String>,
    pub backwards_cursor: Option<String>,
}

/// `thread/fork`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadForkParams {
    /// Required, as upstream's, even when `path` names the file.
    pub thread_id: String,
    /// A session file to fork instead of `threadId` (empty = absent).
    pub path: Option<String>,
    /// Fork through this turn (inclusive).
    pub last_turn_id: Option<String>,
    /// Fork before this turn (exclusive).
    pub before_turn_id: Option<String>,
    #[serde(default)]
    pub exclude_turns: bool,
    #[serde(default)]
    pub ephemeral: bool,
    pub model: Option<String>,
    pub model_provider: Option<String>,
    pub cwd: Option<String>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
    pub approval_policy: Option<Value>,
    pub sandbox: Option<String>,
    pub config: Option<Map<String, Value>>,
    /// Features this server does not have; refused by name when set.
    #[serde(default)]
    pub attach_to_source: bool,
    #[serde(default)]
    pub experimental_prediction_mode: bool,
    #[serde(default)]
    pub defer_goal_continuation: bool,
    pub permissions: Option<String>,
}

/// `thread/fork` result: like `thread/start`'s.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadForkResponse {
    #[serde(flatten)]
    pub settings: ThreadSessionSettings,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_server::methods::parse;
    use serde_json::json;

    #[test]
    fn reads_upstreams_params() {
        // As upstream's TUI sends them.
        let p: ThreadTurnsListParams = parse(&json!({"threadId": "t", "cursor": null,
            "limit": 5, "sortDirection": "desc", "itemsView": "notLoaded"}))
        .unwrap();
        assert_eq!(p.sort_direction, Some(SortDirectionParam::Desc));
        assert_eq!(p.items_view, Some(TurnItemsViewParam::NotLoaded));
        let p: ThreadItemsListParams = parse(&json!({"threadId": "t", "turnId": null,
            "cursor": "{\"x\":1}", "limit": 100, "sortDirection": "desc"}))
        .unwrap();
        assert!(matches!(p.cursor, Some(ItemsCursorParam::Cursor(_))));
        let p: ThreadItemsListParams = parse(&json!({"threadId": "t", "turnId": "u",
            "cursor": {"type": "item", "itemId": "i"}}))
        .unwrap();
        assert!(matches!(
            p.cursor,
            Some(ItemsCursorParam::Anchor(ItemAnchor::Item { .. }))
        ));
        let e = parse::<ThreadTurnsListParams>(&json!({"threadId": "t", "sortDirection": "up"}))
            .unwrap_err();
        assert!(e.message.contains("unknown variant `up`"), "{}", e.message);
    }
}
