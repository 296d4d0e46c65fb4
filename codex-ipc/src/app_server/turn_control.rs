//! `turn/steer` and `thread/compact/start`: their params and results.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `turn/steer`: input for the running turn, which must be `expectedTurnId`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnSteerParams {
    pub thread_id: String,
    pub expected_turn_id: String,
    pub input: Vec<Value>,
    /// Echoed in the user message item (`clientId`), as upstream does.
    #[serde(default)]
    pub client_user_message_id: Option<String>,
    /// Turn metadata for the Responses API; not served (warned about).
    #[serde(default)]
    pub responsesapi_client_metadata: Option<Value>,
    #[serde(default)]
    pub responsesapi_client_metadata_patch: Option<Value>,
    #[serde(default)]
    pub additional_context: Option<Value>,
}

/// `turn/steer` result: the turn that took the input.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnSteerResponse {
    pub turn_id: String,
}

/// `thread/compact/start`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadCompactStartParams {
    pub thread_id: String,
}

/// `thread/compact/start` result: `{}` (the compaction runs as a turn).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadCompactStartResponse {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steer_shapes_match_upstream() {
        let p: TurnSteerParams = serde_json::from_value(json!({
            "threadId": "th", "expectedTurnId": "t",
            "input": [{"type": "text", "text": "x"}]
        }))
        .unwrap();
        assert_eq!(p.expected_turn_id, "t");
        assert_eq!(
            serde_json::to_value(TurnSteerResponse {
                turn_id: "t".into()
            })
            .unwrap(),
            json!({"turnId": "t"})
        );
    }
}
