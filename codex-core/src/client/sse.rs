//! A small, incremental Server-Sent Events decoder (WHATWG event-stream
//! framing: `event:`/`data:` fields, blank-line dispatch, `:` comments).

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Feeds bytes in, gets complete events out. Bounded: a single event larger
/// than `max_event_bytes` is an error rather than unbounded buffering.
#[derive(Debug)]
pub struct SseDecoder {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    max_event_bytes: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("SSE event exceeds {0} bytes")]
    TooLarge(usize),
}

pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            event: None,
            data: None,
            max_event_bytes,
        }
    }

    /// Appends `chunk` and returns every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(ev) = self.process_line(&line) {
                out.push(ev);
            }
        }
        self.buf.drain(..start);
        let pending = self.buf.len() + self.data.as_ref().map_or(0, String::len);
        if pending > self.max_event_bytes {
            return Err(SseError::TooLarge(self.max_event_bytes));
        }
        Ok(out)
    }

    /// Flushes a final event not followed by a blank line (at EOF).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.buf.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            if let Some(ev) = self.process_line(line.trim_end_matches('\r')) {
                return Some(ev);
            }
        }
        self.dispatch()
    }

    fn process_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        self.data.take().map(|data| SseEvent { event, data })
    }
}

/// A wire API's interpretation of SSE `data` payloads.
pub trait SseHandler {
    /// Model events for one payload, and whether the stream is finished.
    fn on_event(&mut self, data: &str)
        -> (Vec<Result<super::ModelEvent, super::ModelError>>, bool);
    /// What the end of the body means (a clean finish, or a broken stream).
    fn on_eof(&mut self) -> Vec<Result<super::ModelEvent, super::ModelError>>;
}

/// Reads an HTTP body as SSE and forwards the handler's events to `tx` until
/// the handler says the stream is done, an error, EOF, or the consumer goes
/// away (which drops the body and closes the connection).
pub(super) async fn drive(
    resp: reqwest::Response,
    tx: tokio::sync::mpsc::Sender<Result<super::ModelEvent, super::ModelError>>,
    mut handler: impl SseHandler,
) {
    use super::ModelError;
    use futures_util::StreamExt;

    async fn forward(
        tx: &tokio::sync::mpsc::Sender<Result<super::ModelEvent, ModelError>>,
        events: Vec<Result<super::ModelEvent, ModelError>>,
    ) -> bool {
        for ev in events {
            let failed = ev.is_err();
            if tx.send(ev).await.is_err() || failed {
                return false;
            }
        }
        true
    }

    let mut decoder = SseDecoder::default();
    let mut bytes = resp.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        let events = match chunk
            .map_err(|e| ModelError::Stream(e.to_string()))
            .and_then(|c| {
                decoder
                    .push(&c)
                    .map_err(|e| ModelError::Stream(e.to_string()))
            }) {
            Ok(evs) => evs,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        for ev in events {
            let (out, done) = handler.on_event(&ev.data);
            if !forward(&tx, out).await || done {
                return;
            }
        }
    }
    if let Some(ev) = decoder.finish() {
        let (out, done) = handler.on_event(&ev.data);
        if !forward(&tx, out).await || done {
            return;
        }
    }
    forward(&tx, handler.on_eof()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_chunk_boundaries() {
        let mut d = SseDecoder::default();
        let mut evs = d.push(b"event: a\ndata: {\"x\"").unwrap();
        assert!(evs.is_empty());
        evs.extend(
            d.push(b":1}\n\n: keepalive\n\ndata: two\r\ndata: lines\r\n\r\n")
                .unwrap(),
        );
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: Some("a".into()),
                    data: "{\"x\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "two\nlines".into()
                },
            ]
        );
    }

    #[test]
    fn flushes_at_eof() {
        let mut d = SseDecoder::default();
        assert!(d.push(b"data: last").unwrap().is_empty());
        assert_eq!(d.finish().unwrap().data, "last");
    }

    #[test]
    fn bounds_event_size() {
        let mut d = SseDecoder::new(8);
        assert_eq!(
            d.push(b"data: 0123456789").unwrap_err(),
            SseError::TooLarge(8)
        );
    }
}
