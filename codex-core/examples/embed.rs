//! Embedding the runtime: a thread with a custom tool (`lookup_weather`) and
//! a custom model service (a tiny in-process "model" that first asks for the
//! tool and then answers with what it returned). No network, no session
//! file; the configuration lives in a temporary `CODEX_HOME`.
//!
//! ```text
//! cargo run -p codex-core --example embed
//! ```
//!
//! The test suite runs [`run`] too (`tests/embed_example.rs`).

use std::convert::Infallible;

use codex_core::client::{ModelError, ModelEvent, ModelRequest, ModelStream};
use codex_core::config::{Config, ConfigOverrides, LoadOptions};
use codex_core::protocol::{Event, ResponseItem, ThreadItem};
use codex_core::tools::{ToolInvocation, ToolOutput, ToolSpec};
use codex_core::{Thread, TurnRequest, TurnStatus};
use serde_json::{json, Value};

/// The custom tool: reads `{"city": ...}` and reports the weather there.
async fn lookup_weather(inv: ToolInvocation) -> Result<ToolOutput, Infallible> {
    let args: Value = serde_json::from_str(&inv.call.arguments).unwrap_or_default();
    Ok(match args["city"].as_str() {
        Some(city) => ToolOutput::ok(format!("Sunny and 21 °C in {city}")),
        None => ToolOutput::error("`city` is required"),
    })
}

/// The custom model: without a tool result in the conversation it calls
/// `lookup_weather` (if it was offered); with one, it answers with it.
async fn tiny_model(req: ModelRequest) -> Result<ModelStream, ModelError> {
    let tool_result = req.input.iter().rev().find_map(|item| match item {
        ResponseItem::FunctionCallOutput { output, .. } => Some(output.content.clone()),
        _ => None,
    });
    let offered = req.tools.iter().any(|t| t["name"] == "lookup_weather");
    let item = match (tool_result, offered) {
        (Some(weather), _) => {
            ResponseItem::assistant_text(Some("msg_1".into()), format!("The forecast: {weather}."))
        }
        (None, true) => ResponseItem::FunctionCall {
            id: None,
            name: "lookup_weather".into(),
            namespace: None,
            arguments: json!({"city": "Paris"}).to_string(),
            call_id: "call_1".into(),
        },
        (None, false) => {
            ResponseItem::assistant_text(Some("msg_1".into()), "I have no weather tool.")
        }
    };
    Ok(ModelStream::from_events(vec![
        Ok(ModelEvent::OutputItemDone(item)),
        Ok(ModelEvent::Completed {
            response_id: format!("resp_{}", req.turn_id),
            usage: None,
        }),
    ]))
}

/// Builds the thread, runs one turn, prints what happened and returns the
/// final answer.
pub async fn run() -> Result<String, Box<dyn std::error::Error>> {
    let home = tempfile::tempdir()?;
    let config = Config::load(LoadOptions {
        codex_home: Some(home.path().to_path_buf()),
        cli_overrides: vec![],
        overrides: ConfigOverrides {
            cwd: Some(home.path().to_path_buf()),
            ..Default::default()
        },
    })?;
    let weather = ToolSpec::function(
        "lookup_weather",
        "Current weather in a city.",
        json!({
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        }),
    );
    let (thread, mut events) = Thread::builder(config)
        .model_service(tower::service_fn(tiny_model))
        .tool(weather, tower::service_fn(lookup_weather))
        .ephemeral(true)
        .start()?;
    let outcome = thread
        .run_turn(TurnRequest::text("What is the weather in Paris?"))
        .await?;
    while let Ok(event) = events.try_recv() {
        if let Event::ItemCompleted {
            item: ThreadItem::AgentMessage(m),
            ..
        } = event
        {
            println!("agent: {}", m.text);
        }
    }
    if let TurnStatus::Failed { error } = &outcome.status {
        return Err(error.message.clone().into());
    }
    let answer = outcome.last_agent_message.unwrap_or_default();
    println!("turn {:?}: {answer}", outcome.status);
    Ok(answer)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await?;
    Ok(())
}
