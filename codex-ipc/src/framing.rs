//! Newline-delimited JSON framing with a hard frame cap: a line longer than
//! the cap is reported (and skipped up to its newline) instead of buffered,
//! with the request id found in it, if any, so it can still be answered.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::id_scan::IdScanner;
use crate::jsonrpc::RequestId;

/// Default cap on one frame.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Line(String),
    /// A line exceeded the cap; its bytes were discarded.
    TooLarge {
        bytes: usize,
        /// The top-level `id` of the discarded line, when there was one.
        id: Option<RequestId>,
    },
}

/// Reads the next frame; `Ok(None)` at EOF.
pub async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<Frame>> {
    let mut line = Vec::new();
    let mut oversized = 0usize;
    // Only an oversized line is scanned for its id (as it streams past).
    let mut scanner: Option<IdScanner> = None;
    let too_large = |bytes: usize, scanner: Option<IdScanner>| Frame::TooLarge {
        bytes,
        id: scanner.and_then(|s| s.id()),
    };
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if oversized > 0 {
                Some(too_large(oversized, scanner))
            } else if line.is_empty() {
                None
            } else {
                Some(Frame::Line(String::from_utf8_lossy(&line).into_owned()))
            });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if oversized > 0 || line.len() + chunk.len() > max {
            let s = scanner.get_or_insert_with(IdScanner::new);
            s.feed(&line);
            s.feed(chunk);
            oversized += line.len() + chunk.len();
            line.clear();
        } else {
            line.extend_from_slice(chunk);
        }
        let consumed = done.unwrap_or(buf.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some(if oversized > 0 {
                too_large(oversized, scanner)
            } else {
                let mut s = String::from_utf8_lossy(&line).into_owned();
                if s.ends_with('\r') {
                    s.pop();
                }
                Frame::Line(s)
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_and_caps() {
        let data = b"{\"a\":1}\nxxxxxxxxxxxxxxxxxxxx\n{\"b\":2}\n".to_vec();
        let mut r = tokio::io::BufReader::with_capacity(4, &data[..]);
        assert_eq!(
            read_frame(&mut r, 10).await.unwrap(),
            Some(Frame::Line("{\"a\":1}".into()))
        );
        assert_eq!(
            read_frame(&mut r, 10).await.unwrap(),
            Some(Frame::TooLarge {
                bytes: 20,
                id: None
            })
        );
        assert_eq!(
            read_frame(&mut r, 10).await.unwrap(),
            Some(Frame::Line("{\"b\":2}".into()))
        );
        assert_eq!(read_frame(&mut r, 10).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_oversized_request_keeps_its_id() {
        let big = "x".repeat(100);
        let data = format!("{{\"method\":\"a\",\"params\":\"{big}\",\"id\":42}}\n{{}}\n");
        let mut r = tokio::io::BufReader::with_capacity(7, data.as_bytes());
        assert_eq!(
            read_frame(&mut r, 50).await.unwrap(),
            Some(Frame::TooLarge {
                bytes: data.len() - 4,
                id: Some(RequestId::Int(42))
            })
        );
        assert_eq!(
            read_frame(&mut r, 50).await.unwrap(),
            Some(Frame::Line("{}".into()))
        );
    }
}
