//! A small app-server client for one-shot tools (`codex daemon status`):
//! connect to codexd's unix socket, do the `initialize`/`initialized`
//! handshake, then send requests one at a time, each answered within a
//! deadline and decoded into a typed result. Notifications and server
//! requests that arrive meanwhile are skipped: this client drives no
//! threads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::methods::{ClientInfo, InitializeParams};
use super::responses::InitializeResponse;
use crate::framing::{read_frame, Frame, DEFAULT_MAX_FRAME_BYTES};
use crate::jsonrpc::{self, Incoming, RequestId, RpcError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer to `{method}` within {deadline:?}")]
    Timeout { method: String, deadline: Duration },
    #[error("the server closed the connection before answering `{0}`")]
    Closed(String),
    #[error("the server answered `{method}` with error {}: {}", error.code, error.message)]
    Rpc { method: String, error: RpcError },
    #[error("cannot encode the params of `{method}`: {source}")]
    Encode {
        method: String,
        source: serde_json::Error,
    },
    #[error("unexpected answer to `{method}`: {source}")]
    Decode {
        method: String,
        source: serde_json::Error,
    },
}

type Reader = Box<dyn AsyncBufRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

pub struct Client {
    reader: Reader,
    writer: Writer,
    next_id: i64,
    /// What the server said about itself in `initialize`.
    pub server: InitializeResponse,
}

impl Client {
    /// Connects to the unix socket at `path` and completes the handshake,
    /// all within `deadline`.
    pub async fn connect_unix(
        path: &Path,
        client_info: ClientInfo,
        deadline: Duration,
    ) -> Result<Client, ClientError> {
        let connect = tokio::net::UnixStream::connect(super::connection::connectable(path));
        let stream = match tokio::time::timeout(deadline, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    method: "connect".into(),
                    deadline,
                })
            }
        };
        let (r, w) = stream.into_split();
        Client::handshake(
            Box::new(BufReader::new(r)),
            Box::new(w),
            client_info,
            deadline,
        )
        .await
    }

    /// Completes the handshake over an established connection.
    pub async fn handshake(
        reader: Reader,
        writer: Writer,
        client_info: ClientInfo,
        deadline: Duration,
    ) -> Result<Client, ClientError> {
        let mut client = Client {
            reader,
            writer,
            next_id: 0,
            server: InitializeResponse::default(),
        };
        let params = InitializeParams {
            client_info,
            capabilities: None,
        };
        client.server = client.request("initialize", &params, deadline).await?;
        client
            .writer
            .write_all(b"{\"method\":\"initialized\"}\n")
            .await?;
        client.writer.flush().await?;
        Ok(client)
    }

    /// Sends `method` with `params` and waits (at most `deadline`) for its
    /// answer, decoded as `R`. After a timeout the connection may be
    /// mid-message: drop the client.
    pub async fn request<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
        deadline: Duration,
    ) -> Result<R, ClientError> {
        let params = serde_json::to_value(params).map_err(|source| ClientError::Encode {
            method: method.into(),
            source,
        })?;
        let id = RequestId::Int(self.next_id);
        self.next_id += 1;
        let exchange = async {
            let line = jsonrpc::encode_request(&id, method, params);
            self.writer.write_all(line.as_bytes()).await?;
            self.writer.flush().await?;
            self.answer_to(&id, method).await
        };
        let result = tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                method: method.into(),
                deadline,
            })??;
        serde_json::from_value(result).map_err(|source| ClientError::Decode {
            method: method.into(),
            source,
        })
    }

    /// Reads until the answer to `id` comes.
    async fn answer_to(
        &mut self,
        id: &RequestId,
        method: &str,
    ) -> Result<serde_json::Value, ClientError> {
        loop {
            let line = match read_frame(&mut self.reader, DEFAULT_MAX_FRAME_BYTES).await? {
                Some(Frame::Line(l)) => l,
                // Not ours to read: nothing we ask for is this large.
                Some(Frame::TooLarge { .. }) => continue,
                None => return Err(ClientError::Closed(method.into())),
            };
            match jsonrpc::decode(&line) {
                Ok(Incoming::Response { id: got, result }) if got == *id => return Ok(result),
                Ok(Incoming::Error { id: got, error }) if got == *id => {
                    return Err(ClientError::Rpc {
                        method: method.into(),
                        error,
                    })
                }
                // Notifications, server requests, stray answers, noise.
                _ => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use tokio::io::AsyncBufReadExt;

    fn info() -> ClientInfo {
        ClientInfo {
            name: "t".into(),
            version: "1".into(),
            title: None,
        }
    }

    /// A scripted server on the other end of a duplex pipe: for each
    /// request it reads, it writes the lines `answer` gives.
    fn serve(
        answer: impl Fn(&Value) -> Vec<Value> + Send + 'static,
    ) -> (Reader, Writer, tokio::task::JoinHandle<Vec<Value>>) {
        let (client_side, server_side) = tokio::io::duplex(64 * 1024);
        let (cr, cw) = tokio::io::split(client_side);
        let (sr, mut sw) = tokio::io::split(server_side);
        let task = tokio::spawn(async move {
            let mut lines = BufReader::new(sr).lines();
            let mut seen = Vec::new();
            while let Ok(Some(l)) = lines.next_line().await {
                let v: Value = serde_json::from_str(&l).unwrap();
                for out in answer(&v) {
                    sw.write_all(format!("{out}\n").as_bytes()).await.unwrap();
                }
                seen.push(v);
            }
            seen
        });
        (Box::new(BufReader::new(cr)), Box::new(cw), task)
    }

    fn init_result() -> Value {
        json!({"userAgent": "ua", "codexHome": "/h", "platformFamily": "unix", "platformOs": "linux"})
    }

    #[tokio::test]
    async fn handshake_then_a_typed_answer_skipping_notifications() {
        let (r, w, server) = serve(|req| match req["method"].as_str() {
            Some("initialize") => vec![json!({"id": req["id"], "result": init_result()})],
            Some("initialized") => {
                vec![json!({"method": "remoteControl/status/changed", "params": {}})]
            }
            Some("codexd/status") => vec![
                json!({"method": "warning", "params": {"message": "m"}}),
                json!({"id": 0, "method": "item/fileChange/requestApproval", "params": {}}),
                json!({"id": req["id"], "result": {"pid": 5}}),
            ],
            _ => vec![],
        });
        let mut c = Client::handshake(r, w, info(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(c.server.platform_os, "linux");
        #[derive(serde::Deserialize)]
        struct Pid {
            pid: u32,
        }
        let got: Pid = c
            .request("codexd/status", &json!({}), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(got.pid, 5);
        drop(c);
        let seen = server.await.unwrap();
        assert_eq!(
            seen[0],
            json!({"id": 0, "method": "initialize", "params": {
                "clientInfo": {"name": "t", "title": null, "version": "1"}}})
        );
        assert_eq!(seen[1], json!({"method": "initialized"}));
        assert_eq!(seen[2]["id"], 1);
    }

    #[tokio::test]
    async fn errors_timeouts_and_eof_are_reported() {
        let (r, w, _server) = serve(|req| match req["method"].as_str() {
            Some("initialize") => vec![json!({"id": req["id"], "result": init_result()})],
            Some("bad") => {
                vec![json!({"id": req["id"], "error": {"code": -32600, "message": "no"}})]
            }
            _ => vec![],
        });
        let mut c = Client::handshake(r, w, info(), Duration::from_secs(5))
            .await
            .unwrap();
        let e = c
            .request::<_, Value>("bad", &json!({}), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(&e, ClientError::Rpc { error, .. } if error.code == -32600));
        let e = c
            .request::<_, Value>("silent", &json!({}), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");

        let (r, w, server) = serve(|_| vec![]);
        server.abort();
        let e = Client::handshake(r, w, info(), Duration::from_secs(5))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, ClientError::Closed(_) | ClientError::Io(_)),
            "{e}"
        );
    }

    #[tokio::test]
    async fn connect_names_the_socket() {
        let e = Client::connect_unix(
            Path::new("/nonexistent/codexd.sock"),
            info(),
            Duration::from_secs(5),
        )
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("/nonexistent/codexd.sock"), "{e}");
    }
}
