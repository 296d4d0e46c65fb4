//! The embedded model provider (`model_provider = "local"`, `codex exec
//! --local`): a GGUF model run in this process by llama.cpp through
//! `codex-local`, with no server and no network.
//!
//! [`LocalModelClient`] is a leaf service like `HttpModelClient` and yields
//! the same [`ModelEvent`]s a Chat Completions stream does (created, the
//! message item, text deltas, the completed message, usage), so the turn
//! loop, the rollout and every client see an ordinary turn.
//!
//! - One model per file per process, on one inference thread behind a
//!   small bounded queue (`codex_local::LocalLane`): generations run one at
//!   a time, off the async runtime. Under codexd the thread's worker
//!   (`codex-session`) hosts it; the memory lane's instance lives in
//!   codex-memory instead.
//! - The small model cannot call tools: none are offered (said in a log
//!   line), and it gets a short system prompt instead of the agent's base
//!   instructions, which describe those tools and would fill its context.
//! - Without the `local-llm` feature, building the service fails with the
//!   "rebuild with `--features local-llm`" error.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use codex_local::{ChatMessage, GenerateRequest, LaneOptions, LoadOptions, LocalError, LocalLane};
use futures_util::future::BoxFuture;
use tower::Service;

use super::{ModelError, ModelEvent, ModelRequest, ModelStream};
use crate::protocol::{ResponseItem, TokenUsage};

/// Most tokens one local answer may have.
pub const LOCAL_MAX_OUTPUT_TOKENS: u32 = 512;
/// Context size of the local model (its trained size when smaller).
pub const LOCAL_N_CTX: u32 = 4096;
/// Generations that may wait for the one running.
const LOCAL_QUEUE: usize = 4;

/// What the small model is told instead of the agent's base instructions.
pub const LOCAL_SYSTEM_PROMPT: &str = "You are Codex, a helpful assistant running locally on the user's computer. You cannot run commands or edit files. Answer briefly and directly.";

/// Whether this build can run the `local` provider.
pub const AVAILABLE: bool = codex_local::ENABLED;
/// Why it cannot, when it cannot.
pub const UNAVAILABLE: &str = "the local model provider needs llama.cpp: codex was built without the `local-llm` feature; rebuild with `--features local-llm`";

/// A clear error, before any thread starts, when the `local` provider
/// cannot run `path`: no feature, or no such file.
pub fn check_model(path: &Path) -> Result<(), ModelError> {
    LocalModelClient::new(path, Duration::from_secs(1)).map(|_| ())
}

/// The leaf service of the `local` provider.
#[derive(Clone)]
pub struct LocalModelClient {
    path: Arc<PathBuf>,
    deadline: Duration,
}

impl LocalModelClient {
    /// Checks the file exists (the model itself loads on the first
    /// request, off the async runtime).
    pub fn new(path: &Path, deadline: Duration) -> Result<Self, ModelError> {
        if !codex_local::ENABLED {
            return Err(local_error(LocalError::FeatureDisabled));
        }
        if !path.is_file() {
            return Err(local_error(LocalError::MissingFile {
                path: path.to_path_buf(),
            }));
        }
        Ok(Self {
            path: Arc::new(path.to_path_buf()),
            deadline,
        })
    }

    async fn send(self, req: ModelRequest) -> Result<ModelStream, ModelError> {
        let lane = lane_for(self.path.as_ref().clone()).await?;
        if !req.tools.is_empty() {
            tracing::info!(
                "the local model cannot call tools: {} tool(s) not offered",
                req.tools.len()
            );
        }
        let messages = chat_messages(&req.input);
        let response_id = format!("local_{}", uuid::Uuid::now_v7().simple());
        let message_id = format!("msg_{response_id}");
        let (tx, stream) = ModelStream::channel();
        let _ = tx
            .send(Ok(ModelEvent::Created {
                response_id: response_id.clone(),
            }))
            .await;
        let deltas = tx.clone();
        let delta_id = message_id.clone();
        let mut opened = false;
        // Runs on the inference thread: a blocking send is backpressure, and
        // a closed stream (the turn was interrupted) stops the generation.
        let on_token = move |text: &str| {
            if !opened {
                opened = true;
                let added = ModelEvent::OutputItemAdded(ResponseItem::Message {
                    id: Some(delta_id.clone()),
                    role: "assistant".into(),
                    content: vec![],
                });
                if deltas.blocking_send(Ok(added)).is_err() {
                    return ControlFlow::Break(());
                }
            }
            let delta = ModelEvent::OutputTextDelta {
                item_id: Some(delta_id.clone()),
                delta: text.to_string(),
            };
            match deltas.blocking_send(Ok(delta)) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        };
        let pending = lane
            .generate(
                GenerateRequest::chat(messages, LOCAL_MAX_OUTPUT_TOKENS),
                self.deadline,
                on_token,
            )
            .map_err(local_error)?;
        tokio::spawn(async move {
            match pending.await {
                Ok(g) => {
                    if !g.text.is_empty() {
                        let done = ResponseItem::assistant_text(Some(message_id), g.text);
                        let _ = tx.send(Ok(ModelEvent::OutputItemDone(done))).await;
                    }
                    let (input, output) = (g.prompt_tokens as u64, g.output_tokens as u64);
                    let usage = TokenUsage {
                        input_tokens: input,
                        output_tokens: output,
                        total_tokens: input + output,
                        ..TokenUsage::default()
                    };
                    let _ = tx
                        .send(Ok(ModelEvent::Completed {
                            response_id,
                            usage: Some(usage),
                        }))
                        .await;
                }
                Err(e) => {
                    let _ = tx.send(Err(local_error(e))).await;
                }
            }
        });
        Ok(stream)
    }
}

impl Service<ModelRequest> for LocalModelClient {
    type Response = ModelStream;
    type Error = ModelError;
    type Future = BoxFuture<'static, Result<ModelStream, ModelError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ModelError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ModelRequest) -> Self::Future {
        Box::pin(self.clone().send(req))
    }
}

/// The process's lane for `path`, loaded on first use.
async fn lane_for(path: PathBuf) -> Result<Arc<LocalLane>, ModelError> {
    static LANES: Mutex<Option<HashMap<PathBuf, Arc<LocalLane>>>> = Mutex::new(None);
    let cached = |lanes: &Mutex<Option<HashMap<PathBuf, Arc<LocalLane>>>>, path: &Path| {
        lanes
            .lock()
            .ok()
            .and_then(|l| l.as_ref().and_then(|m| m.get(path).cloned()))
    };
    if let Some(lane) = cached(&LANES, &path) {
        return Ok(lane);
    }
    let load = {
        let path = path.clone();
        move || {
            let started = std::time::Instant::now();
            let lane = LocalLane::start(
                &path,
                LoadOptions {
                    n_ctx: Some(LOCAL_N_CTX),
                    ..LoadOptions::default()
                },
                LaneOptions {
                    queue_capacity: LOCAL_QUEUE,
                },
            )?;
            tracing::info!(
                "local model {} loaded in {:?}",
                path.display(),
                started.elapsed()
            );
            Ok::<_, LocalError>(lane)
        }
    };
    let lane = tokio::task::spawn_blocking(load)
        .await
        .map_err(|e| ModelError::InvalidRequest(format!("loading the local model: {e}")))?
        .map_err(local_error)?;
    let lane = Arc::new(lane);
    let mut lanes = LANES
        .lock()
        .map_err(|_| ModelError::InvalidRequest("the local model registry is poisoned".into()))?;
    // Two first requests may both have loaded it: keep the first.
    Ok(lanes
        .get_or_insert_with(HashMap::new)
        .entry(path)
        .or_insert(lane)
        .clone())
}

/// A local failure as a model error: overload and deadline are worth a
/// retry; everything else (no model, bad file, no feature) is not.
fn local_error(e: LocalError) -> ModelError {
    match e {
        LocalError::ContextOverflow { .. } => ModelError::ContextWindowExceeded,
        LocalError::Overloaded { .. } | LocalError::DeadlineExceeded(_) => {
            ModelError::ResponseFailed {
                code: Some("local_model_busy".into()),
                message: e.to_string(),
                retry_after: None,
            }
        }
        other => ModelError::InvalidRequest(other.to_string()),
    }
}

/// Context the turn loop adds as user messages (not the user's words).
fn is_context(text: &str) -> bool {
    text.starts_with("<environment_context>")
        || text.starts_with("# AGENTS.md instructions")
        || text.starts_with("<user_instructions>")
}

/// The conversation as chat messages for the small model: its own system
/// prompt, then the user's and assistant's words. Developer messages (base
/// instructions, permissions), context messages and tool traffic are left
/// out: it cannot act on them.
pub fn chat_messages(input: &[ResponseItem]) -> Vec<ChatMessage> {
    let mut out = vec![ChatMessage::new("system", LOCAL_SYSTEM_PROMPT)];
    for item in input {
        let ResponseItem::Message { role, .. } = item else {
            continue;
        };
        let role = match role.as_str() {
            "user" => "user",
            "assistant" => "assistant",
            _ => continue,
        };
        let Some(text) = item.message_text() else {
            continue;
        };
        if text.trim().is_empty() || (role == "user" && is_context(&text)) {
            continue;
        }
        out.push(ChatMessage::new(role, text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_keeps_the_words_only() {
        let input = vec![
            ResponseItem::developer_text("long base instructions"),
            ResponseItem::user_text("<environment_context>\n</environment_context>"),
            ResponseItem::user_text("What is the capital of France?"),
            ResponseItem::assistant_text(None, "Paris."),
            ResponseItem::user_text("And of Italy?"),
        ];
        let msgs = chat_messages(&input);
        let roles: Vec<&str> = msgs.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(msgs[0].text, LOCAL_SYSTEM_PROMPT);
        assert_eq!(msgs[3].text, "And of Italy?");
    }

    #[test]
    fn a_missing_model_names_the_file_and_the_script() {
        let err = LocalModelClient::new(Path::new("/nonexistent/m.gguf"), Duration::from_secs(1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        if codex_local::ENABLED {
            assert!(err.contains("/nonexistent/m.gguf"), "{err}");
            assert!(err.contains("scripts/fetch-models"), "{err}");
        } else {
            assert!(err.contains("--features local-llm"), "{err}");
        }
    }
}
