//! `config/batchWrite` and `config/value/write`: params and result.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `MergeStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MergeStrategy {
    Replace,
    Upsert,
}

/// `ConfigEdit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigEdit {
    pub key_path: String,
    pub value: Value,
    pub merge_strategy: MergeStrategy,
}

/// `ConfigBatchWriteParams`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigBatchWriteParams {
    pub edits: Vec<ConfigEdit>,
    pub file_path: Option<PathBuf>,
    pub expected_version: Option<String>,
    #[serde(default)]
    pub reload_user_config: bool,
}

/// `ConfigValueWriteParams`: one edit.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigValueWriteParams {
    #[serde(flatten)]
    pub edit: ConfigEdit,
    pub file_path: Option<PathBuf>,
    pub expected_version: Option<String>,
}

/// `ConfigWriteResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigWriteResponse {
    pub file_path: PathBuf,
    /// `ok` | `okOverridden`.
    pub status: &'static str,
    pub version: String,
    pub overridden_metadata: Option<Value>,
}
