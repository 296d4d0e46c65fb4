//! Phase 1: which rollouts are extracted, what the extraction model is
//! sent, and how its answer is read.
//!
//! Upstream selects from its state DB; we read the same facts from the
//! session files: a thread's `source_updated_at` is its rollout file's last
//! modification (Unix seconds), its source and cwd come from `session_meta`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::PipelineError;
use super::redact::redact_secrets;
use super::template::render;
use super::PipelineSettings;
use crate::rollout::{self, RolloutItem};

/// Upstream's phase-1 system prompt ("## Memory Writing Agent: Phase 1").
pub const STAGE_ONE_SYSTEM_PROMPT: &str = include_str!("templates/stage_one_system.md");
/// Upstream's phase-1 user message template.
pub const STAGE_ONE_INPUT_TEMPLATE: &str = include_str!("templates/stage_one_input.md");
/// Rollout files looked at per pass (upstream: `THREAD_SCAN_LIMIT`).
pub const THREAD_SCAN_LIMIT: usize = 5_000;
/// A claimed extraction keeps its lease this long (upstream: 1 h).
pub const JOB_LEASE_SECONDS: i64 = 3_600;
/// A failed extraction is retried after this long (upstream: 1 h).
pub const JOB_RETRY_DELAY_SECONDS: i64 = 3_600;
/// Outputs pruned per pass (upstream: `PRUNE_BATCH_SIZE`).
pub const PRUNE_BATCH_SIZE: usize = 200;
/// Rollout tokens sent when the model's window is unknown (upstream:
/// `DEFAULT_ROLLOUT_TOKEN_LIMIT`).
pub const DEFAULT_ROLLOUT_TOKEN_LIMIT: u64 = 150_000;
/// Share of the model's effective window given to the rollout (upstream: 70%).
pub const CONTEXT_WINDOW_PERCENT: u64 = 70;
/// Reasoning effort of the extraction request (upstream: low), with the
/// output schema sent strict.
pub const REASONING_EFFORT: &str = "low";
/// Upstream's phase-1 model when `[memories] extract_model` is unset (on
/// the OpenAI provider).
pub const DEFAULT_EXTRACT_MODEL: &str = "gpt-5.4-mini";
/// Session sources whose threads are extracted (upstream's
/// `INTERACTIVE_SESSION_SOURCES`: `cli` and `vscode`; `exec` and sub-agent
/// threads are not).
pub const INTERACTIVE_SESSION_SOURCES: &[&str] = &["cli", "vscode"];

/// A thread as phase 1 and 2 see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    pub thread_id: String,
    pub rollout_path: PathBuf,
    pub cwd: PathBuf,
    pub git_branch: Option<String>,
    /// `session_meta.source` when it is a plain string (sub-agents have an
    /// object there).
    pub source: Option<String>,
    /// Last modification of the rollout file, Unix seconds.
    pub updated_at: i64,
}

/// Every rollout under `$CODEX_HOME/sessions` (newest first, at most
/// [`THREAD_SCAN_LIMIT`]).
pub fn scan_threads(codex_home: &Path) -> Vec<ThreadInfo> {
    let sessions = codex_home.join(rollout::SESSIONS_SUBDIR);
    rollout::list_threads(&sessions, 0, THREAD_SCAN_LIMIT)
        .into_iter()
        .filter_map(|t| thread_info(t.id, t.path, t.meta?))
        .collect()
}

/// The thread `thread_id` (beyond the scan limit too), if its rollout is
/// under `$CODEX_HOME/sessions`.
pub fn find_thread(codex_home: &Path, thread_id: &str) -> Option<ThreadInfo> {
    let sessions = codex_home.join(rollout::SESSIONS_SUBDIR);
    let path = rollout::find_thread_file(&sessions, thread_id)?;
    // The session_meta line (read through the full reader: only threads
    // missing from the bounded scan come here).
    let meta = rollout::read_rollout(&path).ok()?.meta;
    thread_info(thread_id.to_ascii_lowercase(), path, meta)
}

fn thread_info(
    thread_id: String,
    rollout_path: PathBuf,
    meta: rollout::SessionMeta,
) -> Option<ThreadInfo> {
    let updated_at = std::fs::metadata(&rollout_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())?;
    let git_branch = meta
        .git
        .as_ref()
        .and_then(|g| g.get("branch"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Some(ThreadInfo {
        thread_id,
        rollout_path,
        cwd: meta.cwd,
        git_branch,
        source: meta.source.as_str().map(str::to_string),
        updated_at,
    })
}

/// The threads eligible for extraction now, most recently updated first:
/// interactive root threads (not `exclude`, typically the thread that
/// triggered the pass) idle for `min_rollout_idle_hours` and updated within
/// `max_rollout_age_days`. Whether each still needs extraction is the
/// database's call ([`super::stage1::Stage1Db::try_claim_stage1_job`]).
pub fn eligible_threads<'a>(
    threads: &'a [ThreadInfo],
    settings: &PipelineSettings,
    now: i64,
    exclude: &[String],
) -> Vec<&'a ThreadInfo> {
    let max_age_cutoff =
        now.saturating_sub(settings.max_rollout_age_days.max(0).saturating_mul(86_400));
    let idle_cutoff =
        now.saturating_sub(settings.min_rollout_idle_hours.max(0).saturating_mul(3_600));
    let mut out: Vec<&ThreadInfo> = threads
        .iter()
        .filter(|t| {
            t.source
                .as_deref()
                .is_some_and(|s| INTERACTIVE_SESSION_SOURCES.contains(&s))
        })
        .filter(|t| !exclude.iter().any(|e| e.eq_ignore_ascii_case(&t.thread_id)))
        .filter(|t| t.updated_at >= max_age_cutoff && t.updated_at <= idle_cutoff)
        .collect();
    out.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| b.thread_id.cmp(&a.thread_id))
    });
    out
}

/// What an [`super::Extractor`] is asked: upstream's phase-1 request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractionPrompt {
    pub thread_id: String,
    /// The base instructions ([`STAGE_ONE_SYSTEM_PROMPT`]).
    pub instructions: String,
    /// The one user message (rollout context and the filtered, redacted,
    /// truncated history).
    pub input: String,
    /// The strict JSON schema the answer must follow ([`output_schema`]).
    pub output_schema: Value,
    /// [`REASONING_EFFORT`].
    pub reasoning_effort: &'static str,
}

/// Upstream's phase-1 output schema.
pub fn output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "rollout_summary": { "type": "string" },
            "rollout_slug": { "type": ["string", "null"] },
            "raw_memory": { "type": "string" }
        },
        "required": ["rollout_summary", "rollout_slug", "raw_memory"],
        "additionalProperties": false
    })
}

/// The rollout token budget for a model: 70% of its effective window, or
/// [`DEFAULT_ROLLOUT_TOKEN_LIMIT`] when unknown.
pub fn rollout_token_limit(effective_context_window: Option<u64>) -> u64 {
    effective_context_window
        .filter(|w| *w > 0)
        .map(|w| (w.saturating_mul(CONTEXT_WINDOW_PERCENT) / 100).max(1))
        .unwrap_or(DEFAULT_ROLLOUT_TOKEN_LIMIT)
}

/// Builds the extraction request for `thread`.
pub fn build_prompt(
    thread: &ThreadInfo,
    token_limit: u64,
) -> Result<ExtractionPrompt, PipelineError> {
    let loaded =
        rollout::read_rollout(&thread.rollout_path).map_err(|e| PipelineError::Rollout {
            path: thread.rollout_path.clone(),
            message: e.to_string(),
        })?;
    let contents = serialize_filtered_items(&loaded.items)?;
    let contents = crate::util::truncate_middle(&contents, token_limit);
    let rollout_path = thread.rollout_path.display().to_string();
    let rollout_cwd = thread.cwd.display().to_string();
    let input = render(
        STAGE_ONE_INPUT_TEMPLATE,
        &[
            ("rollout_path", &rollout_path),
            ("rollout_cwd", &rollout_cwd),
            ("rollout_contents", &contents),
        ],
    );
    Ok(ExtractionPrompt {
        thread_id: thread.thread_id.clone(),
        instructions: STAGE_ONE_SYSTEM_PROMPT.to_string(),
        input,
        output_schema: output_schema(),
        reasoning_effort: REASONING_EFFORT,
    })
}

/// The history upstream sends: the JSON array of the memory-relevant
/// response items, redacted. Kept: non-developer messages (user messages
/// without their AGENTS.md and `<skill>` fragments), tool calls and their
/// outputs, web searches. Dropped: developer messages, reasoning, images,
/// compactions, everything that is not a response item.
pub fn serialize_filtered_items(items: &[RolloutItem]) -> Result<String, PipelineError> {
    let kept: Vec<Value> = items
        .iter()
        .filter_map(|item| match item {
            RolloutItem::ResponseItem(ri) => serde_json::to_value(ri).ok(),
            _ => None,
        })
        .filter_map(filter_item)
        .collect();
    let text = serde_json::to_string(&kept)
        .map_err(|e| PipelineError::InvalidOutput(format!("serialize rollout: {e}")))?;
    Ok(redact_secrets(&text))
}

fn filter_item(mut item: Value) -> Option<Value> {
    let kind = item.get("type").and_then(Value::as_str)?.to_string();
    match kind.as_str() {
        "message" => {
            let role = item.get("role").and_then(Value::as_str)?.to_string();
            if role == "developer" {
                return None;
            }
            if role == "user" {
                let content = item.get_mut("content")?.as_array_mut()?;
                content.retain(|c| !is_excluded_user_fragment(c));
                if content.is_empty() {
                    return None;
                }
            }
            Some(item)
        }
        "agent_message"
        | "local_shell_call"
        | "function_call"
        | "tool_search_call"
        | "function_call_output"
        | "tool_search_output"
        | "custom_tool_call"
        | "custom_tool_call_output"
        | "web_search_call" => Some(item),
        _ => None,
    }
}

/// Injected context that is not the user's words: `# AGENTS.md
/// instructions for ...</INSTRUCTIONS>` and `<skill>...</skill>`.
fn is_excluded_user_fragment(content: &Value) -> bool {
    if content.get("type").and_then(Value::as_str) != Some("input_text") {
        return false;
    }
    let Some(text) = content.get("text").and_then(Value::as_str) else {
        return false;
    };
    marked(text, "# AGENTS.md instructions for ", "</INSTRUCTIONS>")
        || marked(text, "<skill>", "</skill>")
}

fn marked(text: &str, start: &str, end: &str) -> bool {
    let t = text.trim();
    let starts = t
        .get(..start.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(start));
    let ends = t
        .len()
        .checked_sub(end.len())
        .and_then(|i| t.get(i..))
        .is_some_and(|p| p.eq_ignore_ascii_case(end));
    starts && ends
}

/// The model's answer, redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageOneOutput {
    pub raw_memory: String,
    pub rollout_summary: String,
    pub rollout_slug: Option<String>,
}

impl StageOneOutput {
    /// Upstream's "no output" case: nothing durable in the rollout.
    pub fn is_empty(&self) -> bool {
        self.raw_memory.is_empty() || self.rollout_summary.is_empty()
    }
}

#[derive(Deserialize)]
struct RawOutput {
    raw_memory: Option<String>,
    rollout_summary: Option<String>,
    #[serde(default)]
    rollout_slug: Option<String>,
}

/// Reads the model's answer: the JSON object (also inside a Markdown fence
/// or surrounded by prose), both text fields required, a missing or empty
/// slug derived from the summary's first line. Every field is redacted.
pub fn parse_output(text: &str) -> Result<StageOneOutput, PipelineError> {
    let json = extract_json_object(text).ok_or_else(|| {
        PipelineError::InvalidOutput(format!(
            "no JSON object in the model's answer ({} bytes)",
            text.len()
        ))
    })?;
    let raw: RawOutput = serde_json::from_str(json)
        .map_err(|e| PipelineError::InvalidOutput(format!("not the expected object: {e}")))?;
    let raw_memory = raw
        .raw_memory
        .ok_or_else(|| PipelineError::InvalidOutput("missing `raw_memory`".into()))?;
    let rollout_summary = raw
        .rollout_summary
        .ok_or_else(|| PipelineError::InvalidOutput("missing `rollout_summary`".into()))?;
    let raw_memory = redact_secrets(&raw_memory);
    let rollout_summary = redact_secrets(&rollout_summary);
    let slug = raw
        .rollout_slug
        .map(|s| redact_secrets(s.trim()))
        .filter(|s| !s.is_empty())
        .or_else(|| derive_slug(&rollout_summary));
    Ok(StageOneOutput {
        raw_memory,
        rollout_summary,
        rollout_slug: slug,
    })
}

/// The outermost `{...}` of `text`: the whole text, a fenced block, or the
/// span from the first `{` to the last `}`.
fn extract_json_object(text: &str) -> Option<&str> {
    let t = text.trim();
    if t.starts_with('{') && t.ends_with('}') {
        return Some(t);
    }
    if let Some(fence) = t.find("```") {
        let after = &t[fence + 3..];
        let body_start = after.find('\n').map_or(0, |i| i + 1);
        let body = &after[body_start..];
        if let Some(close) = body.find("```") {
            let inner = body[..close].trim();
            if inner.starts_with('{') && inner.ends_with('}') {
                return Some(inner);
            }
        }
    }
    let start = t.find('{')?;
    let end = t.rfind('}')?;
    (end > start).then(|| &t[start..=end])
}

/// A slug from the summary's first non-empty line (its `# ` heading):
/// lowercase ASCII alphanumerics, other runs as `-`, at most 60.
pub fn derive_slug(summary: &str) -> Option<String> {
    let line = summary.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.trim_start_matches('#').trim();
    let mut slug = String::new();
    for c in line.chars() {
        if slug.len() >= 60 {
            break;
        }
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    (!slug.is_empty()).then_some(slug)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fenced_and_derives_slug() {
        let out = parse_output(
            "Here:\n```json\n{\"raw_memory\":\"m\",\"rollout_summary\":\"# Fix the Build!\\nmore\"}\n```",
        )
        .unwrap();
        assert_eq!(out.raw_memory, "m");
        assert_eq!(out.rollout_slug.as_deref(), Some("fix-the-build"));
        let out =
            parse_output("{\"raw_memory\":\"\",\"rollout_summary\":\"\",\"rollout_slug\":\"\"}")
                .unwrap();
        assert!(out.is_empty());
        assert!(parse_output("not json").is_err());
        assert!(parse_output("{\"raw_memory\":\"x\"}").is_err());
    }

    #[test]
    fn filters_injected_fragments() {
        let agents = json!({"type":"input_text","text":"# AGENTS.md instructions for /x\n\n<INSTRUCTIONS>\nb\n</INSTRUCTIONS>"});
        let skill = json!({"type":"input_text","text":" <skill>\nx\n</skill>\n"});
        let user = json!({"type":"input_text","text":"fix it"});
        assert!(is_excluded_user_fragment(&agents));
        assert!(is_excluded_user_fragment(&skill));
        assert!(!is_excluded_user_fragment(&user));
    }
}
