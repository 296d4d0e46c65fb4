//! The results of the client → server methods we serve, one type per method
//! (upstream's `*Response` names), in the order of [`super::methods::METHODS`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use codex_core::config::{AskForApproval, ReasoningEffort, SandboxPolicy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::objects::{serialize_approval_policy, serialize_sandbox_policy, ThreadView, TurnView};

/// `initialize` (v1 `InitializeResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    pub user_agent: String,
    pub codex_home: PathBuf,
    pub platform_family: String,
    pub platform_os: String,
}

/// What `thread/start` and `thread/resume` both report: the thread and the
/// settings it runs with. Keys we do not support are sent as upstream
/// sends them when unset.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSessionSettings {
    pub thread: ThreadView,
    pub model: String,
    pub model_provider: String,
    pub service_tier: Option<String>,
    pub cwd: PathBuf,
    pub runtime_workspace_roots: Vec<PathBuf>,
    pub instruction_sources: Vec<String>,
    #[serde(serialize_with = "serialize_approval_policy")]
    pub approval_policy: AskForApproval,
    pub approvals_reviewer: ApprovalsReviewer,
    #[serde(serialize_with = "serialize_sandbox_policy")]
    pub sandbox: SandboxPolicy,
    pub active_permission_profile: Option<Value>,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub multi_agent_mode: MultiAgentMode,
    pub disabled_plugin_ids: Vec<String>,
}

impl ThreadSessionSettings {
    /// The settings of a thread running `model` of `model_provider` in
    /// `cwd` (its only workspace root).
    pub fn new(
        thread: ThreadView,
        model: String,
        model_provider: String,
        cwd: PathBuf,
        approval_policy: AskForApproval,
        sandbox: SandboxPolicy,
        reasoning_effort: Option<ReasoningEffort>,
    ) -> Self {
        ThreadSessionSettings {
            thread,
            model,
            model_provider,
            service_tier: None,
            runtime_workspace_roots: vec![cwd.clone()],
            cwd,
            instruction_sources: vec![],
            approval_policy,
            approvals_reviewer: ApprovalsReviewer::User,
            sandbox,
            active_permission_profile: None,
            reasoning_effort,
            multi_agent_mode: MultiAgentMode::ExplicitRequestOnly,
            disabled_plugin_ids: vec![],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ApprovalsReviewer {
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MultiAgentMode {
    ExplicitRequestOnly,
}

/// `thread/start`.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadStartResponse {
    #[serde(flatten)]
    pub settings: ThreadSessionSettings,
}

/// `thread/resume`: the settings plus the collaboration mode, the backwards
/// cursors of paged history and, when asked for, a first `TurnsPage`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadResumeResponse {
    #[serde(flatten)]
    pub settings: ThreadSessionSettings,
    pub collaboration_mode: CollaborationMode,
    pub initial_turns_page: Option<Value>,
    pub turns_backwards_cursor: Option<String>,
    pub items_backwards_cursor: Option<String>,
}

/// `CollaborationMode` (its settings are snake_case upstream).
#[derive(Debug, Clone, Serialize)]
pub struct CollaborationMode {
    pub mode: CollaborationModeKind,
    pub settings: CollaborationSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CollaborationModeKind {
    Default,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollaborationSettings {
    pub model: String,
    pub developer_instructions: Option<String>,
    pub reasoning_effort: Option<ReasoningEffort>,
}

/// `thread/read`. Read state is not tracked; the key is kept for clients
/// that expect it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReadResponse {
    pub thread: ThreadView,
    pub read_state: Option<Value>,
}

/// `thread/list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadListResponse {
    pub data: Vec<ThreadView>,
    pub next_cursor: Option<String>,
    pub backwards_cursor: Option<String>,
    /// Always empty: read state is not tracked.
    pub read_states: BTreeMap<String, Value>,
}

/// `thread/loaded/list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadLoadedListResponse {
    pub data: Vec<String>,
    pub next_cursor: Option<String>,
}

/// `thread/archive`: `{}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadArchiveResponse {}

/// `thread/unarchive`.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadUnarchiveResponse {
    pub thread: ThreadView,
}

/// `thread/name/set`: `{}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadSetNameResponse {}

/// `thread/unsubscribe`.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadUnsubscribeResponse {
    pub status: ThreadUnsubscribeStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ThreadUnsubscribeStatus {
    NotLoaded,
    NotSubscribed,
    Unsubscribed,
}

/// `turn/start` (sent once the worker accepted the turn).
#[derive(Debug, Clone, Serialize)]
pub struct TurnStartResponse {
    pub turn: TurnView,
}

/// `turn/interrupt`: `{}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TurnInterruptResponse {}

/// `model/list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelListResponse {
    pub data: Vec<Model>,
    pub next_cursor: Option<String>,
}

/// `Model`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub id: String,
    pub model: String,
    pub display_name: String,
    pub description: String,
    pub hidden: bool,
    pub is_default: bool,
    pub default_reasoning_effort: String,
    pub supported_reasoning_efforts: Vec<ReasoningEffortOption>,
    pub input_modalities: Vec<InputModality>,
    pub supports_personality: bool,
    pub additional_speed_tiers: Vec<String>,
    pub service_tiers: Vec<String>,
    pub default_service_tier: Option<String>,
    pub upgrade: Option<String>,
    pub upgrade_info: Option<Value>,
    pub availability_nux: Option<Value>,
}

impl Model {
    /// A text-and-image model without personalities, service tiers or
    /// upgrade offers; `id` is also its `model` slug.
    pub fn new(
        id: String,
        display_name: String,
        description: String,
        hidden: bool,
        is_default: bool,
        default_reasoning_effort: String,
        supported_reasoning_efforts: Vec<ReasoningEffortOption>,
    ) -> Self {
        Model {
            model: id.clone(),
            id,
            display_name,
            description,
            hidden,
            is_default,
            default_reasoning_effort,
            supported_reasoning_efforts,
            input_modalities: vec![InputModality::Text, InputModality::Image],
            supports_personality: false,
            additional_speed_tiers: vec![],
            service_tiers: vec![],
            default_service_tier: None,
            upgrade: None,
            upgrade_info: None,
            availability_nux: None,
        }
    }
}

/// `ReasoningEffortOption`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningEffortOption {
    pub reasoning_effort: String,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum InputModality {
    Text,
    Image,
}

/// `config/read`. `config` is the user's TOML as JSON (any shape).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigReadResponse {
    pub config: Value,
    pub origins: BTreeMap<String, ConfigLayerMetadata>,
    /// `null` unless the client asked for `includeLayers`.
    pub layers: Option<Vec<ConfigLayer>>,
}

/// `ConfigLayerMetadata`: where a key came from.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigLayerMetadata {
    pub name: ConfigLayerSource,
    pub version: String,
}

/// `ConfigLayerSource` (the two layers we have).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ConfigLayerSource {
    /// `$CODEX_HOME/config.toml`.
    User {
        file: PathBuf,
        profile: Option<String>,
    },
    /// `-c key=value` given to the server.
    SessionFlags,
}

/// `ConfigLayer`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigLayer {
    pub name: ConfigLayerSource,
    pub version: String,
    pub config: Value,
    pub disabled_reason: Option<String>,
}

/// `account/read` (`GetAccountResponse`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAccountResponse {
    pub account: Option<Account>,
    pub requires_openai_auth: bool,
    pub user_id: Option<String>,
}

/// `Account`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Account {
    ApiKey,
    #[serde(rename_all = "camelCase")]
    Chatgpt {
        email: Option<String>,
        /// Upstream's `PlanType` ([`super::objects::plan_type`]).
        plan_type: String,
    },
}

/// `account/login/start` (`LoginAccountResponse`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum LoginAccountResponse {
    /// Signed in at once with the key given.
    ApiKey,
    /// Open `authUrl` in a browser; the end is `account/login/completed`.
    #[serde(rename_all = "camelCase")]
    Chatgpt {
        login_id: String,
        auth_url: Option<String>,
    },
    /// Enter `userCode` at `verificationUrl`.
    #[serde(rename_all = "camelCase")]
    ChatgptDeviceCode {
        login_id: String,
        user_code: Option<String>,
        verification_url: Option<String>,
    },
}

/// `account/login/cancel` (`CancelLoginAccountResponse`).
#[derive(Debug, Clone, Serialize)]
pub struct CancelLoginAccountResponse {
    pub status: CancelLoginAccountStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CancelLoginAccountStatus {
    Canceled,
    NotFound,
}

/// `account/logout`: `{}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogoutAccountResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_server::objects::ThreadStatusView;
    use serde_json::json;

    fn v<T: Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }

    fn thread() -> ThreadView {
        ThreadView {
            id: "thr".into(),
            path: None,
            cwd: "/w".into(),
            model: Some("m".into()),
            model_provider: "openai".into(),
            reasoning_effort: None,
            preview: String::new(),
            name: None,
            created_at: 1,
            updated_at: 1,
            source: "vscode".into(),
            originator: None,
            cli_version: "0.1.0".into(),
            ephemeral: false,
            status: ThreadStatusView::Idle,
            turns: vec![],
            forked_from_id: None,
            history_mode: None,
            thread_source: None,
        }
    }

    fn settings() -> ThreadSessionSettings {
        ThreadSessionSettings::new(
            thread(),
            "m".into(),
            "openai".into(),
            "/w".into(),
            AskForApproval::Never,
            SandboxPolicy::ReadOnly,
            Some(ReasoningEffort::High),
        )
    }

    #[test]
    fn initialize() {
        let r = InitializeResponse {
            user_agent: "c/0.1.0 (linux; x86_64) (c; 1)".into(),
            codex_home: "/h".into(),
            platform_family: "unix".into(),
            platform_os: "linux".into(),
        };
        let j = json!({"userAgent": "c/0.1.0 (linux; x86_64) (c; 1)", "codexHome": "/h",
            "platformFamily": "unix", "platformOs": "linux"});
        assert_eq!(v(&r), j);
        assert_eq!(serde_json::from_value::<InitializeResponse>(j).unwrap(), r);
    }

    #[test]
    fn thread_start_and_resume() {
        let start = v(&ThreadStartResponse {
            settings: settings(),
        });
        let expected = json!({
            "thread": v(&thread()), "model": "m", "modelProvider": "openai",
            "serviceTier": null, "cwd": "/w", "runtimeWorkspaceRoots": ["/w"],
            "instructionSources": [], "approvalPolicy": "never", "approvalsReviewer": "user",
            "sandbox": {"type": "readOnly", "networkAccess": false},
            "activePermissionProfile": null, "reasoningEffort": "high",
            "multiAgentMode": "explicitRequestOnly", "disabledPluginIds": [],
        });
        assert_eq!(start, expected);
        let resume = v(&ThreadResumeResponse {
            settings: settings(),
            collaboration_mode: CollaborationMode {
                mode: CollaborationModeKind::Default,
                settings: CollaborationSettings {
                    model: "m".into(),
                    developer_instructions: None,
                    reasoning_effort: Some(ReasoningEffort::High),
                },
            },
            initial_turns_page: None,
            turns_backwards_cursor: None,
            items_backwards_cursor: None,
        });
        let mut expected = expected;
        expected["collaborationMode"] = json!({"mode": "default", "settings": {
            "model": "m", "developer_instructions": null, "reasoning_effort": "high"}});
        expected["initialTurnsPage"] = Value::Null;
        expected["turnsBackwardsCursor"] = Value::Null;
        expected["itemsBackwardsCursor"] = Value::Null;
        assert_eq!(resume, expected);
    }

    #[test]
    fn thread_methods() {
        let t = v(&thread());
        assert_eq!(
            v(&ThreadReadResponse {
                thread: thread(),
                read_state: None
            }),
            json!({"thread": t, "readState": null})
        );
        assert_eq!(
            v(&ThreadListResponse {
                data: vec![thread()],
                next_cursor: Some("c".into()),
                backwards_cursor: None,
                read_states: BTreeMap::new(),
            }),
            json!({"data": [t], "nextCursor": "c", "backwardsCursor": null, "readStates": {}})
        );
        assert_eq!(
            v(&ThreadLoadedListResponse {
                data: vec!["a".into()],
                next_cursor: None
            }),
            json!({"data": ["a"], "nextCursor": null})
        );
        assert_eq!(
            v(&ThreadUnarchiveResponse { thread: thread() }),
            json!({ "thread": t })
        );
        for (s, j) in [
            (ThreadUnsubscribeStatus::NotLoaded, "notLoaded"),
            (ThreadUnsubscribeStatus::NotSubscribed, "notSubscribed"),
            (ThreadUnsubscribeStatus::Unsubscribed, "unsubscribed"),
        ] {
            assert_eq!(
                v(&ThreadUnsubscribeResponse { status: s }),
                json!({ "status": j })
            );
        }
        assert_eq!(v(&ThreadArchiveResponse {}), json!({}));
        assert_eq!(v(&ThreadSetNameResponse {}), json!({}));
        assert_eq!(v(&TurnInterruptResponse {}), json!({}));
        assert_eq!(v(&LogoutAccountResponse {}), json!({}));
        assert_eq!(
            v(&TurnStartResponse {
                turn: TurnView::in_progress("t", None)
            })["turn"]["status"],
            "inProgress"
        );
    }

    #[test]
    fn model_list() {
        let m = Model::new(
            "gpt".into(),
            "GPT".into(),
            "d".into(),
            false,
            true,
            "medium".into(),
            vec![ReasoningEffortOption {
                reasoning_effort: "low".into(),
                description: "Fast".into(),
            }],
        );
        assert_eq!(
            v(&ModelListResponse {
                data: vec![m],
                next_cursor: None
            }),
            json!({"data": [{
                "id": "gpt", "model": "gpt", "displayName": "GPT", "description": "d",
                "hidden": false, "isDefault": true, "defaultReasoningEffort": "medium",
                "supportedReasoningEfforts": [{"reasoningEffort": "low", "description": "Fast"}],
                "inputModalities": ["text", "image"], "supportsPersonality": false,
                "additionalSpeedTiers": [], "serviceTiers": [], "defaultServiceTier": null,
                "upgrade": null, "upgradeInfo": null, "availabilityNux": null,
            }], "nextCursor": null})
        );
    }

    #[test]
    fn config_read() {
        let user = ConfigLayerSource::User {
            file: "/h/config.toml".into(),
            profile: None,
        };
        let mut origins = BTreeMap::new();
        origins.insert(
            "model".to_string(),
            ConfigLayerMetadata {
                name: user.clone(),
                version: "fnv1a:0".into(),
            },
        );
        origins.insert(
            "sandbox_mode".to_string(),
            ConfigLayerMetadata {
                name: ConfigLayerSource::SessionFlags,
                version: "fnv1a:0".into(),
            },
        );
        let r = ConfigReadResponse {
            config: json!({"model": "m"}),
            origins,
            layers: Some(vec![ConfigLayer {
                name: user,
                version: "fnv1a:0".into(),
                config: json!({"model": "m"}),
                disabled_reason: None,
            }]),
        };
        let user = json!({"type": "user", "file": "/h/config.toml", "profile": null});
        assert_eq!(
            v(&r),
            json!({"config": {"model": "m"}, "origins": {
                    "model": {"name": user, "version": "fnv1a:0"},
                    "sandbox_mode": {"name": {"type": "sessionFlags"}, "version": "fnv1a:0"},
                }, "layers": [{"name": user, "version": "fnv1a:0", "config": {"model": "m"},
                    "disabledReason": null}]})
        );
        let r = ConfigReadResponse { layers: None, ..r };
        assert_eq!(v(&r)["layers"], Value::Null);
    }

    #[test]
    fn account() {
        assert_eq!(
            v(&GetAccountResponse {
                account: None,
                requires_openai_auth: true,
                user_id: None
            }),
            json!({"account": null, "requiresOpenaiAuth": true, "userId": null})
        );
        assert_eq!(v(&Account::ApiKey), json!({"type": "apiKey"}));
        assert_eq!(
            v(&Account::Chatgpt {
                email: Some("a@b".into()),
                plan_type: "plus".into()
            }),
            json!({"type": "chatgpt", "email": "a@b", "planType": "plus"})
        );
        assert_eq!(v(&LoginAccountResponse::ApiKey), json!({"type": "apiKey"}));
        assert_eq!(
            v(&LoginAccountResponse::Chatgpt {
                login_id: "l".into(),
                auth_url: Some("https://a".into())
            }),
            json!({"type": "chatgpt", "loginId": "l", "authUrl": "https://a"})
        );
        assert_eq!(
            v(&LoginAccountResponse::ChatgptDeviceCode {
                login_id: "l".into(),
                user_code: Some("ABCD".into()),
                verification_url: Some("https://v".into()),
            }),
            json!({"type": "chatgptDeviceCode", "loginId": "l", "userCode": "ABCD",
                "verificationUrl": "https://v"})
        );
        assert_eq!(
            v(&CancelLoginAccountResponse {
                status: CancelLoginAccountStatus::Canceled
            }),
            json!({"status": "canceled"})
        );
        assert_eq!(
            v(&CancelLoginAccountResponse {
                status: CancelLoginAccountStatus::NotFound
            }),
            json!({"status": "notFound"})
        );
    }
}
