//! Streamable HTTP transport (placeholder until the real one lands).

use super::config::McpTransportConfig;
use super::transport::{Transport, TransportError};

#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub server: String,
    pub url: String,
}

impl HttpSpec {
    pub fn from_config(
        server: &str,
        transport: &McpTransportConfig,
        _oauth_token: Option<String>,
    ) -> Result<HttpSpec, String> {
        match transport {
            McpTransportConfig::StreamableHttp { url, .. } => Ok(HttpSpec {
                server: server.to_string(),
                url: url.clone(),
            }),
            McpTransportConfig::Stdio { .. } => Err("not an HTTP server".into()),
        }
    }
}

pub fn connect(spec: &HttpSpec) -> Result<Transport, TransportError> {
    Err(TransportError(format!(
        "streamable HTTP is not available yet ({})",
        spec.url
    )))
}
