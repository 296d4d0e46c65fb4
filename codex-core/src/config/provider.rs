//! Model providers: `[model_providers.<id>]` and the built-in ones.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::WireApi;

pub const DEFAULT_REQUEST_MAX_RETRIES: u64 = 4;
pub const DEFAULT_STREAM_MAX_RETRIES: u64 = 5;
pub const DEFAULT_STREAM_IDLE_TIMEOUT_MS: u64 = 300_000;
/// Hard ceiling for both retry settings, whatever the config says.
pub const MAX_RETRIES_CEILING: u64 = 100;

pub const OPENAI_PROVIDER_ID: &str = "openai";
pub const OLLAMA_PROVIDER_ID: &str = "ollama";
pub const LMSTUDIO_PROVIDER_ID: &str = "lmstudio";
/// The embedded provider: a GGUF model run in-process by llama.cpp
/// (`codex-local`, cargo feature `local-llm`); no server, no network.
pub const LOCAL_PROVIDER_ID: &str = "local";
/// The model name a `local` thread reports when none is given.
pub const LOCAL_DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct";
/// The GGUF file looked for when `local_model_path` is not set.
pub const LOCAL_DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_OLLAMA_PORT: u16 = 11434;
pub const DEFAULT_LMSTUDIO_PORT: u16 = 1234;

/// One model provider, as written under `[model_providers.<id>]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelProviderInfo {
    /// Display name.
    pub name: String,
    /// Base URL; `/responses` or `/chat/completions` is appended.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub env_key: Option<String>,
    /// Shown when `env_key` is unset.
    #[serde(default)]
    pub env_key_instructions: Option<String>,
    /// A literal bearer token (discouraged; prefer `env_key`).
    #[serde(default)]
    pub experimental_bearer_token: Option<String>,
    #[serde(default)]
    pub wire_api: WireApi,
    #[serde(default)]
    pub query_params: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub http_headers: Option<BTreeMap<String, String>>,
    /// Header name → environment variable supplying its value.
    #[serde(default)]
    pub env_http_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub request_max_retries: Option<u64>,
    #[serde(default)]
    pub stream_max_retries: Option<u64>,
    #[serde(default)]
    pub stream_idle_timeout_ms: Option<u64>,
    #[serde(default)]
    pub requires_openai_auth: bool,
}

impl ModelProviderInfo {
    pub fn request_max_retries(&self) -> u64 {
        self.request_max_retries
            .unwrap_or(DEFAULT_REQUEST_MAX_RETRIES)
            .min(MAX_RETRIES_CEILING)
    }

    pub fn stream_max_retries(&self) -> u64 {
        self.stream_max_retries
            .unwrap_or(DEFAULT_STREAM_MAX_RETRIES)
            .min(MAX_RETRIES_CEILING)
    }

    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_millis(
            self.stream_idle_timeout_ms
                .unwrap_or(DEFAULT_STREAM_IDLE_TIMEOUT_MS)
                .max(1),
        )
    }

    pub fn base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or(DEFAULT_OPENAI_BASE_URL)
            .trim_end_matches('/')
    }

    /// The full URL of the endpoint for this provider's wire API.
    pub fn endpoint_url(&self) -> String {
        let path = match self.wire_api {
            WireApi::Responses => "responses",
            WireApi::Chat => "chat/completions",
        };
        let mut url = format!("{}/{path}", self.base_url());
        if let Some(params) = &self.query_params {
            let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !q.is_empty() {
                url.push('?');
                url.push_str(&q.join("&"));
            }
        }
        url
    }

    /// Whether this provider runs on this machine (no credentials needed).
    pub fn is_local(&self) -> bool {
        let url = self.base_url();
        url.contains("://localhost") || url.contains("://127.0.0.1") || url.contains("://[::1]")
    }
}

/// `$CODEX_MODELS_DIR/<default file>` when that variable is set, else
/// `$CODEX_HOME/models/<default file>` (what `scripts/fetch-models` fetches).
pub fn default_local_model_path(codex_home: &std::path::Path) -> std::path::PathBuf {
    match env_nonempty("CODEX_MODELS_DIR") {
        Some(dir) => std::path::PathBuf::from(dir).join(LOCAL_DEFAULT_MODEL_FILE),
        None => codex_home.join("models").join(LOCAL_DEFAULT_MODEL_FILE),
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The providers every installation knows.
pub fn built_in_providers(openai_base_url: Option<String>) -> BTreeMap<String, ModelProviderInfo> {
    let mut map = BTreeMap::new();
    let openai_base_url = openai_base_url.or_else(|| env_nonempty("OPENAI_BASE_URL"));
    map.insert(
        OPENAI_PROVIDER_ID.to_string(),
        ModelProviderInfo {
            name: "OpenAI".into(),
            base_url: openai_base_url,
            env_key: Some("OPENAI_API_KEY".into()),
            env_key_instructions: Some(
                "Set OPENAI_API_KEY, or run `codex login --with-api-key`.".into(),
            ),
            experimental_bearer_token: None,
            wire_api: WireApi::Responses,
            query_params: None,
            http_headers: None,
            env_http_headers: Some(BTreeMap::from([
                ("OpenAI-Organization".into(), "OPENAI_ORGANIZATION".into()),
                ("OpenAI-Project".into(), "OPENAI_PROJECT".into()),
            ])),
            request_max_retries: None,
            stream_max_retries: None,
            stream_idle_timeout_ms: None,
            requires_openai_auth: true,
        },
    );
    for (id, name, port) in [
        (OLLAMA_PROVIDER_ID, "Ollama", DEFAULT_OLLAMA_PORT),
        (LMSTUDIO_PROVIDER_ID, "LM Studio", DEFAULT_LMSTUDIO_PORT),
    ] {
        let base_url = env_nonempty("CODEX_OSS_BASE_URL").unwrap_or_else(|| {
            let port = env_nonempty("CODEX_OSS_PORT")
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or(port);
            format!("http://localhost:{port}/v1")
        });
        map.insert(
            id.to_string(),
            ModelProviderInfo {
                name: name.into(),
                base_url: Some(base_url),
                env_key: None,
                env_key_instructions: None,
                experimental_bearer_token: None,
                wire_api: WireApi::Chat,
                query_params: None,
                http_headers: None,
                env_http_headers: None,
                request_max_retries: None,
                stream_max_retries: None,
                stream_idle_timeout_ms: None,
                requires_openai_auth: false,
            },
        );
    }
    map.insert(
        LOCAL_PROVIDER_ID.to_string(),
        ModelProviderInfo {
            name: "Local (embedded llama.cpp)".into(),
            base_url: None,
            env_key: None,
            env_key_instructions: None,
            experimental_bearer_token: None,
            wire_api: WireApi::Chat,
            query_params: None,
            http_headers: None,
            env_http_headers: None,
            request_max_retries: Some(0),
            stream_max_retries: Some(0),
            stream_idle_timeout_ms: None,
            requires_openai_auth: false,
        },
    );
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_capped() {
        let mut p = built_in_providers(None).remove(OPENAI_PROVIDER_ID).unwrap();
        p.request_max_retries = Some(1_000);
        assert_eq!(p.request_max_retries(), MAX_RETRIES_CEILING);
        assert_eq!(p.stream_max_retries(), DEFAULT_STREAM_MAX_RETRIES);
    }

    #[test]
    fn endpoint_urls() {
        let providers = built_in_providers(Some("http://x/v1/".into()));
        assert_eq!(providers["openai"].endpoint_url(), "http://x/v1/responses");
        assert!(providers["ollama"]
            .endpoint_url()
            .ends_with("/v1/chat/completions"));
        assert!(providers["ollama"].is_local());
    }
}
