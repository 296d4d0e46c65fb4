//! `update_plan`: keeps the turn's to-do list and shows it to the user.

use serde::Deserialize;

use super::{ToolCall, ToolContext, ToolOutput};
use crate::protocol::{Event, PlanStep, StepStatus, ThreadItem, TodoListItem};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    explanation: Option<String>,
    plan: Vec<StepArg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepArg {
    step: String,
    status: StepStatus,
}

pub(super) async fn handle(ctx: &ToolContext, call: &ToolCall) -> ToolOutput {
    let args: Args = match serde_json::from_str(&call.arguments) {
        Ok(a) => a,
        Err(e) => return ToolOutput::error(format!("failed to parse function arguments: {e}")),
    };
    let steps: Vec<PlanStep> = args
        .plan
        .into_iter()
        .map(|s| PlanStep {
            step: s.step,
            status: s.status,
        })
        .collect();
    let (item, first) = {
        let Ok(mut plan) = ctx.plan.lock() else {
            return ToolOutput::error("plan state unavailable");
        };
        let first = plan.is_none();
        let id = plan
            .as_ref()
            .map(|p| p.id.clone())
            .unwrap_or_else(|| format!("plan_{}", call.call_id));
        let item = TodoListItem {
            id,
            explanation: args.explanation,
            steps,
        };
        *plan = Some(item.clone());
        (item, first)
    };
    let turn_id = ctx.turn_id.clone();
    let item = ThreadItem::TodoList(item);
    ctx.events
        .emit(if first {
            Event::ItemStarted { turn_id, item }
        } else {
            Event::ItemUpdated { turn_id, item }
        })
        .await;
    ToolOutput::ok("Plan updated")
}
