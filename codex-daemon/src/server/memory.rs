//! codexd's side of the memory service: the supervised `codex-memory` (one
//! per daemon, started with the daemon when `[features] memories` is on,
//! else by the first memory request), workers' requests relayed to it, and
//! `codexd/memory` (the `codex memory` CLI's way in). Every call has a
//! deadline; a process that is down is an error at once.

use std::sync::Arc;
use std::time::Duration;

use codex_core::memory::MemoryRequest;
use codex_ipc::jsonrpc::{RequestId, RpcError};
use codex_ipc::launcher::{LaunchSpec, Launcher, Rlimit, Role};
use codex_ipc::memory_link::{MemoryClient, MemoryInit};
use serde_json::Value;

use super::{Conn, LoadedThread, Server};
use crate::containment::{Cgroups, WorkerCgroup};
use crate::limits::Limits;

/// The method behind `codex memory` (not upstream's, hence the prefix).
pub const METHOD: &str = "codexd/memory";
/// How long a `codexd/memory` request may take.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);
/// The longest a worker may ask codexd to wait for codex-memory.
const MAX_WORKER_DEADLINE: Duration = Duration::from_secs(30);

/// The supervised codex-memory (not started yet) and its cgroup: the same
/// rlimits as a worker, a cgroup of its own where cgroups are available.
pub(super) fn client(
    launcher: &Launcher,
    worker_exe: &std::path::Path,
    init: MemoryInit,
    limits: &Limits,
    cgroups: Option<&Cgroups>,
) -> (MemoryClient, Option<WorkerCgroup>) {
    let mut spec = LaunchSpec::new(Role::Memory, worker_exe.to_path_buf());
    spec.rlimits = vec![
        (Rlimit::OpenFiles, limits.max_open_files),
        (Rlimit::Processes, limits.max_processes),
        (Rlimit::Data, limits.max_data),
    ];
    let cgroup = cgroups.and_then(|c| c.create());
    spec.cgroup_procs = cgroup.as_ref().map(|c| c.procs_file());
    (MemoryClient::new(launcher.clone(), spec, init), cgroup)
}

impl Server {
    pub(super) fn memory_cgroup_dir(&self) -> Option<std::path::PathBuf> {
        self.memory_cgroup.as_ref().map(|c| c.dir().to_path_buf())
    }

    /// `codexd/memory`: one memory request, answered off the connection's
    /// loop.
    pub(crate) fn codexd_memory(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: &RequestId,
        params: Value,
    ) -> super::Reply {
        let request: MemoryRequest = match serde_json::from_value(params) {
            Ok(r) => r,
            Err(e) => {
                return super::Reply::Now(Err(RpcError::invalid_request(format!(
                    "Invalid request: {e}"
                ))))
            }
        };
        let memory = self.memory.clone();
        let conn = conn.clone();
        let id = id.clone();
        tokio::spawn(async move {
            match memory.call(request, CLIENT_DEADLINE).await {
                Ok(r) => match codex_ipc::app_server::to_value(&r) {
                    Ok(v) => conn.respond(&id, v),
                    Err(e) => conn.error(&id, &e),
                },
                Err(e) => conn.error(&id, &codex_ipc::memory_link::rpc_error(e)),
            }
        });
        super::Reply::Deferred
    }

    /// A worker's memory request: relayed with the worker's own deadline
    /// (capped), answered over its link.
    pub(crate) fn relay_memory(
        &self,
        thread: &Arc<LoadedThread>,
        id: u64,
        request: MemoryRequest,
        deadline_ms: u64,
    ) {
        let memory = self.memory.clone();
        let t = thread.clone();
        let deadline = Duration::from_millis(deadline_ms).min(MAX_WORKER_DEADLINE);
        tokio::spawn(async move {
            let result = memory.call(request, deadline).await;
            let _ = t
                .worker
                .try_send(codex_ipc::link::ToWorker::MemoryReply { id, result });
        });
    }
}
