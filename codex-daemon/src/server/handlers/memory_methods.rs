//! The memories methods (all experimental upstream): `memory/status`,
//! `memory/reset`, `thread/memory/read`, `thread/memoryMode/set`.
//!
//! A thread's memory mode is its sidecar file
//! (`codex_core::memory::mode`): set here, read by the worker when it builds
//! the "## Memory" section, so no link message is needed and the mode
//! outlives the worker.

use codex_core::memory::mode::{self, ThreadMemoryMode};
use codex_core::memory::pipeline::Stage1Db;
use codex_core::memory::{prompt, reset, MemoryLayout, MemoryRequest};
use codex_ipc::app_server::methods;
use codex_ipc::jsonrpc::RpcError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::server::conn::Conn;
use crate::server::Server;

/// How long `memory/reset` waits for codex-memory.
const RESET_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// `MemoryStatusParams`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemoryStatusParams {
    #[serde(default)]
    min_consolidated_threads: Option<u32>,
}

/// `MemoryStatusResponse`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MemoryStatusResponse {
    v2_consolidated_threads: u32,
    v2_ready: bool,
}

/// `ThreadMemoryReadParams`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadMemoryReadParams {
    thread_id: String,
}

/// `ThreadMemoryReadResponse`.
#[derive(Serialize)]
pub(super) struct ThreadMemoryReadResponse {
    summary: Option<String>,
}

/// `ThreadMemoryMode`: a client may set only these two (`polluted` is the
/// runtime's own verdict).
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum SettableMode {
    Enabled,
    Disabled,
}

/// `ThreadMemoryModeSetParams`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadMemoryModeSetParams {
    thread_id: String,
    mode: SettableMode,
}

/// `MemoryResetResponse` / `ThreadMemoryModeSetResponse`: `{}`.
#[derive(Serialize)]
pub(super) struct Empty {}

impl Server {
    fn require_loaded_for_memory(&self, thread_id: &str) -> Result<(), RpcError> {
        match self.thread(thread_id) {
            Some(_) => Ok(()),
            None => Err(RpcError::invalid_request(format!(
                "thread not found: {thread_id}"
            ))),
        }
    }

    pub(super) fn memory_status(
        &self,
        conn: &Conn,
        params: &Value,
    ) -> Result<MemoryStatusResponse, RpcError> {
        Self::require_experimental(conn, "memory/status")?;
        if params.is_null() {
            // Upstream's params are required here (not defaulted).
            return Err(RpcError::invalid_request(
                "Invalid request: missing field `params`",
            ));
        }
        let p: MemoryStatusParams = methods::parse(params)?;
        if let Some(n) = p.min_consolidated_threads {
            // Upstream's readiness rule for its v2 store is not observed
            // (a fresh home is ready with 0 whatever the default of 20).
            tracing::warn!(
                "memory/status: `minConsolidatedThreads` ({n}) is not served; `v2Ready` is always true"
            );
        }
        // The stage-1 outputs the last consolidation used (read-only; a
        // database being written answers after its busy timeout at most).
        let consolidated = Stage1Db::count_selected_for_phase2(self.codex_home()).map_err(|e| {
            RpcError::internal(format!("could not read the memories database: {e}"))
        })?;
        let consolidated = u32::try_from(consolidated).unwrap_or(u32::MAX);
        Ok(MemoryStatusResponse {
            v2_consolidated_threads: consolidated,
            v2_ready: true,
        })
    }

    /// `memory/reset`: codex-memory (the index's one writer) forgets
    /// everything first, then the files and the stage-1 database are
    /// cleared here. A codex-memory that cannot answer does not stop the
    /// reset: the files are the truth, and its index follows them.
    pub(super) fn memory_reset(
        self: &std::sync::Arc<Self>,
        conn: &std::sync::Arc<Conn>,
        id: &codex_ipc::jsonrpc::RequestId,
        params: &Value,
    ) -> crate::server::Reply {
        if let Err(e) = Self::require_experimental(conn, "memory/reset") {
            return crate::server::Reply::Now(Err(e));
        }
        let _ = params;
        let server = self.clone();
        let conn = conn.clone();
        let id = id.clone();
        tokio::spawn(async move {
            if let Err(e) = server
                .memory
                .call(MemoryRequest::Reset, RESET_DEADLINE)
                .await
            {
                tracing::warn!("memory/reset: codex-memory did not reset its index: {e}");
            }
            let layout = MemoryLayout::new(server.codex_home());
            let cleared = tokio::task::spawn_blocking(move || reset::reset_memories(&layout)).await;
            match cleared {
                Ok(Ok(())) => match codex_ipc::app_server::to_value(&Empty {}) {
                    Ok(v) => conn.respond(&id, v),
                    Err(e) => conn.error(&id, &e),
                },
                Ok(Err(e)) => conn.error(&id, &RpcError::internal(e.to_string())),
                Err(e) => conn.error(&id, &RpcError::internal(e.to_string())),
            }
        });
        crate::server::Reply::Deferred
    }

    pub(super) fn thread_memory_read(
        &self,
        conn: &Conn,
        params: &Value,
    ) -> Result<ThreadMemoryReadResponse, RpcError> {
        Self::require_experimental(conn, "thread/memory/read")?;
        let p: ThreadMemoryReadParams = methods::parse(params)?;
        self.require_loaded_for_memory(&p.thread_id)?;
        let config = self.handler_config()?;
        // Null when the thread may not use memories or there is no summary.
        let summary = prompt::memories_usable(&config, &p.thread_id)
            .then(|| prompt::read_memory_summary(&MemoryLayout::new(self.codex_home())))
            .flatten();
        Ok(ThreadMemoryReadResponse { summary })
    }

    pub(super) fn thread_memory_mode_set(
        &self,
        conn: &Conn,
        params: &Value,
    ) -> Result<Empty, RpcError> {
        Self::require_experimental(conn, "thread/memoryMode/set")?;
        let p: ThreadMemoryModeSetParams = methods::parse(params)?;
        // Upstream sets a stored thread's mode too (its own test); only an
        // unknown thread is refused.
        if self.thread(&p.thread_id).is_none() && self.catalog.find(&p.thread_id).is_none() {
            return Err(RpcError::invalid_request(format!(
                "thread not found: {}",
                p.thread_id
            )));
        }
        let mode = match p.mode {
            SettableMode::Enabled => ThreadMemoryMode::Enabled,
            SettableMode::Disabled => ThreadMemoryMode::Disabled,
        };
        mode::store(self.codex_home(), &p.thread_id, mode)
            .map_err(|e| RpcError::internal(format!("could not set the memory mode: {e}")))?;
        Ok(Empty {})
    }
}
