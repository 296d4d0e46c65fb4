//! Each thread's read state (`thread/readState/*`), in memory for the
//! daemon's lifetime: a turn that ends with something to look at (a final
//! answer, or an error) marks the thread unread from that turn on (unless
//! an earlier unread turn is pending); a client marks it
//! read or unread. Every change gets a new opaque revision, and an update
//! naming a stale revision is refused, so a client cannot clear activity it
//! has not seen.

use std::collections::HashMap;
use std::sync::Mutex;

use codex_ipc::app_server::client_features::{
    ReadStateOperation, ThreadReadState, ThreadReadStateChangedNotification, UnreadPosition,
};
use codex_ipc::jsonrpc::RpcError;

#[derive(Debug, Default)]
pub struct ReadStates {
    states: Mutex<HashMap<String, ThreadReadState>>,
}

fn revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn changed(thread_id: &str, state: &ThreadReadState) -> ThreadReadStateChangedNotification {
    ThreadReadStateChangedNotification {
        thread_id: thread_id.to_string(),
        read_state: state.clone(),
    }
}

impl ReadStates {
    fn with<R>(&self, thread_id: &str, f: impl FnOnce(&mut ThreadReadState) -> R) -> R {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = states
            .entry(thread_id.to_string())
            .or_insert_with(|| ThreadReadState {
                first_unread: None,
                revision: revision(),
            });
        f(state)
    }

    /// The thread's state, if anything has marked it yet.
    pub fn get(&self, thread_id: &str) -> Option<ThreadReadState> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.get(thread_id).cloned()
    }

    /// Turn `turn_id` ended with a result to look at.
    pub fn turn_completed(
        &self,
        thread_id: &str,
        turn_id: &str,
    ) -> ThreadReadStateChangedNotification {
        self.with(thread_id, |s| {
            if s.first_unread.is_none() {
                s.first_unread = Some(UnreadPosition::Turn {
                    turn_id: turn_id.to_string(),
                });
            }
            s.revision = revision();
            changed(thread_id, s)
        })
    }

    /// A client's `read`/`unread`, if `expected_revision` is current.
    pub fn update(
        &self,
        thread_id: &str,
        op: ReadStateOperation,
        expected_revision: &str,
    ) -> Result<ThreadReadStateChangedNotification, RpcError> {
        self.with(thread_id, |s| {
            if s.revision != expected_revision {
                // Upstream's conflict: the current state rides along.
                let mut e = RpcError::invalid_request("read state changed");
                e.data = Some(serde_json::json!({
                    "reason": "readStateConflict",
                    "readState": s,
                }));
                return Err(e);
            }
            s.first_unread = match op {
                ReadStateOperation::Read => None,
                ReadStateOperation::Unread => Some(UnreadPosition::ThreadStart),
            };
            s.revision = revision();
            Ok(changed(thread_id, s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_mark_unread_and_stale_revisions_are_refused() {
        let rs = ReadStates::default();
        let first = rs.with("t", |s| s.clone());
        assert_eq!(first.first_unread, None);

        let a = rs.turn_completed("t", "turn-1").read_state;
        assert_eq!(
            a.first_unread,
            Some(UnreadPosition::Turn {
                turn_id: "turn-1".into()
            })
        );
        assert_ne!(a.revision, first.revision);
        // The earliest unread turn stays the position.
        let b = rs.turn_completed("t", "turn-2").read_state;
        assert_eq!(b.first_unread, a.first_unread);

        let err = rs
            .update("t", ReadStateOperation::Read, &a.revision)
            .unwrap_err();
        assert_eq!(err.message, "read state changed");
        let data = err.data.unwrap();
        assert_eq!(data["reason"], "readStateConflict");
        assert_eq!(data["readState"]["revision"], b.revision.as_str());

        let read = rs
            .update("t", ReadStateOperation::Read, &b.revision)
            .unwrap()
            .read_state;
        assert_eq!(read.first_unread, None);
        let unread = rs
            .update("t", ReadStateOperation::Unread, &read.revision)
            .unwrap()
            .read_state;
        assert_eq!(unread.first_unread, Some(UnreadPosition::ThreadStart));
    }
}
