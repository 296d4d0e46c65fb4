//! `thread/readState/update`: marks a thread read or unread (guarded by the
//! revision the client saw). The change goes out as
//! `thread/readState/changed` to the thread's subscribers — and to the
//! caller, subscribed or not — before the answer, as upstream orders it.

use codex_ipc::app_server::client_features::{
    ThreadReadStateUpdateParams, ThreadReadStateUpdateResponse,
};
use codex_ipc::app_server::methods;
use codex_ipc::app_server::notifications::ServerNotification;
use codex_ipc::jsonrpc::RpcError;
use serde_json::Value;

use crate::server::conn::Conn;
use crate::server::send::ConnSend;
use crate::server::Server;

impl Server {
    pub(super) fn thread_read_state_update(
        &self,
        conn: &Conn,
        params: &Value,
    ) -> Result<ThreadReadStateUpdateResponse, RpcError> {
        Self::require_experimental(conn, "thread/readState/update")?;
        let p: ThreadReadStateUpdateParams = methods::parse(params)?;
        self.require_known_thread(&p.thread_id)?;
        if self.thread(&p.thread_id).is_some_and(|t| t.meta.ephemeral) {
            return Err(RpcError::invalid_request("thread read state unavailable"));
        }
        let note = self
            .read_states
            .update(&p.thread_id, p.operation, &p.expected_revision)?;
        let read_state = note.read_state.clone();
        let note = ServerNotification::from(note);
        let loaded = self.thread(&p.thread_id);
        if let Some(t) = &loaded {
            t.publish(self, note.clone());
        }
        if !loaded.is_some_and(|t| t.is_subscriber(conn.id)) {
            conn.send_notification(&note);
        }
        Ok(ThreadReadStateUpdateResponse { read_state })
    }
}
