//! `codex app-server proxy`: stdio ↔ a running codexd, for clients that
//! spawn an app server on stdio (upstream's clients do) but should reach
//! the daemon instead. A thin user of the client API: lines go through as
//! they are, in both directions; the client does its own `initialize`.
//!
//! Upstream's proxy copies bytes, so its clients speak WebSocket through it.
//! This one looks at the first bytes on stdin: an HTTP request (`GET `) is
//! such a client and gets a byte pipe to the socket; anything else is
//! JSONL, carried over the client API (WebSocket frames on the socket, so it
//! reaches upstream's daemon as well as codexd).

use std::path::PathBuf;

use clap::Args;
use codex_core::config::find_codex_home;
use codex_daemon::runtime::{Endpoint, Runtime, RuntimeOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// The daemon's unix socket (default: `$CODEX_HOME/app-server-control/app-server-control.sock`).
    #[arg(long, value_name = "PATH")]
    pub sock: Option<PathBuf>,
    /// A `ws://` daemon instead of the socket.
    #[arg(long, value_name = "URL", conflicts_with = "sock")]
    pub remote: Option<String>,
    /// Environment variable holding the WebSocket capability token.
    #[arg(long, value_name = "VAR", requires = "remote")]
    pub remote_auth_token_env: Option<String>,
}

pub fn main(args: ProxyArgs) -> i32 {
    crate::logging::init("warn");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codex app-server proxy: cannot start runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("codex app-server proxy: {e:#}");
            1
        }
    }
}

async fn run(args: ProxyArgs) -> anyhow::Result<i32> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let head = stdin.fill_buf().await?;
    if head.starts_with(b"GET ") && args.remote.is_none() {
        let sock = match &args.sock {
            Some(p) => p.clone(),
            None => codex_daemon::transport::default_socket_path(&find_codex_home()?),
        };
        return byte_pipe(stdin, &sock).await;
    }
    let endpoint = match &args.remote {
        Some(url) => Endpoint::WebSocket {
            url: url.clone(),
            token: match &args.remote_auth_token_env {
                Some(var) => Some(std::env::var(var).map_err(|_| {
                    anyhow::anyhow!("--remote-auth-token-env names {var}, which is not set")
                })?),
                None => None,
            },
        },
        // WebSocket on the socket: reaches upstream's daemon as well.
        None => Endpoint::UnixWebSocket(match &args.sock {
            Some(p) => p.clone(),
            None => codex_daemon::transport::default_socket_path(&find_codex_home()?),
        }),
    };
    let mut opts = RuntimeOptions::new(endpoint);
    opts.initialize = false;
    let (rt, mut messages) = Runtime::open(opts).await?;
    let conn = rt.connection().clone();
    let upstream = tokio::spawn(async move {
        let mut lines = stdin.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim().is_empty() {
                continue;
            }
            if conn.forward_line(&line).await.is_err() {
                break;
            }
        }
        // The client is done: so is its connection (what it sent is flushed).
        conn.close();
    });
    let mut stdout = tokio::io::stdout();
    while let Some(m) = messages.recv().await {
        let mut line = m.line;
        line.push('\n');
        if stdout.write_all(line.as_bytes()).await.is_err() {
            break;
        }
        let _ = stdout.flush().await;
    }
    upstream.abort();
    rt.close(std::time::Duration::from_secs(5)).await;
    Ok(0)
}

/// A client that speaks WebSocket itself: bytes both ways, as upstream's
/// proxy does, until either side closes.
async fn byte_pipe(
    mut stdin: BufReader<tokio::io::Stdin>,
    sock: &std::path::Path,
) -> anyhow::Result<i32> {
    let stream = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::UnixStream::connect(sock),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connecting to {} timed out", sock.display()))?
    .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", sock.display()))?;
    let (mut from_daemon, mut to_daemon) = stream.into_split();
    let inbound = async {
        tokio::io::copy_buf(&mut stdin, &mut to_daemon).await?;
        to_daemon.shutdown().await
    };
    let outbound = async {
        let mut stdout = tokio::io::stdout();
        let copied = match tokio::io::copy(&mut from_daemon, &mut stdout).await {
            Ok(_) => stdout.flush().await,
            Err(e) => Err(e),
        };
        // The client going away first is how such sessions end.
        match copied {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    };
    // The daemon closing ends the proxy; the client closing stdin only
    // half-closes, so the last answers still come back.
    tokio::select! {
        r = outbound => r?,
        r = async { inbound.await?; std::future::pending::<std::io::Result<()>>().await } => r?,
    }
    Ok(0)
}
