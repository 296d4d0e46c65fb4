//! `skills/list`: the skills each requested cwd sees, read from disk on
//! every call (codex-core's discovery: the repo's `.codex/skills` and
//! `.agents/skills`, `$CODEX_HOME/skills`, `~/.agents/skills`, system and
//! admin skills). A skill file that cannot be loaded is listed in that
//! cwd's `errors`, never a failed request.

use codex_core::skills::{self, Skill, SkillSearch};
use codex_ipc::app_server::client_features::{
    PathError, SkillInterface, SkillMetadata, SkillsListEntry, SkillsListParams, SkillsListResponse,
};
use codex_ipc::app_server::methods;
use codex_ipc::jsonrpc::RpcError;
use serde_json::Value;

use crate::server::Server;

fn metadata(s: Skill) -> SkillMetadata {
    SkillMetadata {
        name: s.name,
        description: s.description,
        short_description: s.short_description,
        interface: s.interface.map(|i| SkillInterface {
            display_name: i.display_name,
            short_description: i.short_description,
            icon_small: i.icon_small,
            icon_large: i.icon_large,
            icon_small_url: None,
            icon_large_url: None,
            brand_color: i.brand_color,
            default_prompt: i.default_prompt,
        }),
        path: s.path,
        scope: s.scope.as_str(),
        // Nothing here disables skills (upstream's `[[skills.config]]`).
        enabled: true,
        plugin_id: None,
    }
}

impl Server {
    pub(super) async fn skills_list(&self, params: &Value) -> Result<SkillsListResponse, RpcError> {
        let p: SkillsListParams = methods::parse(params)?;
        // Every call scans, so `forceReload` is always in effect.
        let _ = p.force_reload;
        let cwds = self.resolve_cwds(&p.cwds);
        let codex_home = self.codex_home().to_path_buf();
        let data = tokio::task::spawn_blocking(move || {
            cwds.into_iter()
                .map(|cwd| {
                    let out = skills::discover(&SkillSearch::new(cwd.clone(), codex_home.clone()));
                    SkillsListEntry {
                        cwd: cwd.display().to_string(),
                        skills: out.skills.into_iter().map(metadata).collect(),
                        errors: out
                            .errors
                            .into_iter()
                            .map(|e| PathError {
                                path: e.path.display().to_string(),
                                message: e.message,
                            })
                            .collect(),
                    }
                })
                .collect()
        })
        .await
        .map_err(|e| RpcError::internal(format!("skills scan failed: {e}")))?;
        Ok(SkillsListResponse { data })
    }
}
