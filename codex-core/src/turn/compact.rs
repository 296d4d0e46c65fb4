//! Compaction (`thread/compact/start`): the model summarises the history and
//! the history is replaced, as upstream's local compaction does. The turn
//! asks the model with the history plus upstream's summarisation prompt (no
//! tools), and the new history is the initial context, the most recent user
//! messages (up to ~20k tokens) and the summary behind upstream's prefix. The
//! rollout gets a `compacted` line with the summary (`message`) and the new
//! history (`replacement_history`), which a resume reads back. The turn
//! loop runs the same compaction inside a turn when a response's token count
//! reaches 90% of the context window or `model_auto_compact_token_limit`
//! (before the turn's first request, or between tool outputs and the next
//! request).

use futures_util::StreamExt;
use serde_json::json;
use tower::{Service, ServiceExt};

use super::{classify, context, ThreadState, TurnEnd, TurnRun, MAX_STREAM_RETRY_DELAY};
use crate::client::{ModelError, ModelEvent};
use crate::protocol::*;
use crate::rollout::RolloutItem;
use crate::util::backoff;

/// Upstream's `templates/compact/prompt.md`.
pub const SUMMARIZATION_PROMPT: &str = "You are performing a CONTEXT CHECKPOINT COMPACTION. Create a handoff summary for another LLM that will resume the task.\n\nInclude:\n- Goal / user objective\n- Current progress and key decisions made\n- Important context, constraints, or user preferences\n- What remains to be done (clear next steps)\n- Any critical data, examples, or references needed to continue\n\nBe concise, structured, and focused on helping the next LLM seamlessly continue the work.\n";

/// Upstream's `templates/compact/summary_prefix.md`: put before the summary
/// in the new history (and how a summary is recognised later).
pub const SUMMARY_PREFIX: &str = "Another language model started to solve this problem and produced a summary of its thinking process. You also have access to the state of the tools that were used by that language model. Use this to build on the work that has already been done and avoid duplicating work. Here is the summary produced by the other language model, use the information in this summary to  assist with your own analysis:";

/// How much of the recent user messages survives a compaction.
const USER_MESSAGE_MAX_TOKENS: usize = 20_000;
/// Upstream's rough estimate: four bytes a token.
const BYTES_PER_TOKEN: usize = 4;

/// Context messages the turn loop adds, which are not the user's words.
fn is_context(text: &str) -> bool {
    text.starts_with("<environment_context>")
        || text.starts_with("# AGENTS.md instructions")
        || text.starts_with("<user_instructions>")
}

/// The user's own messages in `history`, oldest first (context and earlier
/// summaries left out).
pub fn collect_user_messages(history: &[ResponseItem]) -> Vec<String> {
    history
        .iter()
        .filter_map(|item| match item {
            ResponseItem::Message { role, .. } if role == "user" => item.message_text(),
            _ => None,
        })
        .filter(|t| !is_context(t) && !t.starts_with(&format!("{SUMMARY_PREFIX}\n")))
        .collect()
}

/// The history after a compaction: `initial_context`, the most recent user
/// messages that fit in [`USER_MESSAGE_MAX_TOKENS`] (the oldest one kept is
/// cut at its end), then the summary.
pub fn build_compacted_history(
    mut history: Vec<ResponseItem>,
    user_messages: &[String],
    summary_text: &str,
) -> Vec<ResponseItem> {
    let mut budget = USER_MESSAGE_MAX_TOKENS * BYTES_PER_TOKEN;
    let mut kept = Vec::new();
    for message in user_messages.iter().rev() {
        if budget == 0 {
            break;
        }
        if message.len() <= budget {
            budget -= message.len();
            kept.push(message.clone());
        } else {
            let mut cut = budget;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            kept.push(format!("{}…[truncated]", &message[..cut]));
            break;
        }
    }
    history.extend(kept.into_iter().rev().map(ResponseItem::user_text));
    history.push(ResponseItem::user_text(if summary_text.is_empty() {
        "(no summary available)".to_string()
    } else {
        summary_text.to_string()
    }));
    history
}

/// The history a `compacted` rollout line stands for: its
/// `replacement_history`, or (upstream's older lines, `message` only) the
/// history rebuilt from what came before, as upstream rebuilds it.
pub fn history_after_compacted(
    payload: &serde_json::Value,
    before: &[ResponseItem],
) -> Option<Vec<ResponseItem>> {
    if let Some(h) = payload.get("replacement_history") {
        return serde_json::from_value(h.clone()).ok();
    }
    let message = payload.get("message")?.as_str()?;
    let initial: Vec<ResponseItem> = before
        .iter()
        .take_while(|i| match i {
            ResponseItem::Message { role, .. } if role == "user" => {
                i.message_text().is_some_and(|t| is_context(&t))
            }
            ResponseItem::Message { .. } => true,
            _ => false,
        })
        .cloned()
        .collect();
    Some(build_compacted_history(
        initial,
        &collect_user_messages(before),
        message,
    ))
}

struct Summary {
    text: String,
    usage: Option<TokenUsage>,
}

impl TurnRun<'_> {
    /// The body of a compaction turn.
    pub(super) async fn compact(&mut self, state: &mut ThreadState) -> Result<(), TurnEnd> {
        let sink = self.shared.sink.clone();
        let item = ThreadItem::ContextCompaction(ContextCompactionItem {
            id: uuid::Uuid::now_v7().to_string(),
        });
        sink.emit(Event::ItemStarted {
            turn_id: self.turn_id.clone(),
            item: item.clone(),
        })
        .await;
        let summary = self.summarise(&state.history).await?;
        let summary_text = format!("{SUMMARY_PREFIX}\n{}", summary.text);
        let new_history = build_compacted_history(
            context::initial_context(self.cfg, &self.shared.id),
            &collect_user_messages(&state.history),
            &summary_text,
        );
        sink.record(RolloutItem::Compacted(json!({
            "message": summary_text,
            "replacement_history": new_history,
        })));
        state.history = new_history;
        // The summary replaced them: told again at the next turn that has them.
        state.collaboration_instructions = None;
        self.report_usage(state, summary.usage).await;
        // The summary request's size says nothing about the new history.
        state.last_response_tokens = 0;
        sink.emit(Event::ItemCompleted {
            turn_id: self.turn_id.clone(),
            item,
        })
        .await;
        Ok(())
    }

    /// Asks the model for the summary, retrying a broken stream as turns do.
    async fn summarise(&mut self, history: &[ResponseItem]) -> Result<Summary, TurnEnd> {
        let mut request = self.build_request(history);
        request.tools.clear();
        request.output_schema = None;
        request
            .input
            .push(ResponseItem::user_text(SUMMARIZATION_PROMPT));
        let max = self.cfg.model_provider.stream_max_retries() as u32;
        let mut attempt = 0u32;
        loop {
            match self.drain(request.clone()).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable_stream() && attempt < max => {
                    attempt += 1;
                    let delay = e
                        .retry_after()
                        .map(|d| d.min(MAX_STREAM_RETRY_DELAY))
                        .unwrap_or_else(|| backoff(attempt));
                    tracing::info!("compaction stream failed ({e}); retry {attempt}/{max}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    return Err(TurnEnd::Failed(TurnError {
                        kind: classify(&e),
                        message: e.to_string(),
                    }))
                }
            }
        }
    }

    async fn drain(&mut self, request: crate::client::ModelRequest) -> Result<Summary, ModelError> {
        let mut stream = self.model.ready().await?.call(request).await?;
        let mut text = None;
        let mut streamed = String::new();
        while let Some(ev) = stream.next().await {
            match ev? {
                ModelEvent::OutputTextDelta { delta, .. } => streamed.push_str(&delta),
                ModelEvent::OutputItemDone(item @ ResponseItem::Message { .. }) => {
                    if matches!(&item, ResponseItem::Message { role, .. } if role == "assistant") {
                        text = item.message_text();
                    }
                }
                ModelEvent::Completed { usage, .. } => {
                    return Ok(Summary {
                        text: text.unwrap_or(streamed),
                        usage,
                    })
                }
                _ => {}
            }
        }
        Err(ModelError::Stream(
            "stream closed before response.completed".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacted_history_keeps_context_recent_user_messages_and_the_summary() {
        let context = vec![
            ResponseItem::developer_text("perms"),
            ResponseItem::user_text("<environment_context>\n</environment_context>"),
        ];
        let mut history = context.clone();
        history.push(ResponseItem::user_text("first"));
        history.push(ResponseItem::assistant_text(None, "answer"));
        history.push(ResponseItem::user_text(format!("{SUMMARY_PREFIX}\nold")));
        history.push(ResponseItem::user_text("second"));
        let users = collect_user_messages(&history);
        assert_eq!(users, ["first", "second"]);
        let new = build_compacted_history(context.clone(), &users, "S");
        let texts: Vec<String> = new.iter().filter_map(ResponseItem::message_text).collect();
        assert_eq!(texts[2..], ["first", "second", "S"]);

        // A message-only `compacted` line is rebuilt the same way.
        let rebuilt = history_after_compacted(&json!({"message": "S"}), &history).unwrap();
        let texts: Vec<String> = rebuilt
            .iter()
            .filter_map(ResponseItem::message_text)
            .collect();
        assert_eq!(texts[0], "perms");
        assert_eq!(texts[2..], ["first", "second", "S"]);
    }

    #[test]
    fn an_oversized_user_message_is_cut() {
        let big = "x".repeat(USER_MESSAGE_MAX_TOKENS * BYTES_PER_TOKEN + 10);
        let new = build_compacted_history(Vec::new(), &[big, "recent".into()], "S");
        assert_eq!(new.len(), 3);
        assert!(new[0].message_text().unwrap().ends_with("[truncated]"));
        assert_eq!(new[1].message_text().unwrap(), "recent");
    }
}
