//! The WebSocket transport (`--listen ws://IP:PORT`): one JSON-RPC message
//! per text frame, served by the same connection code as stdio and the unix
//! socket.
//!
//! Guarded because anything on the machine can reach a TCP port:
//! - loopback addresses only, unless explicitly allowed otherwise;
//! - a **capability token** on every connection (`Authorization: Bearer
//!   <token>`), compared by SHA-256 in constant time; without it: `401`;
//! - a request carrying an `Origin` header (a web page) is refused with
//!   `403` unless that origin is allowed;
//! - frames and messages are capped; the handshake has a deadline.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::server::{conn, Server};

/// Largest WebSocket message or frame a client may send.
pub const MAX_WS_MESSAGE: usize = conn::MAX_FRAME_BYTES;
/// How long a client has to complete the opening handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Bytes buffered between the WebSocket and the connection's line codec.
pub(crate) const BRIDGE_BUFFER: usize = 256 * 1024;

/// Upstream's 101 header naming the largest message a client may send in
/// one frame (past it the server closes the connection).
pub const MAX_UNFRAGMENTED_HEADER: &str = "x-codex-websocket-max-unfragmented-message-bytes";

/// Adds upstream's limit header to an accepting handshake response: the
/// frame and message cap this server enforces.
pub(crate) fn advertise_limits(response: &mut Response) {
    response.headers_mut().insert(
        MAX_UNFRAGMENTED_HEADER,
        http::HeaderValue::from(MAX_WS_MESSAGE),
    );
}

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("--listen ws:// needs an address like ws://127.0.0.1:4500, got `{0}`")]
    BadAddress(String),
    #[error("refusing to listen on non-loopback address {0}: pass --ws-allow-remote to allow it")]
    NotLoopback(SocketAddr),
    #[error("ws:// requires authentication: pass --ws-auth capability-token with --ws-token-file PATH or --ws-token-sha256 HEX")]
    NoAuth,
    #[error("unsupported --ws-auth mode `{0}` (supported: capability-token)")]
    UnsupportedAuth(String),
    #[error("--ws-token-file must be an absolute path, got {0}")]
    RelativeTokenFile(String),
    #[error("cannot read the capability token from {path}: {source}")]
    TokenFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the capability token file {0} is empty")]
    EmptyToken(String),
    #[error("--ws-token-sha256 must be 64 hex digits")]
    BadDigest,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Flags of the WebSocket transport, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct WsFlags {
    pub auth: Option<String>,
    pub token_file: Option<String>,
    pub token_sha256: Option<String>,
    pub allow_remote: bool,
    pub allowed_origins: Vec<String>,
}

/// A validated WebSocket listener configuration.
#[derive(Debug, Clone)]
pub struct WsConfig {
    pub addr: SocketAddr,
    token_sha256: [u8; 32],
    allowed_origins: Vec<String>,
}

impl WsConfig {
    /// Checks the address and loads the token (`url` is `ws://IP:PORT`).
    pub fn new(url: &str, flags: &WsFlags) -> Result<Self, WsError> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| WsError::BadAddress(url.into()))?;
        let addr: SocketAddr = rest
            .trim_end_matches('/')
            .parse()
            .map_err(|_| WsError::BadAddress(url.into()))?;
        if !addr.ip().is_loopback() && !flags.allow_remote {
            return Err(WsError::NotLoopback(addr));
        }
        match flags.auth.as_deref() {
            None => return Err(WsError::NoAuth),
            Some("capability-token") => {}
            Some(other) => return Err(WsError::UnsupportedAuth(other.into())),
        }
        let token_sha256 = match (&flags.token_file, &flags.token_sha256) {
            (Some(path), _) => {
                if !Path::new(path).is_absolute() {
                    return Err(WsError::RelativeTokenFile(path.clone()));
                }
                let text = std::fs::read_to_string(path).map_err(|source| WsError::TokenFile {
                    path: path.clone(),
                    source,
                })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(WsError::EmptyToken(path.clone()));
                }
                sha256(token.as_bytes())
            }
            (None, Some(hex)) => parse_hex32(hex).ok_or(WsError::BadDigest)?,
            (None, None) => return Err(WsError::NoAuth),
        };
        Ok(Self {
            addr,
            token_sha256,
            allowed_origins: flags.allowed_origins.clone(),
        })
    }

    /// Whether the opening request may proceed; the refusal otherwise.
    fn admit(&self, req: &Request) -> Result<(), Refusal> {
        if let Some(origin) = req.headers().get(http::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !self.allowed_origins.iter().any(|o| o == origin) {
                return Err(Refusal(http::StatusCode::FORBIDDEN, "origin not allowed"));
            }
        }
        let token = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(t) if constant_time_eq(&sha256(t.as_bytes()), &self.token_sha256) => Ok(()),
            _ => Err(Refusal(
                http::StatusCode::UNAUTHORIZED,
                "missing or invalid capability token",
            )),
        }
    }
}

/// Why an opening handshake is refused.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Refusal(http::StatusCode, &'static str);

/// The handshake hook: admitted, or answered with the refusal's status.
struct Admission(Arc<WsConfig>);

impl Callback for Admission {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        match self.0.admit(request) {
            Ok(()) => {
                let mut response = response;
                advertise_limits(&mut response);
                Ok(response)
            }
            Err(Refusal(status, why)) => {
                let mut r = ErrorResponse::new(Some(format!("{why}\n")));
                *r.status_mut() = status;
                Err(r)
            }
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Server {
    /// Serves WebSocket clients on `config.addr` until the task is dropped.
    pub async fn serve_ws(self: &Arc<Self>, config: WsConfig) -> Result<(), WsError> {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| WsError::Bind {
                addr: config.addr,
                source,
            })?;
        let local = listener.local_addr().unwrap_or(config.addr);
        tracing::info!("codexd listening on ws://{local}");
        crate::activation::notify_ready(&format!("listening on ws://{local}"));
        let config = Arc::new(config);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            let config = config.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_ws_conn(server, config, stream).await {
                    tracing::info!("websocket client {peer}: {e}");
                }
            });
        }
    }
}

async fn serve_ws_conn(
    server: Arc<Server>,
    config: Arc<WsConfig>,
    stream: TcpStream,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE));
    let ws = tokio::time::timeout(
        HANDSHAKE_DEADLINE,
        tokio_tungstenite::accept_hdr_async_with_config(stream, Admission(config), Some(ws_config)),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake refused: {e}"))?;

    // Bridge frames to the line-oriented connection code.
    let lines = codex_ipc::ws_bridge::bridge(ws, BRIDGE_BUFFER);
    let (their_read, their_write) = tokio::io::split(lines);
    conn::serve(server, BufReader::new(their_read), their_write).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> WsFlags {
        WsFlags {
            auth: Some("capability-token".into()),
            token_sha256: Some(hex(&sha256(b"secret"))),
            ..Default::default()
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn config_checks() {
        assert!(WsConfig::new("ws://127.0.0.1:0", &flags()).is_ok());
        assert!(matches!(
            WsConfig::new("ws://0.0.0.0:4500", &flags()),
            Err(WsError::NotLoopback(_))
        ));
        let remote = WsFlags {
            allow_remote: true,
            ..flags()
        };
        assert!(WsConfig::new("ws://0.0.0.0:4500", &remote).is_ok());
        assert!(matches!(
            WsConfig::new("ws://127.0.0.1:1", &WsFlags::default()),
            Err(WsError::NoAuth)
        ));
        assert!(matches!(
            WsConfig::new("ws://localhost", &flags()),
            Err(WsError::BadAddress(_))
        ));
        let bad = WsFlags {
            token_sha256: Some("abc".into()),
            ..flags()
        };
        assert!(matches!(
            WsConfig::new("ws://127.0.0.1:1", &bad),
            Err(WsError::BadDigest)
        ));
    }

    #[test]
    fn admission() {
        let c = WsConfig::new("ws://127.0.0.1:1", &flags()).unwrap();
        let req = |headers: &[(&str, &str)]| {
            let mut b = http::Request::builder().uri("/");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        assert!(c.admit(&req(&[("authorization", "Bearer secret")])).is_ok());
        let no = c.admit(&req(&[])).unwrap_err();
        assert_eq!(no.0, http::StatusCode::UNAUTHORIZED);
        let wrong = c
            .admit(&req(&[("authorization", "Bearer nope")]))
            .unwrap_err();
        assert_eq!(wrong.0, http::StatusCode::UNAUTHORIZED);
        let web = c
            .admit(&req(&[
                ("authorization", "Bearer secret"),
                ("origin", "https://evil.example"),
            ]))
            .unwrap_err();
        assert_eq!(web.0, http::StatusCode::FORBIDDEN);
    }
}
