//! WebSocket ↔ JSONL: one JSON-RPC message per text frame on the socket
//! side, one line per message on the other, so the line-oriented connection
//! code (server and client alike) serves WebSocket peers unchanged.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Bridges `ws` to a byte stream of lines (the returned end) with
/// `buffer` bytes of room each way, until either side closes.
pub fn bridge<S>(ws: WebSocketStream<S>, buffer: usize) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(buffer);
    tokio::spawn(async move {
        let (our_read, mut our_write) = tokio::io::split(ours);
        let (mut sink, mut frames) = ws.split();
        let outbound = async {
            let mut lines = BufReader::new(our_read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if sink.send(Message::text(line)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        };
        let inbound = async {
            while let Some(frame) = frames.next().await {
                let text = match frame {
                    Ok(Message::Text(t)) => t.to_string(),
                    Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue, // ping/pong are answered by the library
                };
                // Raw line breaks can only be whitespace between JSON tokens
                // (inside strings they are escaped), so this keeps the
                // message intact and makes it one line.
                let line = text.replace(['\n', '\r'], " ");
                if our_write.write_all(line.as_bytes()).await.is_err()
                    || our_write.write_all(b"\n").await.is_err()
                {
                    break;
                }
            }
            let _ = our_write.shutdown().await;
        };
        tokio::join!(outbound, inbound);
    });
    theirs
}
