//! The app-server methods.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codex_core::config::{SandboxMode, SandboxPolicy};
use codex_core::models;
use codex_core::protocol::UserInput;
use codex_core::turn::TurnOverrides;
use codex_ipc::app_server::methods::{self, *};
use codex_ipc::app_server::objects::{
    approval_policy_from_json, approval_policy_json, sandbox_policy_from_json, sandbox_policy_json,
    user_input_from_json, ThreadStatusView, ThreadView,
};
use codex_ipc::jsonrpc::{RequestId, RpcError};
use codex_ipc::launcher::{LaunchSpec, Rlimit, Role};
use codex_ipc::link::{LinkError, ThreadInit, ThreadReady, ToWorker, WorkerThread};
use serde_json::{json, Map, Value};

use super::catalog::{view_of, ThreadSummary};
use super::conn::Conn;
use super::thread::{LoadedThread, ThreadMeta};
use super::{Reply, Server, WORKER_START_DEADLINE};
use crate::containment::Containment;
use crate::governor::Pressure;

/// How a thread is to run (`thread/start` and `thread/resume` params; all
/// unset for a transparent reload).
#[derive(Debug, Default)]
struct ThreadSettings {
    cwd: Option<String>,
    config: Option<Map<String, Value>>,
    model: Option<String>,
    model_provider: Option<String>,
    base_instructions: Option<String>,
    developer_instructions: Option<String>,
    approval_policy: Option<Value>,
    sandbox: Option<String>,
}

impl ThreadSettings {
    /// Sets the worker's settings (`cwd` and `config` go through
    /// `thread_init`).
    fn apply(self, init: &mut ThreadInit) -> Result<(), RpcError> {
        init.model = self.model;
        init.model_provider = self.model_provider;
        init.base_instructions = self.base_instructions;
        init.developer_instructions = self.developer_instructions;
        init.approval_policy = parse_approval(self.approval_policy.as_ref())?;
        init.sandbox_mode = parse_sandbox_mode(self.sandbox.as_deref())?;
        Ok(())
    }
}

/// One `model/list` entry, from either catalog.
struct CatalogEntry {
    id: String,
    display_name: String,
    description: String,
    hidden: bool,
    default_effort: String,
    efforts: Vec<String>,
}

/// How long `model/list` waits for the broker.
const BROKER_CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// A notification to send after a response.
pub(crate) type Note = (&'static str, Value);

/// Default page size of listings.
const DEFAULT_PAGE: usize = 25;
const MAX_PAGE: usize = 500;
/// Interactive sources listed when a client does not ask for others.
const INTERACTIVE_SOURCES: &[&str] = &["cli", "vscode"];

fn not_loaded(id: &str) -> RpcError {
    RpcError::invalid_request(format!("thread not loaded: {id}"))
}

fn now_s() -> i64 {
    codex_ipc::jsonrpc::now_ms() / 1000
}

impl Server {
    pub(crate) async fn dispatch(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: &RequestId,
        method: &str,
        params: Value,
    ) -> Reply {
        let r = match method {
            "initialize" => self.initialize(conn, &params),
            "thread/start" => {
                return match self.thread_start(conn, &params).await {
                    Ok((result, then)) => Reply::NowThen(result, then),
                    Err(e) => Reply::Now(Err(e)),
                }
            }
            "thread/resume" => {
                return match self.thread_resume(conn, &params).await {
                    Ok((result, then)) => Reply::NowThen(result, then),
                    Err(e) => Reply::Now(Err(e)),
                }
            }
            "thread/read" => self.thread_read(&params),
            "thread/list" => self.thread_list(&params),
            "thread/loaded/list" => self.thread_loaded_list(&params),
            "thread/archive" => self.thread_archive(conn, &params).await,
            "thread/unarchive" => self.thread_unarchive(conn, &params),
            "thread/name/set" => self.thread_name_set(conn, &params),
            "thread/unsubscribe" => self.thread_unsubscribe(conn, &params),
            "turn/start" => return self.turn_start(conn, id, &params).await,
            "turn/interrupt" => self.turn_interrupt(&params).await,
            "model/list" => self.model_list(&params).await,
            "config/read" => self.config_read(&params),
            super::status::METHOD => Ok(self.status_report()),
            "account/read" => self.account_read().await,
            "account/login/start" => return self.account_login_start(conn, &params).await,
            "account/login/cancel" => self.account_login_cancel(&params).await,
            "account/logout" => return self.account_logout(conn).await,
            other => Err(methods::unknown_method(other)),
        };
        Reply::Now(r)
    }

    fn initialize(&self, conn: &Conn, params: &Value) -> Result<Value, RpcError> {
        let p: InitializeParams = methods::parse(params)?;
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
        Ok(json!({
            "userAgent": format!(
                "{}/{} ({}; {}) ({}; {})",
                p.client_info.name,
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH,
                p.client_info.name,
                p.client_info.version,
            ),
            "codexHome": self.codex_home(),
            "platformFamily": std::env::consts::FAMILY,
            "platformOs": std::env::consts::OS,
        }))
    }

    /// Starts a worker for a thread (new or resumed) and registers it.
    async fn load(
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
        let mut spec = LaunchSpec {
            exe: self.opts.worker_exe.clone(),
            ..LaunchSpec::current_exe(Role::Session)
                .map_err(|e| RpcError::internal(e.to_string()))?
        };
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
    async fn live_thread(&self, id: &str) -> Option<Arc<LoadedThread>> {
        let t = self.thread(id)?;
        if !t.is_unloading() {
            return Some(t);
        }
        // Bounded: `stop` kills a worker that does not exit in time.
        let _ = tokio::time::timeout(super::SHUTDOWN_GRACE * 2, t.exited()).await;
        self.thread(id).filter(|t| !t.is_unloading())
    }

    /// Loads a thread from its session file (a new worker resumes it).
    async fn load_from_disk(
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

    fn thread_init(
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
            source: "vscode".into(),
            ..Default::default()
        })
    }

    fn settings_result(&self, ready: &ThreadReady, thread: Value) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("thread".into(), thread);
        m.insert("model".into(), json!(ready.model));
        m.insert("modelProvider".into(), json!(ready.model_provider));
        m.insert("serviceTier".into(), Value::Null);
        m.insert("cwd".into(), json!(ready.cwd));
        m.insert("runtimeWorkspaceRoots".into(), json!([ready.cwd]));
        m.insert("instructionSources".into(), json!([]));
        m.insert(
            "approvalPolicy".into(),
            approval_policy_json(ready.approval_policy),
        );
        m.insert("approvalsReviewer".into(), json!("user"));
        m.insert("sandbox".into(), sandbox_policy_json(&ready.sandbox_policy));
        m.insert("activePermissionProfile".into(), Value::Null);
        m.insert(
            "reasoningEffort".into(),
            ready
                .reasoning_effort
                .and_then(|e| serde_json::to_value(e).ok())
                .unwrap_or(Value::Null),
        );
        m.insert("multiAgentMode".into(), json!("explicitRequestOnly"));
        m.insert("disabledPluginIds".into(), json!([]));
        m
    }

    /// The `Thread` object of a loaded thread.
    fn loaded_view(&self, t: &LoadedThread, include_turns: bool) -> ThreadView {
        let ready = t.ready();
        let file = ready
            .rollout_path
            .as_deref()
            .and_then(|p| self.catalog.view(p, false, t.status(), include_turns));
        let mut view = file.unwrap_or_else(|| ThreadView {
            id: t.id.clone(),
            path: ready.rollout_path.clone(),
            cwd: ready.cwd.clone(),
            model: None,
            model_provider: ready.model_provider.clone(),
            reasoning_effort: None,
            preview: String::new(),
            name: self.catalog.name_of(&t.id),
            created_at: t.meta.created_at,
            updated_at: t.meta.created_at,
            source: t.meta.source.clone(),
            originator: Some(t.meta.originator.clone()),
            cli_version: env!("CARGO_PKG_VERSION").into(),
            ephemeral: t.meta.ephemeral,
            status: t.status(),
            turns: vec![],
        });
        view.model = Some(ready.model.clone());
        view.model_provider = ready.model_provider.clone();
        view.reasoning_effort = ready
            .reasoning_effort
            .and_then(|e| serde_json::to_value(e).ok())
            .and_then(|v| v.as_str().map(str::to_string));
        view.cwd = ready.cwd.clone();
        view.ephemeral = t.meta.ephemeral;
        if view.preview.is_empty() {
            view.preview = t.preview().unwrap_or_default();
        }
        view
    }

    async fn thread_start(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<(Value, Vec<Note>), RpcError> {
        let p: ThreadStartParams = methods::parse(params)?;
        let mut init = self.thread_init(conn, p.cwd.as_deref(), p.config.as_ref())?;
        init.thread_id = Some(uuid::Uuid::now_v7().to_string());
        init.ephemeral = p.ephemeral.unwrap_or(false);
        ThreadSettings {
            cwd: None,
            config: None,
            model: p.model,
            model_provider: p.model_provider,
            base_instructions: p.base_instructions,
            developer_instructions: p.developer_instructions,
            approval_policy: p.approval_policy,
            sandbox: p.sandbox,
        }
        .apply(&mut init)?;
        let meta = ThreadMeta {
            source: init.source.clone(),
            originator: init.originator.clone(),
            created_at: now_s(),
            ephemeral: init.ephemeral,
        };
        let t = self.load(init, meta, None).await?;
        t.subscribe(self, conn.id);
        let thread = self.loaded_view(&t, false).to_json();
        let result = self.settings_result(&t.ready(), thread.clone());
        // The response first, then `thread/started`.
        Ok((
            Value::Object(result),
            vec![("thread/started", json!({"thread": thread}))],
        ))
    }

    async fn thread_resume(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<(Value, Vec<Note>), RpcError> {
        let p: ThreadResumeParams = methods::parse(params)?;
        let include_turns = !p.exclude_turns.unwrap_or(false);
        let t = match self.live_thread(&p.thread_id).await {
            Some(t) => t,
            None => {
                let settings = ThreadSettings {
                    cwd: p.cwd,
                    config: p.config,
                    model: p.model,
                    model_provider: p.model_provider,
                    base_instructions: p.base_instructions,
                    developer_instructions: p.developer_instructions,
                    approval_policy: p.approval_policy,
                    sandbox: p.sandbox,
                };
                self.load_from_disk(conn, &p.thread_id, settings).await?
            }
        };
        t.subscribe(self, conn.id);
        let ready = t.ready();
        let thread = self.loaded_view(&t, include_turns).to_json();
        let mut result = self.settings_result(&ready, thread);
        result.insert(
            "collaborationMode".into(),
            json!({"mode": "default", "settings": {
                "model": ready.model,
                "developer_instructions": ready.developer_instructions,
                "reasoning_effort": ready.reasoning_effort,
            }}),
        );
        result.insert("initialTurnsPage".into(), Value::Null);
        result.insert("turnsBackwardsCursor".into(), Value::Null);
        result.insert("itemsBackwardsCursor".into(), Value::Null);
        // Replay the current token usage so the client can show it.
        let usage = t.last_usage().or_else(|| {
            ready.last_usage.as_ref().map(|u| {
                (
                    u.turn_id.clone().unwrap_or_default(),
                    codex_ipc::app_server::objects::thread_token_usage_json(
                        &u.last,
                        &u.total,
                        u.model_context_window,
                    ),
                )
            })
        });
        let then = usage
            .map(|(turn_id, usage)| {
                (
                    "thread/tokenUsage/updated",
                    json!({"threadId": t.id, "turnId": turn_id, "tokenUsage": usage}),
                )
            })
            .into_iter()
            .collect();
        Ok((Value::Object(result), then))
    }

    fn thread_read(&self, params: &Value) -> Result<Value, RpcError> {
        let p: ThreadReadParams = methods::parse(params)?;
        let include_turns = p.include_turns.unwrap_or(false);
        let view = match self.thread(&p.thread_id) {
            Some(t) => self.loaded_view(&t, include_turns),
            None => {
                let (path, archived) = self
                    .catalog
                    .find(&p.thread_id)
                    .ok_or_else(|| not_loaded(&p.thread_id))?;
                self.catalog
                    .view(&path, archived, ThreadStatusView::NotLoaded, include_turns)
                    .ok_or_else(|| not_loaded(&p.thread_id))?
            }
        };
        // Read state is not tracked here; the key is kept for clients that
        // expect it.
        Ok(json!({"thread": view.to_json(), "readState": null}))
    }

    fn thread_list(&self, params: &Value) -> Result<Value, RpcError> {
        let p: ThreadListParams = methods::parse(params)?;
        let archived = p.archived.unwrap_or(false);
        let sources: Vec<String> = match &p.source_kinds {
            Some(s) if !s.is_empty() => s.clone(),
            _ => INTERACTIVE_SOURCES.iter().map(|s| s.to_string()).collect(),
        };
        let cwds: Option<Vec<String>> = match &p.cwd {
            Some(Value::String(s)) => Some(vec![s.clone()]),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => None,
        };
        let providers = p.model_providers.clone().filter(|v| !v.is_empty());
        let mut all: Vec<ThreadSummary> = self
            .catalog
            .all()
            .into_iter()
            .filter(|s| s.archived == archived)
            .filter(|s| sources.contains(&s.source()))
            .filter(|s| {
                cwds.as_ref()
                    .is_none_or(|c| c.iter().any(|c| Path::new(c) == s.meta.cwd))
            })
            .filter(|s| {
                providers
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| Some(p) == s.meta.model_provider.as_ref()))
            })
            .filter(|s| {
                p.search_term
                    .as_ref()
                    .is_none_or(|t| s.preview.to_lowercase().contains(&t.to_lowercase()))
            })
            .collect();
        if p.sort_direction.as_deref() == Some("asc") {
            all.reverse();
        }
        let start = match &p.cursor {
            Some(c) => match all.iter().position(|s| cursor_of(s) == *c) {
                Some(i) => i + 1,
                None => {
                    return Err(RpcError::invalid_request(format!(
                        "Invalid request: unknown cursor `{c}`"
                    )))
                }
            },
            None => 0,
        };
        let limit = page_limit(p.limit);
        let names = self.catalog.names();
        let page: Vec<&ThreadSummary> = all.iter().skip(start).take(limit).collect();
        let next = (start + page.len() < all.len())
            .then(|| page.last().map(|s| cursor_of(s)))
            .flatten();
        let data: Vec<Value> = page
            .iter()
            .map(|s| {
                let status = self
                    .thread(&s.id)
                    .map(|t| t.status())
                    .unwrap_or(ThreadStatusView::NotLoaded);
                view_of(s, status, names.get(&s.id).cloned()).to_json()
            })
            .collect();
        Ok(json!({
            "data": data,
            "nextCursor": next,
            "backwardsCursor": null,
            "readStates": {},
        }))
    }

    fn thread_loaded_list(&self, params: &Value) -> Result<Value, RpcError> {
        let p: PageParams = methods::parse(params)?;
        let mut ids: Vec<String> = self.loaded_threads().iter().map(|t| t.id.clone()).collect();
        ids.sort();
        let start = match &p.cursor {
            Some(c) => ids
                .iter()
                .position(|i| i == c)
                .map(|i| i + 1)
                .unwrap_or(ids.len()),
            None => 0,
        };
        let limit = p.limit.map(|l| l as usize).unwrap_or(usize::MAX);
        let page: Vec<String> = ids.iter().skip(start).take(limit).cloned().collect();
        let next = (start + page.len() < ids.len())
            .then(|| page.last().cloned())
            .flatten();
        Ok(json!({"data": page, "nextCursor": next}))
    }

    async fn thread_archive(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<Value, RpcError> {
        let p: ThreadIdParams = methods::parse(params)?;
        if let Some(t) = self.thread(&p.thread_id) {
            if t.is_busy() {
                return Err(RpcError::invalid_request(format!(
                    "thread {} has a running turn; interrupt it before archiving",
                    p.thread_id
                )));
            }
            t.stop().await;
        }
        let (path, archived) = self
            .catalog
            .find(&p.thread_id)
            .ok_or_else(|| not_loaded(&p.thread_id))?;
        if !archived {
            let dir = self.catalog.archived_dir();
            std::fs::create_dir_all(&dir).map_err(|e| RpcError::internal(e.to_string()))?;
            let dest = dir.join(path.file_name().unwrap_or_default());
            std::fs::rename(&path, &dest)
                .map_err(|e| RpcError::internal(format!("cannot archive: {e}")))?;
            self.catalog.invalidate(&path);
        }
        conn.notify("thread/archived", json!({"threadId": p.thread_id}));
        Ok(json!({}))
    }

    fn thread_unarchive(&self, conn: &Arc<Conn>, params: &Value) -> Result<Value, RpcError> {
        let p: ThreadIdParams = methods::parse(params)?;
        let (path, archived) = self
            .catalog
            .find(&p.thread_id)
            .ok_or_else(|| not_loaded(&p.thread_id))?;
        let path = if archived {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            // rollout-YYYY-MM-DDT..: back under sessions/YYYY/MM/DD.
            let date = name
                .strip_prefix("rollout-")
                .and_then(|r| r.get(0..10))
                .unwrap_or("");
            let parts: Vec<&str> = date.split('-').collect();
            let dir = if parts.len() == 3 {
                self.catalog
                    .sessions_dir()
                    .join(parts[0])
                    .join(parts[1])
                    .join(parts[2])
            } else {
                self.catalog.sessions_dir()
            };
            std::fs::create_dir_all(&dir).map_err(|e| RpcError::internal(e.to_string()))?;
            let dest = dir.join(&name);
            std::fs::rename(&path, &dest)
                .map_err(|e| RpcError::internal(format!("cannot unarchive: {e}")))?;
            self.catalog.invalidate(&path);
            dest
        } else {
            path
        };
        let view = self
            .catalog
            .view(&path, false, ThreadStatusView::NotLoaded, false)
            .ok_or_else(|| not_loaded(&p.thread_id))?;
        conn.notify("thread/unarchived", json!({"threadId": p.thread_id}));
        Ok(json!({"thread": view.to_json()}))
    }

    fn thread_name_set(&self, conn: &Arc<Conn>, params: &Value) -> Result<Value, RpcError> {
        let p: ThreadSetNameParams = methods::parse(params)?;
        let loaded = self.thread(&p.thread_id);
        if loaded.is_none() && self.catalog.find(&p.thread_id).is_none() {
            return Err(not_loaded(&p.thread_id));
        }
        self.catalog
            .set_name(&p.thread_id, &p.name)
            .map_err(|e| RpcError::internal(format!("cannot save the name: {e}")))?;
        let note = json!({"threadId": p.thread_id, "threadName": p.name});
        match loaded {
            Some(t) if t.subscriber_count() > 0 => {
                for c in self.subscribers_of(&t) {
                    c.notify("thread/name/updated", note.clone());
                }
                if !self.subscribers_of(&t).iter().any(|c| c.id == conn.id) {
                    conn.notify("thread/name/updated", note);
                }
            }
            _ => conn.notify("thread/name/updated", note),
        }
        Ok(json!({}))
    }

    fn subscribers_of(&self, t: &LoadedThread) -> Vec<Arc<Conn>> {
        self.conns_snapshot()
            .into_iter()
            .filter(|c| t.is_subscriber(c.id))
            .collect()
    }

    fn conns_snapshot(&self) -> Vec<Arc<Conn>> {
        self.conns
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    fn thread_unsubscribe(&self, conn: &Arc<Conn>, params: &Value) -> Result<Value, RpcError> {
        let p: ThreadIdParams = methods::parse(params)?;
        let status = match self.thread(&p.thread_id) {
            None => "notLoaded",
            Some(t) => {
                if t.unsubscribe(self, conn.id) {
                    "unsubscribed"
                } else {
                    "notSubscribed"
                }
            }
        };
        Ok(json!({"status": status}))
    }

    async fn turn_start(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: &RequestId,
        params: &Value,
    ) -> Reply {
        let p: TurnStartParams = match methods::parse(params) {
            Ok(p) => p,
            Err(e) => return Reply::Now(Err(e)),
        };
        let t = match self.live_thread(&p.thread_id).await {
            Some(t) => t,
            // Unloaded (idle, crashed, or from an earlier daemon): load it
            // again transparently.
            None => match self
                .load_from_disk(conn, &p.thread_id, ThreadSettings::default())
                .await
            {
                Ok(t) => t,
                Err(_) if self.catalog.find(&p.thread_id).is_none() => {
                    return Reply::Now(Err(not_loaded(&p.thread_id)))
                }
                Err(e) => return Reply::Now(Err(e)),
            },
        };
        let input: Vec<UserInput> = match p.input.iter().map(user_input_from_json).collect() {
            Ok(i) => i,
            Err(e) => {
                return Reply::Now(Err(RpcError::invalid_request(format!(
                    "Invalid request: {e}"
                ))))
            }
        };
        if input.is_empty() {
            return Reply::Now(Err(RpcError::invalid_request(
                "Invalid request: `input` is empty",
            )));
        }
        let overrides = match turn_overrides(&p) {
            Ok(o) => o,
            Err(e) => return Reply::Now(Err(e)),
        };
        // Backpressure before anything else: a worker over its hard limit or
        // with a full queue takes no new turn (its running turn goes on).
        if t.pressure() >= Pressure::Hard || t.worker.queued() >= self.limits().thread_queue {
            tracing::warn!(
                "thread {}: turn/start shed (pressure {}, {} queued)",
                t.id,
                t.pressure().as_str(),
                t.worker.queued()
            );
            return Reply::Now(Err(RpcError::overloaded()));
        }
        if t.is_busy() {
            return Reply::Now(Err(RpcError::invalid_request(format!(
                "thread {} already has a running turn",
                p.thread_id
            ))));
        }
        // Starting a turn subscribes the caller.
        t.subscribe(self, conn.id);
        t.set_preview_if_empty(&input);
        let turn_id = uuid::Uuid::now_v7().to_string();
        t.expect_turn(&turn_id, conn.id, id.clone());
        let msg = ToWorker::TurnStart {
            turn_id: turn_id.clone(),
            input,
            output_schema: p.output_schema,
            overrides,
        };
        match t.worker.try_send(msg) {
            Ok(()) => Reply::Deferred,
            Err(LinkError::Full) => {
                t.cancel_expected_turn(&turn_id);
                Reply::Now(Err(RpcError::overloaded()))
            }
            Err(e) => {
                t.cancel_expected_turn(&turn_id);
                Reply::Now(Err(RpcError::invalid_request(e.to_string())))
            }
        }
    }

    async fn turn_interrupt(&self, params: &Value) -> Result<Value, RpcError> {
        let p: TurnInterruptParams = methods::parse(params)?;
        let t = self
            .thread(&p.thread_id)
            .ok_or_else(|| not_loaded(&p.thread_id))?;
        match t.worker.try_send(ToWorker::TurnInterrupt {
            turn_id: Some(p.turn_id),
        }) {
            Err(LinkError::Full) => Err(RpcError::overloaded()),
            _ => Ok(json!({})),
        }
    }

    /// `model/list`: the built-in catalog for the OpenAI provider; for any
    /// other provider, what its `GET /models` lists (through the broker:
    /// cached, fetched once for concurrent askers).
    async fn model_list(&self, params: &Value) -> Result<Value, RpcError> {
        let p: ModelListParams = methods::parse(params)?;
        let include_hidden = p.include_hidden.unwrap_or(false);
        let (provider_id, provider, configured) = &self.default_model;
        let mut all: Vec<CatalogEntry> = if provider_id == codex_core::config::OPENAI_PROVIDER_ID {
            let mut v: Vec<&models::ModelInfo> = models::CATALOG
                .iter()
                .filter(|m| include_hidden || m.visible)
                .collect();
            v.sort_by_key(|m| m.priority);
            v.into_iter()
                .map(|m| CatalogEntry {
                    id: m.slug.to_string(),
                    display_name: m.display_name.to_string(),
                    description: m.description.to_string(),
                    hidden: !m.visible,
                    default_effort: m.default_reasoning_effort.to_string(),
                    efforts: m.reasoning_efforts.iter().map(|e| e.to_string()).collect(),
                })
                .collect()
        } else {
            let request = codex_core::auth::BrokerRequest::ListModels {
                provider: Box::new(provider.clone()),
            };
            let list = match self.broker.call(request, BROKER_CALL_DEADLINE).await {
                Ok(codex_core::auth::BrokerResponse::Models(l)) => l,
                Ok(_) => return Err(RpcError::internal("unexpected broker answer")),
                Err(e) => {
                    return Err(RpcError::internal(format!(
                        "cannot list the models of provider `{provider_id}`: {e}"
                    )))
                }
            };
            list.models
                .into_iter()
                .map(|m| CatalogEntry {
                    display_name: m.display_name.unwrap_or_else(|| m.id.clone()),
                    description: m
                        .description
                        .unwrap_or_else(|| format!("{} via {}", m.id, provider.name)),
                    id: m.id,
                    hidden: false,
                    default_effort: "medium".into(),
                    efforts: vec!["low".into(), "medium".into(), "high".into()],
                })
                .collect()
        };
        // The catalog's default for OpenAI; what threads will use otherwise.
        let default = if provider_id == codex_core::config::OPENAI_PROVIDER_ID {
            codex_core::config::DEFAULT_MODEL.to_string()
        } else {
            configured.clone()
        };
        if !all.iter().any(|m| m.id == default)
            && provider_id != codex_core::config::OPENAI_PROVIDER_ID
        {
            // The configured model is offered even when the server does not
            // list it (aliases, models pulled on demand).
            all.insert(
                0,
                CatalogEntry {
                    id: default.clone(),
                    display_name: default.clone(),
                    description: format!("{default} via {}", provider.name),
                    hidden: false,
                    default_effort: "medium".into(),
                    efforts: vec!["low".into(), "medium".into(), "high".into()],
                },
            );
        }
        let start = match &p.cursor {
            Some(c) => all
                .iter()
                .position(|m| &m.id == c)
                .map(|i| i + 1)
                .unwrap_or(all.len()),
            None => 0,
        };
        let limit = page_limit(p.limit);
        let page: Vec<&CatalogEntry> = all.iter().skip(start).take(limit).collect();
        let next = (start + page.len() < all.len())
            .then(|| page.last().map(|m| m.id.clone()))
            .flatten();
        let data: Vec<Value> = page
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "model": m.id,
                    "displayName": m.display_name,
                    "description": m.description,
                    "hidden": m.hidden,
                    "isDefault": m.id == default,
                    "defaultReasoningEffort": m.default_effort,
                    "supportedReasoningEfforts": m.efforts.iter().map(|e| json!({
                        "reasoningEffort": e,
                        "description": effort_description(e),
                    })).collect::<Vec<_>>(),
                    "inputModalities": ["text", "image"],
                    "supportsPersonality": false,
                    "additionalSpeedTiers": [],
                    "serviceTiers": [],
                    "defaultServiceTier": null,
                    "upgrade": null,
                    "upgradeInfo": null,
                    "availabilityNux": null,
                })
            })
            .collect();
        Ok(json!({"data": data, "nextCursor": next}))
    }

    fn config_read(&self, params: &Value) -> Result<Value, RpcError> {
        let p: ConfigReadParams = methods::parse(params)?;
        let path = self.codex_home().join(codex_core::config::CONFIG_FILE_NAME);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut table: toml_compat::Table = text.parse().unwrap_or_default();
        for o in &self.opts.config_overrides {
            o.apply(&mut table);
        }
        let config = serde_json::to_value(&table).unwrap_or_else(|_| json!({}));
        let version = format!("fnv1a:{:016x}", fnv1a(text.as_bytes()));
        let mut origins = Map::new();
        if let Value::Object(m) = &config {
            for key in m.keys() {
                let from_flag = self
                    .opts
                    .config_overrides
                    .iter()
                    .any(|o| o.path.first() == Some(key));
                let name = if from_flag {
                    json!({"type": "sessionFlags"})
                } else {
                    json!({"type": "user", "file": path, "profile": null})
                };
                origins.insert(key.clone(), json!({"name": name, "version": version}));
            }
        }
        let layers = p.include_layers.then(|| {
            json!([{
                "name": {"type": "user", "file": path, "profile": null},
                "version": version,
                "config": config,
                "disabledReason": null,
            }])
        });
        let _ = &p.cwd;
        Ok(json!({"config": config, "origins": origins, "layers": layers}))
    }
}

mod toml_compat {
    pub use codex_core::config::TomlTable as Table;
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn effort_description(effort: &str) -> &'static str {
    match effort {
        "none" | "minimal" => "Fastest answers with the least reasoning",
        "low" => "Fast answers with light reasoning",
        "medium" => "Balanced speed and depth",
        "high" => "Deeper reasoning for harder problems",
        _ => "Maximum reasoning depth for the hardest problems",
    }
}

fn page_limit(limit: Option<u64>) -> usize {
    limit
        .map(|l| l as usize)
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_PAGE)
        .min(MAX_PAGE)
}

fn cursor_of(s: &ThreadSummary) -> String {
    s.path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parse_approval(
    v: Option<&Value>,
) -> Result<Option<codex_core::config::AskForApproval>, RpcError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => approval_policy_from_json(v).map(Some).ok_or_else(|| {
            RpcError::invalid_request(format!("Invalid request: unsupported approvalPolicy {v}"))
        }),
    }
}

fn parse_sandbox_mode(v: Option<&str>) -> Result<Option<SandboxMode>, RpcError> {
    match v {
        None => Ok(None),
        Some(s) => s
            .parse::<SandboxMode>()
            .map(Some)
            .map_err(|e| RpcError::invalid_request(format!("Invalid request: {e}"))),
    }
}

fn turn_overrides(p: &TurnStartParams) -> Result<TurnOverrides, RpcError> {
    let bad = |what: &str, v: &Value| {
        RpcError::invalid_request(format!("Invalid request: unsupported {what} {v}"))
    };
    let sandbox_policy: Option<SandboxPolicy> = match &p.sandbox_policy {
        None | Some(Value::Null) => None,
        Some(v) => Some(sandbox_policy_from_json(v).ok_or_else(|| bad("sandboxPolicy", v))?),
    };
    let effort = match &p.effort {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| bad("effort", v))?),
    };
    let summary = match &p.summary {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| bad("summary", v))?),
    };
    Ok(TurnOverrides {
        cwd: p.cwd.as_ref().map(PathBuf::from),
        approval_policy: parse_approval(p.approval_policy.as_ref())?,
        sandbox_policy,
        model: p.model.clone(),
        effort,
        summary,
    })
}
