//! Phase 2: the memory folder's inputs (`raw_memories.md`,
//! `rollout_summaries/`) written from the selected stage-1 outputs exactly
//! as upstream lays them out, the consolidation agent's prompt and settings,
//! the check of what it left behind, and a deterministic consolidation for
//! when no capable model is available.
//!
//! Upstream diffs the folder with git; we do not run git, so
//! `phase2_workspace_diff.md` is built from the files' contents before and
//! after this run's sync (same header and status list, a unified diff per
//! file) plus the selection change against the last successful run.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::error::PipelineError;
use super::stage1::Stage1Output;
use super::template::render;
use crate::config::{AskForApproval, SandboxPolicy};

pub const MEMORY_FILENAME: &str = "MEMORY.md";
pub const MEMORY_SUMMARY_FILENAME: &str = "memory_summary.md";
pub const RAW_MEMORIES_FILENAME: &str = "raw_memories.md";
pub const ROLLOUT_SUMMARIES_SUBDIR: &str = "rollout_summaries";
pub const SKILLS_SUBDIR: &str = "skills";
pub const EXTENSIONS_SUBDIR: &str = "extensions";
/// Generated for the agent before it runs, removed after.
pub const WORKSPACE_DIFF_FILENAME: &str = "phase2_workspace_diff.md";
/// Upstream bounds the diff file at 4 MiB.
pub const WORKSPACE_DIFF_MAX_BYTES: usize = 4 * 1024 * 1024;
/// The global lease (upstream: 1 h), renewed every 90 s while the agent runs.
pub const JOB_LEASE_SECONDS: i64 = 3_600;
pub const JOB_HEARTBEAT_SECONDS: u64 = 90;
pub const JOB_RETRY_DELAY_SECONDS: i64 = 3_600;
/// The sub-agent source and `x-openai-subagent` header value upstream uses.
pub const SUBAGENT_SOURCE: &str = "memory_consolidation";
/// Reasoning effort of the consolidation turn (upstream: medium).
pub const REASONING_EFFORT: &str = "medium";
/// Size caps of the deterministic consolidation's files (ours).
pub const FALLBACK_MEMORY_MAX_CHARS: usize = 30_000;
pub const FALLBACK_SUMMARY_MAX_CHARS: usize = 10_000;

/// Upstream's consolidation prompt ("## Memory Writing Agent: Phase 2
/// (Consolidation)").
pub const CONSOLIDATION_PROMPT_TEMPLATE: &str = include_str!("templates/consolidation.md");

const EXTENSIONS_FOLDER_STRUCTURE: &str = r#"
Memory extensions (under {{ memory_extensions_root }}/):

- <extension_name>/instructions.md
  - Source-specific guidance for interpreting additional memory signals. If an
    extension folder exists, you must read its instructions.md to determine how to use this memory
    source.

If the user has any memory extensions, you MUST read the instructions for each extension to
determine how to use the memory source. If the workspace diff shows deleted extension resource files,
remove stale memories derived only from those resources. If it has no extension folders, continue
with the standard memory inputs only.
"#;

const EXTENSIONS_PRIMARY_INPUTS: &str = r#"
Optional source-specific inputs:
Under `{{ memory_extensions_root }}/`:

- `<extension_name>/instructions.md`
  - If extension folders exist, read each instructions.md first and follow it when interpreting
    that extension's memory source.

If the workspace diff shows deleted memory extension resources, use that extension-specific deletion
signal to remove stale memories derived only from those resources.
"#;

/// A selected stage-1 output with the thread facts its files carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedMemory {
    pub output: Stage1Output,
    pub rollout_path: PathBuf,
    pub cwd: PathBuf,
    pub git_branch: Option<String>,
}

impl SelectedMemory {
    /// `rollout_summaries/<stem>.md`'s stem.
    pub fn file_stem(&self) -> String {
        rollout_summary_file_stem(
            &self.output.thread_id,
            self.output.source_updated_at,
            self.output.rollout_slug.as_deref(),
        )
    }
}

/// `$CODEX_HOME/memories`.
pub fn memory_root(codex_home: &Path) -> PathBuf {
    codex_home.join("memories")
}

/// Upstream's summary file name: `<YYYY-MM-DDTHH-MM-SS>-<4 chars>[-<slug>]`,
/// the time taken from the thread's UUIDv7 (else `source_updated_at`), the
/// four characters a base-62 hash of the id's low 32 bits, the slug
/// lowercased with other characters as `_`, at most 60.
pub fn rollout_summary_file_stem(
    thread_id: &str,
    source_updated_at: i64,
    rollout_slug: Option<&str>,
) -> String {
    const SLUG_MAX: usize = 60;
    const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const HASH_SPACE: u32 = 14_776_336;
    let fallback = || {
        chrono::DateTime::<chrono::Utc>::from_timestamp(source_updated_at, 0).unwrap_or_default()
    };
    let (timestamp, seed) = match uuid::Uuid::parse_str(thread_id) {
        Ok(id) => {
            let at = id
                .get_timestamp()
                .and_then(|ts| {
                    let (secs, nanos) = ts.to_unix();
                    chrono::DateTime::<chrono::Utc>::from_timestamp(
                        i64::try_from(secs).ok()?,
                        nanos,
                    )
                })
                .unwrap_or_else(fallback);
            (at, (id.as_u128() & 0xFFFF_FFFF) as u32)
        }
        Err(_) => {
            let seed = thread_id
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            (fallback(), seed)
        }
    };
    let mut value = seed % HASH_SPACE;
    let mut hash = ['0'; 4];
    for digit in hash.iter_mut().rev() {
        *digit = char::from(ALPHABET[(value % 62) as usize]);
        value /= 62;
    }
    let mut stem = format!(
        "{}-{}",
        timestamp.format("%Y-%m-%dT%H-%M-%S"),
        hash.iter().collect::<String>()
    );
    let slug: Option<String> = rollout_slug
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .take(SLUG_MAX)
                .collect()
        });
    if let Some(slug) = slug.filter(|s: &String| !s.is_empty()) {
        stem.push('-');
        stem.push_str(&slug);
    }
    stem
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339()
}

/// How one input file changed in this run's sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Relative to the memory root, `/`-separated.
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl FileChange {
    pub fn label(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, Some(_)) => "added",
            (Some(_), None) => "deleted",
            _ => "modified",
        }
    }
}

fn read_opt(path: &Path) -> Result<Option<String>, PipelineError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PipelineError::io(path, e)),
    }
}

/// Writes `content` unless the file already holds it; records the change.
fn write_tracked(
    root: &Path,
    rel: &str,
    content: String,
    changes: &mut Vec<FileChange>,
) -> Result<(), PipelineError> {
    let path = root.join(rel);
    let before = read_opt(&path)?;
    if before.as_deref() == Some(content.as_str()) {
        return Ok(());
    }
    std::fs::write(&path, &content).map_err(|e| PipelineError::io(&path, e))?;
    changes.push(FileChange {
        path: rel.to_string(),
        before,
        after: Some(content),
    });
    Ok(())
}

fn remove_tracked(
    root: &Path,
    rel: &str,
    changes: &mut Vec<FileChange>,
) -> Result<(), PipelineError> {
    let path = root.join(rel);
    let before = read_opt(&path)?;
    if before.is_none() {
        return Ok(());
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PipelineError::io(&path, e)),
    }
    changes.push(FileChange {
        path: rel.to_string(),
        before,
        after: None,
    });
    Ok(())
}

/// Writes upstream's phase-2 inputs for `selected` under `root`:
/// `rollout_summaries/<stem>.md` per memory (other `.md` files there are
/// removed), `raw_memories.md` in selection order, and, when nothing is
/// selected, `MEMORY.md`, `memory_summary.md` and `skills/` removed.
pub fn sync_inputs(
    root: &Path,
    selected: &[SelectedMemory],
) -> Result<Vec<FileChange>, PipelineError> {
    let summaries = root.join(ROLLOUT_SUMMARIES_SUBDIR);
    std::fs::create_dir_all(&summaries).map_err(|e| PipelineError::io(&summaries, e))?;
    let mut changes = Vec::new();

    let keep: HashSet<String> = selected.iter().map(SelectedMemory::file_stem).collect();
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&summaries).map_err(|e| PipelineError::io(&summaries, e))? {
        let entry = entry.map_err(|e| PipelineError::io(&summaries, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".md") {
            if !keep.contains(stem) && entry.path().is_file() {
                stale.push(name);
            }
        }
    }
    stale.sort();
    for name in stale {
        if let Err(e) = remove_tracked(
            root,
            &format!("{ROLLOUT_SUMMARIES_SUBDIR}/{name}"),
            &mut changes,
        ) {
            tracing::warn!("failed pruning outdated rollout summary {name}: {e}");
        }
    }
    for memory in selected {
        write_tracked(
            root,
            &format!("{ROLLOUT_SUMMARIES_SUBDIR}/{}.md", memory.file_stem()),
            rollout_summary_body(memory),
            &mut changes,
        )?;
    }
    write_tracked(
        root,
        RAW_MEMORIES_FILENAME,
        raw_memories_body(selected),
        &mut changes,
    )?;

    if selected.is_empty() {
        remove_tracked(root, MEMORY_FILENAME, &mut changes)?;
        remove_tracked(root, MEMORY_SUMMARY_FILENAME, &mut changes)?;
        let skills = root.join(SKILLS_SUBDIR);
        match std::fs::remove_dir_all(&skills) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PipelineError::io(&skills, e)),
        }
    }
    Ok(changes)
}

/// A rollout summary file, as upstream writes it.
pub fn rollout_summary_body(memory: &SelectedMemory) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "thread_id: {}", memory.output.thread_id);
    let _ = writeln!(
        body,
        "updated_at: {}",
        rfc3339(memory.output.source_updated_at)
    );
    let _ = writeln!(body, "rollout_path: {}", memory.rollout_path.display());
    let _ = writeln!(body, "cwd: {}", memory.cwd.display());
    if let Some(branch) = &memory.git_branch {
        let _ = writeln!(body, "git_branch: {branch}");
    }
    body.push('\n');
    body.push_str(&memory.output.rollout_summary);
    body.push('\n');
    body
}

/// `raw_memories.md`, as upstream writes it.
pub fn raw_memories_body(selected: &[SelectedMemory]) -> String {
    let mut body = String::from("# Raw Memories\n\n");
    if selected.is_empty() {
        body.push_str("No raw memories yet.\n");
        return body;
    }
    body.push_str("Merged stage-1 raw memories (latest first):\n\n");
    for memory in selected {
        let _ = writeln!(body, "## Thread `{}`", memory.output.thread_id);
        let _ = writeln!(
            body,
            "updated_at: {}",
            rfc3339(memory.output.source_updated_at)
        );
        let _ = writeln!(body, "cwd: {}", memory.cwd.display());
        let _ = writeln!(body, "rollout_path: {}", memory.rollout_path.display());
        let _ = writeln!(body, "rollout_summary_file: {}.md", memory.file_stem());
        body.push('\n');
        body.push_str(memory.output.raw_memory.trim());
        body.push_str("\n\n");
    }
    body
}

/// Threads in `selected` whose snapshot the last successful run did not
/// consume, and threads that run consumed that are no longer selected.
pub fn selection_diff(
    selected: &[SelectedMemory],
    previous: &[Stage1Output],
) -> (Vec<String>, Vec<String>) {
    let baseline: HashSet<(&str, Option<i64>)> = previous
        .iter()
        .map(|p| {
            (
                p.thread_id.as_str(),
                p.selected_for_phase2_source_updated_at,
            )
        })
        .collect();
    let added = selected
        .iter()
        .filter(|s| {
            !baseline.contains(&(
                s.output.thread_id.as_str(),
                Some(s.output.source_updated_at),
            ))
        })
        .map(|s| s.output.thread_id.clone())
        .collect();
    let current: HashSet<&str> = selected
        .iter()
        .map(|s| s.output.thread_id.as_str())
        .collect();
    let removed = previous
        .iter()
        .filter(|p| !current.contains(p.thread_id.as_str()))
        .map(|p| p.thread_id.clone())
        .collect();
    (added, removed)
}

/// `phase2_workspace_diff.md`: upstream's header and status list, then the
/// unified diff of every changed input, bounded at 4 MiB.
pub fn render_workspace_diff(
    changes: &[FileChange],
    added: &[String],
    removed: &[String],
) -> String {
    let mut out = String::from(
        "# Memory Workspace Diff\n\n\
         Generated by Codex before Phase 2 memory consolidation. Read this file first and do not edit it.\n\n\
         ## Status\n",
    );
    if changes.is_empty() && added.is_empty() && removed.is_empty() {
        out.push_str("- none\n");
        return out;
    }
    for change in changes {
        let _ = writeln!(out, "- {} {}", change.label(), change.path);
    }
    for id in added {
        let _ = writeln!(out, "- selected thread {id}");
    }
    for id in removed {
        let _ = writeln!(out, "- unselected thread {id}");
    }
    let mut diff = String::new();
    for change in changes {
        let old = change.before.as_deref().unwrap_or("");
        let new = change.after.as_deref().unwrap_or("");
        let a = if change.before.is_some() {
            format!("a/{}", change.path)
        } else {
            "/dev/null".to_string()
        };
        let b = if change.after.is_some() {
            format!("b/{}", change.path)
        } else {
            "/dev/null".to_string()
        };
        let _ = write!(
            diff,
            "{}",
            similar::TextDiff::from_lines(old, new)
                .unified_diff()
                .context_radius(3)
                .header(&a, &b)
        );
    }
    out.push_str("\n## Diff\n\n```diff\n");
    if diff.len() <= WORKSPACE_DIFF_MAX_BYTES {
        out.push_str(&diff);
    } else {
        let mut cut = WORKSPACE_DIFF_MAX_BYTES;
        while !diff.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&diff[..cut]);
        let _ = write!(
            out,
            "\n\n[workspace diff truncated at {WORKSPACE_DIFF_MAX_BYTES} bytes]\n"
        );
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("```\n");
    out
}

/// The consolidation agent's prompt for the memory folder at `root`.
pub fn build_consolidation_prompt(root: &Path) -> String {
    let extensions = root.join(EXTENSIONS_SUBDIR);
    let extensions_root = extensions.display().to_string();
    let (structure, inputs) = if extensions.is_dir() {
        let vars = [("memory_extensions_root", extensions_root.as_str())];
        (
            render(EXTENSIONS_FOLDER_STRUCTURE, &vars),
            render(EXTENSIONS_PRIMARY_INPUTS, &vars),
        )
    } else {
        (String::new(), String::new())
    };
    let memory_root = root.display().to_string();
    render(
        CONSOLIDATION_PROMPT_TEMPLATE,
        &[
            ("memory_root", memory_root.as_str()),
            ("memory_extensions_folder_structure", structure.as_str()),
            ("memory_extensions_primary_inputs", inputs.as_str()),
            ("phase2_workspace_diff_file", WORKSPACE_DIFF_FILENAME),
        ],
    )
}

/// What the integrator needs to run the consolidation agent: one model turn
/// in an internal, ephemeral thread (`SubAgentSource` and
/// `x-openai-subagent` = [`SUBAGENT_SOURCE`]), cwd the memory folder,
/// writable only there, no network, never asking for approval, with memory
/// generation, memory use, MCP servers, apps, plugins and collaboration
/// tools off (so it cannot recurse or feed phase 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsolidationJob {
    pub prompt: String,
    pub cwd: PathBuf,
    pub sandbox_policy: SandboxPolicy,
    pub approval_policy: AskForApproval,
    pub subagent_source: &'static str,
    pub reasoning_effort: &'static str,
    /// `[memories] consolidation_model`, when set.
    pub model: Option<String>,
    pub ephemeral: bool,
    pub generate_memories: bool,
    pub use_memories: bool,
}

impl ConsolidationJob {
    pub fn new(root: &Path, model: Option<String>) -> Self {
        Self {
            prompt: build_consolidation_prompt(root),
            cwd: root.to_path_buf(),
            sandbox_policy: SandboxPolicy::WorkspaceWrite {
                writable_roots: vec![root.to_path_buf()],
                network_access: false,
                exclude_tmpdir_env_var: true,
                exclude_slash_tmp: true,
            },
            approval_policy: AskForApproval::Never,
            subagent_source: SUBAGENT_SOURCE,
            reasoning_effort: REASONING_EFFORT,
            model,
            ephemeral: true,
            generate_memories: false,
            use_memories: false,
        }
    }
}

/// The check upstream makes after the agent finished
/// (`failed_invalid_artifacts` otherwise): `MEMORY.md` and
/// `memory_summary.md` exist, and the summary's first line is exactly `v1`.
pub fn validate_artifacts(root: &Path) -> Result<(), PipelineError> {
    let memory = root.join(MEMORY_FILENAME);
    if !memory.is_file() {
        return Err(PipelineError::InvalidArtifacts(format!(
            "{} is missing",
            memory.display()
        )));
    }
    let summary_path = root.join(MEMORY_SUMMARY_FILENAME);
    let summary = read_opt(&summary_path)?.ok_or_else(|| {
        PipelineError::InvalidArtifacts(format!("{} is missing", summary_path.display()))
    })?;
    if summary.lines().next() != Some("v1") {
        return Err(PipelineError::InvalidArtifacts(format!(
            "{} does not start with the line `v1`",
            summary_path.display()
        )));
    }
    Ok(())
}

/// Removes `phase2_workspace_diff.md` (it is never part of the memories).
pub fn remove_workspace_diff(root: &Path) -> Result<(), PipelineError> {
    let path = root.join(WORKSPACE_DIFF_FILENAME);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PipelineError::io(&path, e)),
    }
}

/// Consolidation without a model: `MEMORY.md` in upstream's block shape
/// (one `# Task Group` per cwd, one `## Task` per memory, newest first) and
/// a `v1` `memory_summary.md` indexing it, each within its size cap. It
/// only rearranges what phase 1 wrote; nothing is inferred.
pub fn deterministic_consolidation(
    root: &Path,
    selected: &[SelectedMemory],
) -> Result<(), PipelineError> {
    let mut newest_first: Vec<&SelectedMemory> = selected.iter().collect();
    newest_first.sort_by(|a, b| {
        b.output
            .source_updated_at
            .cmp(&a.output.source_updated_at)
            .then_with(|| a.output.thread_id.cmp(&b.output.thread_id))
    });
    // cwd → memories, cwd groups ordered by their freshest memory.
    let mut groups: Vec<(PathBuf, Vec<&SelectedMemory>)> = Vec::new();
    for m in newest_first {
        match groups.iter_mut().find(|(cwd, _)| *cwd == m.cwd) {
            Some((_, v)) => v.push(m),
            None => groups.push((m.cwd.clone(), vec![m])),
        }
    }

    let mut memory = String::new();
    for (cwd, memories) in &groups {
        let mut block = String::new();
        let _ = writeln!(block, "# Task Group: {}\n", cwd.display());
        let _ = writeln!(
            block,
            "scope: phase-1 memories of threads run in {} (merged without a model)",
            cwd.display()
        );
        let _ = writeln!(
            block,
            "applies_to: cwd={}; reuse_rule=checkout-specific; verify against the current files before reuse\n",
            cwd.display()
        );
        for (i, m) in memories.iter().enumerate() {
            let facts = RawMemoryFacts::parse(&m.output.raw_memory);
            let title = facts
                .description
                .clone()
                .or_else(|| first_line(&m.output.rollout_summary))
                .unwrap_or_else(|| m.output.thread_id.clone());
            let _ = writeln!(block, "## Task {}: {title}\n", i + 1);
            let _ = writeln!(block, "### rollout_summary_files\n");
            let _ = writeln!(
                block,
                "- {ROLLOUT_SUMMARIES_SUBDIR}/{}.md (cwd={}, rollout_path={}, updated_at={}, thread_id={})\n",
                m.file_stem(),
                m.cwd.display(),
                m.rollout_path.display(),
                rfc3339(m.output.source_updated_at),
                m.output.thread_id
            );
            let _ = writeln!(block, "### keywords\n");
            let keywords = facts
                .keywords
                .clone()
                .or_else(|| {
                    m.output
                        .rollout_slug
                        .as_ref()
                        .map(|s| s.replace(['-', '_'], ", "))
                })
                .unwrap_or_else(|| "none".to_string());
            let _ = writeln!(block, "- {keywords}\n");
        }
        let _ = writeln!(block, "## Reusable knowledge\n");
        for (i, m) in memories.iter().enumerate() {
            for line in RawMemoryFacts::parse(&m.output.raw_memory).body.lines() {
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                let _ = writeln!(block, "{line} [Task {}]", i + 1);
            }
        }
        block.push('\n');
        if memory.len() + block.len() > FALLBACK_MEMORY_MAX_CHARS {
            if memory.is_empty() {
                memory.push_str(&truncate_chars(&block, FALLBACK_MEMORY_MAX_CHARS));
            }
            break;
        }
        memory.push_str(&block);
    }
    if memory.is_empty() {
        memory.push_str("# Task Group: none\n\nscope: no memories yet\n");
    }

    let mut summary = String::from("v1\n\n## User Profile\n\n");
    summary.push_str(
        "Not consolidated by a model yet; see MEMORY.md for the raw per-thread memories.\n\n",
    );
    summary.push_str("## User preferences\n\n");
    let mut prefs = Vec::new();
    for m in selected {
        for line in m
            .output
            .raw_memory
            .lines()
            .chain(m.output.rollout_summary.lines())
        {
            if let Some(p) = line.trim().strip_prefix("User preferences:") {
                let p = p.trim();
                if !p.is_empty()
                    && !p.eq_ignore_ascii_case("none observed")
                    && !prefs.contains(&p.to_string())
                {
                    prefs.push(p.to_string());
                }
            }
        }
    }
    if prefs.is_empty() {
        summary.push_str("- none recorded\n");
    }
    for p in prefs {
        let _ = writeln!(summary, "- {p}");
    }
    summary.push_str("\n## General Tips\n\n");
    summary.push_str("- Search MEMORY.md for the keywords below; open the listed rollout summary for detail.\n\n");
    summary.push_str("## What's in Memory\n\n");
    for (cwd, memories) in &groups {
        let _ = writeln!(summary, "### {}\n", cwd.display());
        let mut day = String::new();
        for m in memories {
            let this_day =
                chrono::DateTime::<chrono::Utc>::from_timestamp(m.output.source_updated_at, 0)
                    .unwrap_or_default()
                    .format("%Y-%m-%d")
                    .to_string();
            if this_day != day {
                let _ = writeln!(summary, "#### {this_day}\n");
                day = this_day;
            }
            let facts = RawMemoryFacts::parse(&m.output.raw_memory);
            let topic =
                first_line(&m.output.rollout_summary).unwrap_or_else(|| m.output.thread_id.clone());
            let keywords = facts.keywords.clone().unwrap_or_else(|| "none".into());
            let _ = writeln!(summary, "- {topic}: {keywords}");
            let desc = facts.description.unwrap_or_else(|| topic.clone());
            let _ = writeln!(summary, "  - desc: {desc}\n");
        }
    }
    let summary = truncate_chars(&summary, FALLBACK_SUMMARY_MAX_CHARS);

    let memory_path = root.join(MEMORY_FILENAME);
    std::fs::write(&memory_path, memory).map_err(|e| PipelineError::io(&memory_path, e))?;
    let summary_path = root.join(MEMORY_SUMMARY_FILENAME);
    std::fs::write(&summary_path, summary).map_err(|e| PipelineError::io(&summary_path, e))?;
    Ok(())
}

/// The frontmatter facts of a raw memory (`description:`, `keywords:`) and
/// the rest of it.
struct RawMemoryFacts {
    description: Option<String>,
    keywords: Option<String>,
    body: String,
}

impl RawMemoryFacts {
    fn parse(raw: &str) -> Self {
        let mut fields: BTreeMap<&str, String> = BTreeMap::new();
        let mut body = Vec::new();
        let mut in_front = false;
        let mut seen_front = false;
        for line in raw.lines() {
            let t = line.trim();
            if t == "---" && !seen_front {
                if in_front {
                    seen_front = true;
                }
                in_front = !in_front;
                continue;
            }
            if in_front {
                for key in ["description", "keywords"] {
                    if let Some(v) = t.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
                        fields.insert(key, v.trim().to_string());
                    }
                }
                continue;
            }
            if !t.starts_with('#') {
                body.push(line);
            }
        }
        Self {
            description: fields.remove("description").filter(|s| !s.is_empty()),
            keywords: fields.remove("keywords").filter(|s| !s.is_empty()),
            body: body.join("\n"),
        }
    }
}

fn first_line(text: &str) -> Option<String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// At most `max` characters, cut at a line end when there is one.
fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    match cut.rfind('\n') {
        Some(i) if i > 0 => cut[..=i].to_string(),
        _ => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stem_matches_upstream() {
        // Upstream's fixture: this UUIDv7 and no slug give this prefix.
        let stem = rollout_summary_file_stem("0194f5a6-89ab-7cde-8123-456789abcdef", 123, None);
        assert_eq!(stem, "2025-02-11T15-35-19-jqmb");
        let stem = rollout_summary_file_stem(
            "0194f5a6-89ab-7cde-8123-456789abcdef",
            123,
            Some(" Fix/The Build "),
        );
        assert_eq!(stem, "2025-02-11T15-35-19-jqmb-fix_the_build");
    }

    #[test]
    fn validator() {
        let dir = tempfile_dir();
        assert!(validate_artifacts(&dir).is_err());
        std::fs::write(dir.join(MEMORY_FILENAME), "m").unwrap();
        std::fs::write(dir.join(MEMORY_SUMMARY_FILENAME), "outdated\n").unwrap();
        assert!(validate_artifacts(&dir).is_err());
        std::fs::write(dir.join(MEMORY_SUMMARY_FILENAME), "v1\n\n## User Profile\n").unwrap();
        assert!(validate_artifacts(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("phase2-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
