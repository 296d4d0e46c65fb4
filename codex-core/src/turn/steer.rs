//! Input added to a running turn (`turn/steer`).
//!
//! The host holds a clone of the turn's [`SteerInbox`] and pushes input into
//! it; the turn loop takes it at its next step: a model stream in progress is
//! abandoned (its partial answer dropped) and the model is asked again with
//! the new input appended, as upstream does. The inbox closes when the turn
//! ends, so input that arrives later is refused rather than lost.

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard, Notify};

use crate::protocol::UserInput;

/// One `turn/steer`: the input and the client's id for the message.
#[derive(Debug, Clone, PartialEq)]
pub struct SteerInput {
    pub input: Vec<UserInput>,
    pub client_id: Option<String>,
}

#[derive(Debug, Default)]
struct Queue {
    closed: bool,
    pending: Vec<SteerInput>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    notify: Notify,
}

/// The steer input of one turn (cheap to clone; clones share the queue).
#[derive(Debug, Clone, Default)]
pub struct SteerInbox(Arc<Shared>);

/// The locked inbox: while it is held the turn loop cannot take input, so a
/// host can acknowledge a steer before the turn reports it.
pub struct SteerGuard<'a> {
    queue: MutexGuard<'a, Queue>,
    notify: &'a Notify,
}

impl SteerGuard<'_> {
    /// Whether the turn still takes input.
    pub fn is_open(&self) -> bool {
        !self.queue.closed
    }

    /// Queues `input` for the turn; refused (given back) once it has ended.
    pub fn push(&mut self, input: SteerInput) -> Result<(), SteerInput> {
        if self.queue.closed {
            return Err(input);
        }
        self.queue.pending.push(input);
        self.notify.notify_one();
        Ok(())
    }
}

impl SteerInbox {
    pub async fn lock(&self) -> SteerGuard<'_> {
        SteerGuard {
            queue: self.0.queue.lock().await,
            notify: &self.0.notify,
        }
    }

    /// Queues `input` for the turn; refused (given back) once it has ended.
    pub async fn push(&self, input: SteerInput) -> Result<(), SteerInput> {
        self.lock().await.push(input)
    }

    /// Takes everything queued so far.
    pub(crate) async fn take(&self) -> Vec<SteerInput> {
        std::mem::take(&mut self.0.queue.lock().await.pending)
    }

    pub(crate) async fn has_pending(&self) -> bool {
        !self.0.queue.lock().await.pending.is_empty()
    }

    /// Resolves when input may have been queued (check with `take`).
    pub(crate) async fn arrived(&self) {
        self.0.notify.notified().await
    }

    /// Takes what is queued or, when nothing is, closes the inbox in the same
    /// step (so nothing can slip in between).
    pub(crate) async fn take_or_close(&self) -> Option<Vec<SteerInput>> {
        let mut q = self.0.queue.lock().await;
        if q.pending.is_empty() {
            q.closed = true;
            None
        } else {
            Some(std::mem::take(&mut q.pending))
        }
    }

    /// Ends the turn's intake; later pushes are refused. Returns what was
    /// queued and never taken.
    pub(crate) async fn close(&self) -> Vec<SteerInput> {
        let mut q = self.0.queue.lock().await;
        q.closed = true;
        std::mem::take(&mut q.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_inbox_refuses_input() {
        let inbox = SteerInbox::default();
        let text = || SteerInput {
            input: vec![UserInput::Text { text: "x".into() }],
            client_id: None,
        };
        inbox.push(text()).await.unwrap();
        assert_eq!(inbox.take().await.len(), 1);
        inbox.push(text()).await.unwrap();
        assert_eq!(inbox.close().await.len(), 1);
        assert!(inbox.push(text()).await.is_err());
        assert!(!inbox.lock().await.is_open());
    }
}
