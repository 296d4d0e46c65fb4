//! `config/read`: `$CODEX_HOME/config.toml` with the daemon's `-c`
//! overrides applied, and where each top-level key came from. A file that
//! cannot be read or parsed is an error naming the file, line and reason
//! (as `codex exec` reports it), never an empty config.
//! `config/batchWrite` / `config/value/write`: edits to that file (upstream's
//! TUI saves a folder's trust this way), all or nothing, against the
//! version the client read.

use std::collections::BTreeMap;

use codex_core::config::write::{self as config_write, Edit, Merge};
use codex_ipc::app_server::config_write::{
    ConfigBatchWriteParams, ConfigEdit, ConfigValueWriteParams, ConfigWriteResponse, MergeStrategy,
};
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
        let version = codex_core::config::write::version_of(&text);
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

    pub(super) fn config_batch_write(
        &self,
        params: &Value,
    ) -> Result<ConfigWriteResponse, RpcError> {
        let p: ConfigBatchWriteParams = methods::parse(params)?;
        // Threads read config.toml when they start: a write reaches every
        // thread started after it, which is what a reload can promise here.
        let _ = p.reload_user_config;
        self.write_config(p.file_path, &p.edits, p.expected_version.as_deref())
    }

    pub(super) fn config_value_write(
        &self,
        params: &Value,
    ) -> Result<ConfigWriteResponse, RpcError> {
        let p: ConfigValueWriteParams = methods::parse(params)?;
        self.write_config(
            p.file_path,
            std::slice::from_ref(&p.edit),
            p.expected_version.as_deref(),
        )
    }

    fn write_config(
        &self,
        file_path: Option<std::path::PathBuf>,
        edits: &[ConfigEdit],
        expected_version: Option<&str>,
    ) -> Result<ConfigWriteResponse, RpcError> {
        let path = self.codex_home().join(codex_core::config::CONFIG_FILE_NAME);
        if let Some(asked) = file_path {
            if asked != path {
                return Err(RpcError::invalid_request(format!(
                    "only the user config ({}) can be written here, not {}",
                    path.display(),
                    asked.display()
                )));
            }
        }
        let edits: Vec<Edit> = edits
            .iter()
            .map(|e| Edit {
                key_path: e.key_path.clone(),
                value: e.value.clone(),
                merge: match e.merge_strategy {
                    MergeStrategy::Replace => Merge::Replace,
                    MergeStrategy::Upsert => Merge::Upsert,
                },
            })
            .collect();
        let version = config_write::apply(&path, &edits, expected_version)
            .map_err(|e| RpcError::invalid_request(e.to_string()))?;
        // A `-c` override of an edited key wins over the file.
        let overridden = edits.iter().any(|e| {
            let first = e.key_path.split('.').next().unwrap_or_default();
            self.opts
                .config_overrides
                .iter()
                .any(|o| o.path.first().map(String::as_str) == Some(first))
        });
        Ok(ConfigWriteResponse {
            file_path: std::fs::canonicalize(&path).unwrap_or(path),
            status: if overridden { "okOverridden" } else { "ok" },
            version,
            overridden_metadata: None,
        })
    }
}
