//! The browser sign-in's loopback callback server, over real TCP, against
//! hostile local clients: malformed escapes, oversized heads, silent and
//! trickling connections, markup in the provider's error. Each test then
//! completes a real sign-in (token exchange against the mock issuer) and
//! checks the saved `auth.json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use codex_core::auth::broker::{BrokerEvent, LoginKind};
use codex_core::auth::login::query_params;
use codex_core::auth::refresh::AuthEndpoints;
use codex_core::auth::{CredentialsStoreMode, LocalBroker};
use codex_test_support::MockOAuthServer;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Longer than anything here should take; shorter than the server's 10 s
/// header timeout where a test says so.
const WAIT: Duration = Duration::from_secs(20);

/// A signed-in-to-be home, its broker and the browser sign-in in progress.
struct Flow {
    home: tempfile::TempDir,
    broker: LocalBroker,
    events: mpsc::Receiver<BrokerEvent>,
    login_id: String,
    /// `127.0.0.1:PORT` of the callback server.
    addr: String,
    state: String,
    challenge: String,
}

impl Flow {
    async fn start(oauth: &MockOAuthServer) -> Self {
        // Any free port; every test sets the same value, so their order
        // does not matter.
        std::env::set_var("CODEX_LOGIN_CALLBACK_PORT", "0");
        let home = tempfile::tempdir().unwrap();
        let (broker, _) = LocalBroker::open(
            home.path().to_path_buf(),
            CredentialsStoreMode::File,
            AuthEndpoints {
                issuer: oauth.issuer(),
                ..AuthEndpoints::default()
            },
        );
        let (tx, events) = mpsc::channel(16);
        broker.set_event_sink(tx);
        let mut flow = Self {
            home,
            broker,
            events,
            login_id: String::new(),
            addr: String::new(),
            state: String::new(),
            challenge: String::new(),
        };
        flow.restart().await;
        flow
    }

    /// A new browser sign-in in the same home.
    async fn restart(&mut self) {
        let started = self
            .broker
            .login_start(LoginKind::Browser, "test")
            .await
            .unwrap();
        let url = started.auth_url.unwrap();
        let params = query_params(&url);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let redirect = get("redirect_uri");
        self.addr = redirect
            .strip_prefix("http://")
            .unwrap()
            .strip_suffix("/auth/callback")
            .unwrap()
            .to_string();
        self.state = get("state");
        self.challenge = get("code_challenge");
        self.login_id = started.login_id;
    }

    /// The outcome of the sign-in in progress: `Err` holds its error.
    async fn completed(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("no login/completed")
                .unwrap();
            if let BrokerEvent::LoginCompleted {
                login_id,
                success,
                error,
            } = ev
            {
                assert_eq!(login_id, self.login_id);
                return if success {
                    Ok(())
                } else {
                    Err(error.unwrap_or_default())
                };
            }
        }
    }

    /// Plays the browser coming back from the provider, and checks the
    /// sign-in completed and was saved.
    async fn sign_in(&mut self, oauth: &MockOAuthServer) {
        let page = get(
            &self.addr,
            &format!("/auth/callback?code=code-ok&state={}", self.state),
        )
        .await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("Signed in to Codex"), "{page}");
        self.completed().await.unwrap();
        let saved: Value = serde_json::from_str(
            &std::fs::read_to_string(self.home.path().join("auth.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(saved["auth_mode"], "chatgpt");
        assert_eq!(saved["OPENAI_API_KEY"], "sk-exchanged-api-key");
        assert_eq!(saved["tokens"]["account_id"], "acct-1");
        assert_eq!(
            saved["tokens"]["access_token"].as_str(),
            oauth.issued().last().map(String::as_str)
        );
        let exchange = last_code_exchange(oauth);
        assert_eq!(param(&exchange, "code"), "code-ok");
        assert_eq!(
            param(&exchange, "redirect_uri"),
            format!("http://{}/auth/callback", self.addr)
        );
    }
}

/// The form of the last authorization-code request the issuer received.
fn last_code_exchange(oauth: &MockOAuthServer) -> Vec<(String, String)> {
    let (_, body) = oauth
        .requests()
        .into_iter()
        .rev()
        .find(|(p, b)| p == "/oauth/token" && b.contains("grant_type=authorization_code"))
        .expect("no code exchange");
    query_params(&format!("?{body}"))
}

fn param(form: &[(String, String)], k: &str) -> String {
    form.iter().find(|(n, _)| n == k).unwrap().1.clone()
}

/// Sends `raw` on a new connection and reads the answer to the end (the
/// server closes every connection after one answer). A reset counts as an
/// end, with what was read before it: the server may close with bytes of
/// ours unread.
async fn exchange_raw(addr: &str, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(raw).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(addr: &str, target: &str) -> String {
    exchange_raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_escapes_get_400_and_the_listener_keeps_serving() {
    let oauth = MockOAuthServer::start().await;
    let mut flow = Flow::start(&oauth).await;
    let addr = flow.addr.clone();
    let raw = |target: &[u8]| {
        let mut r = b"GET ".to_vec();
        r.extend_from_slice(target);
        r.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        r
    };
    let state = flow.state.clone();
    let cases: Vec<Vec<u8>> = vec![
        // `%a` then a raw multibyte character (é, €, an emoji).
        raw(b"/auth/callback?code=%a\xc3\xa9&state=%a\xe2\x82\xac"),
        raw(b"/auth/callback?state=%a\xf0\x9f\x98\x80"),
        // Invalid UTF-8, raw, in the path and in the query.
        raw(b"/auth/callback\xff?state=x"),
        raw(b"/auth/callback?\xc3\x28=\xa0\xa1"),
        // The same, escaped: decoded leniently, and still not the state.
        raw(b"/auth/callback?code=%a%C3%A9&state=%a%C3%A9"),
        raw(b"/auth/callback?state=%&code=%%zz&%=%"),
        raw(b"/auth/callback?state=%C3%28&code=%FF%FE"),
        // The right state with junk stuck on is not the right state.
        raw(format!("/auth/callback?code=c&state={state}%a%C3%A9").as_bytes()),
        raw(format!("/auth/callback?code=c&state=%a{state}").as_bytes()),
    ];
    for case in &cases {
        let answer = exchange_raw(&addr, case).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?} -> {answer}",
            String::from_utf8_lossy(case)
        );
    }
    // A header that is not UTF-8 is no reason to fail either.
    let answer = exchange_raw(
        &addr,
        b"GET /auth/callback?state=%a%C3%A9 HTTP/1.1\r\nHost: x\r\nX-Junk: %a\xc3\x28\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Not the callback: 404, whatever the method.
    for req in [
        "GET /elsewhere?state=x HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        format!("POST /auth/callback?code=c&state={state} HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n"),
    ] {
        let answer = exchange_raw(&addr, req.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{req} -> {answer}");
    }
    flow.sign_in(&oauth).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_request_heads_are_refused_and_the_listener_keeps_serving() {
    let oauth = MockOAuthServer::start().await;
    let mut flow = Flow::start(&oauth).await;
    let started = Instant::now();
    // A 1 MiB request line that never ends.
    let mut line = b"GET /auth/callback?code=".to_vec();
    line.resize(1 << 20, b'a');
    let answer = exchange_raw(&flow.addr, &line).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // 1 MiB of headers after a fine request line.
    let mut head = format!(
        "GET /auth/callback?code=c&state={} HTTP/1.1\r\n",
        flow.state
    )
    .into_bytes();
    while head.len() < 1 << 20 {
        head.extend_from_slice(format!("x-pad-{}: {}\r\n", head.len(), "b".repeat(200)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let answer = exchange_raw(&flow.addr, &head).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // Refused for their size, not after the 10 s header timeout.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    flow.sign_in(&oauth).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_and_trickling_clients_do_not_hold_up_the_callback() {
    let oauth = MockOAuthServer::start().await;
    let mut flow = Flow::start(&oauth).await;
    // One connects and says nothing; one sends a byte every 100 ms; one
    // stops halfway through its headers.
    let mut silent = TcpStream::connect(&flow.addr).await.unwrap();
    let mut trickle = TcpStream::connect(&flow.addr).await.unwrap();
    let mut half = TcpStream::connect(&flow.addr).await.unwrap();
    half.write_all(b"GET /auth/callback?code=x HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickler = tokio::spawn(async move {
        for b in b"GET /auth/callback?code=slow&state=slow HTTP/1.1\r\nHost: x\r\n"
            .iter()
            .cycle()
        {
            if trickle.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        trickle
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    flow.sign_in(&oauth).await;
    // Well within the header timeout that would free a sequential server.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The sign-in over, the server is gone and so are its connections.
    for s in [&mut silent, &mut half] {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
            .await
            .expect("connection left open");
    }
    tokio::time::timeout(WAIT, trickler).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_by_the_header_timeout() {
    let oauth = MockOAuthServer::start().await;
    let mut flow = Flow::start(&oauth).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(&flow.addr).await.unwrap();
    let mut trickle = TcpStream::connect(&flow.addr).await.unwrap();
    let trickler = tokio::spawn(async move {
        // A byte every 200 ms, for ever: the timeout counts from the
        // connection, not from the last byte.
        for b in b"GET /auth/callback?code=slow HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain(std::iter::repeat(&b'z'))
        {
            if trickle.write_all(&[*b]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        unreachable!()
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, silent.read_to_end(&mut buf))
        .await
        .expect("silent connection left open");
    let silent_closed = started.elapsed();
    let trickle_closed = tokio::time::timeout(WAIT, trickler).await.unwrap().unwrap();
    for t in [silent_closed, trickle_closed] {
        assert!(
            t >= Duration::from_secs(9) && t < Duration::from_secs(16),
            "{t:?}"
        );
    }
    // The sign-in is still waiting, and completes.
    flow.sign_in(&oauth).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_error_is_escaped_in_the_page() {
    let oauth = MockOAuthServer::start().await;
    let mut flow = Flow::start(&oauth).await;
    let evil = "%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27%26";
    // Without the state, an error ends nothing.
    let answer = get(
        &flow.addr,
        &format!("/auth/callback?error=access_denied&error_description={evil}"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = get(
        &flow.addr,
        &format!(
            "/auth/callback?state={}&error=access_denied&error_description={evil}",
            flow.state
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"),
        "{answer}"
    );
    assert!(!answer.contains("<script"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'"),
        "{answer}"
    );
    // The error is the sign-in's outcome, as plain text.
    let error = flow.completed().await.unwrap_err();
    assert_eq!(error, "Sign-in failed: <script>alert(1)</script>\"'&");
    assert!(!flow.home.path().join("auth.json").exists());
    // An error without a description shows the error code, escaped too.
    flow.restart().await;
    let answer = get(
        &flow.addr,
        &format!("/auth/callback?state={}&error=%3Cb%3E", flow.state),
    )
    .await;
    assert!(
        answer.contains("&lt;b&gt;") && !answer.contains("<b>"),
        "{answer}"
    );
    assert_eq!(flow.completed().await.unwrap_err(), "Sign-in failed: <b>");
    // A new sign-in completes.
    flow.restart().await;
    flow.sign_in(&oauth).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_ends_the_sign_in() {
    let oauth = MockOAuthServer::start().await;
    let mut flow = Flow::start(&oauth).await;
    let answer = get(&flow.addr, "/cancel").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Login cancelled"), "{answer}");
    assert_eq!(
        flow.completed().await.unwrap_err(),
        "Login was not completed"
    );
    // The listener is gone.
    assert!(TcpStream::connect(&flow.addr).await.is_err());
    flow.restart().await;
    flow.sign_in(&oauth).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pkce_verifier_is_random_and_matches_its_challenge() {
    let oauth = MockOAuthServer::start().await;
    let mut flow = Flow::start(&oauth).await;
    let mut verifiers = Vec::new();
    for round in 0..2 {
        if round > 0 {
            flow.restart().await;
        }
        flow.sign_in(&oauth).await;
        let verifier = param(&last_code_exchange(&oauth), "code_verifier");
        // 64 random bytes, base64url without padding (RFC 7636: 43 to 128
        // characters of `[A-Za-z0-9-._~]`).
        assert_eq!(verifier.len(), 86, "{verifier}");
        assert!(
            verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{verifier}"
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&verifier).unwrap().len(), 64);
        // S256: the challenge sent to the authorize URL.
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            flow.challenge
        );
        verifiers.push((verifier, flow.state.clone()));
    }
    assert_ne!(verifiers[0].0, verifiers[1].0);
    assert_ne!(verifiers[0].1, verifiers[1].1);
}
