//! `config/read`: `$CODEX_HOME/config.toml` with the daemon's `-c`
//! overrides applied, and where each top-level key came from. A file that
//! cannot be read or parsed is an error naming the file, line and reason
//! (as `codex exec` reports it), never an empty config.

use std::collections::BTreeMap;

use codex_ipc::app_server::methods::{self, ConfigReadParams};
use codex_ipc::app_server::responses::{
    ConfigLayer, ConfigLayerMetadata, ConfigLayerSource, ConfigReadResponse,
};
use codex_ipc::jsonrpc::RpcError;
use serde_json::Value;

use crate::server::Server;

impl Server {
    pub(super) fn config_read(&self, params: &Value) -> Result<ConfigReadResponse, RpcError> {
        let p: ConfigReadParams = methods::parse(params)?;
        let path = self.codex_home().join(codex_core::config::CONFIG_FILE_NAME);
        let (text, mut table) = codex_core::config::read_config_file(&path)
            .map_err(|e| RpcError::invalid_request(e.to_string()))?;
        for o in &self.opts.config_overrides {
            o.apply(&mut table);
        }
        let config = serde_json::to_value(&table)
            .map_err(|e| RpcError::internal(format!("cannot encode {}: {e}", path.display())))?;
        let version = format!("fnv1a:{:016x}", fnv1a(text.as_bytes()));
        let user = ConfigLayerSource::User {
            file: path.clone(),
            profile: None,
        };
        let origins: BTreeMap<String, ConfigLayerMetadata> = table
            .keys()
            .map(|key| {
                let from_flag = self
                    .opts
                    .config_overrides
                    .iter()
                    .any(|o| o.path.first() == Some(key));
                let name = if from_flag {
                    ConfigLayerSource::SessionFlags
                } else {
                    user.clone()
                };
                (
                    key.clone(),
                    ConfigLayerMetadata {
                        name,
                        version: version.clone(),
                    },
                )
            })
            .collect();
        let layers = p.include_layers.then(|| {
            vec![ConfigLayer {
                name: user,
                version,
                config: config.clone(),
                disabled_reason: None,
            }]
        });
        // `cwd` would select project layers, which we do not have.
        let _ = &p.cwd;
        Ok(ConfigReadResponse {
            config,
            origins,
            layers,
        })
    }
}

/// The version of a layer: a hash of the file's bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
