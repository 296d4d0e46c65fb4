//! Upstream's memories on the wire, through a real `codex app-server` (codexd
//! and its workers) and the mock model server: the "## Memory" developer
//! section, `<oai-mem-citation>` stripped from deltas and texts into
//! `memoryCitation` (live, in `thread/read` and after a resume), the four
//! experimental methods with and without `experimentalApi`, and a thread's
//! memory mode kept across a restart and made `polluted` by an MCP call
//! (`disable_on_external_context`); `codex exec` shows the stripped text;
//! every message schema-validated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::app_server::{Client, StdioServer};
use common::schema::{unsolicited, validate_experimental};
use serde_json::{json, Value};

const CITED: &str = "You like tabs.\n<oai-mem-citation>\n<citation_entries>\nMEMORY.md:1-2|note=[demo]\n</citation_entries>\n<rollout_ids>\n01a230ef-7800-7a61-8e6d-9bab1d73a2ca\n</rollout_ids>\n</oai-mem-citation>";
const METHODS: [(&str, &str); 4] = [
    ("memory/status", "{}"),
    ("memory/reset", "null"),
    ("thread/memory/read", r#"{"threadId": "x"}"#),
    (
        "thread/memoryMode/set",
        r#"{"threadId": "x", "mode": "disabled"}"#,
    ),
];

async fn rpc(
    c: &mut Client,
    answers: &mut Vec<(Option<String>, Value)>,
    m: &str,
    p: Value,
) -> Value {
    let id = c.request(m, p).await;
    let r = c.response(id).await;
    answers.push((Some(m.to_string()), r.clone()));
    r
}

async fn init_experimental(c: &mut Client) {
    c.call(
        "initialize",
        json!({"clientInfo": {"name": "memory-client", "version": "0.1.0"},
               "capabilities": {"experimentalApi": true}}),
    )
    .await;
    c.notify("initialized").await;
}

fn cited_json() -> Value {
    json!({"entries": [{"path": "MEMORY.md", "lineStart": 1, "lineEnd": 2, "note": "demo"}],
           "threadIds": ["01a230ef-7800-7a61-8e6d-9bab1d73a2ca"]})
}

/// The first text of the developer message holding the permissions.
fn first_developer_text(body: &Value) -> String {
    body["input"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["role"] == "developer" && i.to_string().contains("<permissions instructions>"))
        .map(|i| {
            i["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_default()
}

/// The agent messages of `thread/read` / `thread/resume`'s turns.
fn agent_messages(thread: &Value) -> Vec<Value> {
    thread["turns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["items"].as_array().unwrap().clone())
        .filter(|i| i["type"] == "agentMessage")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn memories_on_the_wire_as_upstream() {
    let mock = MockModelServer::start(vec![
        // Seven deltas: the tag is cut mid-name.
        codex_test_support::MockResponse::sse(sse::message_events("resp_1", CITED, 7)),
        sse::message("plain answer"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "[features]\nmemories = true\n");
    let memories = home.codex_home().join("memories");
    std::fs::create_dir_all(memories.join("rollout_summaries")).unwrap();
    std::fs::write(memories.join("memory_summary.md"), "v1\nYou like tabs.\n").unwrap();
    std::fs::write(memories.join("MEMORY.md"), "# Tabs\nThe user likes tabs.\n").unwrap();
    std::fs::write(memories.join("rollout_summaries/old.md"), "old").unwrap();

    // Without experimentalApi: refused as upstream words it; a cited turn.
    let mut answers = Vec::new();
    let tid;
    {
        let mut s = StdioServer::start(&home, &[]).await;
        let c = &mut s.client;
        c.initialize("memory-plain").await;
        for (m, p) in METHODS {
            let r = rpc(c, &mut answers, m, serde_json::from_str(p).unwrap()).await;
            assert_eq!(r["error"]["code"], -32600, "{r}");
            assert_eq!(
                r["error"]["message"],
                format!("{m} requires experimentalApi capability")
            );
        }
        tid = c.start_thread(json!({})).await;
        c.start_turn(&tid, "Say hi.").await;
        let done = c.turn_completed(&tid).await;
        let deltas: String = c
            .seen_method("item/agentMessage/delta")
            .iter()
            .map(|d| d["params"]["delta"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(deltas, "You like tabs.\n");
        let completed: Vec<Value> = c
            .seen_method("item/completed")
            .into_iter()
            .filter(|n| n["params"]["item"]["type"] == "agentMessage")
            .collect();
        assert_eq!(completed[0]["params"]["item"]["text"], "You like tabs.\n");
        assert_eq!(
            completed[0]["params"]["item"]["memoryCitation"],
            cited_json()
        );
        let items = &done["params"]["turn"]["items"];
        assert_eq!(items[0]["memoryCitation"], cited_json(), "{done}");
        let read = rpc(
            c,
            &mut answers,
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
        let msgs = agent_messages(&read["result"]["thread"]);
        assert_eq!(msgs[0]["text"], "You like tabs.\n");
        assert_eq!(msgs[0]["memoryCitation"], cited_json());
        answers.extend(unsolicited(&c.seen));
    }
    // The model got the section first in the developer message; the rollout
    // keeps the raw reply.
    let req = &mock.model_requests()[0].body;
    let section = first_developer_text(req);
    assert!(section.starts_with("## Memory\n"), "{section}");
    assert!(section.contains(
        "========= MEMORY_SUMMARY BEGINS =========\nv1\nYou like tabs.\n========= MEMORY_SUMMARY ENDS ========="
    ));
    let rollout = std::fs::read_to_string(&home.rollouts()[0]).unwrap();
    assert!(rollout.contains("<oai-mem-citation>"), "raw text kept");

    // With it: the methods answer; the citation survives a restart + resume.
    {
        let mut s = StdioServer::start(&home, &[]).await;
        let c = &mut s.client;
        init_experimental(c).await;
        let r = rpc(c, &mut answers, "memory/status", json!({})).await;
        assert_eq!(
            r["result"],
            json!({"v2ConsolidatedThreads": 0, "v2Ready": true})
        );
        let id = c.request("memory/status", Value::Null).await;
        let r = c.response(id).await;
        assert_eq!(
            r["error"]["message"], "Invalid request: missing field `params`",
            "{r}"
        );
        let r = rpc(
            c,
            &mut answers,
            "thread/memory/read",
            json!({"threadId": tid}),
        )
        .await;
        assert_eq!(r["error"]["code"], -32600, "not loaded: {r}");
        // A stored thread's mode can be set without loading it (upstream).
        let r = rpc(
            c,
            &mut answers,
            "thread/memoryMode/set",
            json!({"threadId": tid, "mode": "enabled"}),
        )
        .await;
        assert_eq!(r["result"], json!({}), "{r}");
        let r = rpc(c, &mut answers, "thread/resume", json!({"threadId": tid})).await;
        let msgs = agent_messages(&r["result"]["thread"]);
        assert_eq!(msgs[0]["text"], "You like tabs.\n", "{r}");
        assert_eq!(msgs[0]["memoryCitation"], cited_json());
        let r = rpc(
            c,
            &mut answers,
            "thread/memory/read",
            json!({"threadId": tid}),
        )
        .await;
        assert_eq!(r["result"], json!({"summary": "v1\nYou like tabs."}), "{r}");
        let r = rpc(
            c,
            &mut answers,
            "thread/memoryMode/set",
            json!({"threadId": tid, "mode": "bogus"}),
        )
        .await;
        assert_eq!(r["error"]["code"], -32600);
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown variant `bogus`"),
            "{r}"
        );
        let r = rpc(
            c,
            &mut answers,
            "thread/memoryMode/set",
            json!({"threadId": "nope", "mode": "enabled"}),
        )
        .await;
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("thread not found"),
            "{r}"
        );
        let r = rpc(
            c,
            &mut answers,
            "thread/memoryMode/set",
            json!({"threadId": tid, "mode": "disabled"}),
        )
        .await;
        assert_eq!(r["result"], json!({}), "{r}");
        let r = rpc(
            c,
            &mut answers,
            "thread/memory/read",
            json!({"threadId": tid}),
        )
        .await;
        assert_eq!(r["result"], json!({"summary": null}), "disabled: {r}");
        // A thread disabled before its first turn gets no section.
        let t2 = c.start_thread(json!({})).await;
        rpc(
            c,
            &mut answers,
            "thread/memoryMode/set",
            json!({"threadId": t2, "mode": "disabled"}),
        )
        .await;
        c.start_turn(&t2, "hello").await;
        c.turn_completed(&t2).await;
        answers.extend(unsolicited(&c.seen));
    }
    let req = &mock.model_requests()[1].body;
    assert!(!first_developer_text(req).contains("## Memory"), "{req}");
    assert!(!req.to_string().contains("MEMORY_SUMMARY BEGINS"));

    // The mode outlives the worker; reset forgets the files.
    {
        let mut s = StdioServer::start(&home, &[]).await;
        let c = &mut s.client;
        init_experimental(c).await;
        rpc(c, &mut answers, "thread/resume", json!({"threadId": tid})).await;
        let r = rpc(
            c,
            &mut answers,
            "thread/memory/read",
            json!({"threadId": tid}),
        )
        .await;
        assert_eq!(r["result"], json!({"summary": null}), "still disabled: {r}");
        rpc(
            c,
            &mut answers,
            "thread/memoryMode/set",
            json!({"threadId": tid, "mode": "enabled"}),
        )
        .await;
        let r = rpc(
            c,
            &mut answers,
            "thread/memory/read",
            json!({"threadId": tid}),
        )
        .await;
        assert_eq!(r["result"]["summary"], "v1\nYou like tabs.");
        let r = rpc(c, &mut answers, "memory/reset", Value::Null).await;
        assert_eq!(r["result"], json!({}), "{r}");
        assert_eq!(std::fs::read_dir(&memories).unwrap().count(), 0);
        let r = rpc(
            c,
            &mut answers,
            "thread/memory/read",
            json!({"threadId": tid}),
        )
        .await;
        assert_eq!(r["result"], json!({"summary": null}), "no summary: {r}");
        answers.extend(unsolicited(&c.seen));
    }
    // The schema has no standalone `memory/reset` result (`MemoryResetResponse`
    // is `{}`, asserted above).
    answers.retain(|(m, _)| m.as_deref() != Some("memory/reset"));
    validate_experimental(&answers);
}

/// `disable_on_external_context`: an MCP call marks the thread `polluted`,
/// so it no longer reads memories (and no client can undo it by accident:
/// the mode is the thread's).
#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_call_pollutes_the_thread_when_configured() {
    use codex_test_support::mcp::mock_mcp_server_exe;
    let mock = MockModelServer::start(vec![
        codex_test_support::MockResponse::sse(vec![
            sse::created("resp_c"),
            json!({"type": "response.output_item.done", "output_index": 0, "item": {
                "type": "function_call", "id": "fc_c", "call_id": "c",
                "namespace": "mcp__alpha", "name": "echo",
                "arguments": json!({"text": "hi"}).to_string()}}),
            sse::completed("resp_c", 10, 5),
        ]),
        sse::message("done"),
    ])
    .await;
    let home = TestHome::new();
    let exe = mock_mcp_server_exe().display().to_string();
    home.write_config(
        &mock.url(),
        &format!(
            "[features]\nmemories = true\n[memories]\ndisable_on_external_context = true\n\
             [mcp_servers.alpha]\ncommand = {exe:?}\nargs = []\n\
             default_tools_approval_mode = \"approve\"\n"
        ),
    );
    let memories = home.codex_home().join("memories");
    std::fs::create_dir_all(&memories).unwrap();
    std::fs::write(memories.join("memory_summary.md"), "v1\nYou like tabs.\n").unwrap();
    let mut answers = Vec::new();
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    init_experimental(c).await;
    let t = c.start_thread(json!({})).await;
    let r = rpc(
        c,
        &mut answers,
        "thread/memory/read",
        json!({"threadId": t}),
    )
    .await;
    assert_eq!(r["result"]["summary"], "v1\nYou like tabs.", "{r}");
    c.start_turn(&t, "call it").await;
    c.turn_completed(&t).await;
    let r = rpc(
        c,
        &mut answers,
        "thread/memory/read",
        json!({"threadId": t}),
    )
    .await;
    assert_eq!(r["result"], json!({"summary": null}), "polluted: {r}");
    let mode = std::fs::read_to_string(home.codex_home().join("memory_modes").join(&t)).unwrap();
    assert_eq!(mode, "polluted");
    answers.extend(unsolicited(&c.seen));
    validate_experimental(&answers);
}

/// `codex exec` (no daemon) shows the stripped text too, in `--json` and for
/// humans: the stripping is codex-core's, not the app-server's.
#[tokio::test(flavor = "multi_thread")]
async fn exec_shows_the_stripped_text() {
    let mock = MockModelServer::start(vec![
        codex_test_support::MockResponse::sse(sse::message_events("resp_1", CITED, 5)),
        codex_test_support::MockResponse::sse(sse::message_events("resp_2", CITED, 3)),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "[features]\nmemories = true\n");
    let run = common::exec_json(&home, "Say hi.").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let msg = run
        .events()
        .into_iter()
        .find(|e| e["item"]["type"] == "agent_message")
        .unwrap();
    assert_eq!(msg["item"]["text"], "You like tabs.\n", "{msg}");
    let run = common::run(&home, &["exec", "--skip-git-repo-check", "Say hi."]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout.trim(), "You like tabs.");
    assert!(!run.stdout.contains("oai-mem-citation"));
}

/// Regression: `codex memory` without a daemon read the config and dropped
/// its warnings, so a misspelt `[memories]` key went unnoticed there.
#[tokio::test(flavor = "multi_thread")]
async fn the_memory_command_names_config_problems_without_a_daemon() {
    let home = TestHome::new();
    home.write_config(
        "http://127.0.0.1:9/v1",
        "[features]\nmemories = true\n\n[memories]\nrecal_limit = 3\n",
    );
    let socket = home.root().join("no-daemon.sock");
    let socket = socket.to_str().unwrap();
    let run = common::run(&home, &["memory", "status", "--socket", socket]).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.contains("in-process"), "{}", run.stdout);
    assert!(
        run.stderr.contains("memories.recal_limit"),
        "stderr: {}",
        run.stderr
    );
}
