//! A thread (conversation): its config, its model client, its rollout file,
//! its history, and the turn service that runs its turns.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::approval::{ApprovalHandler, DeclineAll};
use crate::client::{model_service, resolve_credentials, ClientIdentity, ModelError, ModelService};
use crate::config::Config;
use crate::exec::{Sandbox, Unconfined};
use crate::protocol::{Event, ResponseItem};
use crate::rollout::{
    read_rollout, rollout_path, BaseInstructions, LoadedRollout, ReadError, RolloutItem,
    RolloutWriter, SessionMeta,
};
use crate::turn::sink::EventSink;
use crate::turn::{
    context, run_turn, ThreadShared, ThreadState, TurnOutcome, TurnRequest, TurnService,
};

/// Bound of the event channel between a thread and its front end.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot create session file {path}: {source}")]
    Rollout {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// How a thread is hosted.
pub struct ThreadOptions {
    pub identity: ClientIdentity,
    /// `source` recorded in the session file (`exec`, `cli`, `vscode`, ...).
    pub source: String,
    pub sandbox: Arc<dyn Sandbox>,
    pub approvals: Arc<dyn ApprovalHandler>,
    /// Do not write a session file.
    pub ephemeral: bool,
    /// Replaces the HTTP model stack (tests, embedders with their own client).
    pub model_service: Option<ModelService>,
    pub event_capacity: usize,
    /// Id of a new thread (default: a fresh UUIDv7).
    pub thread_id: Option<String>,
    /// How tool commands are grouped (see [`crate::exec::Isolation`]).
    pub command_isolation: crate::exec::Isolation,
    /// Where ChatGPT sign-in tokens come from (the broker); `None`: a
    /// broker in this process, over `$CODEX_HOME/auth.json`.
    pub token_source: Option<crate::auth::SharedTokenSource>,
}

impl ThreadOptions {
    pub fn new(originator: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            identity: ClientIdentity::new(originator),
            source: source.into(),
            sandbox: Arc::new(Unconfined),
            approvals: Arc::new(DeclineAll),
            ephemeral: false,
            model_service: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            thread_id: None,
            command_isolation: crate::exec::Isolation::OwnSession,
            token_source: None,
        }
    }
}

/// A live thread. Cheap to clone.
#[derive(Clone)]
pub struct Thread {
    shared: Arc<ThreadShared>,
    rollout_path: Option<PathBuf>,
}

impl std::fmt::Debug for Thread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Thread {
    /// Starts a new thread (and its session file).
    pub fn start(
        config: Config,
        opts: ThreadOptions,
    ) -> Result<(Thread, mpsc::Receiver<Event>), ThreadError> {
        let id = opts
            .thread_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let config = Arc::new(config);
        let base = context::base_instructions(&config);
        let model = build_model(&config, &opts)?;
        let (writer, path) = if opts.ephemeral {
            (None, None)
        } else {
            let path = rollout_path(&config.sessions_dir(), &id, chrono::Local::now());
            let meta = SessionMeta {
                id: id.clone(),
                session_id: Some(id.clone()),
                forked_from_id: None,
                timestamp: crate::rollout::timestamp_now(),
                cwd: config.cwd.clone(),
                originator: opts.identity.originator.clone(),
                cli_version: env!("CARGO_PKG_VERSION").to_string(),
                source: serde_json::Value::String(opts.source.clone()),
                model_provider: Some(config.model_provider_id.clone()),
                base_instructions: Some(BaseInstructions { text: base.clone() }),
                git: None,
            };
            // The file appears with the first turn.
            let w = RolloutWriter::deferred(&path, Some(RolloutItem::SessionMeta(meta)));
            (Some(w), Some(path))
        };
        Ok(Self::assemble(
            id,
            config,
            opts,
            model,
            base,
            writer,
            path,
            Vec::new(),
        ))
    }

    /// Resumes a thread from its session file. The history is rebuilt from
    /// the file; new turns append to it. A turn the file shows as unfinished
    /// (the process died mid-turn) is closed as interrupted.
    pub fn resume(
        config: Config,
        path: &Path,
        opts: ThreadOptions,
    ) -> Result<(Thread, mpsc::Receiver<Event>, LoadedRollout), ThreadError> {
        let loaded = read_rollout(path)?;
        let config = Arc::new(config);
        let base = loaded
            .meta
            .base_instructions
            .as_ref()
            .map(|b| b.text.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| context::base_instructions(&config));
        let model = build_model(&config, &opts)?;
        let writer = if opts.ephemeral {
            None
        } else {
            let mut w = RolloutWriter::open_append(path, loaded.line_count).map_err(|source| {
                ThreadError::Rollout {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            if let Some(turn_id) = &loaded.unfinished_turn_id {
                w.append(RolloutItem::EventMsg(serde_json::json!({
                    "type": "turn_aborted",
                    "turn_id": turn_id,
                    "reason": "interrupted",
                })))
                .and_then(|()| w.sync())
                .map_err(|source| ThreadError::Rollout {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            Some(w)
        };
        // A crash mid-tool leaves calls without outputs; the next request
        // needs one for each.
        let mut history = loaded.history.clone();
        let missing = crate::turn::missing_call_outputs(&history);
        history.extend(missing);
        let total_usage = loaded
            .last_token_usage
            .as_ref()
            .map(|u| u.total)
            .unwrap_or_default();
        let rollout_path = writer.is_some().then(|| path.to_path_buf());
        let (thread, rx) = Self::assemble(
            loaded.meta.id.clone(),
            config,
            opts,
            model,
            base,
            writer,
            rollout_path,
            history,
        );
        if let Ok(mut st) = thread.shared.state.try_lock() {
            st.total_usage = total_usage;
        }
        Ok((thread, rx, loaded))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        id: String,
        config: Arc<Config>,
        opts: ThreadOptions,
        model: ModelService,
        base: String,
        writer: Option<RolloutWriter>,
        path: Option<PathBuf>,
        history: Vec<ResponseItem>,
    ) -> (Thread, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(opts.event_capacity.max(1));
        let approval_timeout = config.approval_timeout;
        let sink = EventSink::new(tx, writer.map(|w| Arc::new(Mutex::new(w))), id.clone());
        let audit = Arc::new(crate::audit::AuditLog::new(
            &config.codex_home,
            &id,
            crate::audit::Redactor::from_env(std::env::vars()),
        ));
        let shared = Arc::new(ThreadShared {
            audit,
            id,
            config: Mutex::new(config),
            model: Mutex::new(model),
            sandbox: opts.sandbox,
            approvals: Arc::new(crate::approval::WithDeadline::new(
                opts.approvals,
                approval_timeout,
            )),
            sink,
            state: tokio::sync::Mutex::new(ThreadState {
                history,
                total_usage: Default::default(),
            }),
            session_approvals: Arc::new(Mutex::new(HashSet::new())),
            base_instructions: base,
            warned_unknown_model: std::sync::atomic::AtomicBool::new(false),
            command_isolation: opts.command_isolation,
        });
        (
            Thread {
                shared,
                rollout_path: path,
            },
            rx,
        )
    }

    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The thread's current settings.
    pub fn config(&self) -> Arc<Config> {
        self.shared.current_config()
    }

    /// The session file, unless the thread is ephemeral.
    pub fn rollout_path(&self) -> Option<&Path> {
        self.rollout_path.as_deref()
    }

    /// The turn loop of this thread as a tower service.
    pub fn turn_service(&self) -> TurnService {
        TurnService::new(self.shared.clone())
    }

    /// Runs one turn to its end.
    pub async fn run_turn(&self, req: TurnRequest) -> TurnOutcome {
        match self.turn_service().oneshot(req).await {
            Ok(o) => o,
            Err(never) => match never {},
        }
    }

    /// The unknown-model warning, the first time it is asked for (later
    /// turns, and the turn loop itself, then stay quiet about it).
    pub fn take_model_warning(&self) -> Option<String> {
        let model = self.config().model.clone();
        if crate::models::find_model(&model).is_some() {
            return None;
        }
        let already = self
            .shared
            .warned_unknown_model
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        (!already).then(|| crate::models::unknown_model_warning(&model))
    }

    /// A copy of the model-visible history.
    pub async fn history(&self) -> Vec<ResponseItem> {
        self.shared.state.lock().await.history.clone()
    }

    /// Runs a turn without going through the service (same behaviour).
    pub async fn run_turn_direct(&self, req: TurnRequest) -> TurnOutcome {
        run_turn(self.shared.clone(), req).await
    }
}

fn build_model(config: &Config, opts: &ThreadOptions) -> Result<ModelService, ThreadError> {
    if let Some(m) = &opts.model_service {
        return Ok(m.clone());
    }
    let creds = resolve_credentials(
        &config.model_provider,
        &config.codex_home,
        opts.token_source.clone(),
        config.cli_auth_credentials_store,
    )?;
    // A ChatGPT sign-in talks to the ChatGPT backend, not the API, when the
    // built-in OpenAI provider is used as is (upstream's behaviour).
    let mut provider = config.model_provider.clone();
    let default_openai = config.model_provider_id == crate::config::OPENAI_PROVIDER_ID
        && provider
            .base_url
            .as_deref()
            .is_none_or(|u| u == crate::config::DEFAULT_OPENAI_BASE_URL);
    if default_openai && matches!(creds, crate::client::Credentials::Managed(_)) {
        provider.base_url = Some(format!(
            "{}/codex",
            config.chatgpt_base_url.trim_end_matches('/')
        ));
    }
    Ok(model_service(&provider, creds, opts.identity.clone())?)
}
