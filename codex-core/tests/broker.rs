//! The broker logic against a real (mock) token endpoint over HTTP:
//! single-flight refresh in one process and across processes (flock),
//! the breaker, 401 recovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use codex_core::auth::refresh::AuthEndpoints;
use codex_core::auth::{AuthError, CredentialsStoreMode, LocalBroker};
use codex_test_support::mock_oauth::{access_token, chatgpt_auth_json};
use codex_test_support::{MockOAuthServer, RefreshBehavior};
use serde_json::json;

fn broker(home: &std::path::Path, oauth: &MockOAuthServer) -> LocalBroker {
    LocalBroker::open(
        home.to_path_buf(),
        CredentialsStoreMode::File,
        AuthEndpoints {
            issuer: oauth.issuer(),
            ..AuthEndpoints::default()
        },
    )
    .0
}

fn expired_home() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("auth.json"),
        chatgpt_auth_json(&access_token(-60, "old"), "rt-old"),
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn many_waiters_share_one_refresh() {
    let oauth = MockOAuthServer::start().await;
    oauth.set_refresh_delay(Duration::from_millis(200));
    let home = expired_home();
    let b = broker(home.path(), &oauth);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.get_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap().access_token);
    }
    assert_eq!(oauth.refresh_count(), 1);
    tokens.dedup();
    assert_eq!(tokens, oauth.issued());
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.path().join("auth.json")).unwrap())
            .unwrap();
    assert_eq!(saved["tokens"]["refresh_token"], "rt-refreshed-1");
    assert_eq!(saved["auth_mode"], "chatgpt");
    let body = &oauth.requests()[0].1;
    let sent: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(sent["grant_type"], "refresh_token");
    assert_eq!(sent["refresh_token"], "rt-old");
    assert_eq!(sent["refresh_reason"], "proactive_expiry");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_brokers_on_one_home_refresh_once() {
    let oauth = MockOAuthServer::start().await;
    oauth.set_refresh_delay(Duration::from_millis(300));
    let home = expired_home();
    // Two independent brokers (separate locks, caches and HTTP clients):
    // only the file lock and the re-read keep them from both refreshing.
    let a = broker(home.path(), &oauth);
    let b = broker(home.path(), &oauth);
    let (x, y) = tokio::join!(a.get_token(), b.get_token());
    assert_eq!(x.unwrap(), y.unwrap());
    assert_eq!(oauth.refresh_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_endpoint_gives_everyone_the_same_error_and_opens_the_breaker() {
    let oauth = MockOAuthServer::start().await;
    oauth.set_refresh(RefreshBehavior::Fail {
        status: 503,
        body: json!({"error": "unavailable"}),
    });
    let home = expired_home();
    let b = broker(home.path(), &oauth);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.get_token().await })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        errors.push(t.await.unwrap().unwrap_err());
    }
    assert!(
        matches!(errors[0], AuthError::Transient(_)),
        "{:?}",
        errors[0]
    );
    assert!(errors.iter().all(|e| *e == errors[0]));
    assert_eq!(oauth.refresh_count(), 1, "the breaker answered the rest");
    assert_eq!(b.get_token().await.unwrap_err(), errors[0]);
    assert_eq!(oauth.refresh_count(), 1);

    // A rejected refresh token needs a new sign-in.
    oauth.set_refresh(RefreshBehavior::Fail {
        status: 401,
        body: json!({"error": {"code": "refresh_token_reused"}}),
    });
    let home = expired_home();
    let b = broker(home.path(), &oauth);
    let e = b.get_token().await.unwrap_err();
    assert!(
        matches!(&e, AuthError::ReloginRequired(m) if m.contains("already used")),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_refreshed_once_for_all_who_saw_it() {
    let oauth = MockOAuthServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let valid = access_token(3600, "valid-but-revoked");
    std::fs::write(
        home.path().join("auth.json"),
        chatgpt_auth_json(&valid, "rt-1"),
    )
    .unwrap();
    let b = broker(home.path(), &oauth);
    assert_eq!(b.get_token().await.unwrap().access_token, valid);
    assert_eq!(oauth.refresh_count(), 0);
    let (x, y) = tokio::join!(
        b.refresh_stale(valid.clone()),
        b.refresh_stale(valid.clone())
    );
    assert_eq!(x.unwrap(), y.unwrap());
    assert_eq!(oauth.refresh_count(), 1);
    let sent: serde_json::Value = serde_json::from_str(&oauth.requests()[0].1).unwrap();
    assert_eq!(sent["refresh_reason"], "unauthorized_recovery");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_broker_service_sheds_what_is_beyond_its_limit() {
    use codex_core::auth::broker::{broker_service, BrokerRequest, BrokerResponse};
    use tower::ServiceExt;

    let oauth = MockOAuthServer::start().await;
    oauth.set_refresh_delay(Duration::from_millis(800));
    let home = expired_home();
    let svc = broker_service(broker(home.path(), &oauth), 4);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let r = svc.oneshot(BrokerRequest::GetToken).await;
                (r, started.elapsed())
            })
        })
        .collect();
    let mut served = 0;
    let mut shed = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (Ok(BrokerResponse::Token(_)), _) => served += 1,
            (Err(AuthError::Overloaded), after) => shed.push(after),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        served, 4,
        "the limit's worth is served (one refresh for all)"
    );
    assert_eq!(shed.len(), 36);
    // Shed at once: none of them waited for the slow refresh.
    assert!(
        shed.iter().all(|d| *d < Duration::from_millis(700)),
        "{shed:?}"
    );
    assert_eq!(oauth.refresh_count(), 1);
    // The load gone, the broker serves again.
    let again = svc.oneshot(BrokerRequest::GetToken).await;
    assert!(matches!(again, Ok(BrokerResponse::Token(_))), "{again:?}");
}
