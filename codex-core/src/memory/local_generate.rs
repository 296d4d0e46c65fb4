//! The local lane as a [`Generator`]: one generation model (e.g. SmolLM2 as
//! GGUF) on a [`codex_local::LocalLane`] — one instance per codex-memory,
//! one inference thread, a bounded queue shed at once.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use codex_local::{ChatMessage, GenerateRequest, LaneOptions, LoadOptions, LocalError, LocalLane};

use super::generate::{GenerateFuture, Generator, LocalGenerate, LocalGenerated};
use super::service::MemoryServiceError;

/// How much longer than its deadline a caller waits for the lane to say so
/// (the lane checks the deadline between tokens; this only bounds a wait
/// on a lane that stopped answering).
const ANSWER_GRACE: Duration = Duration::from_secs(2);

pub struct LaneGenerator {
    lane: LocalLane,
}

impl std::fmt::Debug for LaneGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneGenerator")
            .field("model", &self.lane.model_path())
            .finish()
    }
}

impl LaneGenerator {
    /// Loads `model` for generation with the default context (the model's
    /// trained size, at most 4096 tokens). Errors name the file and the
    /// reason, including a build without the `local-llm` feature.
    pub fn load(model: &Path) -> Result<Self, LocalError> {
        Self::load_with(model, LoadOptions::default())
    }

    pub fn load_with(model: &Path, load: LoadOptions) -> Result<Self, LocalError> {
        let load = LoadOptions {
            embeddings: false,
            ..load
        };
        Ok(Self::with_lane(LocalLane::start(
            model,
            load,
            LaneOptions::default(),
        )?))
    }

    pub fn with_lane(lane: LocalLane) -> Self {
        Self { lane }
    }

    pub fn model_path(&self) -> &Path {
        self.lane.model_path()
    }

    /// The lane's chat request for `request`.
    pub fn request(request: LocalGenerate) -> GenerateRequest {
        let LocalGenerate {
            system,
            user,
            max_tokens,
            grammar,
            ..
        } = request;
        let mut messages = Vec::with_capacity(2);
        if !system.trim().is_empty() {
            messages.push(ChatMessage::new("system", system));
        }
        messages.push(ChatMessage::new("user", user));
        GenerateRequest {
            grammar,
            ..GenerateRequest::chat(messages, max_tokens.max(1))
        }
    }
}

/// What a caller of the memory service is told about a lane failure.
pub fn service_error(e: LocalError) -> MemoryServiceError {
    match e {
        LocalError::Overloaded { .. } => MemoryServiceError::Overloaded,
        LocalError::DeadlineExceeded(d) => MemoryServiceError::Timeout(d.as_millis() as u64),
        LocalError::LaneStopped => MemoryServiceError::Unavailable(e.to_string()),
        LocalError::FeatureDisabled => MemoryServiceError::NoModel(e.to_string()),
        other => MemoryServiceError::Failed(other.to_string()),
    }
}

impl Generator for LaneGenerator {
    fn generate(&self, request: LocalGenerate, deadline: Duration) -> GenerateFuture {
        // Queued now (or shed now); dropping the future cancels the job.
        let pending = self.lane.generate(Self::request(request), deadline, |_| {
            ControlFlow::Continue(())
        });
        Box::pin(async move {
            let pending = pending.map_err(service_error)?;
            match tokio::time::timeout(deadline + ANSWER_GRACE, pending).await {
                Ok(Ok(g)) => Ok(LocalGenerated {
                    text: g.text,
                    output_tokens: g.output_tokens,
                }),
                Ok(Err(e)) => Err(service_error(e)),
                Err(_) => Err(MemoryServiceError::Timeout(deadline.as_millis() as u64)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GeneratePurpose;

    #[test]
    fn system_and_user_become_chat_messages_with_the_grammar() {
        let r = LaneGenerator::request(LocalGenerate {
            purpose: GeneratePurpose::Extract,
            system: "be brief".into(),
            user: "hi".into(),
            max_tokens: 9,
            grammar: Some("root ::= \"x\"".into()),
        });
        assert_eq!(
            r.messages,
            vec![
                ChatMessage::new("system", "be brief"),
                ChatMessage::new("user", "hi")
            ]
        );
        assert_eq!(r.max_tokens, 9);
        assert_eq!(r.grammar.as_deref(), Some("root ::= \"x\""));
        let r = LaneGenerator::request(LocalGenerate {
            purpose: GeneratePurpose::Shape,
            system: " ".into(),
            user: "u".into(),
            max_tokens: 0,
            grammar: None,
        });
        assert_eq!(r.messages, vec![ChatMessage::new("user", "u")]);
        assert_eq!(r.max_tokens, 1);
    }

    #[test]
    fn lane_errors_map_to_service_errors() {
        assert_eq!(
            service_error(LocalError::Overloaded { capacity: 1 }),
            MemoryServiceError::Overloaded
        );
        assert_eq!(
            service_error(LocalError::DeadlineExceeded(Duration::from_millis(7))),
            MemoryServiceError::Timeout(7)
        );
        let e = service_error(LocalError::FeatureDisabled);
        assert!(
            matches!(&e, MemoryServiceError::NoModel(m) if m.contains("local-llm")),
            "{e}"
        );
    }

    #[cfg(not(feature = "local-llm"))]
    #[test]
    fn without_the_feature_load_says_so() {
        let e = LaneGenerator::load(Path::new("/nonexistent/m.gguf")).unwrap_err();
        assert!(matches!(e, LocalError::FeatureDisabled), "{e}");
    }
}
