//! `thread/*` methods about one thread: start, resume, read, archive,
//! unarchive, name, unsubscribe (listings are in `thread_list.rs`).

use std::sync::Arc;

use codex_ipc::app_server::client_features::experimental_required;
use codex_ipc::app_server::dynamic_tools;
use codex_ipc::app_server::history::ThreadTurnsListResponse;
use codex_ipc::app_server::methods::{
    self, ThreadIdParams, ThreadReadParams, ThreadResumeParams, ThreadSetNameParams,
    ThreadStartParams,
};
use codex_ipc::app_server::notifications::{
    ServerNotification, ThreadArchivedNotification, ThreadNameUpdatedNotification,
    ThreadStartedNotification, ThreadTokenUsageUpdatedNotification, ThreadUnarchivedNotification,
};
use codex_ipc::app_server::objects::{ThreadStatusView, ThreadTokenUsage, ThreadView};
use codex_ipc::app_server::responses::{
    CollaborationMode, CollaborationModeKind, CollaborationSettings, ThreadArchiveResponse,
    ThreadReadResponse, ThreadResumeResponse, ThreadSessionSettings, ThreadSetNameResponse,
    ThreadStartResponse, ThreadUnarchiveResponse, ThreadUnsubscribeResponse,
    ThreadUnsubscribeStatus,
};
use codex_ipc::app_server::to_value;
use codex_ipc::jsonrpc::RpcError;
use codex_ipc::link::ThreadReady;
use serde_json::Value;

use super::load::ThreadSettings;
use super::thread_history::{backwards_cursors, Hydration};
use super::thread_params;
use super::{not_loaded, now_s};
use crate::server::conn::Conn;
use crate::server::send::ConnSend;
use crate::server::thread::{LoadedThread, ThreadMeta};
use crate::server::Server;

impl Server {
    /// What `thread/start` and `thread/resume` report about a thread.
    pub(super) fn session_settings(
        &self,
        ready: &ThreadReady,
        thread: ThreadView,
    ) -> ThreadSessionSettings {
        ThreadSessionSettings::new(
            thread,
            ready.model.clone(),
            ready.model_provider.clone(),
            ready.cwd.clone(),
            ready.approval_policy,
            ready.sandbox_policy.clone(),
            ready.reasoning_effort,
        )
    }

    /// The `Thread` object of a loaded thread.
    pub(super) fn loaded_view(&self, t: &LoadedThread, include_turns: bool) -> ThreadView {
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
            forked_from_id: None,
            history_mode: None,
            thread_source: None,
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

    pub(super) async fn thread_start(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<(ThreadStartResponse, Vec<ServerNotification>), RpcError> {
        let p: ThreadStartParams = methods::parse(params)?;
        let sandbox = thread_params::sandbox_of(p.sandbox, p.permissions.as_deref())?;
        let dynamic_tools = match &p.dynamic_tools {
            // Experimental upstream: the field is refused without the capability.
            Some(specs) if !specs.is_empty() && !conn.experimental_api() => {
                return Err(experimental_required("thread/start.dynamicTools"))
            }
            Some(specs) => dynamic_tools::flatten(specs)
                .map_err(|e| RpcError::invalid_request(format!("Invalid request: {e}")))?,
            None => Vec::new(),
        };
        let mut init = self.thread_init(conn, p.cwd.as_deref(), p.config.as_ref())?;
        init.thread_id = Some(uuid::Uuid::now_v7().to_string());
        init.ephemeral = p.ephemeral.unwrap_or(false);
        init.history_mode = p.history_mode.map(|m| m.as_str().to_string());
        init.thread_source = p.thread_source.clone();
        init.dynamic_tools = dynamic_tools;
        ThreadSettings {
            cwd: None,
            config: None,
            model: p.model,
            model_provider: p.model_provider,
            base_instructions: p.base_instructions,
            developer_instructions: p.developer_instructions,
            approval_policy: p.approval_policy,
            sandbox,
        }
        .apply(&mut init)?;
        let meta = ThreadMeta {
            source: init.source.clone(),
            originator: init.originator.clone(),
            created_at: now_s(),
            ephemeral: init.ephemeral,
        };
        let ephemeral = meta.ephemeral;
        let t = self.load(init, meta, None).await?;
        t.subscribe(self, conn.id);
        if !ephemeral {
            // Upstream: a pass at each thread start, not about that thread.
            self.memory_pipeline_trigger(
                crate::server::memory_pipeline::PassTrigger::ThreadStart,
                vec![t.id.clone()],
            );
        }
        let mut thread = self.loaded_view(&t, false);
        // The session file that records it appears with the first turn.
        thread.history_mode = thread.history_mode.or(p.history_mode);
        thread.thread_source = thread.thread_source.or(p.thread_source);
        let started = ThreadStartedNotification {
            thread: thread.clone(),
        };
        let mut result = ThreadStartResponse {
            settings: self.session_settings(&t.ready(), thread),
        };
        result.settings.active_permission_profile = thread_params::active_profile(&p.permissions);
        // The response first, then `thread/started`, then what was ignored.
        let mut then: Vec<ServerNotification> = vec![started.into()];
        then.extend(thread_params::unserved_warning(
            "thread/start",
            &t.id,
            &p.rest,
            &ThreadStartParams::defaults(),
        ));
        Ok((result, then))
    }

    pub(super) async fn thread_resume(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<(ThreadResumeResponse, Vec<ServerNotification>), RpcError> {
        let p: ThreadResumeParams = methods::parse(params)?;
        let include_turns = !p.exclude_turns.unwrap_or(false);
        let sandbox = thread_params::sandbox_of(p.sandbox, p.permissions.as_deref())?;
        let file = self.catalog.find(&p.thread_id).map(|(path, _)| path);
        thread_params::check_resume_source(p.path.as_deref(), p.history.as_ref(), file.as_deref())?;
        let settings = ThreadSettings {
            cwd: p.cwd,
            config: p.config,
            model: p.model,
            model_provider: p.model_provider,
            base_instructions: p.base_instructions,
            developer_instructions: p.developer_instructions,
            approval_policy: p.approval_policy,
            sandbox,
        };
        let mut kept = None;
        let t = match self.live_thread(&p.thread_id).await {
            Some(t) => {
                let mut given = settings.given();
                if let Some(profile) = &p.permissions {
                    // The mode came from the profile: name what was sent.
                    given.remove("sandbox");
                    given.insert("permissions".into(), Value::from(profile.clone()));
                }
                kept = Some(given);
                t
            }
            None => self.load_from_disk(conn, &p.thread_id, settings).await?,
        };
        t.subscribe(self, conn.id);
        let ready = t.ready();
        let thread = self.loaded_view(&t, include_turns);
        // Paged history: cursors anchored at the newest turn and item, and a
        // first page when asked for. A thread without a file has neither.
        let history = self.recorded_history(&t.id, "thread/resume").ok();
        let (turns_backwards_cursor, items_backwards_cursor) = history
            .as_ref()
            .map(|h| backwards_cursors(&t.id, h))
            .unwrap_or_default();
        let initial_turns_page = match (&p.initial_turns_page, &history) {
            (Some(ip), Some(h)) => Some(to_value(&self.turns_page(
                &t.id,
                h,
                None,
                ip.limit,
                ip.sort_direction,
                ip.items_view,
            )?)?),
            (Some(_), None) => Some(to_value(&ThreadTurnsListResponse {
                data: vec![],
                next_cursor: None,
                backwards_cursor: None,
            })?),
            (None, _) => None,
        };
        if include_turns {
            self.hydration_notice(conn, &thread, Hydration::Resume);
        }
        let mut settings = self.session_settings(&ready, thread);
        if kept.is_none() {
            settings.active_permission_profile = thread_params::active_profile(&p.permissions);
        }
        let result = ThreadResumeResponse {
            settings,
            collaboration_mode: CollaborationMode {
                mode: CollaborationModeKind::Default,
                settings: CollaborationSettings {
                    model: ready.model.clone(),
                    developer_instructions: ready.developer_instructions.clone(),
                    reasoning_effort: ready.reasoning_effort,
                },
            },
            initial_turns_page,
            turns_backwards_cursor,
            items_backwards_cursor,
        };
        // Replay the current token usage so the client can show it.
        let usage = t.last_usage().or_else(|| {
            ready.last_usage.as_ref().map(|u| {
                (
                    u.turn_id.clone().unwrap_or_default(),
                    ThreadTokenUsage::new(&u.last, &u.total, u.model_context_window),
                )
            })
        });
        let mut then: Vec<ServerNotification> = usage
            .map(|(turn_id, token_usage)| {
                ThreadTokenUsageUpdatedNotification {
                    thread_id: t.id.clone(),
                    turn_id,
                    token_usage,
                }
                .into()
            })
            .into_iter()
            .collect();
        then.extend(thread_params::unserved_warning(
            "thread/resume",
            &t.id,
            &p.rest,
            &ThreadStartParams::defaults(),
        ));
        // A running thread keeps its settings: say which were not applied.
        then.extend(kept.and_then(|k| thread_params::kept_warning(&t.id, &k)));
        Ok((result, then))
    }

    pub(super) fn thread_read(
        &self,
        conn: &Conn,
        params: &Value,
    ) -> Result<ThreadReadResponse, RpcError> {
        let p: ThreadReadParams = methods::parse(params)?;
        let include_turns = p.include_turns.unwrap_or(false);
        let thread = match self.thread(&p.thread_id) {
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
        if include_turns {
            self.hydration_notice(conn, &thread, Hydration::Read);
        }
        let read_state = self
            .read_states
            .get(&thread.id)
            .map(|s| codex_ipc::app_server::to_value(&s))
            .transpose()?;
        Ok(ThreadReadResponse { thread, read_state })
    }

    pub(super) async fn thread_archive(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<ThreadArchiveResponse, RpcError> {
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
        conn.send_notification(
            &ThreadArchivedNotification {
                thread_id: p.thread_id,
            }
            .into(),
        );
        Ok(ThreadArchiveResponse {})
    }

    pub(super) fn thread_unarchive(
        &self,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<ThreadUnarchiveResponse, RpcError> {
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
        let thread = self
            .catalog
            .view(&path, false, ThreadStatusView::NotLoaded, false)
            .ok_or_else(|| not_loaded(&p.thread_id))?;
        conn.send_notification(
            &ThreadUnarchivedNotification {
                thread_id: p.thread_id,
            }
            .into(),
        );
        Ok(ThreadUnarchiveResponse { thread })
    }

    pub(super) fn thread_name_set(
        &self,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<ThreadSetNameResponse, RpcError> {
        let p: ThreadSetNameParams = methods::parse(params)?;
        let loaded = self.thread(&p.thread_id);
        if loaded.is_none() && self.catalog.find(&p.thread_id).is_none() {
            return Err(not_loaded(&p.thread_id));
        }
        self.catalog
            .set_name(&p.thread_id, &p.name)
            .map_err(|e| RpcError::internal(format!("cannot save the name: {e}")))?;
        let note: ServerNotification = ThreadNameUpdatedNotification {
            thread_id: p.thread_id,
            thread_name: p.name,
        }
        .into();
        match loaded {
            Some(t) if t.subscriber_count() > 0 => {
                let subscribers = self.subscribers_of(&t);
                for c in &subscribers {
                    c.send_notification(&note);
                }
                if !subscribers.iter().any(|c| c.id == conn.id) {
                    conn.send_notification(&note);
                }
            }
            _ => conn.send_notification(&note),
        }
        Ok(ThreadSetNameResponse {})
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

    pub(super) fn thread_unsubscribe(
        &self,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<ThreadUnsubscribeResponse, RpcError> {
        let p: ThreadIdParams = methods::parse(params)?;
        let status = match self.thread(&p.thread_id) {
            None => ThreadUnsubscribeStatus::NotLoaded,
            Some(t) => {
                if t.unsubscribe(self, conn.id) {
                    ThreadUnsubscribeStatus::Unsubscribed
                } else {
                    ThreadUnsubscribeStatus::NotSubscribed
                }
            }
        };
        Ok(ThreadUnsubscribeResponse { status })
    }
}
