//! A mock of the OAuth issuer (auth.openai.com) speaking real HTTP on
//! 127.0.0.1: the token endpoint (refresh, authorization-code and
//! token-exchange grants) and the device-code endpoints. Counts and records
//! what it is asked.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// An unsigned JWT with these claims.
pub fn jwt(claims: &Value) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig",
        e.encode(br#"{"alg":"none","typ":"JWT"}"#),
        e.encode(claims.to_string())
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An access token that expires `secs_from_now` from now (negative: already
/// expired), tagged so tests can tell tokens apart.
pub fn access_token(secs_from_now: i64, tag: &str) -> String {
    jwt(&json!({"exp": now() + secs_from_now, "tag": tag}))
}

/// An id token for `email` on a `plan` plan.
pub fn id_token(email: &str, plan: &str, account: &str) -> String {
    jwt(&json!({"email": email, "exp": now() + 3600,
        "https://api.openai.com/auth": {"chatgpt_plan_type": plan, "chatgpt_account_id": account}}))
}

/// An `auth.json` of a ChatGPT sign-in.
pub fn chatgpt_auth_json(access: &str, refresh: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": id_token("dev@example.com", "pro", "acct-1"),
            "access_token": access,
            "refresh_token": refresh,
            "account_id": "acct-1",
        },
        "last_refresh": "2026-01-01T00:00:00Z",
    }))
    .unwrap()
}

/// How the token endpoint answers refresh requests.
#[derive(Debug, Clone)]
pub enum RefreshBehavior {
    /// New tokens, valid for an hour.
    Issue,
    /// This status and JSON body.
    Fail { status: u16, body: Value },
}

#[derive(Debug)]
struct State {
    refresh: RefreshBehavior,
    refresh_delay: Duration,
    refreshes: u64,
    /// Access tokens issued, in order.
    issued: Vec<String>,
    /// (path, body) of every request.
    requests: Vec<(String, String)>,
    /// Device-code polls answered "pending" before success.
    device_pending_polls: u32,
}

pub struct MockOAuthServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockOAuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockOAuthServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            refresh: RefreshBehavior::Issue,
            refresh_delay: Duration::ZERO,
            refreshes: 0,
            issued: Vec::new(),
            requests: Vec::new(),
            device_pending_polls: 2,
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The issuer base URL (`http://127.0.0.1:PORT`).
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.issuer())
    }

    pub fn set_refresh(&self, b: RefreshBehavior) {
        self.state.lock().unwrap().refresh = b;
    }

    /// Refresh answers wait this long.
    pub fn set_refresh_delay(&self, d: Duration) {
        self.state.lock().unwrap().refresh_delay = d;
    }

    /// Refresh requests received so far.
    pub fn refresh_count(&self) -> u64 {
        self.state.lock().unwrap().refreshes
    }

    pub fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn issue(st: &mut State, tag: &str) -> Value {
    let n = st.issued.len() + 1;
    let access = access_token(3600, &format!("{tag}-{n}"));
    st.issued.push(access.clone());
    json!({
        "id_token": id_token("dev@example.com", "pro", "acct-1"),
        "access_token": access,
        "refresh_token": format!("rt-{tag}-{n}"),
    })
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    state
        .lock()
        .unwrap()
        .requests
        .push((path.clone(), body.clone()));
    let json_body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match path.as_str() {
        "/oauth/token" if json_body["grant_type"] == "refresh_token" => {
            let (delay, behavior) = {
                let mut st = state.lock().unwrap();
                st.refreshes += 1;
                (st.refresh_delay, st.refresh.clone())
            };
            tokio::time::sleep(delay).await;
            match behavior {
                RefreshBehavior::Issue => {
                    let body = issue(&mut state.lock().unwrap(), "refreshed");
                    Ok(reply(200, body))
                }
                RefreshBehavior::Fail { status, body } => Ok(reply(status, body)),
            }
        }
        "/oauth/token" if body.contains("grant_type=authorization_code") => {
            let body = issue(&mut state.lock().unwrap(), "login");
            Ok(reply(200, body))
        }
        "/oauth/token" if body.contains("token-exchange") => {
            Ok(reply(200, json!({"access_token": "sk-exchanged-api-key"})))
        }
        "/api/accounts/deviceauth/usercode" => Ok(reply(
            200,
            json!({"device_auth_id": "dev-auth-1", "user_code": "ABCD-1234", "interval": "0"}),
        )),
        "/api/accounts/deviceauth/token" => {
            let pending = {
                let mut st = state.lock().unwrap();
                if st.device_pending_polls > 0 {
                    st.device_pending_polls -= 1;
                    true
                } else {
                    false
                }
            };
            if pending {
                Ok(reply(403, json!({"error": "authorization_pending"})))
            } else {
                Ok(reply(
                    200,
                    json!({"authorization_code": "code-1", "code_challenge": "ch", "code_verifier": "ver"}),
                ))
            }
        }
        _ => Ok(reply(404, json!({"error": "not found"}))),
    }
}
