//! The `account/*` methods: answered by the broker (the only writer of
//! credentials); sign-ins that finish later are announced to every
//! connection (`account/login/completed`, `account/updated`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use codex_core::auth::broker::{AccountInfo, BrokerEvent, LoginKind};
use codex_core::auth::{BrokerRequest, BrokerResponse};
use codex_ipc::jsonrpc::RpcError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::conn::Conn;
use super::{Reply, Server};

/// How long an `account/*` request waits for the broker.
const DEADLINE: Duration = Duration::from_secs(30);

/// Upstream's `PlanType` values; anything else reads `unknown`.
const PLAN_TYPES: &[&str] = &[
    "free",
    "go",
    "plus",
    "pro",
    "prolite",
    "promax",
    "team",
    "self_serve_business_prolite",
    "self_serve_business_usage_based",
    "business",
    "ent26",
    "enterprise_cbp_automation",
    "enterprise_cbp_usage_based",
    "enterprise",
    "edu",
    "edu_plus",
    "edu_pro",
    "sci",
    "sci_plus",
];

fn plan(p: Option<&str>) -> Value {
    match p {
        None => Value::Null,
        Some(p) if PLAN_TYPES.contains(&p) => json!(p),
        Some(_) => json!("unknown"),
    }
}

/// `account/updated` params.
fn updated(info: &AccountInfo) -> Value {
    json!({"authMode": info.auth_mode, "planType": plan(info.plan_type.as_deref())})
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum LoginParams {
    #[serde(rename_all = "camelCase")]
    ApiKey {
        api_key: String,
    },
    Chatgpt {},
    ChatgptDeviceCode {},
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelParams {
    login_id: String,
}

fn broker_err(e: codex_core::auth::AuthError) -> RpcError {
    RpcError::internal(e.to_string())
}

impl Server {
    async fn ask_broker(&self, req: BrokerRequest) -> Result<BrokerResponse, RpcError> {
        self.broker.call(req, DEADLINE).await.map_err(broker_err)
    }

    pub(crate) async fn account_read(&self) -> Result<Value, RpcError> {
        let BrokerResponse::Account(info) = self.ask_broker(BrokerRequest::Account).await? else {
            return Err(RpcError::internal("unexpected broker answer"));
        };
        let account = match info.auth_mode.as_deref() {
            None => Value::Null,
            Some("chatgpt") => json!({
                "type": "chatgpt",
                "email": info.email,
                "planType": plan(info.plan_type.as_deref()).as_str().unwrap_or("unknown"),
            }),
            Some(_) => json!({"type": "apiKey"}),
        };
        Ok(json!({
            "account": account,
            "requiresOpenaiAuth": self.default_model.1.requires_openai_auth,
            "userId": null,
        }))
    }

    pub(crate) async fn account_login_start(&self, conn: &Arc<Conn>, params: &Value) -> Reply {
        let p: LoginParams = match codex_ipc::app_server::methods::parse(params) {
            Ok(p) => p,
            Err(e) => return Reply::Now(Err(e)),
        };
        let kind = match p {
            LoginParams::ApiKey { api_key } => {
                if api_key.trim().is_empty() {
                    return Reply::Now(Err(RpcError::invalid_request(
                        "Invalid request: apiKey is empty",
                    )));
                }
                let saved = self
                    .ask_broker(BrokerRequest::LoginApiKey {
                        api_key: api_key.trim().to_string(),
                    })
                    .await;
                if let Err(e) = saved {
                    return Reply::Now(Err(e));
                }
                let info = AccountInfo {
                    auth_mode: Some("apikey".into()),
                    ..Default::default()
                };
                let done = json!({"loginId": null, "success": true, "error": null, "onboardingEntrypoint": null});
                self.broadcast_except(conn.id, "account/updated", updated(&info));
                return Reply::NowThen(
                    json!({"type": "apiKey"}),
                    vec![
                        ("account/login/completed", done),
                        ("account/updated", updated(&info)),
                    ],
                );
            }
            LoginParams::Chatgpt {} => LoginKind::Browser,
            LoginParams::ChatgptDeviceCode {} => LoginKind::DeviceCode,
            LoginParams::Other => {
                return Reply::Now(Err(RpcError::invalid_request(
                    "Invalid request: this login type is not supported by this server",
                )))
            }
        };
        let originator = conn
            .client_name()
            .unwrap_or_else(|| "codex_app_server".into());
        match self
            .ask_broker(BrokerRequest::LoginStart { kind, originator })
            .await
        {
            Ok(BrokerResponse::LoginStarted(s)) => Reply::Now(Ok(match kind {
                LoginKind::Browser => {
                    json!({"type": "chatgpt", "loginId": s.login_id, "authUrl": s.auth_url})
                }
                LoginKind::DeviceCode => json!({
                    "type": "chatgptDeviceCode",
                    "loginId": s.login_id,
                    "userCode": s.user_code,
                    "verificationUrl": s.verification_url,
                }),
            })),
            Ok(_) => Reply::Now(Err(RpcError::internal("unexpected broker answer"))),
            Err(e) => Reply::Now(Err(e)),
        }
    }

    pub(crate) async fn account_login_cancel(&self, params: &Value) -> Result<Value, RpcError> {
        let p: CancelParams = codex_ipc::app_server::methods::parse(params)?;
        if uuid::Uuid::parse_str(&p.login_id).is_err() {
            return Err(RpcError::invalid_request(format!(
                "invalid login id: {}",
                p.login_id
            )));
        }
        match self
            .ask_broker(BrokerRequest::LoginCancel {
                login_id: p.login_id,
            })
            .await?
        {
            BrokerResponse::LoginCancelled { found: true } => Ok(json!({"status": "canceled"})),
            _ => Ok(json!({"status": "notFound"})),
        }
    }

    pub(crate) async fn account_logout(&self, conn: &Arc<Conn>) -> Reply {
        if let Err(e) = self.ask_broker(BrokerRequest::Logout).await {
            return Reply::Now(Err(e));
        }
        let note = updated(&AccountInfo::default());
        self.broadcast_except(conn.id, "account/updated", note.clone());
        Reply::NowThen(json!({}), vec![("account/updated", note)])
    }
}

/// Announces what the broker reports to every connection.
pub(crate) async fn forward_broker_events(
    server: Weak<Server>,
    mut events: tokio::sync::mpsc::Receiver<BrokerEvent>,
) {
    while let Some(ev) = events.recv().await {
        let Some(server) = server.upgrade() else {
            return;
        };
        match ev {
            BrokerEvent::LoginCompleted {
                login_id,
                success,
                error,
            } => server.broadcast(
                "account/login/completed",
                json!({"loginId": login_id, "success": success, "error": error, "onboardingEntrypoint": null}),
            ),
            BrokerEvent::AccountUpdated(info) => {
                server.broadcast("account/updated", updated(&info))
            }
        }
    }
}
