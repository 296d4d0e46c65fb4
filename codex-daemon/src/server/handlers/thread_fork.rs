//! `thread/fork`: a new thread whose history is a copy of another's (all of
//! it, through `lastTurnId`, or before `beforeTurnId`). The supervisor
//! writes the fork's session file once, before any worker exists for it
//! (`codex_core::rollout::write_fork`: upstream's shape, `forked_from_id` in
//! its `session_meta`); then a worker resumes it like any thread, so its
//! next turn sends the copied history to the model. An ephemeral fork's
//! file is a temporary one, removed once its worker has read it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codex_core::rollout::{
    new_rollout_path, thread_id_from_file_name, write_fork, RecordedTurnStatus, SessionMeta,
};
use codex_ipc::app_server::history::{ThreadForkParams, ThreadForkResponse};
use codex_ipc::app_server::methods;
use codex_ipc::app_server::notifications::{ServerNotification, ThreadStartedNotification};
use codex_ipc::jsonrpc::RpcError;

use super::load::ThreadSettings;
use super::now_s;
use crate::server::catalog::{turn_views, RecordedHistory, ThreadSummary};
use crate::server::conn::Conn;
use crate::server::thread::ThreadMeta;
use crate::server::Server;

/// Where ephemeral forks' files live until their worker has read them.
const FORK_TMP_SUBDIR: &str = "tmp";

/// Refuses a param asking for a feature this server does not have.
fn refuse_unsupported(p: &ThreadForkParams) -> Result<(), RpcError> {
    let set = [
        ("attachToSource", p.attach_to_source),
        ("experimentalPredictionMode", p.experimental_prediction_mode),
        ("deferGoalContinuation", p.defer_goal_continuation),
        ("permissions", p.permissions.is_some()),
    ];
    match set.iter().find(|(_, on)| *on) {
        Some((name, _)) => Err(RpcError::invalid_request(format!(
            "Invalid request: thread/fork `{name}` is not supported by this server"
        ))),
        None => Ok(()),
    }
}

/// The rollout ordinal to cut the source at (`None`: copy it all).
fn fork_point(
    p: &ThreadForkParams,
    history: &RecordedHistory,
    source_id: &str,
) -> Result<Option<u64>, RpcError> {
    let find = |id: &str| {
        history
            .turns
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| {
                RpcError::invalid_request(format!("turn {id} not found in thread {source_id}"))
            })
    };
    match (p.last_turn_id.as_deref(), p.before_turn_id.as_deref()) {
        (Some(_), Some(_)) => Err(RpcError::invalid_request(
            "Invalid request: `lastTurnId` and `beforeTurnId` cannot be combined",
        )),
        (Some(last), None) => {
            let n = find(last)?;
            if history.turns[n].status == RecordedTurnStatus::InProgress {
                return Err(RpcError::invalid_request(format!(
                    "turn {last} is in progress; it cannot be the last turn of a fork"
                )));
            }
            Ok(history.turns.get(n + 1).map(|t| t.ordinal))
        }
        (None, Some(before)) => Ok(Some(history.turns[find(before)?].ordinal)),
        (None, None) => Ok(None),
    }
}

impl Server {
    /// The session file of the fork's source: `path` when given, else the
    /// file of `threadId` (loaded or not).
    fn fork_source(&self, p: &ThreadForkParams) -> Result<(String, PathBuf), RpcError> {
        if let Some(path) = p.path.as_deref().filter(|s| !s.is_empty()) {
            let path = PathBuf::from(path);
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(thread_id_from_file_name)
                .filter(|_| path.is_file())
                .ok_or_else(|| {
                    RpcError::invalid_request(format!(
                        "no rollout found at path {}",
                        path.display()
                    ))
                })?;
            return Ok((id, path));
        }
        let id = p.thread_id.as_str();
        let no_rollout =
            || RpcError::invalid_request(format!("no rollout found for thread id {id}"));
        let path = match self.thread(id) {
            Some(t) => t
                .ready()
                .rollout_path
                .clone()
                .filter(|p| p.exists())
                .ok_or_else(no_rollout)?,
            None => self.catalog.find(id).ok_or_else(no_rollout)?.0,
        };
        Ok((id.to_string(), path))
    }

    pub(super) async fn thread_fork(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        params: &serde_json::Value,
    ) -> Result<(ThreadForkResponse, Vec<ServerNotification>), RpcError> {
        let p: ThreadForkParams = methods::parse(params)?;
        refuse_unsupported(&p)?;
        let (source_id, source_path) = self.fork_source(&p)?;
        let history = self
            .catalog
            .history(&source_path)
            .map_err(|e| RpcError::invalid_request(e.to_string()))?;
        let cut = fork_point(&p, &history, &source_id)?;
        let summary = self.catalog.summary(&source_path, false);

        let new_id = uuid::Uuid::now_v7().to_string();
        let dest = if p.ephemeral {
            self.codex_home()
                .join(FORK_TMP_SUBDIR)
                .join(format!("rollout-fork-{new_id}.jsonl"))
        } else {
            new_rollout_path(&self.catalog.sessions_dir(), &new_id)
        };
        let mut init = self.thread_init(conn, p.cwd.as_deref(), p.config.as_ref())?;
        let meta = SessionMeta {
            id: new_id.clone(),
            session_id: Some(new_id.clone()),
            forked_from_id: Some(history.meta.id.clone()),
            timestamp: codex_core::rollout::timestamp_now(),
            originator: init.originator.clone(),
            cli_version: env!("CARGO_PKG_VERSION").into(),
            ..history.meta.clone()
        };
        if init.cwd.as_ref() == Some(&self.opts.cwd) && p.cwd.is_none() && meta.cwd.is_dir() {
            // Run where the source ran unless the client says otherwise.
            init.cwd = Some(meta.cwd.clone());
        }
        write_fork(&source_path, &dest, meta, cut)
            .map_err(|e| RpcError::internal(format!("cannot write the forked session: {e}")))?;
        let loaded = self.load_fork(conn, p, init, &dest, summary.as_ref()).await;
        let (t, exclude_turns, ephemeral) = match loaded {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_file(&dest);
                return Err(e);
            }
        };
        let mut thread = self.loaded_view(&t, !exclude_turns);
        if ephemeral {
            // The worker has read the copy; nothing lists an ephemeral thread.
            if !exclude_turns {
                if let Ok(h) = self.catalog.history(&dest) {
                    thread.turns = turn_views(&h.turns);
                }
            }
            let _ = std::fs::remove_file(&dest);
        }
        thread.forked_from_id = Some(source_id);
        thread.name = None;
        let started = ThreadStartedNotification {
            thread: thread.clone(),
        };
        let result = ThreadForkResponse {
            settings: self.session_settings(&t.ready(), thread),
        };
        Ok((result, vec![started.into()]))
    }

    /// Starts the fork's worker on its new session file.
    async fn load_fork(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        p: ThreadForkParams,
        mut init: codex_ipc::link::ThreadInit,
        dest: &Path,
        summary: Option<&ThreadSummary>,
    ) -> Result<(Arc<crate::server::thread::LoadedThread>, bool, bool), RpcError> {
        init.resume_path = Some(dest.to_path_buf());
        init.ephemeral = p.ephemeral;
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
            source: summary
                .map(ThreadSummary::source)
                .unwrap_or_else(|| "vscode".into()),
            originator: init.originator.clone(),
            created_at: now_s(),
            ephemeral: p.ephemeral,
        };
        let preview = summary.map(|s| s.preview.clone()).filter(|s| !s.is_empty());
        let t = self.load(init, meta, preview).await?;
        t.subscribe(self, conn.id);
        Ok((t, p.exclude_turns, p.ephemeral))
    }
}
