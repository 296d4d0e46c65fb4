//! `model/list`: the built-in catalog for the OpenAI provider; for any other
//! provider, what its `GET /models` lists (through the broker: cached,
//! fetched once for concurrent askers).

use codex_core::models;
use codex_ipc::app_server::methods::{self, ModelListParams};
use codex_ipc::app_server::responses::{Model, ModelListResponse, ReasoningEffortOption};
use codex_ipc::jsonrpc::RpcError;
use serde_json::Value;

use super::page_limit;
use crate::server::Server;

/// How long `model/list` waits for the broker.
const BROKER_CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// One `model/list` entry, from either catalog.
struct CatalogEntry {
    id: String,
    display_name: String,
    description: String,
    hidden: bool,
    default_effort: String,
    efforts: Vec<String>,
}

impl Server {
    pub(super) async fn model_list(&self, params: &Value) -> Result<ModelListResponse, RpcError> {
        let p: ModelListParams = methods::parse(params)?;
        let include_hidden = p.include_hidden.unwrap_or(false);
        let (provider_id, provider, configured) = &self.default_model;
        let is_openai = provider_id == codex_core::config::OPENAI_PROVIDER_ID;
        let mut all: Vec<CatalogEntry> = if is_openai {
            let mut v: Vec<&models::ModelInfo> = models::CATALOG
                .iter()
                .filter(|m| include_hidden || m.visible)
                .collect();
            v.sort_by_key(|m| m.priority);
            v.into_iter()
                .map(|m| CatalogEntry {
                    id: m.slug.to_string(),
                    display_name: m.display_name.to_string(),
                    description: m.description.to_string(),
                    hidden: !m.visible,
                    default_effort: m.default_reasoning_effort.to_string(),
                    efforts: m.reasoning_efforts.iter().map(|e| e.to_string()).collect(),
                })
                .collect()
        } else {
            let request = codex_core::auth::BrokerRequest::ListModels {
                provider: Box::new(provider.clone()),
            };
            let list = match self.broker.call(request, BROKER_CALL_DEADLINE).await {
                Ok(codex_core::auth::BrokerResponse::Models(l)) => l,
                Ok(_) => return Err(RpcError::internal("unexpected broker answer")),
                Err(e) => {
                    return Err(codex_ipc::broker_link::rpc_error(
                        e,
                        Some(&format!(
                            "cannot list the models of provider `{provider_id}`"
                        )),
                    ))
                }
            };
            list.models
                .into_iter()
                .map(|m| CatalogEntry {
                    display_name: m.display_name.unwrap_or_else(|| m.id.clone()),
                    description: m
                        .description
                        .unwrap_or_else(|| format!("{} via {}", m.id, provider.name)),
                    id: m.id,
                    hidden: false,
                    default_effort: "medium".into(),
                    efforts: vec!["low".into(), "medium".into(), "high".into()],
                })
                .collect()
        };
        // The catalog's default for OpenAI; what threads will use otherwise.
        let default = if is_openai {
            codex_core::config::DEFAULT_MODEL.to_string()
        } else {
            configured.clone()
        };
        if !all.iter().any(|m| m.id == default) && !is_openai {
            // The configured model is offered even when the server does not
            // list it (aliases, models pulled on demand).
            all.insert(
                0,
                CatalogEntry {
                    id: default.clone(),
                    display_name: default.clone(),
                    description: format!("{default} via {}", provider.name),
                    hidden: false,
                    default_effort: "medium".into(),
                    efforts: vec!["low".into(), "medium".into(), "high".into()],
                },
            );
        }
        let start = match &p.cursor {
            Some(c) => all
                .iter()
                .position(|m| &m.id == c)
                .map(|i| i + 1)
                .unwrap_or(all.len()),
            None => 0,
        };
        let limit = page_limit(p.limit);
        let page: Vec<&CatalogEntry> = all.iter().skip(start).take(limit).collect();
        let next_cursor = (start + page.len() < all.len())
            .then(|| page.last().map(|m| m.id.clone()))
            .flatten();
        let data = page
            .into_iter()
            .map(|m| {
                Model::new(
                    m.id.clone(),
                    m.display_name.clone(),
                    m.description.clone(),
                    m.hidden,
                    m.id == default,
                    m.default_effort.clone(),
                    m.efforts
                        .iter()
                        .map(|e| ReasoningEffortOption {
                            reasoning_effort: e.clone(),
                            description: effort_description(e).into(),
                        })
                        .collect(),
                )
            })
            .collect();
        Ok(ModelListResponse { data, next_cursor })
    }
}

fn effort_description(effort: &str) -> &'static str {
    match effort {
        "none" | "minimal" => "Fastest answers with the least reasoning",
        "low" => "Fast answers with light reasoning",
        "medium" => "Balanced speed and depth",
        "high" => "Deeper reasoning for harder problems",
        _ => "Maximum reasoning depth for the hardest problems",
    }
}
