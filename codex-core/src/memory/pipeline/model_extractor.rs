//! Phase 1 over a model service: the remote lane's [`Extractor`]. One
//! streamed request per thread (upstream's instructions, the history as the
//! one user message, the strict output schema, low effort), answered by the
//! final assistant message's text.

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tower::ServiceExt;

use super::{ExtractionPrompt, Extractor, ModelError};
use crate::client::{ModelEvent, ModelRequest, ModelService, ReasoningParams};
use crate::config::{ReasoningEffort, ReasoningSummary};
use crate::protocol::ResponseItem;

/// Extracts with `model` through `service` (retry and idle-timeout layers
/// included; the pipeline bounds the whole call with its extraction timeout).
pub struct ModelExtractor {
    // A clone per call; the mutex only makes the holder `Sync`.
    service: std::sync::Mutex<ModelService>,
    model: String,
}

impl ModelExtractor {
    pub fn new(service: ModelService, model: impl Into<String>) -> Self {
        Self {
            service: std::sync::Mutex::new(service),
            model: model.into(),
        }
    }

    /// The request phase 1 sends for `prompt`.
    pub fn request(&self, prompt: &ExtractionPrompt) -> ModelRequest {
        let effort: Option<ReasoningEffort> =
            serde_json::from_value(serde_json::Value::from(prompt.reasoning_effort)).ok();
        ModelRequest {
            model: self.model.clone(),
            input: vec![
                ResponseItem::developer_text(prompt.instructions.clone()),
                ResponseItem::user_text(prompt.input.clone()),
            ],
            instructions: prompt.instructions.clone(),
            tools: Vec::new(),
            reasoning: Some(ReasoningParams {
                effort,
                summary: ReasoningSummary::None,
            }),
            verbosity: None,
            output_schema: Some(prompt.output_schema.clone()),
            thread_id: prompt.thread_id.clone(),
            turn_id: format!("memory-extraction-{}", prompt.thread_id),
        }
    }
}

impl Extractor for ModelExtractor {
    fn extract(&self, prompt: ExtractionPrompt) -> BoxFuture<'_, Result<String, ModelError>> {
        let request = self.request(&prompt);
        let service = self.service.lock().map(|s| s.clone()).map_err(|_| ());
        Box::pin(async move {
            let service = service.map_err(|_| ModelError::from("the model service is poisoned"))?;
            let mut stream = service.oneshot(request).await?;
            let mut deltas = String::new();
            let mut answer = None;
            while let Some(event) = stream.next().await {
                match event? {
                    ModelEvent::OutputTextDelta { delta, .. } => deltas.push_str(&delta),
                    ModelEvent::OutputItemDone(item) => {
                        if let ResponseItem::Message { role, .. } = &item {
                            if role == "assistant" {
                                answer = item.message_text();
                            }
                        }
                    }
                    ModelEvent::Completed { .. } => break,
                    _ => {}
                }
            }
            Ok(answer.unwrap_or(deltas))
        })
    }
}
