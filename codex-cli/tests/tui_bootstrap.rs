//! Upstream's TUI against `codex app-server`, replayed from the recorded
//! session (`../shared/upstream-protocol/tui-session-frames.jsonl`): every
//! request the TUI sends at startup, with its exact params and ids, must be
//! answered — with a result wherever upstream's server answered one, valid
//! against upstream's experimental schema. Then the in-session methods
//! (`thread/readState/update` after a turn, `thread/goal/get`,
//! `thread/backgroundTerminals/list`, `permissionProfile/list`), the
//! experimental gate, and `skills/list` reading skills from the test home.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::app_server::{Client, StdioServer};
use common::schema::{unsolicited, validate_experimental};
use serde_json::{json, Value};

fn recording() -> Option<Vec<Value>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/upstream-protocol/tui-session-frames.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        if std::env::var("CODEX_REQUIRE_SCHEMA").as_deref() == Ok("1") {
            panic!("{} is missing", path.display());
        }
        eprintln!("SKIPPED: {} not found", path.display());
        return None;
    };
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

/// A recorded client→server message and upstream's answer to it.
struct Exchange {
    sent: Value,
    answer: Option<Value>,
}

/// The TUI's first connection, up to its first `turn/start`.
fn startup(frames: &[Value]) -> Vec<Exchange> {
    let conn = frames
        .iter()
        .find(|f| f["dir"] == "c2s")
        .map(|f| f["conn"].clone())
        .unwrap();
    let mine: Vec<&Value> = frames.iter().filter(|f| f["conn"] == conn).collect();
    let mut out = Vec::new();
    for (i, f) in mine.iter().enumerate() {
        if f["dir"] != "c2s" {
            continue;
        }
        let sent = f["frame"].clone();
        if sent["method"] == "turn/start" {
            break;
        }
        let answer = sent.get("id").and_then(|id| {
            mine[i + 1..]
                .iter()
                .find(|g| {
                    g["dir"] == "s2c"
                        && g["frame"].get("method").is_none()
                        && g["frame"]["id"] == *id
                })
                .map(|g| g["frame"].clone())
        });
        out.push(Exchange { sent, answer });
    }
    out
}

/// The first recorded request with `method`, as sent.
fn recorded_request(frames: &[Value], method: &str) -> Value {
    frames
        .iter()
        .find(|f| f["dir"] == "c2s" && f["frame"]["method"] == method)
        .map(|f| f["frame"].clone())
        .unwrap_or_else(|| panic!("{method} is not in the recording"))
}

/// Replaces the recording's placeholders and ids with this run's.
fn localize(v: &Value, subst: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(subst.get(s).cloned().unwrap_or_else(|| s.clone())),
        Value::Array(a) => Value::Array(a.iter().map(|x| localize(x, subst)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), localize(x, subst)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn answer_to(c: &mut Client, id: &Value) -> Value {
    let id = id.clone();
    c.wait_for(&format!("answer to {id}"), move |v| {
        v.get("method").is_none() && v["id"] == id
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn tui_startup_and_session_requests_are_answered_as_upstream() {
    let Some(frames) = recording() else { return };
    let mock = MockModelServer::start(vec![sse::message("Hello from the mock model.")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;

    let mut subst = HashMap::from([("<TMP>".to_string(), home.workspace().display().to_string())]);
    let mut checked: Vec<(Option<String>, Value)> = Vec::new();
    let mut upstream_errors = Vec::new();
    let mut thread_id = None;
    let exchanges = startup(&frames);
    assert!(
        exchanges.len() > 15,
        "startup has {} messages",
        exchanges.len()
    );
    for ex in &exchanges {
        let sent = localize(&ex.sent, &subst);
        let method = sent["method"].as_str().unwrap().to_string();
        c.send(sent.clone()).await;
        let Some(id) = sent.get("id") else { continue };
        let ours = answer_to(c, id).await;
        let theirs = ex
            .answer
            .as_ref()
            .unwrap_or_else(|| panic!("no recorded answer to {sent}"));
        if theirs.get("error").is_some() {
            // Upstream itself refused it (e.g. `thread/turns/list` before the
            // first message); only an answer is required.
            upstream_errors.push(method);
            continue;
        }
        assert!(
            ours.get("error").is_none(),
            "{method} failed: {ours}\nsent: {sent}"
        );
        if method == "thread/start" {
            let id = ours["result"]["thread"]["id"].as_str().unwrap().to_string();
            subst.insert(
                theirs["result"]["thread"]["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                id.clone(),
            );
            thread_id = Some(id);
        }
        checked.push((Some(method), ours));
    }
    let answered: Vec<&str> = checked.iter().filter_map(|(m, _)| m.as_deref()).collect();
    for m in [
        "initialize",
        "account/read",
        "model/list",
        "hooks/list",
        "account/bedrock/checkGovCloudRequirements",
        "config/read",
        "configRequirements/read",
        "collaborationMode/list",
        "thread/start",
        "thread/list",
        "skills/list",
        "plugin/installed",
        "thread/loaded/list",
        "thread/read",
    ] {
        assert!(
            answered.contains(&m),
            "{m} was not answered with a result: {answered:?}"
        );
    }
    assert_eq!(upstream_errors, ["thread/turns/list"]);

    // Upstream's answers for empty features, exactly.
    let result_of = |m: &str| {
        checked
            .iter()
            .find(|(x, _)| x.as_deref() == Some(m))
            .map(|(_, v)| v["result"].clone())
            .unwrap()
    };
    assert_eq!(
        result_of("configRequirements/read"),
        json!({"supportsIndependentSpeedModes": true, "requirements": null})
    );
    assert_eq!(
        result_of("collaborationMode/list"),
        json!({"data": [
            {"name": "Plan", "mode": "plan", "model": null, "reasoning_effort": "medium"},
            {"name": "Default", "mode": "default", "model": null, "reasoning_effort": null}]})
    );
    assert_eq!(
        result_of("account/bedrock/checkGovCloudRequirements"),
        json!({"isGovCloud": false, "shouldWarn": false})
    );
    assert_eq!(
        result_of("plugin/installed"),
        json!({"marketplaces": [], "marketplaceLoadErrors": []})
    );
    let ws = home.workspace().display().to_string();
    assert_eq!(
        result_of("hooks/list"),
        json!({"data": [{"cwd": ws, "hooks": [], "warnings": [], "errors": []}]})
    );

    // A turn leaves the thread unread; the TUI marks it read.
    let tid = thread_id.unwrap();
    let turn = c.start_turn(&tid, "Say hello.").await;
    let unread = c.thread_note("thread/readState/changed", &tid).await;
    assert_eq!(
        unread["params"]["readState"]["firstUnread"],
        json!({"type": "turn", "turnId": turn})
    );
    c.turn_completed(&tid).await;
    let order: Vec<&str> = c
        .seen
        .iter()
        .filter_map(|m| m["method"].as_str())
        .filter(|m| ["thread/readState/changed", "turn/completed"].contains(m))
        .collect();
    assert_eq!(order, ["thread/readState/changed", "turn/completed"]);
    // `thread/read` and `thread/list` report the same state, as upstream.
    let read = c.call("thread/read", json!({"threadId": tid})).await;
    assert_eq!(read["readState"], unread["params"]["readState"]);
    let list = c.call("thread/list", json!({})).await;
    assert_eq!(list["readStates"][&tid], unread["params"]["readState"]);

    let mut update = localize(
        &recorded_request(&frames, "thread/readState/update"),
        &subst,
    );
    update["params"]["expectedRevision"] = unread["params"]["readState"]["revision"].clone();
    c.send(update.clone()).await;
    let done = answer_to(c, &update["id"]).await;
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(done["result"]["readState"]["firstUnread"], Value::Null);
    let pos = |pred: &dyn Fn(&Value) -> bool| c.seen.iter().rposition(pred).unwrap();
    let changed_at = pos(&|m| {
        m["method"] == "thread/readState/changed"
            && m["params"]["readState"]["firstUnread"].is_null()
    });
    let answered_at = pos(&|m| m["id"] == update["id"] && m.get("method").is_none());
    assert!(
        changed_at < answered_at,
        "thread/readState/changed comes before the answer"
    );
    checked.push((Some("thread/readState/update".into()), done.clone()));
    // The same revision again is stale now.
    c.send(update.clone()).await;
    let stale = answer_to(c, &update["id"]).await;
    assert_eq!(stale["error"]["code"], -32600, "{stale}");
    assert_eq!(stale["error"]["message"], "read state changed");
    assert_eq!(stale["error"]["data"]["reason"], "readStateConflict");
    assert_eq!(
        stale["error"]["data"]["readState"],
        done["result"]["readState"]
    );

    for method in [
        "thread/goal/get",
        "thread/backgroundTerminals/list",
        "permissionProfile/list",
        "configRequirements/read",
    ] {
        let req = localize(&recorded_request(&frames, method), &subst);
        c.send(req.clone()).await;
        let ours = answer_to(c, &req["id"]).await;
        assert!(ours.get("error").is_none(), "{method} failed: {ours}");
        let theirs = frames
            .iter()
            .find(|f| f["dir"] == "s2c" && f["frame"]["id"] == req["id"])
            .map(|f| f["frame"]["result"].clone())
            .unwrap();
        assert_eq!(
            ours["result"], theirs,
            "{method}: ours differs from upstream's"
        );
        checked.push((Some(method.to_string()), ours));
    }

    checked.extend(unsolicited(&c.seen));
    validate_experimental(&checked);
}

#[tokio::test(flavor = "multi_thread")]
async fn experimental_methods_need_the_capability() {
    let mock = MockModelServer::start(vec![sse::message("done")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("plain-client").await;
    let tid = c.start_thread(json!({})).await;
    // Read state is not pushed to a client that cannot update it.
    c.start_turn(&tid, "hi").await;
    c.turn_completed(&tid).await;
    assert!(c.seen_method("thread/readState/changed").is_empty());
    for (method, params) in [
        ("account/bedrock/checkGovCloudRequirements", json!({})),
        ("collaborationMode/list", json!({})),
        (
            "thread/readState/update",
            json!({"threadId": tid, "operation": {"type": "read"}, "expectedRevision": "x"}),
        ),
        ("thread/backgroundTerminals/list", json!({"threadId": tid})),
    ] {
        let id = c.request(method, params).await;
        let r = c.response(id).await;
        assert_eq!(r["error"]["code"], -32600, "{r}");
        assert_eq!(
            r["error"]["message"],
            format!("{method} requires experimentalApi capability")
        );
    }
    // The stable ones need no opt-in; unknown threads are refused.
    let r = c.call("thread/goal/get", json!({"threadId": tid})).await;
    assert_eq!(r, json!({"goal": null}));
    let id = c
        .request("thread/goal/get", json!({"threadId": "no-such-thread"}))
        .await;
    assert!(c.response(id).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-thread"));
    let id = c
        .request("configRequirements/read", json!({"bogus": 1}))
        .await;
    assert!(c.response(id).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("takes no params"));
    let page = c.call("permissionProfile/list", json!({"limit": 2})).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let rest = c
        .call(
            "permissionProfile/list",
            json!({"cursor": page["nextCursor"], "limit": 2}),
        )
        .await;
    assert_eq!(
        rest,
        json!({"data": [{"id": ":danger-full-access", "description": null, "allowed": true}],
               "nextCursor": null})
    );
    let id = c.request("account/rateLimits/read", Value::Null).await;
    assert_eq!(
        c.response(id).await["error"]["message"],
        "codex account authentication required to read rate limits"
    );
}

fn write(path: PathBuf, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn skills_list_reads_the_home_and_repo_skills() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    write(
        home.codex_home().join("skills/tools/greeter/SKILL.md"),
        "---\nname: greeter\ndescription: Greets people\nmetadata:\n  short-description: Says hi\n---\n# Greeter\n",
    );
    write(
        home.workspace().join(".agents/skills/local/SKILL.md"),
        "---\nname: repo-local\ndescription: >\n  Lives in the\n  repository\n---\n",
    );
    write(
        home.codex_home().join("skills/broken/SKILL.md"),
        "no front matter here\n",
    );
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.send(json!({"id": 0, "method": "initialize", "params": {
        "clientInfo": {"name": "codex-tui", "title": null, "version": "0.169.0"},
        "capabilities": {"experimentalApi": true}}}))
        .await;
    c.response(0).await;
    c.notify("initialized").await;
    let other = home.root().join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    let r = c
        .call(
            "skills/list",
            json!({"cwds": [home.workspace(), other], "forceReload": true}),
        )
        .await;
    let data = r["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let names = |e: &Value| -> Vec<(String, String)> {
        e["skills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["scope"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(data[0]["cwd"], home.workspace().display().to_string());
    assert_eq!(
        names(&data[0]),
        [
            ("repo-local".into(), "repo".into()),
            ("greeter".into(), "user".into())
        ]
    );
    // The repo's skills belong to the repo only.
    assert_eq!(
        names(&data[1]),
        [("greeter".to_string(), "user".to_string())]
    );
    let greeter = &data[0]["skills"][1];
    assert_eq!(greeter["description"], "Greets people");
    assert_eq!(greeter["shortDescription"], "Says hi");
    assert_eq!(greeter["enabled"], true);
    assert!(greeter["path"]
        .as_str()
        .unwrap()
        .ends_with("skills/tools/greeter/SKILL.md"));
    assert_eq!(
        data[0]["skills"][0]["description"],
        "Lives in the repository"
    );
    let errors = data[0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("broken/SKILL.md"));
    assert_eq!(
        errors[0]["message"],
        "missing YAML frontmatter delimited by ---"
    );
    validate_experimental(&[(Some("skills/list".into()), json!({"id": 1, "result": r}))]);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_problems_are_told_after_initialized() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "no_such_setting = true");
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("tui").await;
    let warning = c.notification("configWarning").await;
    assert!(
        warning["params"]["summary"]
            .as_str()
            .unwrap()
            .contains("unknown key `no_such_setting`"),
        "{warning}"
    );
    c.notification("remoteControl/status/changed").await;
    let order: Vec<&str> = c.seen.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(order, ["configWarning", "remoteControl/status/changed"]);
    validate_experimental(&unsolicited(&c.seen));
}

/// The TUI saves a folder's trust with `config/batchWrite`: the edit lands
/// in `config.toml` (the rest of the file kept), `config/read` sees it with
/// the version the write returned, and a stale version or another file is
/// refused without touching the file.
#[tokio::test(flavor = "multi_thread")]
async fn config_writes_persist_trust_as_the_tui_sends_it() {
    let mock = MockModelServer::start(vec![]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let path = home.codex_home().join("config.toml");
    let before = std::fs::read_to_string(&path).unwrap();
    let mut s = StdioServer::start(&home, &[]).await;
    let c = &mut s.client;
    c.initialize("tui").await;
    // The TUI's own request, as sent for a folder in /work/main.
    let edit = json!({"edits": [{"keyPath": "projects.\"/work/some.repo\".trust_level",
                                 "value": "trusted", "mergeStrategy": "replace"}],
                      "filePath": null, "expectedVersion": null, "reloadUserConfig": true});
    let written = c.call("config/batchWrite", edit).await;
    assert_eq!(written["status"], "ok");
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&before), "the file as written is kept");
    let read = c.call("config/read", json!({"includeLayers": true})).await;
    assert_eq!(
        read["config"]["projects"]["/work/some.repo"]["trust_level"],
        "trusted"
    );
    assert_eq!(read["layers"][0]["version"], written["version"]);
    let one = c
        .call(
            "config/value/write",
            json!({"keyPath": "model", "value": "other-model", "mergeStrategy": "replace",
                   "expectedVersion": written["version"]}),
        )
        .await;
    assert_ne!(one["version"], written["version"]);
    let id = c
        .request(
            "config/value/write",
            json!({"keyPath": "model", "value": "x", "mergeStrategy": "replace",
                   "expectedVersion": written["version"]}),
        )
        .await;
    let stale = c.response(id).await;
    assert!(
        stale["error"]["message"]
            .as_str()
            .unwrap()
            .contains("version conflict"),
        "{stale}"
    );
    let id = c
        .request(
            "config/value/write",
            json!({"keyPath": "model", "value": "x", "mergeStrategy": "replace",
                   "filePath": "/etc/passwd"}),
        )
        .await;
    assert_eq!(c.response(id).await["error"]["code"], -32600);
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("model = \"other-model\""));
    validate_experimental(&[
        (
            Some("config/batchWrite".into()),
            json!({"id": 1, "result": written}),
        ),
        (
            Some("config/value/write".into()),
            json!({"id": 2, "result": one}),
        ),
    ]);
}
