//! Turn-side methods over a real `codex app-server` with real workers and
//! the in-repo mock model: `turn/steer`, `thread/compact/start`,
//! `outputSchema`, and the notification order around approvals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::app_server::StdioServer;
use common::schema::{unsolicited, validate};
use serde_json::{json, Value};

fn user_texts(req: &codex_test_support::RecordedRequest) -> Vec<String> {
    req.input()
        .iter()
        .filter(|i| i["role"] == "user")
        .filter_map(|i| i["content"][0]["text"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn steer_mid_stream_abandons_the_partial_answer_and_asks_again() {
    let mock = MockModelServer::start(vec![
        sse::stall_after_partial("Part one of the answer "),
        sse::message("STEERED reply."),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    // Only the steer (or the turn deadline) can end the first stream.
    home.set_stream_idle_timeout_ms(600_000);
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("steerer").await;
    let tid = c.start_thread(json!({})).await;
    let turn = c.start_turn(&tid, "Write something.").await;
    c.notification("item/agentMessage/delta").await;
    let r = c
        .call(
            "turn/steer",
            json!({"threadId": tid, "expectedTurnId": turn, "clientUserMessageId": "steer-1",
                   "input": [{"type": "text", "text": "Also say STEERED."}]}),
        )
        .await;
    assert_eq!(r, json!({"turnId": turn}));
    let steered = c
        .wait_for("steer user message", |v| {
            v["method"] == "item/completed"
                && v["params"]["item"]["content"][0]["text"] == "Also say STEERED."
        })
        .await;
    assert_eq!(steered["params"]["turnId"], turn.as_str());
    assert_eq!(steered["params"]["item"]["type"], "userMessage");
    assert_eq!(steered["params"]["item"]["clientId"], "steer-1");
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["id"], turn.as_str());
    assert_eq!(done["params"]["turn"]["status"], "completed");
    // The partial answer never completed: only the steered reply did.
    let completed_msgs: Vec<Value> = c
        .seen_method("item/completed")
        .into_iter()
        .filter(|v| v["params"]["item"]["type"] == "agentMessage")
        .collect();
    assert_eq!(completed_msgs.len(), 1, "{completed_msgs:#?}");
    assert_eq!(
        completed_msgs[0]["params"]["item"]["text"],
        "STEERED reply."
    );

    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(user_texts(&reqs[0]).last().unwrap(), "Write something.");
    let second = user_texts(&reqs[1]);
    assert_eq!(
        second[second.len() - 2..],
        ["Write something.", "Also say STEERED."]
    );
    assert!(
        !reqs[1].input().iter().any(|i| i["role"] == "assistant"),
        "the abandoned partial answer is not sent back"
    );

    let read = c
        .call(
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
    let items: Vec<&str> = read["thread"]["turns"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["userMessage", "userMessage", "agentMessage"]);
    let mut messages = unsolicited(&c.seen);
    messages.push((Some("turn/steer".into()), json!({"id": 1, "result": r})));
    validate(&messages);
}

#[tokio::test(flavor = "multi_thread")]
async fn steer_errors_name_the_turn_or_its_absence() {
    let mock = MockModelServer::start(vec![sse::slow_message(
        "resp_1",
        &["Part one ", "of the ", "answer."],
        std::time::Duration::from_millis(300),
    )])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("steerer").await;
    let tid = c.start_thread(json!({})).await;
    let steer = |expected: &str| {
        json!({"threadId": tid, "expectedTurnId": expected,
               "input": [{"type": "text", "text": "late"}]})
    };
    let id = c.request("turn/steer", steer("nope")).await;
    let r = c.response(id).await;
    assert_eq!(r["error"]["code"], -32600);
    assert_eq!(r["error"]["message"], "no active turn to steer");

    let turn = c.start_turn(&tid, "Write something.").await;
    c.notification("item/agentMessage/delta").await;
    let wrong = "00000000-0000-0000-0000-000000000000";
    let id = c.request("turn/steer", steer(wrong)).await;
    let r = c.response(id).await;
    assert_eq!(r["error"]["code"], -32600);
    assert_eq!(
        r["error"]["message"],
        format!("expected active turn id `{wrong}` but found `{turn}`")
    );
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let id = c.request("turn/steer", steer(&turn)).await;
    let r = c.response(id).await;
    assert_eq!(r["error"]["message"], "no active turn to steer");
    assert_eq!(mock.model_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_notifications_come_in_upstreams_order() {
    let home = TestHome::new();
    let file = home.workspace().join("created.txt");
    let mock = MockModelServer::start(vec![
        codex_test_support::MockResponse::sse(sse::function_call_events(
            "r1",
            "call_touch_1",
            "exec_command",
            json!({"cmd": format!("touch {}", file.display()),
                   "sandbox_permissions": "require_escalated", "justification": "May I?"}),
        )),
        sse::message("Created the file."),
    ])
    .await;
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &["-c", "approval_policy=\"on-request\""]).await;
    let c = &mut s.client;
    c.initialize("approver").await;
    let tid = c.start_thread(json!({})).await;
    c.start_turn(&tid, "Create a file named created.txt.").await;
    let req = c
        .wait_for("approval request", |v| {
            v["method"] == "item/commandExecution/requestApproval"
        })
        .await;
    c.send(json!({"id": req["id"], "result": {"decision": "accept"}}))
        .await;
    c.turn_completed(&tid).await;
    assert!(file.exists());

    // The order as upstream's TUI session shows it.
    let rid = req["id"].clone();
    let key = |v: &Value| -> Option<String> {
        let m = v["method"].as_str()?;
        match m {
            "thread/status/changed" => Some(format!("status {}", v["params"]["status"])),
            "item/started" | "item/completed" if v["params"]["item"]["id"] == "call_touch_1" => {
                Some(m.to_string())
            }
            "item/commandExecution/requestApproval" | "serverRequest/resolved" => {
                Some(m.to_string())
            }
            _ => None,
        }
    };
    let seen: Vec<String> = c.seen.iter().filter_map(key).collect();
    assert_eq!(
        seen,
        [
            r#"status {"activeFlags":[],"type":"active"}"#,
            r#"status {"activeFlags":["waitingOnApproval"],"type":"active"}"#,
            "item/started",
            "item/commandExecution/requestApproval",
            "serverRequest/resolved",
            r#"status {"activeFlags":[],"type":"active"}"#,
            "item/completed",
            r#"status {"type":"idle"}"#,
        ]
    );
    let resolved = c.seen_method("serverRequest/resolved");
    assert_eq!(resolved[0]["params"]["requestId"], rid);
    assert_eq!(resolved[0]["params"]["threadId"], tid.as_str());
    validate(&unsolicited(&c.seen));
}

const SUMMARIZATION_PROMPT_HEAD: &str = "You are performing a CONTEXT CHECKPOINT COMPACTION.";
const SUMMARY_PREFIX_HEAD: &str = "Another language model started to solve this problem";

fn texts(req: &codex_test_support::RecordedRequest) -> Vec<(String, String)> {
    req.input()
        .iter()
        .filter_map(|i| {
            let text = i["content"][0]["text"].as_str()?;
            Some((i["role"].as_str()?.to_string(), text.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_summarises_replaces_the_history_and_survives_a_resume() {
    let mock = MockModelServer::start(vec![
        sse::message("The answer is 42."),
        sse::message("SUMMARY: the user asked about 42."),
        sse::message("after compaction"),
        sse::message("after resume"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let tid = {
        let mut s = StdioServer::start(&home, &[]).await;
        let c = &mut s.client;
        c.initialize("compactor").await;
        let tid = c.start_thread(json!({})).await;
        c.start_turn(&tid, "What is the answer?").await;
        c.turn_completed(&tid).await;

        let r = c
            .call("thread/compact/start", json!({"threadId": tid}))
            .await;
        assert_eq!(r, json!({}));
        let started = c
            .wait_for("compaction item", |v| {
                v["method"] == "item/started" && v["params"]["item"]["type"] == "contextCompaction"
            })
            .await;
        let item_id = started["params"]["item"]["id"].clone();
        let done = c
            .wait_for("compaction completed", |v| {
                v["method"] == "item/completed"
                    && v["params"]["item"]["type"] == "contextCompaction"
            })
            .await;
        assert_eq!(done["params"]["item"]["id"], item_id);
        let turn = c.turn_completed(&tid).await;
        assert_eq!(turn["params"]["turn"]["status"], "completed");
        assert_eq!(turn["params"]["turn"]["id"], started["params"]["turnId"]);
        assert!(
            c.seen_method("turn/started").len() == 2,
            "the compaction is a turn of its own"
        );
        assert!(!c.seen_method("thread/tokenUsage/updated").is_empty());
        let mut messages = unsolicited(&c.seen);
        messages.push((
            Some("thread/compact/start".into()),
            json!({"id": 1, "result": r}),
        ));
        validate(&messages);

        // The summarisation request: the history, then upstream's prompt; no tools.
        let reqs = mock.model_requests();
        let summarise = &reqs[1];
        let t = texts(summarise);
        assert!(
            t.last().unwrap().1.starts_with(SUMMARIZATION_PROMPT_HEAD),
            "{t:?}"
        );
        assert!(t
            .iter()
            .any(|(r, x)| r == "user" && x == "What is the answer?"));
        assert!(t
            .iter()
            .any(|(r, x)| r == "assistant" && x == "The answer is 42."));
        assert_eq!(summarise.body["tools"], json!([]));

        // The next turn sees the compacted history only.
        c.start_turn(&tid, "And now?").await;
        c.turn_completed(&tid).await;
        let t = texts(&mock.model_requests()[2]);
        assert!(!t.iter().any(|(r, _)| r == "assistant"), "{t:?}");
        let users: Vec<&str> = t
            .iter()
            .filter(|(r, x)| r == "user" && !x.starts_with('<') && !x.starts_with('#'))
            .map(|(_, x)| x.as_str())
            .collect();
        assert_eq!(users.len(), 3, "{users:?}");
        assert_eq!(users[0], "What is the answer?");
        assert!(users[1].starts_with(SUMMARY_PREFIX_HEAD));
        assert!(users[1].ends_with("\nSUMMARY: the user asked about 42."));
        assert_eq!(users[2], "And now?");
        drop(s.client);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), s.child.wait()).await;
        tid
    };

    // The rollout's `compacted` line, as upstream writes it.
    let rollout = home.rollouts().pop().unwrap();
    let lines = common::rollout_lines(&rollout);
    let compacted: Vec<&Value> = lines.iter().filter(|l| l["type"] == "compacted").collect();
    assert_eq!(compacted.len(), 1);
    let payload = &compacted[0]["payload"];
    assert!(payload["message"]
        .as_str()
        .unwrap()
        .starts_with(SUMMARY_PREFIX_HEAD));
    assert!(payload["replacement_history"].as_array().unwrap().len() >= 3);

    // A resume rebuilds the compacted history.
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("resumer").await;
    c.call("thread/resume", json!({"threadId": tid})).await;
    c.start_turn(&tid, "Still there?").await;
    c.turn_completed(&tid).await;
    let t = texts(&mock.model_requests()[3]);
    let summary_at = t
        .iter()
        .position(|(_, x)| x.starts_with(SUMMARY_PREFIX_HEAD))
        .expect("the summary is in the resumed history");
    assert!(
        !t[..summary_at].iter().any(|(r, _)| r == "assistant"),
        "nothing from before the compaction but the user's words: {t:?}"
    );
    assert_eq!(t.last().unwrap().1, "Still there?");
    // The compaction is part of the thread's history as read back.
    let read = c
        .call(
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
    let kinds: Vec<&str> = read["thread"]["turns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["items"].as_array().unwrap())
        .filter_map(|i| i["type"].as_str())
        .collect();
    assert!(kinds.contains(&"contextCompaction"), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn title_generation_turn_sends_the_output_schema_and_leaves_no_rollout() {
    let mock = MockModelServer::start(vec![sse::message("{\"title\":\"Mock task title\"}")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("codex-tui").await;
    let r = c
        .call(
            "thread/start",
            json!({"ephemeral": true, "threadSource": "thread_title", "sandbox": "read-only"}),
        )
        .await;
    assert_eq!(r["thread"]["ephemeral"], true);
    assert_eq!(r["thread"]["path"], Value::Null);
    let tid = r["thread"]["id"].as_str().unwrap().to_string();
    let schema = json!({"type": "object",
        "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 36}},
        "required": ["title"], "additionalProperties": false});
    c.call(
        "turn/start",
        json!({"threadId": tid, "clientUserMessageId": null, "turnTrigger": null,
               "collaborationMode": null, "parentTurnId": null,
               "input": [{"type": "text", "text": "Generate a title.", "text_elements": []}],
               "outputSchema": schema}),
    )
    .await;
    let done = c.turn_completed(&tid).await;
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "{\"title\":\"Mock task title\"}"
    );
    let body = &mock.model_requests()[0].body;
    assert_eq!(
        body["text"]["format"],
        json!({"type": "json_schema", "name": "codex_output_schema", "schema": schema, "strict": true})
    );
    assert!(c
        .seen_method("warning")
        .iter()
        .all(|w| !w["params"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not supported")));
    assert!(
        home.rollouts().is_empty(),
        "an ephemeral thread writes no rollout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn collaboration_mode_sets_the_model_tells_its_instructions_once_and_unknown_fields_are_named(
) {
    let mock = MockModelServer::start(vec![sse::message("one"), sse::message("two")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("codex-tui").await;
    let tid = c.start_thread(json!({})).await;
    let turn = |text: &str, mode: &str| {
        json!({"threadId": tid, "clientUserMessageId": "c1", "turnTrigger": "user",
               "input": [{"type": "text", "text": text}],
               "toolOutput": {"bogus": 1},
               "collaborationMode": {"mode": mode, "settings": {
                   "model": "mode-model", "reasoning_effort": null,
                   "developer_instructions": "# Collaboration Mode: Default"}}})
    };
    c.call("turn/start", turn("first", "default")).await;
    let user = c
        .wait_for("user message", |v| {
            v["method"] == "item/started" && v["params"]["item"]["type"] == "userMessage"
        })
        .await;
    assert_eq!(user["params"]["item"]["clientId"], "c1");
    let warning = c.notification("warning").await;
    let message = warning["params"]["message"].as_str().unwrap();
    assert!(message.contains("`toolOutput`"), "{message}");
    c.turn_completed(&tid).await;
    c.call("turn/start", turn("second", "plan")).await;
    let warning = c
        .wait_for("plan warning", |v| {
            v["method"] == "warning"
                && v["params"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("`plan`"))
        })
        .await;
    assert_eq!(warning["params"]["threadId"], tid.as_str());
    c.turn_completed(&tid).await;

    let reqs = mock.model_requests();
    assert_eq!(reqs[0].body["model"], "mode-model");
    let told = |r: &codex_test_support::RecordedRequest| {
        r.input()
            .iter()
            .filter(|i| {
                i["role"] == "developer"
                    && i["content"][0]["text"]
                        == "<collaboration_mode># Collaboration Mode: Default</collaboration_mode>"
            })
            .count()
    };
    assert_eq!(told(&reqs[0]), 1);
    assert_eq!(told(&reqs[1]), 1, "unchanged instructions are not repeated");
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_compaction_at_the_token_limit_runs_inside_the_turn() {
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_echo", "echo hi"),
        sse::message("SUMMARY ONE"),
        sse::message("done"),
        sse::message("SUMMARY TWO"),
        sse::message("second"),
    ])
    .await;
    let home = TestHome::new();
    // Every mock response counts 15 tokens.
    home.write_config(&mock.url(), "model_auto_compact_token_limit = 15");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("compactor").await;
    let tid = c.start_thread(json!({})).await;
    let turn = c.start_turn(&tid, "run echo").await;
    let item = c
        .wait_for("inline compaction", |v| {
            v["method"] == "item/completed" && v["params"]["item"]["type"] == "contextCompaction"
        })
        .await;
    assert_eq!(item["params"]["turnId"], turn.as_str());
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 3);
    assert!(texts(&reqs[1])
        .last()
        .unwrap()
        .1
        .starts_with(SUMMARIZATION_PROMPT_HEAD));
    // After the tool output the model goes on from the summary.
    let t = texts(&reqs[2]);
    assert!(t.last().unwrap().1.ends_with("\nSUMMARY ONE"), "{t:?}");
    assert!(!reqs[2].input().iter().any(|i| i["type"] == "function_call"));

    // Over the limit since then: the next turn compacts before it asks,
    // and its input comes after the summary.
    c.start_turn(&tid, "again").await;
    c.turn_completed(&tid).await;
    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 5);
    assert!(texts(&reqs[3])
        .last()
        .unwrap()
        .1
        .starts_with(SUMMARIZATION_PROMPT_HEAD));
    let t = texts(&reqs[4]);
    let n = t.len();
    assert!(t[n - 2].1.ends_with("\nSUMMARY TWO"), "{t:?}");
    assert_eq!(t[n - 1].1, "again");
}

#[tokio::test(flavor = "multi_thread")]
async fn steer_during_a_tool_call_follows_its_output_in_the_next_request() {
    let home = TestHome::new();
    let gate = home.workspace().join("go");
    let mock = MockModelServer::start(vec![
        sse::exec_command(
            "call_wait",
            &format!(
                "while [ ! -f {} ]; do sleep 0.05; done; echo ok",
                gate.display()
            ),
        ),
        sse::message("final"),
    ])
    .await;
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("steerer").await;
    let tid = c.start_thread(json!({})).await;
    let turn = c.start_turn(&tid, "wait for it").await;
    c.wait_for("command started", |v| {
        v["method"] == "item/started" && v["params"]["item"]["id"] == "call_wait"
    })
    .await;
    let r = c
        .call(
            "turn/steer",
            json!({"threadId": tid, "expectedTurnId": turn,
                   "input": [{"type": "text", "text": "and then stop"}]}),
        )
        .await;
    assert_eq!(r["turnId"], turn.as_str());
    std::fs::write(&gate, "").unwrap();
    let done = c.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "completed");
    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 2);
    let input = reqs[1].input();
    let output_at = input
        .iter()
        .position(|i| i["type"] == "function_call_output")
        .unwrap();
    let steer_at = input
        .iter()
        .position(|i| i["role"] == "user" && i["content"][0]["text"] == "and then stop")
        .unwrap();
    assert!(output_at < steer_at, "{input:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_compaction_defaults_to_ninety_percent_of_the_context_window() {
    let mock = MockModelServer::start(vec![
        sse::exec_command("call_echo", "echo hi"),
        sse::message("SUMMARY"),
        sse::message("done"),
    ])
    .await;
    let home = TestHome::new();
    // 90% of 16 is 14: the first 15-token response is over it.
    home.write_config(&mock.url(), "model_context_window = 16");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("compactor").await;
    let tid = c.start_thread(json!({})).await;
    c.start_turn(&tid, "run echo").await;
    c.turn_completed(&tid).await;
    assert!(c
        .seen_method("item/completed")
        .iter()
        .any(|v| v["params"]["item"]["type"] == "contextCompaction"));
    let reqs = mock.model_requests();
    assert_eq!(reqs.len(), 3);
    assert!(texts(&reqs[1])
        .last()
        .unwrap()
        .1
        .starts_with(SUMMARIZATION_PROMPT_HEAD));
}
