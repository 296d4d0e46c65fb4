//! Params, results and the notification of the smaller methods upstream's
//! TUI sends at startup and in a session: `configRequirements/read`,
//! `hooks/list`, `skills/list`, `plugin/installed`,
//! `collaborationMode/list`, `permissionProfile/list`,
//! `account/rateLimits/read`, `account/bedrock/checkGovCloudRequirements`,
//! `thread/goal/get`, `thread/backgroundTerminals/list` and
//! `thread/readState/update` (with `thread/readState/changed`). Shapes are
//! upstream's experimental schema; where a feature does not exist here the
//! result is upstream's answer for an empty one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The methods among these that upstream gates behind
/// `capabilities.experimentalApi`.
pub const EXPERIMENTAL_METHODS: &[&str] = &[
    "account/bedrock/checkGovCloudRequirements",
    "collaborationMode/list",
    "thread/readState/update",
    "thread/backgroundTerminals/list",
];

/// `-32600 <method> requires experimentalApi capability` (upstream's text).
pub fn experimental_required(method: &str) -> crate::jsonrpc::RpcError {
    crate::jsonrpc::RpcError::invalid_request(format!(
        "{method} requires experimentalApi capability"
    ))
}

// ---- params ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HooksListParams {
    #[serde(default)]
    pub cwds: Vec<String>,
    pub thread_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillsListParams {
    #[serde(default)]
    pub cwds: Vec<String>,
    /// Always honoured: every call scans the disk.
    #[serde(default)]
    pub force_reload: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInstalledParams {
    pub cwds: Option<Vec<String>>,
    pub install_suggestion_plugin_names: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionProfileListParams {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    pub cwd: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAccountRateLimitsParams {
    #[serde(default)]
    pub exclude_reset_credit_details: bool,
    #[serde(default)]
    pub supports_luna_reserve: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadBackgroundTerminalsListParams {
    pub thread_id: String,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadStateUpdateParams {
    pub thread_id: String,
    pub operation: ReadStateOperation,
    pub expected_revision: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ReadStateOperation {
    Read,
    Unread,
}

// ---- results ----

/// `configRequirements/read`: `requirements` is null when no managed
/// requirements (`requirements.toml`, MDM) exist, which is always here.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRequirementsReadResponse {
    pub supports_independent_speed_modes: bool,
    pub requirements: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HooksListResponse {
    pub data: Vec<HooksListEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HooksListEntry {
    pub cwd: String,
    /// Always empty: this runtime runs no hooks.
    pub hooks: Vec<Value>,
    pub warnings: Vec<String>,
    pub errors: Vec<PathError>,
}

/// `SkillErrorInfo` / `HookErrorInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct PathError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkillsListResponse {
    pub data: Vec<SkillsListEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SkillsListEntry {
    pub cwd: String,
    pub skills: Vec<SkillMetadata>,
    pub errors: Vec<PathError>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillMetadata {
    pub name: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_description: Option<String>,
    pub interface: Option<SkillInterface>,
    pub path: PathBuf,
    /// `repo` | `user` | `system` | `admin`
    pub scope: &'static str,
    pub enabled: bool,
    pub plugin_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillInterface {
    pub display_name: Option<String>,
    pub short_description: Option<String>,
    pub icon_small: Option<PathBuf>,
    pub icon_large: Option<PathBuf>,
    pub icon_small_url: Option<String>,
    pub icon_large_url: Option<String>,
    pub brand_color: Option<String>,
    pub default_prompt: Option<String>,
}

/// `plugin/installed`: no plugin system here, so no marketplaces.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInstalledResponse {
    pub marketplaces: Vec<Value>,
    pub marketplace_load_errors: Vec<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollaborationModeListResponse {
    pub data: Vec<CollaborationModeMask>,
}

/// A collaboration-mode preset (`reasoning_effort` is snake_case on the
/// wire, as upstream's schema has it).
#[derive(Debug, Clone, Serialize)]
pub struct CollaborationModeMask {
    pub name: String,
    pub mode: Option<String>,
    pub model: Option<String>,
    pub reasoning_effort: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionProfileListResponse {
    pub data: Vec<PermissionProfileSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PermissionProfileSummary {
    pub id: String,
    pub description: Option<String>,
    pub allowed: bool,
}

/// `account/rateLimits/read`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAccountRateLimitsResponse {
    pub rate_limits: RateLimitSnapshot,
    pub rate_limits_by_limit_id: Option<BTreeMap<String, RateLimitSnapshot>>,
}

/// A usage snapshot; every window is null when nothing is known.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSnapshot {
    pub limit_id: Option<String>,
    pub limit_name: Option<String>,
    pub normal_model_slug: Option<String>,
    pub primary: Option<Value>,
    pub secondary: Option<Value>,
    pub credits: Option<Value>,
    pub individual_limit: Option<Value>,
    pub spend_control_reached: Option<bool>,
    pub plan_type: Option<String>,
    pub rate_limit_reached_type: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BedrockCheckGovCloudRequirementsResponse {
    pub is_gov_cloud: bool,
    pub should_warn: bool,
}

/// `thread/goal/get`: threads here have no goals.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadGoalGetResponse {
    pub goal: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadBackgroundTerminalsListResponse {
    pub data: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// Where a thread's unread part begins (`None`: all read) and the
/// revision that guards edits.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadState {
    pub first_unread: Option<UnreadPosition>,
    pub revision: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UnreadPosition {
    /// Explicitly marked unread.
    ThreadStart,
    /// The earliest finished turn not yet seen.
    #[serde(rename_all = "camelCase")]
    Turn { turn_id: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadStateUpdateResponse {
    pub read_state: ThreadReadState,
}

/// `configWarning`: a problem with the configuration the daemon loaded,
/// sent to each client after `initialized`.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigWarningNotification {
    pub summary: String,
    pub details: Option<String>,
}

/// `thread/readState/changed`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadStateChangedNotification {
    pub thread_id: String,
    pub read_state: ThreadReadState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_match_upstreams_recorded_answers() {
        assert_eq!(
            v(&ConfigRequirementsReadResponse {
                supports_independent_speed_modes: true,
                requirements: None
            }),
            json!({"supportsIndependentSpeedModes": true, "requirements": null})
        );
        assert_eq!(
            v(&ThreadReadStateChangedNotification {
                thread_id: "t".into(),
                read_state: ThreadReadState {
                    first_unread: Some(UnreadPosition::Turn {
                        turn_id: "u".into()
                    }),
                    revision: "r".into(),
                },
            }),
            json!({"threadId": "t", "readState": {
                "firstUnread": {"type": "turn", "turnId": "u"}, "revision": "r"}})
        );
        assert_eq!(
            v(&CollaborationModeMask {
                name: "Plan".into(),
                mode: Some("plan".into()),
                model: None,
                reasoning_effort: Some("medium".into()),
            }),
            json!({"name": "Plan", "mode": "plan", "model": null, "reasoning_effort": "medium"})
        );
        let op: ThreadReadStateUpdateParams = serde_json::from_value(
            json!({"threadId": "t", "operation": {"type": "unread"}, "expectedRevision": "r"}),
        )
        .unwrap();
        assert_eq!(op.operation, ReadStateOperation::Unread);
    }

    fn v<T: Serialize>(x: &T) -> Value {
        serde_json::to_value(x).unwrap()
    }
}
