//! What a thread tells the model besides the conversation: the base
//! instructions, the developer message (the memory read path "## Memory",
//! then permissions), `AGENTS.md` files from the repository root down to the
//! cwd, and the environment context.

use std::path::{Path, PathBuf};

use crate::config::{AskForApproval, Config, SandboxPolicy};
use crate::memory::{mode, prompt};
use crate::protocol::{ContentItem, ResponseItem};

pub const BASE_INSTRUCTIONS: &str = include_str!("base_instructions.md");
pub const AGENTS_MD: &str = "AGENTS.md";
pub const AGENTS_OVERRIDE_MD: &str = "AGENTS.override.md";
const PROJECT_DOC_SEPARATOR: &str = "\n\n--- project-doc ---\n\n";

/// The instructions that lead every request.
pub fn base_instructions(config: &Config) -> String {
    config
        .base_instructions
        .clone()
        .unwrap_or_else(|| BASE_INSTRUCTIONS.to_string())
}

/// The items recorded at the start of a new thread: the developer message
/// (the "## Memory" section when the thread may use memories, then
/// permissions — upstream's order: memory first in that message), user
/// instructions from `AGENTS.md` (user) and the environment context (user).
pub fn initial_context(config: &Config, thread_id: &str) -> Vec<ResponseItem> {
    let mut items = Vec::new();
    if config.memories.enabled {
        // A new thread's mode is fixed when it starts (upstream: at creation).
        if let Err(e) = mode::ensure_initial(&config.codex_home, thread_id, &config.memories) {
            tracing::warn!("could not record the memory mode of thread {thread_id}: {e}");
        }
    }
    let mut developer = permissions_message(config.approval_policy, &config.sandbox_policy);
    if let Some(extra) = &config.developer_instructions {
        developer.push_str("\n\n");
        developer.push_str(extra);
    }
    match prompt::memory_section_for(config, thread_id) {
        Some(memory) => items.push(ResponseItem::Message {
            id: None,
            role: "developer".into(),
            content: vec![
                ContentItem::InputText { text: memory },
                ContentItem::InputText { text: developer },
            ],
        }),
        None => items.push(ResponseItem::developer_text(developer)),
    }
    if let Some(text) = user_instructions(config) {
        items.push(ResponseItem::user_text(format!(
            "# AGENTS.md instructions for {}\n\n<INSTRUCTIONS>\n{text}\n</INSTRUCTIONS>",
            config.cwd.display()
        )));
    }
    items.push(ResponseItem::user_text(environment_context(config)));
    items
}

fn permissions_message(approval: AskForApproval, sandbox: &SandboxPolicy) -> String {
    let fs = match sandbox {
        SandboxPolicy::ReadOnly => {
            "`sandbox_mode` is `read-only`: commands may read files but not write them."
        }
        SandboxPolicy::WorkspaceWrite { .. } => {
            "`sandbox_mode` is `workspace-write`: commands may read files and write inside the workspace (and the temp directory), but not elsewhere."
        }
        SandboxPolicy::DangerFullAccess => {
            "`sandbox_mode` is `danger-full-access`: commands are not sandboxed."
        }
    };
    let net = if sandbox.has_network() {
        "Network access is enabled."
    } else {
        "Network access is restricted."
    };
    let ask = match approval {
        AskForApproval::Never => "Approval policy is currently never. Do not provide the `sandbox_permissions` for any reason, commands will be rejected.",
        AskForApproval::OnRequest => "Approval policy is currently on-request. When a command genuinely needs to run outside the sandbox, set `sandbox_permissions` to \"require_escalated\" with a short `justification`; the user will be asked.",
        AskForApproval::OnFailure => "Approval policy is currently on-failure. Commands run in the sandbox; if one fails because of the sandbox, the user is asked whether to run it again without it.",
        AskForApproval::Untrusted => "Approval policy is currently untrusted. Commands other than known-safe reads need the user's approval.",
    };
    format!(
        "<permissions instructions>\nFilesystem sandboxing defines which files can be read or written. {fs} {net}\n{ask}\n</permissions instructions>"
    )
}

/// The `<environment_context>` message.
pub fn environment_context(config: &Config) -> String {
    let mut s = String::from("<environment_context>\n");
    s.push_str(&format!("  <cwd>{}</cwd>\n", config.cwd.display()));
    s.push_str(&format!(
        "  <approval_policy>{}</approval_policy>\n",
        config.approval_policy
    ));
    s.push_str(&format!(
        "  <sandbox_mode>{}</sandbox_mode>\n",
        config.sandbox_policy.mode()
    ));
    s.push_str(&format!(
        "  <network_access>{}</network_access>\n",
        if config.sandbox_policy.has_network() {
            "enabled"
        } else {
            "restricted"
        }
    ));
    if let SandboxPolicy::WorkspaceWrite { writable_roots, .. } = &config.sandbox_policy {
        s.push_str("  <writable_roots>\n");
        s.push_str(&format!("    <root>{}</root>\n", config.cwd.display()));
        for r in writable_roots {
            s.push_str(&format!("    <root>{}</root>\n", r.display()));
        }
        s.push_str("  </writable_roots>\n");
    }
    s.push_str("  <shell>bash</shell>\n");
    s.push_str(&format!(
        "  <current_date>{}</current_date>\n",
        chrono::Local::now().format("%Y-%m-%d")
    ));
    if let Some(tz) = local_timezone() {
        s.push_str(&format!("  <timezone>{tz}</timezone>\n"));
    }
    s.push_str("</environment_context>");
    s
}

/// The IANA name of the local time zone: `$TZ`, else the target of
/// `/etc/localtime`, else `/etc/timezone`.
fn local_timezone() -> Option<String> {
    if let Some(tz) = std::env::var("TZ").ok().filter(|t| !t.is_empty()) {
        return Some(tz.trim_start_matches(':').to_string());
    }
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let t = target.to_string_lossy();
        if let Some(idx) = t.find("zoneinfo/") {
            return Some(t[idx + "zoneinfo/".len()..].to_string());
        }
    }
    std::fs::read_to_string("/etc/timezone")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `instructions` + `$CODEX_HOME/AGENTS.md` + the project's `AGENTS.md` files.
pub fn user_instructions(config: &Config) -> Option<String> {
    let project = project_docs(
        &config.cwd,
        config.project_doc_max_bytes,
        &config.project_doc_fallback_filenames,
    );
    match (&config.user_instructions, project) {
        (Some(u), Some(p)) => Some(format!("{u}{PROJECT_DOC_SEPARATOR}{p}")),
        (Some(u), None) => Some(u.clone()),
        (None, Some(p)) => Some(p),
        (None, None) => None,
    }
}

/// The directories searched for `AGENTS.md`: from the git root (the nearest
/// ancestor holding `.git`) down to `cwd`; only `cwd` outside a repository.
pub fn project_doc_dirs(cwd: &Path) -> Vec<PathBuf> {
    let mut chain: Vec<PathBuf> = cwd.ancestors().map(Path::to_path_buf).collect();
    match chain.iter().position(|d| d.join(".git").exists()) {
        Some(root) => {
            chain.truncate(root + 1);
            chain.reverse();
            chain
        }
        None => vec![cwd.to_path_buf()],
    }
}

/// Concatenated project docs within `max_bytes` (0 disables them).
pub fn project_docs(cwd: &Path, max_bytes: usize, fallbacks: &[String]) -> Option<String> {
    if max_bytes == 0 {
        return None;
    }
    let mut names: Vec<String> = vec![AGENTS_OVERRIDE_MD.into(), AGENTS_MD.into()];
    for f in fallbacks {
        if !f.is_empty() && !names.contains(f) {
            names.push(f.clone());
        }
    }
    let mut remaining = max_bytes;
    let mut parts = Vec::new();
    for dir in project_doc_dirs(cwd) {
        let Some(path) = names.iter().map(|n| dir.join(n)).find(|p| p.is_file()) else {
            continue;
        };
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if text.trim().is_empty() {
            continue;
        }
        if text.len() > remaining {
            tracing::warn!(
                "{} truncated to fit project_doc_max_bytes ({max_bytes})",
                path.display()
            );
            let mut cut = remaining;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        remaining -= text.len();
        parts.push(text);
        if remaining == 0 {
            break;
        }
    }
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_md_from_root_to_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("AGENTS.md"), "root rules").unwrap();
        std::fs::write(root.join("a/AGENTS.md"), "a rules").unwrap();
        std::fs::write(root.join("a/AGENTS.override.md"), "a override").unwrap();
        std::fs::write(root.join("a/b/AGENTS.md"), "b rules").unwrap();
        let docs = project_docs(&root.join("a/b"), 1024, &[]).unwrap();
        assert_eq!(docs, "root rules\n\na override\n\nb rules");
        // Outside a repository only the cwd counts.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("AGENTS.md"), "solo").unwrap();
        assert_eq!(project_docs(other.path(), 1024, &[]).unwrap(), "solo");
        assert!(project_docs(other.path(), 0, &[]).is_none());
    }

    fn memories_config(home: &Path, features: &str) -> Config {
        std::fs::write(home.join("config.toml"), features).unwrap();
        Config::load(crate::config::LoadOptions {
            codex_home: Some(home.to_path_buf()),
            cli_overrides: vec![],
            overrides: crate::config::ConfigOverrides {
                cwd: Some(home.to_path_buf()),
                ..Default::default()
            },
        })
        .unwrap()
    }

    fn developer_parts(items: &[ResponseItem]) -> Vec<String> {
        match &items[0] {
            ResponseItem::Message { role, content, .. } if role == "developer" => content
                .iter()
                .map(|c| match c {
                    ContentItem::InputText { text } => text.clone(),
                    other => format!("{other:?}"),
                })
                .collect(),
            other => panic!("not a developer message: {other:?}"),
        }
    }

    #[test]
    fn memory_section_leads_the_developer_message() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        std::fs::create_dir_all(home.join("memories")).unwrap();
        std::fs::write(home.join("memories/memory_summary.md"), "v1\ntabs").unwrap();
        // Off by default: no section, no mode file.
        let off = memories_config(home, "");
        assert_eq!(developer_parts(&initial_context(&off, "t0")).len(), 1);
        assert!(!home.join("memory_modes/t0").exists());
        let on = memories_config(home, "[features]\nmemories = true\n");
        let parts = developer_parts(&initial_context(&on, "t1"));
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with("## Memory\n"));
        assert!(parts[1].starts_with("<permissions instructions>"));
        assert_eq!(
            std::fs::read_to_string(home.join("memory_modes/t1")).unwrap(),
            "enabled"
        );
        // A disabled thread, or use_memories = false: no section.
        mode::store(home, "t2", mode::ThreadMemoryMode::Disabled).unwrap();
        assert_eq!(developer_parts(&initial_context(&on, "t2")).len(), 1);
        let unused = memories_config(
            home,
            "[features]\nmemories = true\n[memories]\nuse_memories = false\n",
        );
        assert_eq!(developer_parts(&initial_context(&unused, "t3")).len(), 1);
    }

    #[test]
    fn budget_truncates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("AGENTS.md"), "0123456789").unwrap();
        assert_eq!(project_docs(dir.path(), 4, &[]).unwrap(), "0123");
    }
}
