//! `turn/start` (queued to the worker; answered when the worker accepts
//! it), `turn/steer` (the same, into the running turn) and
//! `turn/interrupt`.

use std::path::PathBuf;
use std::sync::Arc;

use codex_core::config::SandboxPolicy;
use codex_core::protocol::UserInput;
use codex_core::turn::TurnOverrides;
use codex_ipc::app_server::items::user_input_from_json;
use codex_ipc::app_server::methods::{self, TurnInterruptParams, TurnStartParams};
use codex_ipc::app_server::notifications::WarningNotification;
use codex_ipc::app_server::objects::sandbox_policy_from_json;
use codex_ipc::app_server::responses::TurnInterruptResponse;
use codex_ipc::app_server::turn_control::{
    ThreadCompactStartParams, ThreadCompactStartResponse, TurnSteerParams,
};
use codex_ipc::app_server::unserved;
use codex_ipc::jsonrpc::{RequestId, RpcError};
use codex_ipc::link::{LinkError, ToWorker};
use serde_json::Value;

use super::load::{parse_approval, ThreadSettings};
use super::not_loaded;
use crate::governor::Pressure;
use crate::server::conn::Conn;
use crate::server::send::ConnSend;
use crate::server::{Reply, Server};

impl Server {
    pub(super) async fn turn_start(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: &RequestId,
        params: &Value,
    ) -> Reply {
        let p: TurnStartParams = match methods::parse(params) {
            Ok(p) => p,
            Err(e) => return Reply::Now(Err(e)),
        };
        let t = match self.live_thread(&p.thread_id).await {
            Some(t) => t,
            // Unloaded (idle, crashed, or from an earlier daemon): load it
            // again transparently.
            None => match self
                .load_from_disk(conn, &p.thread_id, ThreadSettings::default())
                .await
            {
                Ok(t) => t,
                Err(_) if self.catalog.find(&p.thread_id).is_none() => {
                    return Reply::Now(Err(not_loaded(&p.thread_id)))
                }
                Err(e) => return Reply::Now(Err(e)),
            },
        };
        let input = match parse_input(&p.input) {
            Ok(i) => i,
            Err(e) => return Reply::Now(Err(e)),
        };
        let (overrides, unserved) = match turn_overrides(&p, &t.ready().cwd) {
            Ok(o) => o,
            Err(e) => return Reply::Now(Err(e)),
        };
        warn_unserved(conn, "turn/start", &t.id, &unserved);
        // Backpressure before anything else: a worker over its hard limit or
        // with a full queue takes no new turn (its running turn goes on).
        if t.pressure() >= Pressure::Hard || t.worker.queued() >= self.limits().thread_queue {
            tracing::warn!(
                "thread {}: turn/start shed (pressure {}, {} queued)",
                t.id,
                t.pressure().as_str(),
                t.worker.queued()
            );
            return Reply::Now(Err(RpcError::overloaded()));
        }
        if t.is_busy() {
            return Reply::Now(Err(RpcError::invalid_request(format!(
                "thread {} already has a running turn",
                p.thread_id
            ))));
        }
        // Starting a turn subscribes the caller.
        t.subscribe(self, conn.id);
        t.set_preview_if_empty(&input);
        let turn_id = uuid::Uuid::now_v7().to_string();
        t.expect_turn(&turn_id, conn.id, id.clone());
        let msg = ToWorker::TurnStart {
            turn_id: turn_id.clone(),
            input,
            output_schema: p.output_schema,
            overrides,
            compact: false,
            client_message_id: p.client_user_message_id.clone(),
        };
        match t.worker.try_send(msg) {
            // Answered with `TurnStartResponse` when the worker accepts it.
            Ok(()) => Reply::Deferred,
            Err(LinkError::Full) => {
                t.cancel_expected_turn(&turn_id);
                Reply::Now(Err(RpcError::overloaded()))
            }
            Err(e) => {
                t.cancel_expected_turn(&turn_id);
                Reply::Now(Err(RpcError::invalid_request(e.to_string())))
            }
        }
    }

    pub(super) async fn turn_steer(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        id: &RequestId,
        params: &Value,
    ) -> Reply {
        let p: TurnSteerParams = match methods::parse(params) {
            Ok(p) => p,
            Err(e) => return Reply::Now(Err(e)),
        };
        let no_turn = || RpcError::invalid_request("no active turn to steer");
        let Some(t) = self.thread(&p.thread_id) else {
            return Reply::Now(Err(if self.catalog.find(&p.thread_id).is_some() {
                no_turn()
            } else {
                not_loaded(&p.thread_id)
            }));
        };
        let input = match parse_input(&p.input) {
            Ok(i) => i,
            Err(e) => return Reply::Now(Err(e)),
        };
        let Some(active) = t.steerable_turn_id(&p.expected_turn_id) else {
            return Reply::Now(Err(no_turn()));
        };
        if active != p.expected_turn_id {
            return Reply::Now(Err(RpcError::invalid_request(format!(
                "expected active turn id `{}` but found `{active}`",
                p.expected_turn_id
            ))));
        }
        let unserved: Vec<String> = [
            (
                "responsesapiClientMetadata",
                &p.responsesapi_client_metadata,
            ),
            (
                "responsesapiClientMetadataPatch",
                &p.responsesapi_client_metadata_patch,
            ),
            ("additionalContext", &p.additional_context),
        ]
        .into_iter()
        .filter(|(_, v)| v.as_ref().is_some_and(unserved::is_given))
        .map(|(name, _)| format!("`{name}`"))
        .collect();
        warn_unserved(conn, "turn/steer", &t.id, &unserved);
        if t.worker.queued() >= self.limits().thread_queue {
            return Reply::Now(Err(RpcError::overloaded()));
        }
        t.subscribe(self, conn.id);
        let steer_id = uuid::Uuid::now_v7().to_string();
        t.expect_steer(&steer_id, conn.id, id.clone());
        let msg = ToWorker::TurnSteer {
            steer_id: steer_id.clone(),
            expected_turn_id: p.expected_turn_id,
            input,
            client_message_id: p.client_user_message_id,
        };
        match t.worker.try_send(msg) {
            // Answered `{turnId}` when the worker has queued the input.
            Ok(()) => Reply::Deferred,
            Err(LinkError::Full) => {
                t.cancel_expected_steer(&steer_id);
                Reply::Now(Err(RpcError::overloaded()))
            }
            Err(e) => {
                t.cancel_expected_steer(&steer_id);
                Reply::Now(Err(RpcError::invalid_request(e.to_string())))
            }
        }
    }

    /// `thread/compact/start`: a compaction turn, answered `{}` at once (the
    /// turn reports itself, as upstream's does).
    pub(super) async fn thread_compact_start(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        params: &Value,
    ) -> Result<ThreadCompactStartResponse, RpcError> {
        let p: ThreadCompactStartParams = methods::parse(params)?;
        let t = match self.live_thread(&p.thread_id).await {
            Some(t) => t,
            None => match self
                .load_from_disk(conn, &p.thread_id, ThreadSettings::default())
                .await
            {
                Ok(t) => t,
                Err(_) if self.catalog.find(&p.thread_id).is_none() => {
                    return Err(not_loaded(&p.thread_id))
                }
                Err(e) => return Err(e),
            },
        };
        if t.pressure() >= Pressure::Hard || t.worker.queued() >= self.limits().thread_queue {
            return Err(RpcError::overloaded());
        }
        if t.is_busy() {
            return Err(RpcError::invalid_request(format!(
                "thread {} already has a running turn",
                p.thread_id
            )));
        }
        t.subscribe(self, conn.id);
        let msg = ToWorker::TurnStart {
            turn_id: uuid::Uuid::now_v7().to_string(),
            input: Vec::new(),
            output_schema: None,
            overrides: TurnOverrides::default(),
            compact: true,
            client_message_id: None,
        };
        match t.worker.try_send(msg) {
            Ok(()) => Ok(ThreadCompactStartResponse {}),
            Err(LinkError::Full) => Err(RpcError::overloaded()),
            Err(e) => Err(RpcError::invalid_request(e.to_string())),
        }
    }

    pub(super) async fn turn_interrupt(
        &self,
        params: &Value,
    ) -> Result<TurnInterruptResponse, RpcError> {
        let p: TurnInterruptParams = methods::parse(params)?;
        let t = self
            .thread(&p.thread_id)
            .ok_or_else(|| not_loaded(&p.thread_id))?;
        // A worker that is not reading its queue takes no more requests
        // (`thread_queue`), whatever they are.
        if t.worker.queued() >= self.limits().thread_queue {
            tracing::warn!(
                "thread {}: turn/interrupt shed ({} queued)",
                t.id,
                t.worker.queued()
            );
            return Err(RpcError::overloaded());
        }
        match t.worker.try_send(ToWorker::TurnInterrupt {
            turn_id: Some(p.turn_id),
        }) {
            Err(LinkError::Full) => Err(RpcError::overloaded()),
            _ => Ok(TurnInterruptResponse {}),
        }
    }
}

/// The user input of `turn/start` and `turn/steer`.
fn parse_input(input: &[Value]) -> Result<Vec<UserInput>, RpcError> {
    let input: Vec<UserInput> = input
        .iter()
        .map(user_input_from_json)
        .collect::<Result<_, _>>()
        .map_err(|e| RpcError::invalid_request(format!("Invalid request: {e}")))?;
    if input.is_empty() {
        return Err(RpcError::invalid_request(
            "Invalid request: `input` is empty",
        ));
    }
    Ok(input)
}

/// The per-turn overrides of `turn/start`, and the fields given that this
/// server does not serve (named in a warning).
fn turn_overrides(
    p: &TurnStartParams,
    thread_cwd: &std::path::Path,
) -> Result<(TurnOverrides, Vec<String>), RpcError> {
    let bad = |what: &str, v: &Value| {
        RpcError::invalid_request(format!("Invalid request: unsupported {what} {v}"))
    };
    let sandbox_policy: Option<SandboxPolicy> = match &p.sandbox_policy {
        None | Some(Value::Null) => None,
        Some(v) => Some(sandbox_policy_from_json(v).ok_or_else(|| bad("sandboxPolicy", v))?),
    };
    let effort = match &p.effort {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| bad("effort", v))?),
    };
    let summary = match &p.summary {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| bad("summary", v))?),
    };
    // `serviceTier: "default"` (upstream's TUI sends it on every turn) asks
    // for what every request here gets.
    let mut unserved: Vec<String> =
        unserved::given_keys(&p.other, &[("serviceTier", Value::from("default"))])
            .into_iter()
            .map(|k| format!("`{k}`"))
            .collect();
    // The workspace is the thread's (or the turn's) cwd; other roots are not
    // served.
    let cwd = p
        .cwd
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| thread_cwd.to_path_buf());
    if p.runtime_workspace_roots
        .as_ref()
        .is_some_and(|roots| roots.iter().any(|r| std::path::Path::new(r) != cwd))
    {
        unserved.push("`runtimeWorkspaceRoots` (other than the cwd)".into());
    }
    let mut overrides = TurnOverrides {
        cwd: p.cwd.as_ref().map(PathBuf::from),
        approval_policy: parse_approval(p.approval_policy.as_ref())?,
        sandbox_policy,
        model: p.model.clone(),
        effort,
        summary,
        collaboration_instructions: None,
    };
    if let Some(mode) = p.collaboration_mode.as_ref().filter(|m| !m.is_null()) {
        apply_collaboration_mode(mode, &mut overrides, &mut unserved)?;
    }
    Ok((overrides, unserved))
}

/// `collaborationMode`: its settings take precedence over `model` and
/// `effort`; its developer instructions are told to the model. Only the
/// default mode's behaviour exists here.
fn apply_collaboration_mode(
    mode: &Value,
    overrides: &mut TurnOverrides,
    unserved: &mut Vec<String>,
) -> Result<(), RpcError> {
    let bad = || {
        RpcError::invalid_request(format!(
            "Invalid request: unsupported collaborationMode {mode}"
        ))
    };
    let kind = mode.get("mode").and_then(Value::as_str).ok_or_else(bad)?;
    if kind != "default" {
        unserved.push(format!("`collaborationMode` `{kind}` (runs as default)"));
    }
    let settings = mode.get("settings").cloned().unwrap_or(Value::Null);
    if let Some(model) = settings.get("model").and_then(Value::as_str) {
        overrides.model = Some(model.to_string());
    }
    match settings.get("reasoning_effort") {
        None | Some(Value::Null) => {}
        Some(v) => overrides.effort = Some(serde_json::from_value(v.clone()).map_err(|_| bad())?),
    }
    overrides.collaboration_instructions = settings
        .get("developer_instructions")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(())
}

/// One `warning` to the caller naming what it asked for and this server
/// does not do.
fn warn_unserved(conn: &Conn, method: &str, thread_id: &str, unserved: &[String]) {
    if let Some(message) = unserved::described_warning(method, unserved) {
        conn.send_notification(
            &WarningNotification {
                thread_id: thread_id.to_string(),
                message,
            }
            .into(),
        );
    }
}
