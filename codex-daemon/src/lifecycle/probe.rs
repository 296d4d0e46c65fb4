//! Does a daemon answer on a socket? One `initialize` with a short
//! deadline; the server's version is read from its `userAgent`
//! (`originator/VERSION (...)`), as upstream's daemon tooling reads it.

use std::path::Path;
use std::time::Duration;

use codex_ipc::app_server::client::Client;
use codex_ipc::app_server::methods::ClientInfo;

/// How long one probe may take (connect + `initialize`).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeInfo {
    pub app_server_version: String,
    pub user_agent: String,
}

/// Connects and completes the handshake within `deadline`.
pub async fn probe(socket: &Path, deadline: Duration) -> Result<ProbeInfo, String> {
    let info = ClientInfo {
        name: "codex_app_server_daemon".into(),
        title: Some("Codex App Server Daemon".into()),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let client = tokio::time::timeout(deadline, Client::connect_unix(socket, info, deadline))
        .await
        .map_err(|_| format!("no answer from {} within {deadline:?}", socket.display()))?
        .map_err(|e| e.to_string())?;
    let ua = client.server.user_agent.clone();
    Ok(ProbeInfo {
        app_server_version: version_from_user_agent(&ua).unwrap_or_default(),
        user_agent: ua,
    })
}

/// `codex_cli_rs/0.1.0 (Linux 6.8; x86_64) ...` → `0.1.0`.
pub fn version_from_user_agent(ua: &str) -> Option<String> {
    let (_, rest) = ua.split_once('/')?;
    rest.split_whitespace()
        .next()
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_the_user_agent() {
        assert_eq!(
            version_from_user_agent("codex_daemon/1.2.3 (Linux 6.8; x86_64) x/1").as_deref(),
            Some("1.2.3")
        );
        assert_eq!(version_from_user_agent("no-version"), None);
    }
}
