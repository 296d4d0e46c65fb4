//! The app-server methods, by family: dispatch and `initialize` (here),
//! loading a thread into a worker (`load.rs`), `thread/*` (`thread_methods.rs`,
//! listings in `thread_list.rs`), `turn/*` (`turn_methods.rs`), `model/list`
//! (`model_methods.rs`) and `config/read` (`config_methods.rs`); `account/*`
//! is `super::account`, `codexd/status` is `super::status`; the TUI's
//! smaller methods are `client_methods.rs`, `skills.rs` and `read_state.rs`.
//! Handlers build codex-ipc result structs; dispatch encodes them.

mod client_methods;
mod config_methods;
mod load;
mod mcp_methods;
mod memory_methods;
mod model_methods;
mod read_state;
mod skills;
mod thread_fork;
mod thread_history;
mod thread_list;
mod thread_methods;
mod thread_params;
mod turn_methods;

use std::sync::Arc;

use codex_ipc::app_server::methods::{self, InitializeParams};
use codex_ipc::app_server::responses::InitializeResponse;
use codex_ipc::jsonrpc::{RequestId, RpcError};
use serde_json::Value;

use super::conn::Conn;
use super::{Reply, Server};

/// Default page size of listings.
const DEFAULT_PAGE: usize = 25;
const MAX_PAGE: usize = 500;

fn not_loaded(id: &str) -> RpcError {
    RpcError::invalid_request(format!("thread not loaded: {id}"))
}

fn now_s() -> i64 {
    codex_ipc::jsonrpc::now_ms() / 1000
}

fn page_limit(limit: Option<u64>) -> usize {
    limit
        .map(|l| l as usize)
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_PAGE)
        .min(MAX_PAGE)
}

impl Server {
    /// The config as a new thread of this daemon would see it (its `-c`
    /// overrides and cwd), for methods that answer from the config.
    pub(crate) fn handler_config(&self) -> Result<codex_core::config::Config, RpcError> {
        codex_core::config::Config::load(codex_core::config::LoadOptions {
            codex_home: Some(self.codex_home().to_path_buf()),
            cli_overrides: self.opts.config_overrides.clone(),
            overrides: codex_core::config::ConfigOverrides {
                cwd: Some(self.opts.cwd.clone()),
                ignore_user_config: self.opts.thread_defaults.ignore_user_config,
                ..Default::default()
            },
        })
        .map_err(|e| RpcError::invalid_request(e.to_string()))
    }

    pub(crate) async fn dispatch(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: &RequestId,
        method: &str,
        params: Value,
    ) -> Reply {
        match method {
            "initialize" => Reply::now(self.initialize(conn, &params)),
            "thread/start" => match self.thread_start(conn, &params).await {
                Ok((result, then)) => Reply::now_then(&result, then),
                Err(e) => Reply::Now(Err(e)),
            },
            "thread/resume" => match self.thread_resume(conn, &params).await {
                Ok((result, then)) => Reply::now_then(&result, then),
                Err(e) => Reply::Now(Err(e)),
            },
            "thread/read" => Reply::now(self.thread_read(conn, &params)),
            "thread/list" => Reply::now(self.thread_list(&params)),
            "thread/loaded/list" => Reply::now(self.thread_loaded_list(&params)),
            "thread/archive" => Reply::now(self.thread_archive(conn, &params).await),
            "thread/unarchive" => Reply::now(self.thread_unarchive(conn, &params)),
            "thread/name/set" => Reply::now(self.thread_name_set(conn, &params)),
            "thread/unsubscribe" => Reply::now(self.thread_unsubscribe(conn, &params)),
            "thread/turns/list" => Reply::now(self.thread_turns_list(&params)),
            "thread/items/list" => Reply::now(self.thread_items_list(&params)),
            "thread/fork" => match self.thread_fork(conn, &params).await {
                Ok((result, then)) => Reply::now_then(&result, then),
                Err(e) => Reply::Now(Err(e)),
            },
            "turn/start" => self.turn_start(conn, id, &params).await,
            "turn/interrupt" => Reply::now(self.turn_interrupt(&params).await),
            "turn/steer" => self.turn_steer(conn, id, &params).await,
            "thread/compact/start" => Reply::now(self.thread_compact_start(conn, &params).await),
            "model/list" => Reply::now(self.model_list(&params).await),
            "config/read" => Reply::now(self.config_read(&params)),
            "config/batchWrite" => Reply::now(self.config_batch_write(&params)),
            "config/value/write" => Reply::now(self.config_value_write(&params)),
            super::status::METHOD => Reply::now(Ok(self.status_report())),
            super::memory::METHOD => self.codexd_memory(conn, id, params),
            "account/read" => Reply::now(self.account_read().await),
            "account/login/start" => self.account_login_start(conn, &params).await,
            "account/login/cancel" => Reply::now(self.account_login_cancel(&params).await),
            "account/logout" => self.account_logout(conn).await,
            "configRequirements/read" => Reply::now(self.config_requirements_read(&params)),
            "hooks/list" => Reply::now(self.hooks_list(&params)),
            "skills/list" => Reply::now(self.skills_list(&params).await),
            "plugin/installed" => Reply::now(self.plugin_installed(&params)),
            "collaborationMode/list" => Reply::now(self.collaboration_mode_list(conn, &params)),
            "permissionProfile/list" => Reply::now(self.permission_profile_list(&params)),
            "account/rateLimits/read" => Reply::now(self.account_rate_limits_read(&params).await),
            "account/bedrock/checkGovCloudRequirements" => {
                Reply::now(self.bedrock_check_gov_cloud(conn, &params))
            }
            "thread/goal/get" => Reply::now(self.thread_goal_get(&params)),
            "thread/backgroundTerminals/list" => {
                Reply::now(self.thread_background_terminals_list(conn, &params))
            }
            "thread/readState/update" => Reply::now(self.thread_read_state_update(conn, &params)),
            "mcpServerStatus/list" => Reply::now(self.mcp_server_status_list(&params).await),
            "config/mcpServer/reload" => Reply::now(self.mcp_server_reload().await),
            "mcpServer/tool/call" => self.mcp_server_tool_call(conn, id, &params),
            "mcpServer/resource/read" => self.mcp_server_resource_read(conn, id, &params),
            "mcpServer/oauth/login" => Reply::now(self.mcp_server_oauth_login(&params).await),
            "memory/status" => Reply::now(self.memory_status(conn, &params)),
            "memory/reset" => self.memory_reset(conn, id, &params),
            "thread/memory/read" => Reply::now(self.thread_memory_read(conn, &params)),
            "thread/memoryMode/set" => Reply::now(self.thread_memory_mode_set(conn, &params)),
            other => Reply::Now(Err(methods::unknown_method(other))),
        }
    }

    fn initialize(&self, conn: &Conn, params: &Value) -> Result<InitializeResponse, RpcError> {
        let p: InitializeParams = methods::parse(params)?;
        let experimental = p.capabilities.as_ref().is_some_and(|c| c.experimental_api);
        let opt_out = p
            .capabilities
            .and_then(|c| c.opt_out_notification_methods)
            .unwrap_or_default();
        if !conn.initialize(
            p.client_info.name.clone(),
            p.client_info.version.clone(),
            opt_out,
        ) {
            return Err(RpcError::invalid_request("Already initialized"));
        }
        conn.set_experimental_api(experimental);
        Ok(InitializeResponse {
            user_agent: format!(
                "{}/{} ({}; {}) ({}; {})",
                p.client_info.name,
                codex_ipc::app_server::UPSTREAM_PROTOCOL_VERSION,
                std::env::consts::OS,
                std::env::consts::ARCH,
                p.client_info.name,
                p.client_info.version,
            ),
            codex_home: self.codex_home().to_path_buf(),
            platform_family: std::env::consts::FAMILY.into(),
            platform_os: std::env::consts::OS.into(),
        })
    }
}
