//! The remote model catalog: a provider's `GET {base_url}/models`, cached
//! per provider with a TTL, fetched once for all concurrent askers, and
//! served stale (rather than failing) when a refetch fails.
//!
//! Understands the OpenAI-compatible list (`{"data": [{"id": ...}]}`, which
//! Ollama and LM Studio serve too) and upstream's Codex catalog
//! (`{"models": [{"slug": ...}]}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ModelProviderInfo;

/// How long a fetched list is served without asking again (upstream: 300 s).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Deadline of one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One model a provider offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteModel {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub context_window: Option<u64>,
}

/// A provider's list, and whether it is a stale copy served because the
/// latest fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    pub models: Vec<RemoteModel>,
    pub stale: bool,
}

struct Entry {
    fetched: Instant,
    models: Vec<RemoteModel>,
}

/// The cache (one per broker).
pub struct RemoteCatalog {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// One fetch at a time per provider URL.
    fetch_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    http: std::sync::OnceLock<Result<reqwest::Client, String>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl Default for RemoteCatalog {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl RemoteCatalog {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            fetch_locks: Mutex::new(HashMap::new()),
            http: std::sync::OnceLock::new(),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Fetches made so far.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fresh(&self, key: &str) -> Option<Vec<RemoteModel>> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(key)?;
        (e.fetched.elapsed() < self.ttl).then(|| e.models.clone())
    }

    fn any(&self, key: &str) -> Option<Vec<RemoteModel>> {
        self.entries.lock().ok()?.get(key).map(|e| e.models.clone())
    }

    /// The provider's models; `bearer` authenticates the request.
    pub async fn list(
        &self,
        provider: &ModelProviderInfo,
        bearer: Option<String>,
    ) -> Result<ModelList, String> {
        let url = models_url(provider)?;
        if let Some(models) = self.fresh(&url) {
            return Ok(ModelList {
                models,
                stale: false,
            });
        }
        let lock = {
            let mut locks = self.fetch_locks.lock().map_err(|e| e.to_string())?;
            locks.entry(url.clone()).or_default().clone()
        };
        let _one = lock.lock().await;
        // Fetched by whoever held the lock before us?
        if let Some(models) = self.fresh(&url) {
            return Ok(ModelList {
                models,
                stale: false,
            });
        }
        match self.fetch(&url, provider, bearer).await {
            Ok(models) => {
                if let Ok(mut e) = self.entries.lock() {
                    e.insert(
                        url,
                        Entry {
                            fetched: Instant::now(),
                            models: models.clone(),
                        },
                    );
                }
                Ok(ModelList {
                    models,
                    stale: false,
                })
            }
            Err(e) => match self.any(&url) {
                Some(models) => {
                    tracing::warn!("model list of {url}: {e}; serving the cached copy");
                    Ok(ModelList {
                        models,
                        stale: true,
                    })
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(
        &self,
        url: &str,
        provider: &ModelProviderInfo,
        bearer: Option<String>,
    ) -> Result<Vec<RemoteModel>, String> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let http = self
            .http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()?;
        let mut req = http.get(url);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        for (k, v) in provider.http_headers.iter().flatten() {
            req = req.header(k, v);
        }
        let resp = tokio::time::timeout(FETCH_TIMEOUT, req.send())
            .await
            .map_err(|_| format!("no answer from {url} within {}s", FETCH_TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {status}"));
        }
        let body: Value = tokio::time::timeout(FETCH_TIMEOUT, resp.json())
            .await
            .map_err(|_| format!("{url} did not finish its answer"))?
            .map_err(|e| format!("{url} sent an unreadable list: {e}"))?;
        parse(&body).ok_or_else(|| format!("{url} sent no model list"))
    }
}

/// `{base_url}/models` of a provider.
fn models_url(provider: &ModelProviderInfo) -> Result<String, String> {
    let base = provider
        .base_url
        .as_deref()
        .ok_or_else(|| format!("provider {} has no base_url", provider.name))?;
    Ok(format!("{}/models", base.trim_end_matches('/')))
}

/// Either list shape.
pub fn parse(body: &Value) -> Option<Vec<RemoteModel>> {
    if let Some(data) = body.get("data").and_then(Value::as_array) {
        return Some(
            data.iter()
                .filter_map(|m| {
                    Some(RemoteModel {
                        id: m.get("id")?.as_str()?.to_string(),
                        display_name: None,
                        description: None,
                        context_window: m
                            .get("context_length")
                            .or_else(|| m.get("max_context_length"))
                            .and_then(Value::as_u64),
                    })
                })
                .collect(),
        );
    }
    let models = body.get("models").and_then(Value::as_array)?;
    Some(
        models
            .iter()
            .filter_map(|m| {
                let str_of = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
                Some(RemoteModel {
                    id: str_of("slug").or_else(|| str_of("name"))?,
                    display_name: str_of("display_name"),
                    description: str_of("description"),
                    context_window: m.get("context_window").and_then(Value::as_u64),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_shapes() {
        let openai = parse(
            &json!({"object": "list", "data": [{"id": "a"}, {"id": "b", "context_length": 8192}]}),
        )
        .unwrap();
        assert_eq!(openai.len(), 2);
        assert_eq!(openai[1].context_window, Some(8192));
        let codex = parse(&json!({"models": [{"slug": "gpt-x", "display_name": "GPT X", "context_window": 1000}]})).unwrap();
        assert_eq!(codex[0].id, "gpt-x");
        assert_eq!(codex[0].display_name.as_deref(), Some("GPT X"));
        let ollama_tags = parse(&json!({"models": [{"name": "llama3.2:latest"}]})).unwrap();
        assert_eq!(ollama_tags[0].id, "llama3.2:latest");
        assert!(parse(&json!({"nope": 1})).is_none());
    }
}
