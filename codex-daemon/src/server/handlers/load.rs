//! Loading a thread into a worker: a new `codex-session` process started
//! through the one launcher, with the thread's settings (`thread/start`,
//! `thread/resume`, and the transparent reload of `turn/start`).

use std::path::PathBuf;
use std::sync::Arc;

use codex_core::config::SandboxMode;
use codex_ipc::app_server::objects::approval_policy_from_json;
use codex_ipc::jsonrpc::RpcError;
use codex_ipc::launcher::{LaunchSpec, Rlimit, Role};
use codex_ipc::link::{ThreadInit, WorkerThread};
use serde_json::{Map, Value};

use super::now_s;
use crate::containment::Containment;
use crate::server::catalog::ThreadSummary;
use crate::server::conn::Conn;
use crate::server::thread::{LoadedThread, ThreadMeta};
use crate::server::{Server, WORKER_START_DEADLINE};

/// How a thread is to run (`thread/start` and `thread/resume` params; all
/// unset for a transparent reload).
#[derive(Debug, Default)]
pub(super) struct ThreadSettings {
    pub cwd: Option<String>,
    pub config: Option<Map<String, Value>>,
    pub model: Option<String>,
    pub model_provider: Option<String>,
    pub base_instructions: Option<String>,
    pub developer_instructions: Option<String>,
    pub approval_policy: Option<Value>,
    pub sandbox: Option<String>,
}

impl ThreadSettings {
    /// The settings that were given, by their param names (for a thread
    /// already running, which keeps its own).
    pub fn given(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v.filter(|v| !v.is_null()) {
                m.insert(k.to_string(), v);
            }
        };
        put("cwd", self.cwd.clone().map(Value::from));
        put("config", self.config.clone().map(Value::Object));
        put("model", self.model.clone().map(Value::from));
        put(
            "modelProvider",
            self.model_provider.clone().map(Value::from),
        );
        put(
            "baseInstructions",
            self.base_instructions.clone().map(Value::from),
        );
        put(
            "developerInstructions",
            self.developer_instructions.clone().map(Value::from),
        );
        put("approvalPolicy", self.approval_policy.clone());
        put("sandbox", self.sandbox.clone().map(Value::from));
        m
    }

    /// Sets the worker's settings (`cwd` and `config` go through
    /// `thread_init`).
    pub fn apply(self, init: &mut ThreadInit) -> Result<(), RpcError> {
        init.model = self.model;
        init.model_provider = self.model_provider;
        init.base_instructions = self.base_instructions;
        init.developer_instructions = self.developer_instructions;
        init.approval_policy = parse_approval(self.approval_policy.as_ref())?;
        init.sandbox_mode = parse_sandbox_mode(self.sandbox.as_deref())?;
        Ok(())
    }
}

impl Server {
    /// Starts a worker for a thread (new or resumed) and registers it.
    pub(super) async fn load(
        self: &Arc<Self>,
        mut init: ThreadInit,
        meta: ThreadMeta,
        preview: Option<String>,
    ) -> Result<Arc<LoadedThread>, RpcError> {
        let limits = self.limits();
        if self.loaded_count() >= limits.max_loaded_threads {
            tracing::warn!(
                "refusing to load a thread: {} workers running (max_loaded_threads)",
                limits.max_loaded_threads
            );
            return Err(RpcError::overloaded());
        }
        let mut spec = LaunchSpec::new(Role::Session, self.opts.worker_exe.clone());
        spec.cwd = init.cwd.clone().filter(|c| c.is_dir());
        spec.rlimits = vec![
            (Rlimit::OpenFiles, limits.max_open_files),
            (Rlimit::Processes, limits.max_processes),
            (Rlimit::Data, limits.max_data),
        ];
        let cgroup = self.cgroups.as_ref().and_then(|c| c.create());
        spec.cgroup_procs = cgroup.as_ref().map(|c| c.procs_file());
        init.heartbeat_ms = Some(limits.heartbeat_interval.as_millis() as u64);
        init.use_broker = true;
        init.use_memory = true;
        let launched =
            WorkerThread::launch(&self.launcher, spec, init, WORKER_START_DEADLINE).await;
        let (worker, messages) = match launched {
            Ok(w) => w,
            Err(e) => {
                if let Some(cg) = cgroup {
                    cg.kill_and_remove(std::time::Duration::from_millis(200));
                }
                return Err(RpcError::invalid_request(e.to_string()));
            }
        };
        for w in &worker.ready.warnings {
            tracing::warn!("{w}");
        }
        let containment = Containment::new(worker.pid, cgroup);
        Ok(LoadedThread::start(
            self,
            worker,
            messages,
            containment,
            meta,
            preview,
        ))
    }

    /// The loaded thread `id`, waiting out a worker that is being stopped
    /// (it is then no longer loaded).
    pub(super) async fn live_thread(&self, id: &str) -> Option<Arc<LoadedThread>> {
        let t = self.thread(id)?;
        if !t.is_unloading() {
            return Some(t);
        }
        // Bounded: `stop` kills a worker that does not exit in time.
        let _ = tokio::time::timeout(crate::server::SHUTDOWN_GRACE * 2, t.exited()).await;
        self.thread(id).filter(|t| !t.is_unloading())
    }

    /// Loads a thread from its session file (a new worker resumes it).
    pub(super) async fn load_from_disk(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        thread_id: &str,
        settings: ThreadSettings,
    ) -> Result<Arc<LoadedThread>, RpcError> {
        let (path, archived) = self.catalog.find(thread_id).ok_or_else(|| {
            RpcError::invalid_request(format!("no rollout found for thread id {thread_id}"))
        })?;
        if archived {
            return Err(RpcError::invalid_request(format!(
                "thread {thread_id} is archived; unarchive it first"
            )));
        }
        let summary = self.catalog.summary(&path, false);
        let mut init = self.thread_init(conn, settings.cwd.as_deref(), settings.config.as_ref())?;
        if init.cwd.as_ref() == Some(&self.opts.cwd) {
            // Resume where the thread ran unless the client says otherwise.
            if let Some(s) = &summary {
                if s.meta.cwd.is_dir() {
                    init.cwd = Some(s.meta.cwd.clone());
                }
            }
        }
        init.resume_path = Some(path.clone());
        settings.apply(&mut init)?;
        let meta = ThreadMeta {
            source: summary
                .as_ref()
                .map(ThreadSummary::source)
                .unwrap_or_else(|| "vscode".into()),
            originator: init.originator.clone(),
            created_at: summary.as_ref().map(|s| s.created_at).unwrap_or_else(now_s),
            ephemeral: false,
        };
        // One loader at a time per thread: two workers must never append to
        // the same session file.
        let _guard = self.load_lock(thread_id).lock_owned().await;
        if let Some(t) = self.live_thread(thread_id).await {
            return Ok(t);
        }
        self.load(
            init,
            meta,
            summary.map(|s| s.preview).filter(|p| !p.is_empty()),
        )
        .await
    }

    pub(super) fn thread_init(
        &self,
        conn: &Conn,
        cwd: Option<&str>,
        config: Option<&Map<String, Value>>,
    ) -> Result<ThreadInit, RpcError> {
        let mut overrides: Vec<(String, Value)> = self
            .opts
            .config_overrides
            .iter()
            .map(|o| {
                (
                    o.path.join("."),
                    serde_json::to_value(&o.value).unwrap_or(Value::Null),
                )
            })
            .collect();
        for (k, v) in config.into_iter().flatten() {
            if !v.is_null() {
                overrides.push((k.clone(), v.clone()));
            }
        }
        let cwd = match cwd {
            Some(c) => {
                let p = PathBuf::from(c);
                if !p.is_absolute() {
                    return Err(RpcError::invalid_request(format!(
                        "Invalid request: cwd must be an absolute path, got `{c}`"
                    )));
                }
                p
            }
            None => self.opts.cwd.clone(),
        };
        Ok(ThreadInit {
            codex_home: self.opts.codex_home.clone(),
            cwd: Some(cwd),
            config_overrides: overrides,
            originator: conn
                .client_name()
                .unwrap_or_else(|| "codex_app_server".into()),
            source: self.opts.thread_defaults.source.clone(),
            default_approval_policy: self.opts.thread_defaults.default_approval_policy,
            additional_writable_roots: self.opts.thread_defaults.additional_writable_roots.clone(),
            ignore_user_config: self.opts.thread_defaults.ignore_user_config,
            protected_paths: self.opts.protected_paths.clone(),
            ..Default::default()
        })
    }
}

pub(super) fn parse_approval(
    v: Option<&Value>,
) -> Result<Option<codex_core::config::AskForApproval>, RpcError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => approval_policy_from_json(v).map(Some).ok_or_else(|| {
            RpcError::invalid_request(format!("Invalid request: unsupported approvalPolicy {v}"))
        }),
    }
}

pub(super) fn parse_sandbox_mode(v: Option<&str>) -> Result<Option<SandboxMode>, RpcError> {
    match v {
        None => Ok(None),
        Some(s) => s
            .parse::<SandboxMode>()
            .map(Some)
            .map_err(|e| RpcError::invalid_request(format!("Invalid request: {e}"))),
    }
}
