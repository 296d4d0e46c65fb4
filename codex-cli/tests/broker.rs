//! codex-broker end to end: many worker processes, one refresh; two daemons
//! on one home, one refresh; a failing token endpoint; a 401 mid-session;
//! the broker killed mid-refresh. Real processes, a mock model server and a
//! mock OAuth server over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use codex_test_support::mock_oauth::{access_token, chatgpt_auth_json};
use codex_test_support::{
    procs, sse, MockModelServer, MockOAuthServer, MockResponse, RefreshBehavior, TestHome,
};
use common::app_server::{app_server_command, Client, StdioServer, WAIT};
use serde_json::{json, Value};

/// A home signed in with ChatGPT tokens (`access` as the access token), its
/// provider pointing at `mock` and requiring that sign-in.
fn signed_in_home(mock: &MockModelServer, access: &str) -> TestHome {
    let home = TestHome::new();
    std::fs::write(
        home.codex_home().join("config.toml"),
        format!(
            r#"model = "mock-model"
model_provider = "mock"
approval_policy = "never"

[model_providers.mock]
name = "Mock"
base_url = "{}"
wire_api = "responses"
requires_openai_auth = true
request_max_retries = 0
stream_max_retries = 0
"#,
            mock.url()
        ),
    )
    .unwrap();
    std::fs::write(
        home.codex_home().join("auth.json"),
        chatgpt_auth_json(access, "rt-original"),
    )
    .unwrap();
    home
}

fn daemon(home: &TestHome, oauth: &MockOAuthServer) -> StdioServer {
    let mut cmd = app_server_command(home, &[]);
    cmd.env("CODEX_REFRESH_TOKEN_URL_OVERRIDE", oauth.token_url())
        .env_remove("OPENAI_API_KEY")
        .env_remove("CODEX_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    StdioServer::from_command(cmd)
}

fn bearer(req: &codex_test_support::RecordedRequest) -> String {
    req.header("authorization").unwrap_or_default().to_string()
}

async fn completed_turns(c: &mut Client, n: usize) -> Vec<Value> {
    let mut done = Vec::new();
    while done.len() < n {
        done.push(c.notification("turn/completed").await);
    }
    done
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_workers_with_an_expired_token_cause_one_refresh() {
    let oauth = MockOAuthServer::start().await;
    oauth.set_refresh_delay(Duration::from_millis(300));
    let mock = MockModelServer::start((0..50).map(|_| sse::message("ok")).collect()).await;
    let home = signed_in_home(&mock, &access_token(-60, "expired"));
    let mut s = daemon(&home, &oauth);
    let c = &mut s.client;
    c.initialize("fifty").await;
    let mut threads = Vec::new();
    for _ in 0..50 {
        threads.push(c.start_thread(json!({})).await);
    }
    for t in &threads {
        let id = c
            .request(
                "turn/start",
                json!({"threadId": t, "input": [{"type": "text", "text": "go"}]}),
            )
            .await;
        let _ = id;
    }
    let done = completed_turns(c, 50).await;
    assert!(
        done.iter()
            .all(|d| d["params"]["turn"]["status"] == "completed"),
        "{done:#?}"
    );
    assert_eq!(oauth.refresh_count(), 1, "exactly one refresh");
    let issued = oauth.issued();
    let requests = mock.model_requests();
    assert_eq!(requests.len(), 50);
    for r in &requests {
        assert_eq!(bearer(r), format!("Bearer {}", issued[0]));
        assert_eq!(r.header("chatgpt-account-id"), Some("acct-1"));
    }
    let path = home.codex_home().join("auth.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(saved["tokens"]["access_token"], issued[0].as_str());
    assert_eq!(saved["tokens"]["refresh_token"], "rt-refreshed-1");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_sharing_a_home_refresh_once() {
    let oauth = MockOAuthServer::start().await;
    oauth.set_refresh_delay(Duration::from_millis(500));
    let mock = MockModelServer::start(vec![sse::message("a"), sse::message("b")]).await;
    let home = signed_in_home(&mock, &access_token(-60, "expired"));
    let mut one = daemon(&home, &oauth);
    let mut two = daemon(&home, &oauth);
    one.client.initialize("one").await;
    two.client.initialize("two").await;
    let t1 = one.client.start_thread(json!({})).await;
    let t2 = two.client.start_thread(json!({})).await;
    one.client.start_turn(&t1, "go").await;
    two.client.start_turn(&t2, "go").await;
    let d1 = one.client.turn_completed(&t1).await;
    let d2 = two.client.turn_completed(&t2).await;
    assert_eq!(d1["params"]["turn"]["status"], "completed");
    assert_eq!(d2["params"]["turn"]["status"], "completed");
    assert_eq!(
        oauth.refresh_count(),
        1,
        "the second broker used the first one's refresh"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_token_endpoint_fails_every_waiter_alike_and_trips_the_breaker() {
    let oauth = MockOAuthServer::start().await;
    oauth.set_refresh_delay(Duration::from_millis(300));
    oauth.set_refresh(RefreshBehavior::Fail {
        status: 503,
        body: json!({"error": "temporarily_unavailable"}),
    });
    let mock = MockModelServer::start(vec![]).await;
    let home = signed_in_home(&mock, &access_token(-60, "expired"));
    let mut s = daemon(&home, &oauth);
    let c = &mut s.client;
    c.initialize("failing").await;
    let mut threads = Vec::new();
    for _ in 0..5 {
        threads.push(c.start_thread(json!({})).await);
    }
    for t in &threads {
        c.start_turn(t, "go").await;
    }
    let done = completed_turns(c, 5).await;
    let errors: Vec<String> = done
        .iter()
        .map(|d| {
            assert_eq!(d["params"]["turn"]["status"], "failed", "{d}");
            d["params"]["turn"]["error"]["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(errors.iter().all(|e| e == &errors[0]), "{errors:#?}");
    assert!(errors[0].contains("token endpoint failed"), "{}", errors[0]);
    assert_eq!(oauth.refresh_count(), 1);
    // Within the breaker's window nobody asks the endpoint again.
    c.start_turn(&threads[0], "again").await;
    let again = c.turn_completed(&threads[0]).await;
    assert_eq!(
        again["params"]["turn"]["error"]["message"],
        errors[0].as_str()
    );
    assert_eq!(oauth.refresh_count(), 1);
    assert!(mock.model_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_mid_session_refreshes_once_and_retries_once() {
    let oauth = MockOAuthServer::start().await;
    let mock = MockModelServer::start(vec![
        MockResponse::http_error(401, json!({"error": {"message": "token revoked"}})),
        sse::message("after the refresh"),
    ])
    .await;
    let revoked = access_token(3600, "revoked");
    let home = signed_in_home(&mock, &revoked);
    let mut s = daemon(&home, &oauth);
    let c = &mut s.client;
    c.initialize("401").await;
    let t = c.start_thread(json!({})).await;
    c.start_turn(&t, "go").await;
    let done = c.turn_completed(&t).await;
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "after the refresh"
    );
    assert_eq!(oauth.refresh_count(), 1);
    let requests = mock.model_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(bearer(&requests[0]), format!("Bearer {revoked}"));
    assert_eq!(
        bearer(&requests[1]),
        format!("Bearer {}", oauth.issued()[0])
    );
    let sent: Value = serde_json::from_str(&oauth.requests()[0].1).unwrap();
    assert_eq!(sent["refresh_reason"], "unauthorized_recovery");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_broker_killed_mid_refresh_is_restarted_and_nobody_hangs() {
    let oauth = MockOAuthServer::start().await;
    oauth.set_refresh_delay(Duration::from_secs(3));
    let mock = MockModelServer::start(vec![sse::message("first"), sse::message("second")]).await;
    let home = signed_in_home(&mock, &access_token(-60, "expired"));
    let mut s = daemon(&home, &oauth);
    let c = &mut s.client;
    c.initialize("killer").await;
    let t = c.start_thread(json!({})).await;
    let broker = c.status().await["broker"]["pid"].as_u64().unwrap() as u32;
    assert!(broker > 0);
    c.start_turn(&t, "go").await;
    let deadline = Instant::now() + WAIT;
    while oauth.refresh_count() == 0 {
        assert!(Instant::now() < deadline, "no refresh started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    oauth.set_refresh_delay(Duration::ZERO);
    procs::signal(broker, "-9");
    // The turn ends (with the result of a retried request, or an error) —
    // it does not hang.
    let done = c.turn_completed(&t).await;
    let status = done["params"]["turn"]["status"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(status == "completed" || status == "failed", "{done}");
    let st = c.status().await;
    assert!(st["broker"]["restarts"].as_u64().unwrap() >= 1, "{st}");
    assert_ne!(st["broker"]["pid"].as_u64().unwrap() as u32, broker);
    // And the next turn works.
    c.start_turn(&t, "again").await;
    let again = c.turn_completed(&t).await;
    assert_eq!(again["params"]["turn"]["status"], "completed", "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn model_list_from_the_provider_is_fetched_once_for_twenty_callers() {
    let mock = MockModelServer::start(vec![]).await;
    mock.set_models_delay(Duration::from_millis(300));
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let server = common::app_server::SocketServer::start(&home).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(server.client(&format!("c{i}")).await);
    }
    let answers =
        futures_util::future::join_all(clients.iter_mut().map(|c| c.call("model/list", json!({}))))
            .await;
    let models_gets = || {
        mock.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/models"))
            .count()
    };
    assert_eq!(models_gets(), 1, "one fetch for twenty callers");
    for a in &answers {
        let ids: Vec<&str> = a["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["mock-model", "mock-model-mini"]);
        assert_eq!(a["data"][0]["isDefault"], true);
    }
    // Within the TTL it is served from the cache.
    clients[0].call("model/list", json!({})).await;
    assert_eq!(models_gets(), 1);
    // The bearer key of the provider went along.
    let get = mock
        .requests()
        .into_iter()
        .find(|r| r.method == "GET")
        .unwrap();
    assert_eq!(get.header("authorization"), Some("Bearer sk-mock-test"));
}

mod login {
    use super::*;

    fn login_daemon(home: &TestHome, oauth: &MockOAuthServer) -> StdioServer {
        let mut cmd = app_server_command(home, &[]);
        cmd.env("CODEX_APP_SERVER_LOGIN_ISSUER", oauth.issuer())
            .env("CODEX_LOGIN_CALLBACK_PORT", "0")
            .env_remove("OPENAI_API_KEY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        StdioServer::from_command(cmd)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn device_code_login_completes_and_reaches_the_client() {
        let oauth = MockOAuthServer::start().await;
        let home = TestHome::new();
        let mut s = login_daemon(&home, &oauth);
        let c = &mut s.client;
        c.initialize("login").await;
        let before = c.call("account/read", json!({})).await;
        assert_eq!(before["account"], Value::Null);
        let started = c
            .call("account/login/start", json!({"type": "chatgptDeviceCode"}))
            .await;
        assert_eq!(started["type"], "chatgptDeviceCode");
        assert_eq!(started["userCode"], "ABCD-1234");
        assert_eq!(
            started["verificationUrl"],
            format!("{}/codex/device", oauth.issuer())
        );
        let login_id = started["loginId"].as_str().unwrap().to_string();
        let done = c.notification("account/login/completed").await;
        assert_eq!(done["params"]["loginId"], login_id.as_str());
        assert_eq!(done["params"]["success"], true, "{done}");
        assert_eq!(done["params"]["error"], Value::Null);
        let updated = c.notification("account/updated").await;
        assert_eq!(updated["params"]["authMode"], "chatgpt");
        assert_eq!(updated["params"]["planType"], "pro");
        let after = c.call("account/read", json!({})).await;
        assert_eq!(after["account"]["type"], "chatgpt");
        assert_eq!(after["account"]["email"], "dev@example.com");
        // Polled until approved, then exchanged the code (form-encoded).
        let reqs = oauth.requests();
        assert!(
            reqs.iter()
                .filter(|(p, _)| p == "/api/accounts/deviceauth/token")
                .count()
                >= 3
        );
        let exchange = reqs
            .iter()
            .find(|(p, b)| p == "/oauth/token" && b.contains("authorization_code"))
            .unwrap();
        assert!(exchange.1.contains("code_verifier=ver"), "{}", exchange.1);
        let saved: Value = serde_json::from_str(
            &std::fs::read_to_string(home.codex_home().join("auth.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(saved["auth_mode"], "chatgpt");
        assert_eq!(saved["tokens"]["account_id"], "acct-1");

        // Logout clears it, and says so.
        let out = c.call("account/logout", json!(null)).await;
        assert_eq!(out, json!({}));
        let cleared = c.notification("account/updated").await;
        assert_eq!(cleared["params"]["authMode"], Value::Null);
        assert!(!home.codex_home().join("auth.json").exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn browser_login_through_the_loopback_callback() {
        let oauth = MockOAuthServer::start().await;
        let home = TestHome::new();
        let mut s = login_daemon(&home, &oauth);
        let c = &mut s.client;
        c.initialize("browser").await;
        let started = c
            .call("account/login/start", json!({"type": "chatgpt"}))
            .await;
        let url = started["authUrl"].as_str().unwrap();
        assert!(
            url.starts_with(&format!(
                "{}/oauth/authorize?response_type=code&client_id=app_EMoamEEZ73f0CkXaXp7hrann",
                oauth.issuer()
            )),
            "{url}"
        );
        let params = codex_core::auth::login::query_params(url);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("code_challenge_method"), "S256");
        assert_eq!(get("originator"), "browser");
        // Play the browser: a wrong state is refused, the right one signs in.
        let redirect = get("redirect_uri");
        let wrong = reqwest_get(&format!("{redirect}?code=c1&state=nope")).await;
        assert!(wrong.starts_with("HTTP/1.1 400"), "{wrong}");
        let ok = reqwest_get(&format!("{redirect}?code=c1&state={}", get("state"))).await;
        assert!(ok.contains("Signed in to Codex"), "{ok}");
        let done = c.notification("account/login/completed").await;
        assert_eq!(done["params"]["success"], true, "{done}");
        let saved: Value = serde_json::from_str(
            &std::fs::read_to_string(home.codex_home().join("auth.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(saved["OPENAI_API_KEY"], "sk-exchanged-api-key");
    }

    /// A raw HTTP GET (the "browser").
    async fn reqwest_get(url: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
        s.write_all(format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(WAIT, s.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cli_api_key_login_status_and_logout() {
        let home = TestHome::new();
        let run = |args: &'static [&'static str], stdin: Option<&'static str>| {
            let home = &home;
            async move {
                let mut cmd = common::command(home, args);
                if stdin.is_some() {
                    cmd.stdin(Stdio::piped());
                }
                common::run_cmd(cmd, stdin.map(str::to_string)).await
            }
        };
        let r = run(&["login", "status"], None).await;
        assert_eq!(r.code, Some(1));
        assert!(r.stderr.contains("Not logged in"));
        let r = run(
            &["login", "--with-api-key"],
            Some("sk-fake-test-1234567890abcdef\n"),
        )
        .await;
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(r.stderr.contains("API key saved"));
        let path = home.codex_home().join("auth.json");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"auth_mode\": \"apikey\",\n  \"OPENAI_API_KEY\": \"sk-fake-test-1234567890abcdef\"\n}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let r = run(&["login", "status"], None).await;
        assert_eq!(r.code, Some(0));
        assert!(
            r.stderr.contains("API key configured - sk-fake-***bcdef"),
            "{}",
            r.stderr
        );
        let r = run(&["logout"], None).await;
        assert!(r.stderr.contains("Successfully logged out"));
        assert!(!path.exists());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chatgpt_sign_in_sends_the_openai_provider_to_the_chatgpt_backend() {
    let oauth = MockOAuthServer::start().await;
    let mock = MockModelServer::start(vec![sse::message("from the backend")]).await;
    let home = TestHome::new();
    let base = format!("http://127.0.0.1:{}/backend-api/", mock.port());
    std::fs::write(
        home.codex_home().join("config.toml"),
        format!("model_provider = \"openai\"\nchatgpt_base_url = \"{base}\"\n"),
    )
    .unwrap();
    let token = access_token(3600, "valid");
    std::fs::write(
        home.codex_home().join("auth.json"),
        chatgpt_auth_json(&token, "rt"),
    )
    .unwrap();
    let mut s = daemon(&home, &oauth);
    let c = &mut s.client;
    c.initialize("chatgpt").await;
    let t = c.start_thread(json!({})).await;
    c.start_turn(&t, "hi").await;
    let done = c.turn_completed(&t).await;
    assert_eq!(
        done["params"]["turn"]["items"][0]["text"],
        "from the backend"
    );
    let req = &mock.model_requests()[0];
    assert_eq!(req.path, "/backend-api/codex/responses");
    assert_eq!(bearer(req), format!("Bearer {token}"));
    assert_eq!(oauth.refresh_count(), 0);
}
