//! codexd's side of the memory service: the supervised `codex-memory` (one
//! per daemon, started with the daemon when `[features] memories` is on,
//! else by the first memory request), workers' requests relayed to it, and
//! `codexd/memory` (the `codex memory` CLI's way in). Every call has a
//! deadline; a process that is down is an error at once.

use std::sync::Arc;
use std::time::Duration;

use std::path::{Path, PathBuf};

use codex_core::config::Config;
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
/// The same for a local generation (a phase-1 extraction takes minutes on
/// a small machine; the pipeline bounds it with its own timeout).
const MAX_GENERATE_DEADLINE: Duration = Duration::from_secs(300);
/// How long a `codexd/memory` generation may take.
const CLIENT_GENERATE_DEADLINE: Duration = Duration::from_secs(120);

/// What codex-memory is started with, from the config. Read once: a
/// changed model path takes effect when codex-memory restarts (with
/// codexd).
pub(super) fn init(codex_home: &Path, config: &Config) -> MemoryInit {
    MemoryInit {
        codex_home: codex_home.to_path_buf(),
        // Relative to `$CODEX_HOME`, like `local_model_path`.
        embedding_model: config
            .memories
            .embedding_model
            .as_ref()
            .map(|p| config.codex_home.join(p)),
        extract_model: gguf_path(&config.codex_home, config.memories.extract_model.as_deref()),
        // Already resolved against `$CODEX_HOME`; hosted only when the pass
        // is on.
        shape_model: config
            .context_shaping
            .enabled
            .then(|| config.context_shaping.model.clone())
            .flatten(),
        score_model: gguf_path(&config.codex_home, config.memories.score_model.as_deref()),
    }
}

/// A model setting that names a local GGUF (ends in `.gguf`), resolved
/// against `$CODEX_HOME`; any other value is a remote model's name.
pub(crate) fn gguf_path(codex_home: &Path, value: Option<&str>) -> Option<PathBuf> {
    let value = value?.trim();
    let is_gguf = Path::new(value)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    is_gguf.then(|| codex_home.join(value))
}

/// A request's deadline, capped by what it may ask for.
fn capped(request: &MemoryRequest, asked: Duration) -> Duration {
    match request {
        MemoryRequest::Generate { .. } => asked.min(MAX_GENERATE_DEADLINE),
        _ => asked.min(MAX_WORKER_DEADLINE),
    }
}

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
        let deadline = match request {
            MemoryRequest::Generate { .. } => CLIENT_GENERATE_DEADLINE,
            _ => CLIENT_DEADLINE,
        };
        tokio::spawn(async move {
            match memory.call(request, deadline).await {
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
        let deadline = capped(&request, Duration::from_millis(deadline_ms));
        tokio::spawn(async move {
            let result = memory.call(request, deadline).await;
            let _ = t
                .worker
                .try_send(codex_ipc::link::ToWorker::MemoryReply { id, result });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gguf_paths_are_local_models() {
        let home = Path::new("/h");
        assert_eq!(
            gguf_path(home, Some("models/SmolLM2.Q4_1.gguf")),
            Some(PathBuf::from("/h/models/SmolLM2.Q4_1.gguf"))
        );
        assert_eq!(
            gguf_path(home, Some("/abs/m.GGUF")),
            Some(PathBuf::from("/abs/m.GGUF"))
        );
        assert_eq!(gguf_path(home, Some("gpt-5.1-codex-mini")), None);
        assert_eq!(gguf_path(home, None), None);
    }
}
