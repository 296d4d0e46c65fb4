//! The unix socket's two protocols, chosen by the first bytes a client
//! sends: an HTTP request (`GET `) is upstream's transport, a WebSocket
//! upgrade followed by one JSON-RPC message per text frame; anything else
//! (JSON first, as our clients send) is JSONL. Both reach the same
//! connection code. The peer's uid was checked before (it is the
//! admission: no capability token on the unix socket).

use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader, ReadBuf};
use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::server::{conn, Server};
use crate::ws::{advertise_limits, BRIDGE_BUFFER, MAX_WS_MESSAGE};

/// How long a new connection may stay silent before its first byte. Our
/// clients send `initialize` at once; a silent one is closed rather than
/// kept forever.
pub const FIRST_BYTES_DEADLINE: Duration = Duration::from_secs(60);
/// How long the WebSocket opening handshake may take once it began.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// The start of an HTTP upgrade request; JSON never starts with it.
const HTTP_GET: &[u8] = b"GET ";

/// Serves one accepted (and admitted) unix connection to the end.
pub(crate) async fn serve(server: Arc<Server>, mut stream: UnixStream) {
    let mut head = Vec::with_capacity(HTTP_GET.len());
    let http = match tokio::time::timeout(FIRST_BYTES_DEADLINE, sniff(&mut stream, &mut head)).await
    {
        Ok(Ok(http)) => http,
        Ok(Err(e)) => {
            tracing::debug!("unix client: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(
                "closing a unix client that sent nothing for {}s",
                FIRST_BYTES_DEADLINE.as_secs()
            );
            return;
        }
    };
    if head.is_empty() {
        return; // closed without a word
    }
    if http {
        if let Err(e) = serve_websocket(
            server,
            Rewind {
                head,
                pos: 0,
                inner: stream,
            },
        )
        .await
        {
            tracing::info!("unix websocket client: {e}");
        }
    } else {
        // The sniffed bytes go first, then the rest of the stream.
        let (r, w) = stream.into_split();
        let reader = BufReader::new(Cursor::new(head).chain(r));
        conn::serve(server, reader, w).await;
    }
}

/// Reads until the first bytes tell an HTTP request from anything else;
/// `head` keeps what was read (empty at EOF).
async fn sniff(stream: &mut UnixStream, head: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut buf = [0u8; 4];
    loop {
        let want = HTTP_GET.len() - head.len();
        let n = stream.read(&mut buf[..want]).await?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&buf[..n]);
        if !HTTP_GET.starts_with(head) {
            return Ok(false);
        }
        if head.len() == HTTP_GET.len() {
            return Ok(true);
        }
    }
}

async fn serve_websocket(server: Arc<Server>, stream: Rewind<UnixStream>) -> Result<(), String> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE));
    // Upstream's `x-codex-app-server-compression` request is not echoed:
    // frames stay plain text, as upstream's own server answers.
    let ws = tokio::time::timeout(
        HANDSHAKE_DEADLINE,
        tokio_tungstenite::accept_hdr_async_with_config(stream, Advertise, Some(config)),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake failed: {e}"))?;
    let lines = codex_ipc::ws_bridge::bridge(ws, BRIDGE_BUFFER);
    let (their_read, their_write) = tokio::io::split(lines);
    conn::serve(server, BufReader::new(their_read), their_write).await;
    Ok(())
}

/// The handshake hook: every request is admitted (the peer's uid was),
/// and the answer carries upstream's limit header.
struct Advertise;

impl Callback for Advertise {
    fn on_request(self, _request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        let mut response = response;
        advertise_limits(&mut response);
        Ok(response)
    }
}

/// A stream whose first bytes were already read: they are read again
/// first, then the stream itself. Writes go straight through.
struct Rewind<S> {
    head: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.head.len() {
            let n = (this.head.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.head[this.pos..this.pos + n]);
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn sniffed(first: &[u8]) -> (bool, Vec<u8>) {
        let (mut client, mut server) = UnixStream::pair().unwrap();
        client.write_all(first).await.unwrap();
        drop(client);
        let mut head = Vec::new();
        let http = sniff(&mut server, &mut head).await.unwrap();
        (http, head)
    }

    #[tokio::test]
    async fn the_first_bytes_decide() {
        assert_eq!(
            sniffed(b"GET / HTTP/1.1\r\n").await,
            (true, b"GET ".to_vec())
        );
        assert_eq!(sniffed(b"{\"id\":1}\n").await, (false, b"{\"id".to_vec()));
        assert_eq!(sniffed(b"GEX").await, (false, b"GEX".to_vec()));
        assert_eq!(sniffed(b"GE").await, (false, b"GE".to_vec()));
        assert_eq!(sniffed(b"").await, (false, Vec::new()));
    }

    #[tokio::test]
    async fn rewind_replays_the_head_then_the_stream() {
        let (mut client, server) = UnixStream::pair().unwrap();
        client.write_all(b"rest").await.unwrap();
        drop(client);
        let mut r = Rewind {
            head: b"head ".to_vec(),
            pos: 0,
            inner: server,
        };
        let mut all = String::new();
        r.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "head rest");
    }
}
