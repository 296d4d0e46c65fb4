//! The smaller methods upstream's TUI sends: `configRequirements/read`,
//! `hooks/list`, `plugin/installed`, `collaborationMode/list`,
//! `permissionProfile/list`, `account/rateLimits/read`,
//! `account/bedrock/checkGovCloudRequirements`, `thread/goal/get`,
//! `thread/backgroundTerminals/list`. Features this runtime does not have
//! (managed requirements, hooks, plugins, goals, background terminals,
//! Bedrock, a usage backend) answer what upstream answers when the feature
//! is empty — an empty list or null — not an error.

use std::path::PathBuf;

use codex_core::auth::{BrokerRequest, BrokerResponse};
use codex_ipc::app_server::client_features::{
    experimental_required, BedrockCheckGovCloudRequirementsResponse, CollaborationModeListResponse,
    CollaborationModeMask, ConfigRequirementsReadResponse, GetAccountRateLimitsParams,
    GetAccountRateLimitsResponse, HooksListEntry, HooksListParams, HooksListResponse,
    PermissionProfileListParams, PermissionProfileListResponse, PermissionProfileSummary,
    PluginInstalledParams, PluginInstalledResponse, RateLimitSnapshot,
    ThreadBackgroundTerminalsListParams, ThreadBackgroundTerminalsListResponse,
    ThreadGoalGetResponse,
};
use codex_ipc::app_server::methods::{self, ThreadIdParams};
use codex_ipc::jsonrpc::RpcError;
use serde_json::Value;

use super::not_loaded;
use crate::server::conn::Conn;
use crate::server::Server;

/// How long `account/rateLimits/read` waits for the broker.
const BROKER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Upstream's built-in permission profiles, in its order.
const PERMISSION_PROFILES: &[&str] = &[":read-only", ":workspace", ":danger-full-access"];

impl Server {
    /// Refuses an experimental method to a client that did not opt in.
    pub(super) fn require_experimental(conn: &Conn, method: &str) -> Result<(), RpcError> {
        if conn.experimental_api() {
            Ok(())
        } else {
            Err(experimental_required(method))
        }
    }

    /// The thread must exist (loaded, or in the session store).
    pub(super) fn require_known_thread(&self, id: &str) -> Result<(), RpcError> {
        if self.thread(id).is_some() || self.catalog.find(id).is_some() {
            Ok(())
        } else {
            Err(not_loaded(id))
        }
    }

    /// `cwds` resolved against the daemon's cwd; none means the daemon's.
    pub(super) fn resolve_cwds(&self, cwds: &[String]) -> Vec<PathBuf> {
        if cwds.is_empty() {
            return vec![self.opts.cwd.clone()];
        }
        cwds.iter().map(|c| self.opts.cwd.join(c)).collect()
    }

    pub(super) fn config_requirements_read(
        &self,
        params: &Value,
    ) -> Result<ConfigRequirementsReadResponse, RpcError> {
        // Upstream's params are `null`/absent; anything else has no meaning.
        if !params.is_null() && params.as_object().is_none_or(|o| !o.is_empty()) {
            return Err(RpcError::invalid_request(
                "Invalid request: configRequirements/read takes no params",
            ));
        }
        Ok(ConfigRequirementsReadResponse {
            supports_independent_speed_modes: true,
            requirements: None,
        })
    }

    pub(super) fn hooks_list(&self, params: &Value) -> Result<HooksListResponse, RpcError> {
        let p: HooksListParams = methods::parse(params)?;
        let cwds = match &p.thread_id {
            Some(id) => {
                if !p.cwds.is_empty() {
                    return Err(RpcError::invalid_request(
                        "Invalid request: hooks/list takes `threadId` or `cwds`, not both",
                    ));
                }
                let t = self.thread(id).ok_or_else(|| not_loaded(id))?;
                vec![t.ready().cwd]
            }
            None => self.resolve_cwds(&p.cwds),
        };
        Ok(HooksListResponse {
            data: cwds
                .into_iter()
                .map(|cwd| HooksListEntry {
                    cwd: cwd.display().to_string(),
                    hooks: Vec::new(),
                    warnings: Vec::new(),
                    errors: Vec::new(),
                })
                .collect(),
        })
    }

    pub(super) fn plugin_installed(
        &self,
        params: &Value,
    ) -> Result<PluginInstalledResponse, RpcError> {
        // No marketplaces exist, so neither cwds nor suggested names can
        // add any.
        let _: PluginInstalledParams = methods::parse(params)?;
        Ok(PluginInstalledResponse::default())
    }

    pub(super) fn collaboration_mode_list(
        &self,
        conn: &Conn,
        params: &Value,
    ) -> Result<CollaborationModeListResponse, RpcError> {
        Self::require_experimental(conn, "collaborationMode/list")?;
        let _: serde_json::Map<String, Value> = methods::parse(params)?;
        let preset = |name: &str, mode: &str, effort: Option<&str>| CollaborationModeMask {
            name: name.into(),
            mode: Some(mode.into()),
            model: None,
            reasoning_effort: effort.map(str::to_string),
        };
        Ok(CollaborationModeListResponse {
            data: vec![
                preset("Plan", "plan", Some("medium")),
                preset("Default", "default", None),
            ],
        })
    }

    pub(super) fn permission_profile_list(
        &self,
        params: &Value,
    ) -> Result<PermissionProfileListResponse, RpcError> {
        let p: PermissionProfileListParams = methods::parse(params)?;
        // `cwd` selects project config layers; there are none here, so
        // every cwd has the built-in profiles.
        let start = match &p.cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= PERMISSION_PROFILES.len())
                .ok_or_else(|| RpcError::invalid_request(format!("invalid cursor: {c}")))?,
        };
        let limit = p
            .limit
            .map(|l| l as usize)
            .unwrap_or(PERMISSION_PROFILES.len());
        if limit == 0 {
            return Err(RpcError::invalid_request(
                "Invalid request: limit must be at least 1",
            ));
        }
        let end = (start + limit).min(PERMISSION_PROFILES.len());
        Ok(PermissionProfileListResponse {
            data: PERMISSION_PROFILES[start..end]
                .iter()
                .map(|id| PermissionProfileSummary {
                    id: (*id).into(),
                    description: None,
                    allowed: true,
                })
                .collect(),
            next_cursor: (end < PERMISSION_PROFILES.len()).then(|| end.to_string()),
        })
    }

    /// Upstream reads usage from the ChatGPT backend; this runtime has no
    /// usage data, so a ChatGPT account gets an empty snapshot and other
    /// accounts upstream's errors.
    pub(super) async fn account_rate_limits_read(
        &self,
        params: &Value,
    ) -> Result<GetAccountRateLimitsResponse, RpcError> {
        let _: GetAccountRateLimitsParams = methods::parse(params)?;
        let answer = self
            .broker
            .call(BrokerRequest::Account, BROKER_DEADLINE)
            .await
            .map_err(|e| codex_ipc::broker_link::rpc_error(e, None))?;
        let BrokerResponse::Account(info) = answer else {
            return Err(RpcError::internal("unexpected broker answer"));
        };
        match info.auth_mode.as_deref() {
            None => Err(RpcError::invalid_request(
                "codex account authentication required to read rate limits",
            )),
            Some("chatgpt") => Ok(GetAccountRateLimitsResponse {
                rate_limits: RateLimitSnapshot {
                    limit_id: Some("codex".into()),
                    ..Default::default()
                },
                rate_limits_by_limit_id: None,
            }),
            Some(_) => Err(RpcError::invalid_request(
                "chatgpt authentication required to read rate limits",
            )),
        }
    }

    pub(super) fn bedrock_check_gov_cloud(
        &self,
        conn: &Conn,
        params: &Value,
    ) -> Result<BedrockCheckGovCloudRequirementsResponse, RpcError> {
        Self::require_experimental(conn, "account/bedrock/checkGovCloudRequirements")?;
        let _: serde_json::Map<String, Value> = methods::parse(params)?;
        // No Bedrock provider exists here, so nothing resolves to GovCloud.
        Ok(BedrockCheckGovCloudRequirementsResponse {
            is_gov_cloud: false,
            should_warn: false,
        })
    }

    pub(super) fn thread_goal_get(
        &self,
        params: &Value,
    ) -> Result<ThreadGoalGetResponse, RpcError> {
        let p: ThreadIdParams = methods::parse(params)?;
        self.require_known_thread(&p.thread_id)?;
        Ok(ThreadGoalGetResponse { goal: None })
    }

    pub(super) fn thread_background_terminals_list(
        &self,
        conn: &Conn,
        params: &Value,
    ) -> Result<ThreadBackgroundTerminalsListResponse, RpcError> {
        Self::require_experimental(conn, "thread/backgroundTerminals/list")?;
        let p: ThreadBackgroundTerminalsListParams = methods::parse(params)?;
        self.require_known_thread(&p.thread_id)?;
        if let Some(c) = &p.cursor {
            // An empty list has no page to continue from.
            return Err(RpcError::invalid_request(format!("invalid cursor: {c}")));
        }
        let _ = p.limit;
        Ok(ThreadBackgroundTerminalsListResponse {
            data: Vec::new(),
            next_cursor: None,
        })
    }
}
