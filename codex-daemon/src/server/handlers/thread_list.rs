//! Listings: `thread/list` (threads on disk, filtered and paged) and
//! `thread/loaded/list` (threads with a worker).

use std::collections::BTreeMap;
use std::path::Path;

use codex_ipc::app_server::methods::{self, PageParams, ThreadListParams};
use codex_ipc::app_server::objects::ThreadStatusView;
use codex_ipc::app_server::responses::{ThreadListResponse, ThreadLoadedListResponse};
use codex_ipc::jsonrpc::RpcError;
use serde_json::Value;

use super::page_limit;
use crate::server::catalog::{view_of, ThreadSummary};
use crate::server::Server;

/// Interactive sources listed when a client does not ask for others.
const INTERACTIVE_SOURCES: &[&str] = &["cli", "vscode"];

/// A thread's cursor: its file name (unique, and stable across listings).
fn cursor_of(s: &ThreadSummary) -> String {
    s.path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Server {
    pub(super) fn thread_list(&self, params: &Value) -> Result<ThreadListResponse, RpcError> {
        let p: ThreadListParams = methods::parse(params)?;
        let archived = p.archived.unwrap_or(false);
        let sources: Vec<String> = match &p.source_kinds {
            Some(s) if !s.is_empty() => s.clone(),
            _ => INTERACTIVE_SOURCES.iter().map(|s| s.to_string()).collect(),
        };
        let cwds: Option<Vec<String>> = match &p.cwd {
            Some(Value::String(s)) => Some(vec![s.clone()]),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => None,
        };
        let providers = p.model_providers.clone().filter(|v| !v.is_empty());
        let mut all: Vec<ThreadSummary> = self
            .catalog
            .all()
            .into_iter()
            .filter(|s| s.archived == archived)
            .filter(|s| sources.contains(&s.source()))
            .filter(|s| {
                cwds.as_ref()
                    .is_none_or(|c| c.iter().any(|c| Path::new(c) == s.meta.cwd))
            })
            .filter(|s| {
                providers
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| Some(p) == s.meta.model_provider.as_ref()))
            })
            .filter(|s| {
                p.search_term
                    .as_ref()
                    .is_none_or(|t| s.preview.to_lowercase().contains(&t.to_lowercase()))
            })
            .collect();
        if p.sort_direction.as_deref() == Some("asc") {
            all.reverse();
        }
        let start = match &p.cursor {
            Some(c) => match all.iter().position(|s| cursor_of(s) == *c) {
                Some(i) => i + 1,
                None => {
                    return Err(RpcError::invalid_request(format!(
                        "Invalid request: unknown cursor `{c}`"
                    )))
                }
            },
            None => 0,
        };
        let limit = page_limit(p.limit);
        let names = self.catalog.names();
        let page: Vec<&ThreadSummary> = all.iter().skip(start).take(limit).collect();
        let next_cursor = (start + page.len() < all.len())
            .then(|| page.last().map(|s| cursor_of(s)))
            .flatten();
        let data = page
            .iter()
            .map(|s| {
                let status = self
                    .thread(&s.id)
                    .map(|t| t.status())
                    .unwrap_or(ThreadStatusView::NotLoaded);
                view_of(s, status, names.get(&s.id).cloned())
            })
            .collect::<Vec<_>>();
        let mut read_states = BTreeMap::new();
        for t in &data {
            if let Some(s) = self.read_states.get(&t.id) {
                read_states.insert(t.id.clone(), codex_ipc::app_server::to_value(&s)?);
            }
        }
        Ok(ThreadListResponse {
            data,
            next_cursor,
            backwards_cursor: None,
            read_states,
        })
    }

    pub(super) fn thread_loaded_list(
        &self,
        params: &Value,
    ) -> Result<ThreadLoadedListResponse, RpcError> {
        let p: PageParams = methods::parse(params)?;
        let mut ids: Vec<String> = self.loaded_threads().iter().map(|t| t.id.clone()).collect();
        ids.sort();
        let start = match &p.cursor {
            Some(c) => ids
                .iter()
                .position(|i| i == c)
                .map(|i| i + 1)
                .unwrap_or(ids.len()),
            None => 0,
        };
        let limit = p.limit.map(|l| l as usize).unwrap_or(usize::MAX);
        let data: Vec<String> = ids.iter().skip(start).take(limit).cloned().collect();
        let next_cursor = (start + data.len() < ids.len())
            .then(|| data.last().cloned())
            .flatten();
        Ok(ThreadLoadedListResponse { data, next_cursor })
    }
}
