//! The `account/*` methods: answered by the broker (the only writer of
//! credentials); sign-ins that finish later are announced to every
//! connection (`account/login/completed`, `account/updated`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use codex_core::auth::broker::{AccountInfo, BrokerEvent, LoginKind};
use codex_core::auth::{BrokerRequest, BrokerResponse};
use codex_ipc::app_server::methods::{self, CancelLoginAccountParams, LoginAccountParams};
use codex_ipc::app_server::notifications::{
    AccountLoginCompletedNotification, AccountUpdatedNotification, ServerNotification,
};
use codex_ipc::app_server::objects::plan_type;
use codex_ipc::app_server::responses::{
    Account, CancelLoginAccountResponse, CancelLoginAccountStatus, GetAccountResponse,
    LoginAccountResponse, LogoutAccountResponse,
};
use codex_ipc::jsonrpc::RpcError;
use serde_json::Value;

use super::conn::Conn;
use super::{Reply, Server};

/// How long an `account/*` request waits for the broker.
const DEADLINE: Duration = Duration::from_secs(30);

/// `account/updated` for what the broker reports.
fn updated(info: &AccountInfo) -> ServerNotification {
    AccountUpdatedNotification {
        auth_mode: info.auth_mode.clone(),
        plan_type: info.plan_type.as_deref().map(plan_type),
    }
    .into()
}

fn broker_err(e: codex_core::auth::AuthError) -> RpcError {
    codex_ipc::broker_link::rpc_error(e, None)
}

impl Server {
    pub(crate) async fn ask_broker(&self, req: BrokerRequest) -> Result<BrokerResponse, RpcError> {
        self.broker.call(req, DEADLINE).await.map_err(broker_err)
    }

    pub(crate) async fn account_read(&self) -> Result<GetAccountResponse, RpcError> {
        let BrokerResponse::Account(info) = self.ask_broker(BrokerRequest::Account).await? else {
            return Err(RpcError::internal("unexpected broker answer"));
        };
        let account = match info.auth_mode.as_deref() {
            None => None,
            Some("chatgpt") => Some(Account::Chatgpt {
                email: info.email,
                plan_type: plan_type(info.plan_type.as_deref().unwrap_or("unknown")),
            }),
            Some(_) => Some(Account::ApiKey),
        };
        Ok(GetAccountResponse {
            account,
            requires_openai_auth: self.default_model.1.requires_openai_auth,
            user_id: None,
        })
    }

    pub(crate) async fn account_login_start(&self, conn: &Arc<Conn>, params: &Value) -> Reply {
        let p: LoginAccountParams = match methods::parse(params) {
            Ok(p) => p,
            Err(e) => return Reply::Now(Err(e)),
        };
        let kind = match p {
            LoginAccountParams::ApiKey { api_key } => {
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
                let done = AccountLoginCompletedNotification {
                    login_id: None,
                    success: true,
                    error: None,
                    onboarding_entrypoint: None,
                };
                self.broadcast_except(conn.id, &updated(&info));
                return Reply::now_then(
                    &LoginAccountResponse::ApiKey,
                    vec![done.into(), updated(&info)],
                );
            }
            LoginAccountParams::Chatgpt {} => LoginKind::Browser,
            LoginAccountParams::ChatgptDeviceCode {} => LoginKind::DeviceCode,
            LoginAccountParams::Other => {
                return Reply::Now(Err(RpcError::invalid_request(
                    "Invalid request: this login type is not supported by this server",
                )))
            }
        };
        let originator = conn
            .client_name()
            .unwrap_or_else(|| "codex_app_server".into());
        let answer = match self
            .ask_broker(BrokerRequest::LoginStart { kind, originator })
            .await
        {
            Ok(BrokerResponse::LoginStarted(s)) => Ok(match kind {
                LoginKind::Browser => LoginAccountResponse::Chatgpt {
                    login_id: s.login_id,
                    auth_url: s.auth_url,
                },
                LoginKind::DeviceCode => LoginAccountResponse::ChatgptDeviceCode {
                    login_id: s.login_id,
                    user_code: s.user_code,
                    verification_url: s.verification_url,
                },
            }),
            Ok(_) => Err(RpcError::internal("unexpected broker answer")),
            Err(e) => Err(e),
        };
        Reply::now(answer)
    }

    pub(crate) async fn account_login_cancel(
        &self,
        params: &Value,
    ) -> Result<CancelLoginAccountResponse, RpcError> {
        let p: CancelLoginAccountParams = methods::parse(params)?;
        if uuid::Uuid::parse_str(&p.login_id).is_err() {
            return Err(RpcError::invalid_request(format!(
                "invalid login id: {}",
                p.login_id
            )));
        }
        let status = match self
            .ask_broker(BrokerRequest::LoginCancel {
                login_id: p.login_id,
            })
            .await?
        {
            BrokerResponse::LoginCancelled { found: true } => CancelLoginAccountStatus::Canceled,
            _ => CancelLoginAccountStatus::NotFound,
        };
        Ok(CancelLoginAccountResponse { status })
    }

    pub(crate) async fn account_logout(&self, conn: &Arc<Conn>) -> Reply {
        if let Err(e) = self.ask_broker(BrokerRequest::Logout).await {
            return Reply::Now(Err(e));
        }
        let note = updated(&AccountInfo::default());
        self.broadcast_except(conn.id, &note);
        Reply::now_then(&LogoutAccountResponse {}, vec![note])
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
                &AccountLoginCompletedNotification {
                    login_id: Some(login_id),
                    success,
                    error,
                    onboarding_entrypoint: None,
                }
                .into(),
            ),
            BrokerEvent::AccountUpdated(info) => server.broadcast(&updated(&info)),
            BrokerEvent::McpLoginCompleted {
                login_id,
                server: name,
                success,
                error,
            } => server.broadcast(
                &codex_ipc::app_server::notifications::McpServerOauthLoginCompletedNotification {
                    name,
                    success,
                    error,
                    login_id: Some(login_id),
                    thread_id: None,
                }
                .into(),
            ),
        }
    }
}
