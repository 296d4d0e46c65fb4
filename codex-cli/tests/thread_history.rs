//! Paged history and forks through `codex app-server`: `thread/turns/list`
//! and `thread/items/list` with opaque backwards cursors (loaded and
//! unloaded threads), `thread/resume {excludeTurns}` with its cursors,
//! `historyMode`, and `thread/fork`. Real codexd, workers and the mock
//! model; results validated against upstream's experimental schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::app_server::{Client, StdioServer};
use common::schema::{unsolicited, validate_experimental};
use serde_json::{json, Value};

/// Replies collected for validation, keyed by the request method.
#[derive(Default)]
struct Replies(Vec<(Option<String>, Value)>);

impl Replies {
    async fn call(&mut self, c: &mut Client, method: &str, params: Value) -> Value {
        let r = c.call(method, params).await;
        self.0
            .push((Some(method.into()), json!({"id": 0, "result": r.clone()})));
        r
    }
}

/// The error reply to `method`.
async fn error_of(c: &mut Client, method: &str, params: Value) -> Value {
    let id = c.request(method, params).await;
    let r = c.response(id).await;
    assert!(r.get("result").is_none(), "{method} should fail: {r}");
    r["error"].clone()
}

/// Runs one turn; returns its id.
async fn turn(c: &mut Client, thread_id: &str, text: &str) -> String {
    let id = c.start_turn(thread_id, text).await;
    let done = c.turn_completed(thread_id).await;
    assert_eq!(done["params"]["turn"]["status"], "completed", "{done}");
    id
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every page of `method` from `cursor` in `direction`, `limit` at a time.
async fn all_pages(
    c: &mut Client,
    replies: &mut Replies,
    method: &str,
    base: Value,
    mut cursor: Option<String>,
    limit: u64,
) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let mut params = base.clone();
        params["limit"] = json!(limit);
        params["cursor"] = json!(cursor);
        let page = replies.call(c, method, params).await;
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit as usize);
        rows.extend(data.iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    (rows, pages)
}

/// `(turnId, item id, item type)` of a `thread/items/list` row.
fn item_key(row: &Value) -> (String, String, String) {
    (
        row["turnId"].as_str().unwrap().into(),
        row["item"]["id"].as_str().unwrap().into(),
        row["item"]["type"].as_str().unwrap().into(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn turns_and_items_page_backwards_through_loaded_and_unloaded_threads() {
    let mock = MockModelServer::start(vec![
        sse::message("answer one"),
        sse::message("answer two"),
        sse::message("answer three"),
        sse::message("answer four"),
        sse::message("other thread"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut replies = Replies::default();

    let mut s = StdioServer::start(&home, &[]).await;
    s.client.initialize("history").await;
    let started = replies
        .call(
            &mut s.client,
            "thread/start",
            json!({"historyMode": "paginated"}),
        )
        .await;
    assert_eq!(started["thread"]["historyMode"], "paginated");
    let tid = started["thread"]["id"].as_str().unwrap().to_string();
    // Before its first turn a thread has no history to page (upstream's
    // words).
    let e = error_of(
        &mut s.client,
        "thread/turns/list",
        json!({"threadId": tid, "limit": 1}),
    )
    .await;
    assert_eq!(e["code"], -32600);
    assert_eq!(
        e["message"],
        format!("thread {tid} is not materialized yet; thread/turns/list is unavailable before first user message")
    );

    let mut turn_ids = Vec::new();
    for text in ["one", "two", "three", "four"] {
        turn_ids.push(turn(&mut s.client, &tid, text).await);
    }
    let newest_first: Vec<String> = turn_ids.iter().rev().cloned().collect();

    // Turns, newest first by default, 3 then 1.
    let (rows, pages) = all_pages(
        &mut s.client,
        &mut replies,
        "thread/turns/list",
        json!({"threadId": tid, "itemsView": "full"}),
        None,
        3,
    )
    .await;
    assert_eq!(pages, 2);
    let got: Vec<String> = rows
        .iter()
        .map(|t| t["id"].as_str().unwrap().into())
        .collect();
    assert_eq!(got, newest_first);
    assert_eq!(rows[0]["items"][0]["type"], "userMessage");
    assert_eq!(rows[0]["items"][0]["content"][0]["text"], "four");
    assert_eq!(rows[0]["items"][1]["text"], "answer four");
    assert_eq!(rows[0]["itemsView"], "full");

    // One at a time: no duplicates, no gaps.
    let (rows, pages) = all_pages(
        &mut s.client,
        &mut replies,
        "thread/turns/list",
        json!({"threadId": tid, "sortDirection": "desc", "itemsView": "notLoaded"}),
        None,
        1,
    )
    .await;
    assert_eq!(pages, 4);
    assert!(rows
        .iter()
        .all(|t| t["items"] == json!([]) && t["itemsView"] == "notLoaded"));
    // The default view is a summary: the first user and the last agent message.
    let summary = replies
        .call(
            &mut s.client,
            "thread/turns/list",
            json!({"threadId": tid, "limit": 2}),
        )
        .await;
    assert_eq!(ids(&summary), newest_first[..2]);
    assert_eq!(summary["data"][0]["itemsView"], "summary");
    assert_eq!(summary["data"][0]["items"].as_array().unwrap().len(), 2);
    // The backwards cursor of a page, in the other direction, starts again
    // at its first turn: from the second-newest back up to the newest.
    let second = replies
        .call(
            &mut s.client,
            "thread/turns/list",
            json!({"threadId": tid, "limit": 2, "cursor": summary["nextCursor"]}),
        )
        .await;
    assert_eq!(ids(&second), newest_first[2..]);
    assert_eq!(second["nextCursor"], Value::Null);
    let back = replies
        .call(
            &mut s.client,
            "thread/turns/list",
            json!({"threadId": tid, "sortDirection": "asc",
                "cursor": second["backwardsCursor"]}),
        )
        .await;
    assert_eq!(ids(&back), turn_ids[1..]);

    // Items, newest first, three at a time, to the start.
    let (rows, _) = all_pages(
        &mut s.client,
        &mut replies,
        "thread/items/list",
        json!({"threadId": tid, "sortDirection": "desc"}),
        None,
        3,
    )
    .await;
    assert_eq!(rows.len(), 8);
    let keys: Vec<_> = rows.iter().map(item_key).collect();
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 8, "duplicates");
    let texts: Vec<String> = rows
        .iter()
        .map(|r| {
            r["item"]["text"]
                .as_str()
                .or(r["item"]["content"][0]["text"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        texts,
        [
            "answer four",
            "four",
            "answer three",
            "three",
            "answer two",
            "two",
            "answer one",
            "one"
        ]
    );
    assert_eq!(keys[0].0, turn_ids[3]);
    assert_eq!(keys[7].0, turn_ids[0]);
    // Ascending (the default) is the same, oldest first; and per turn.
    let (asc, _) = all_pages(
        &mut s.client,
        &mut replies,
        "thread/items/list",
        json!({"threadId": tid}),
        None,
        5,
    )
    .await;
    let asc_keys: Vec<_> = asc.iter().map(item_key).collect();
    assert_eq!(asc_keys, keys.iter().rev().cloned().collect::<Vec<_>>());
    let one_turn = replies
        .call(
            &mut s.client,
            "thread/items/list",
            json!({"threadId": tid, "turnId": turn_ids[1]}),
        )
        .await;
    assert_eq!(one_turn["data"].as_array().unwrap().len(), 2);
    // An item anchor continues after that item, within its turn.
    let user_two = one_turn["data"][0]["item"]["id"].clone();
    let after = replies
        .call(
            &mut s.client,
            "thread/items/list",
            json!({"threadId": tid, "turnId": turn_ids[1],
                "cursor": {"type": "item", "itemId": user_two}}),
        )
        .await;
    assert_eq!(after["data"][0]["item"]["text"], "answer two");
    assert_eq!(after["data"].as_array().unwrap().len(), 1);

    // Bad cursors: tampered, of the other listing, of another thread.
    let other = s.client.start_thread(json!({})).await;
    turn(&mut s.client, &other, "elsewhere").await;
    let other_page = s
        .client
        .call("thread/turns/list", json!({"threadId": other, "limit": 1}))
        .await;
    let foreign = other_page["backwardsCursor"].as_str().unwrap().to_string();
    let turns_cursor = summary["nextCursor"].as_str().unwrap().to_string();
    let far = turns_cursor.replace("\"rolloutOrdinal\":", "\"rolloutOrdinal\":9999");
    for (method, cursor) in [
        ("thread/turns/list", "not a cursor".to_string()),
        ("thread/turns/list", foreign.clone()),
        ("thread/turns/list", far),
        ("thread/items/list", turns_cursor.clone()),
        ("thread/items/list", foreign),
    ] {
        let e = error_of(
            &mut s.client,
            method,
            json!({"threadId": tid, "cursor": cursor}),
        )
        .await;
        assert_eq!(e["code"], -32600, "{method} {cursor}: {e}");
        assert_eq!(e["message"], format!("invalid cursor: {cursor}"));
    }
    let e = error_of(
        &mut s.client,
        "thread/items/list",
        json!({"threadId": tid, "cursor": {"type": "item", "itemId": "x"}}),
    )
    .await;
    assert_eq!(
        e["message"],
        "turnId is required when cursor is an item anchor"
    );
    let e = error_of(
        &mut s.client,
        "thread/items/list",
        json!({"threadId": tid, "deferOutput": {"commandExecution": true}}),
    )
    .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("deferOutput.commandExecution is not supported"),
        "{e}"
    );
    let e = error_of(
        &mut s.client,
        "thread/turns/list",
        json!({"threadId": "0199a213-81c0-7800-8aa1-bbab2a035a53"}),
    )
    .await;
    assert_eq!(
        e["message"],
        "thread not loaded: 0199a213-81c0-7800-8aa1-bbab2a035a53"
    );
    replies.0.extend(unsolicited(&s.client.seen));
    drop(s);

    // A new server: the thread is not loaded; its file is paged the same.
    let mut s = StdioServer::start(&home, &[]).await;
    s.client.initialize("history-2").await;
    let cold = replies
        .call(
            &mut s.client,
            "thread/turns/list",
            json!({"threadId": tid, "limit": 2, "itemsView": "notLoaded"}),
        )
        .await;
    assert_eq!(ids(&cold), newest_first[..2]);
    let resumed = replies
        .call(
            &mut s.client,
            "thread/resume",
            json!({"threadId": tid, "excludeTurns": true}),
        )
        .await;
    assert_eq!(resumed["thread"]["turns"], json!([]));
    assert_eq!(resumed["thread"]["historyMode"], "paginated");
    let turns_cursor = resumed["turnsBackwardsCursor"].as_str().unwrap();
    let items_cursor = resumed["itemsBackwardsCursor"].as_str().unwrap();
    let cursor: Value = serde_json::from_str(turns_cursor).unwrap();
    assert_eq!(cursor["requestedThreadId"], tid.as_str());
    assert_eq!(cursor["scope"]["kind"], "turns");
    // As upstream's TUI uses them.
    let page = replies
        .call(
            &mut s.client,
            "thread/turns/list",
            json!({"threadId": tid, "cursor": turns_cursor, "limit": 5,
                "sortDirection": "desc", "itemsView": "notLoaded"}),
        )
        .await;
    assert_eq!(ids(&page), newest_first);
    assert_eq!(page["nextCursor"], Value::Null);
    assert_eq!(page["backwardsCursor"], turns_cursor);
    let items = replies
        .call(
            &mut s.client,
            "thread/items/list",
            json!({"threadId": tid, "turnId": null, "cursor": items_cursor,
                "limit": 100, "sortDirection": "desc"}),
        )
        .await;
    let got: Vec<_> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(item_key)
        .collect();
    assert_eq!(got, keys);
    // Full hydration of a paginated thread is deprecated (upstream's notice,
    // before the result); the paged reads above drew none.
    assert!(s.client.seen_method("deprecationNotice").is_empty());
    let id = s
        .client
        .request(
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
    s.client.response(id).await;
    let notice = s
        .client
        .seen
        .iter()
        .position(|m| m["method"] == "deprecationNotice")
        .expect("a deprecationNotice");
    let reply = s.client.seen.iter().position(|m| m["id"] == id).unwrap();
    assert!(notice < reply);
    assert!(s.client.seen[notice]["params"]["summary"]
        .as_str()
        .unwrap()
        .starts_with(
            "Full-history hydration is deprecated for paginated threads; omit `includeTurns`"
        ));
    s.client
        .call("thread/resume", json!({"threadId": tid}))
        .await;
    assert_eq!(s.client.seen_method("deprecationNotice").len(), 2);
    // `initialTurnsPage` puts the first page in the resume result.
    let resumed = replies
        .call(
            &mut s.client,
            "thread/resume",
            json!({"threadId": tid, "excludeTurns": true,
                "initialTurnsPage": {"limit": 1, "itemsView": "notLoaded"}}),
        )
        .await;
    assert_eq!(ids(&resumed["initialTurnsPage"]), newest_first[..1]);
    assert!(resumed["initialTurnsPage"]["nextCursor"].is_string());
    // `historyMode` is kept, and checked.
    let legacy = replies
        .call(
            &mut s.client,
            "thread/start",
            json!({"historyMode": "legacy"}),
        )
        .await;
    assert_eq!(legacy["thread"]["historyMode"], "legacy");
    let e = error_of(
        &mut s.client,
        "thread/start",
        json!({"historyMode": "sideways"}),
    )
    .await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown variant `sideways`"),
        "{e}"
    );
    replies.0.extend(unsolicited(&s.client.seen));
    validate_experimental(&replies.0);
}

/// The user and agent texts a model request carried.
fn request_texts(input: &[Value]) -> Vec<String> {
    input
        .iter()
        .filter_map(|i| i["content"][0]["text"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_copies_the_history_and_goes_its_own_way() {
    let mock = MockModelServer::start(vec![
        sse::message("first answer"),
        sse::message("second answer"),
        sse::message("fork answer"),
        sse::message("source answer"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut replies = Replies::default();
    let mut s = StdioServer::start(&home, &[]).await;
    // Upstream's own TUI is spared the hydration notice.
    s.client.initialize("codex-tui").await;
    let src = s.client.start_thread(json!({})).await;
    // Nothing to copy before the first turn (upstream's words).
    let e = error_of(&mut s.client, "thread/fork", json!({"threadId": src})).await;
    assert_eq!(
        e["message"],
        format!("no rollout found for thread id {src}")
    );
    let t1 = turn(&mut s.client, &src, "first").await;
    turn(&mut s.client, &src, "second").await;
    let source = s
        .client
        .call(
            "thread/read",
            json!({"threadId": src, "includeTurns": true}),
        )
        .await;

    let forked = replies
        .call(&mut s.client, "thread/fork", json!({"threadId": src}))
        .await;
    let fid = forked["thread"]["id"].as_str().unwrap().to_string();
    assert_ne!(fid, src);
    assert_eq!(forked["thread"]["forkedFromId"], src.as_str());
    assert_eq!(forked["thread"]["name"], Value::Null);
    assert_eq!(forked["thread"]["preview"], "first");
    assert_eq!(forked["thread"]["status"]["type"], "idle");
    assert_eq!(forked["thread"]["turns"], source["thread"]["turns"]);
    let started = s
        .client
        .wait_for("thread/started of the fork", |v| {
            v["method"] == "thread/started" && v["params"]["thread"]["id"] == fid.as_str()
        })
        .await;
    assert_eq!(started["params"]["thread"]["forkedFromId"], src.as_str());
    // Its session file is a fork as upstream writes one.
    let path = forked["thread"]["path"].as_str().unwrap();
    assert_ne!(Some(path), source["thread"]["path"].as_str());
    let text = std::fs::read_to_string(path).unwrap();
    let meta: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(meta["type"], "session_meta");
    assert_eq!(meta["payload"]["id"], fid.as_str());
    assert_eq!(meta["payload"]["forked_from_id"], src.as_str());
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"session_meta\""))
            .count(),
        1
    );

    // The fork's next turn sends the copied history to the model.
    turn(&mut s.client, &fid, "fork only").await;
    let texts = request_texts(&mock.model_requests()[2].input());
    for t in [
        "first",
        "first answer",
        "second",
        "second answer",
        "fork only",
    ] {
        assert!(texts.contains(&t.to_string()), "{t} missing: {texts:?}");
    }
    // The source goes on without it.
    turn(&mut s.client, &src, "source only").await;
    let texts = request_texts(&mock.model_requests()[3].input());
    assert!(!texts.contains(&"fork only".to_string()), "{texts:?}");
    let fork_read = replies
        .call(
            &mut s.client,
            "thread/read",
            json!({"threadId": fid, "includeTurns": true}),
        )
        .await;
    assert_eq!(fork_read["thread"]["turns"].as_array().unwrap().len(), 3);
    assert_eq!(fork_read["thread"]["forkedFromId"], src.as_str());
    let src_read = s
        .client
        .call(
            "thread/read",
            json!({"threadId": src, "includeTurns": true}),
        )
        .await;
    assert_eq!(src_read["thread"]["turns"].as_array().unwrap().len(), 3);
    // The fork's file pages like any other.
    let page = replies
        .call(
            &mut s.client,
            "thread/turns/list",
            json!({"threadId": fid, "limit": 10, "sortDirection": "asc"}),
        )
        .await;
    assert_eq!(ids(&page)[0], t1);
    assert_eq!(page["data"].as_array().unwrap().len(), 3);

    // Up to a point: through the first turn, or before it.
    let through = replies
        .call(
            &mut s.client,
            "thread/fork",
            json!({"threadId": src, "lastTurnId": t1, "excludeTurns": true}),
        )
        .await;
    assert_eq!(through["thread"]["turns"], json!([]));
    let tid = through["thread"]["id"].as_str().unwrap();
    let read = s
        .client
        .call(
            "thread/read",
            json!({"threadId": tid, "includeTurns": true}),
        )
        .await;
    let turns = read["thread"]["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1);
    assert_eq!(turns[0]["id"], t1.as_str());
    let before = replies
        .call(
            &mut s.client,
            "thread/fork",
            json!({"threadId": src, "beforeTurnId": t1}),
        )
        .await;
    assert_eq!(before["thread"]["turns"], json!([]));
    // An ephemeral fork has the history but no file.
    let eph = replies
        .call(
            &mut s.client,
            "thread/fork",
            json!({"threadId": src, "ephemeral": true}),
        )
        .await;
    assert_eq!(eph["thread"]["ephemeral"], true);
    assert_eq!(eph["thread"]["path"], Value::Null);
    assert_eq!(eph["thread"]["turns"].as_array().unwrap().len(), 3);

    // Refusals name what they refuse.
    let e = error_of(
        &mut s.client,
        "thread/fork",
        json!({"threadId": src, "lastTurnId": "nope"}),
    )
    .await;
    assert_eq!(e["message"], format!("turn nope not found in thread {src}"));
    let e = error_of(
        &mut s.client,
        "thread/fork",
        json!({"threadId": src, "attachToSource": true}),
    )
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("`attachToSource`"),
        "{e}"
    );
    assert!(s.client.seen_method("deprecationNotice").is_empty());
    replies.0.extend(unsolicited(&s.client.seen));
    validate_experimental(&replies.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_turn_is_listed_in_progress_and_cannot_end_a_fork() {
    // The second answer stalls until the turn is interrupted.
    let mock = MockModelServer::start(vec![
        sse::message("done"),
        sse::stall_after_partial("still going"),
    ])
    .await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let mut s = StdioServer::start(&home, &[]).await;
    s.client.initialize("running").await;
    let tid = s.client.start_thread(json!({})).await;
    let first = turn(&mut s.client, &tid, "one").await;
    let running = s.client.start_turn(&tid, "two").await;
    // The running turn's own delta (the backlog has the first turn's).
    s.client
        .wait_for("a delta of the running turn", |v| {
            v["method"] == "item/agentMessage/delta" && v["params"]["itemId"] == "msg_stall"
        })
        .await;
    let page = s
        .client
        .call("thread/turns/list", json!({"threadId": tid, "limit": 1}))
        .await;
    assert_eq!(ids(&page), std::slice::from_ref(&running));
    assert_eq!(page["data"][0]["status"], "inProgress");
    let e = error_of(
        &mut s.client,
        "thread/fork",
        json!({"threadId": tid, "lastTurnId": running}),
    )
    .await;
    assert_eq!(
        e["message"],
        format!("turn {running} is in progress; it cannot be the last turn of a fork")
    );
    // Through the finished turn is fine, while the other one runs.
    let forked = s
        .client
        .call("thread/fork", json!({"threadId": tid, "lastTurnId": first}))
        .await;
    assert_eq!(forked["thread"]["turns"].as_array().unwrap().len(), 1);
    s.client
        .call(
            "turn/interrupt",
            json!({"threadId": tid, "turnId": running}),
        )
        .await;
    let done = s.client.turn_completed(&tid).await;
    assert_eq!(done["params"]["turn"]["status"], "interrupted");
    let page = s
        .client
        .call("thread/turns/list", json!({"threadId": tid, "limit": 1}))
        .await;
    assert_eq!(page["data"][0]["status"], "interrupted");
}
