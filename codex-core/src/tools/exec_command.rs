//! `exec_command`: runs a shell command through the sandbox seam, reports a
//! command-execution item, and answers the model in upstream's text format:
//!
//! ```text
//! Chunk ID: 3fa2b1
//! Wall time: 0.0123 seconds
//! Process exited with code 0
//! Original token count: 2
//! Output:
//! hello
//! ```

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{patch_tool, ToolCall, ToolContext, ToolOutput};
use crate::approval::{ApprovalRequest, ReviewDecision};
use crate::audit::{AuditRecord, DecidedBy};
use crate::config::{AskForApproval, SandboxPolicy};
use crate::exec::{self, CommandSpec, ExecEnd, ExecRequest, SandboxError};
use crate::protocol::{CommandExecutionItem, CommandStatus, Event, ThreadItem};
use crate::util::{approx_token_count, short_hex_id, truncate_middle};

/// Largest output budget a call may ask for.
const MAX_OUTPUT_TOKENS_CEILING: u64 = 100_000;
/// Output of a command that runs longer than this is streamed as deltas.
const STREAM_AFTER: std::time::Duration = std::time::Duration::from_millis(250);
/// At most one output delta per this interval.
const STREAM_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Deserialize)]
struct ExecArgs {
    #[serde(alias = "command")]
    cmd: CmdArg,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    shell: Option<String>,
    #[serde(default)]
    login: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    sandbox_permissions: Option<String>,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default, alias = "timeout_ms")]
    #[allow(dead_code)]
    yield_time_ms: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CmdArg {
    Script(String),
    Argv(Vec<String>),
}

pub(super) async fn handle(ctx: &ToolContext, call: &ToolCall) -> ToolOutput {
    let args: ExecArgs = match serde_json::from_str(&call.arguments) {
        Ok(a) => a,
        Err(e) => {
            return ToolOutput::error(format!("failed to parse {} arguments: {e}", call.name))
        }
    };
    let workdir = args
        .workdir
        .as_deref()
        .filter(|w| !w.is_empty())
        .map(|w| ctx.resolve(w))
        .unwrap_or_else(|| ctx.cwd.clone());

    let (argv, script) = match &args.cmd {
        CmdArg::Script(s) => {
            if let Some((patch, dir)) = super::apply_patch::extract_from_shell(s) {
                let base = dir
                    .map(|d| workdir.join(d))
                    .unwrap_or_else(|| workdir.clone());
                let started = std::time::Instant::now();
                let out = patch_tool::handle(ctx, &call.call_id, &patch, &base).await;
                return ToolOutput {
                    content: format_output(
                        "",
                        started.elapsed().as_secs_f64(),
                        if out.success { 0 } else { 1 },
                        &out.content,
                        None,
                    ),
                    ..out
                };
            }
            let shell = args.shell.clone().unwrap_or_else(default_shell);
            let flag = if args.login.unwrap_or(true) {
                "-lc"
            } else {
                "-c"
            };
            (vec![shell, flag.to_string(), s.clone()], s.clone())
        }
        CmdArg::Argv(v) if !v.is_empty() => {
            let script = if v.len() == 3 && (v[1] == "-lc" || v[1] == "-c") {
                v[2].clone()
            } else {
                crate::util::shell_join(v)
            };
            (v.clone(), script)
        }
        CmdArg::Argv(_) => return ToolOutput::error("command is empty"),
    };

    let mut item = CommandExecutionItem {
        id: call.call_id.clone(),
        argv: argv.clone(),
        script,
        cwd: workdir.clone(),
        status: CommandStatus::InProgress,
        exit_code: None,
        aggregated_output: String::new(),
        duration_ms: None,
        process_id: None,
    };
    let mut policy = ctx.sandbox_policy.clone();
    let mut audit = CommandAudit {
        ctx,
        call_id: &call.call_id,
        command: item.display_command(),
        cwd: workdir.display().to_string(),
        decision: "auto",
        by: DecidedBy::Policy,
    };

    if args.sandbox_permissions.as_deref() == Some("require_escalated") {
        if ctx.approval_policy != AskForApproval::OnRequest {
            let p = ctx.approval_policy;
            return ToolOutput::error(format!(
                "approval policy is {p}; reject command — you cannot ask for escalated permissions if the approval policy is {p}"
            ));
        }
        let key = format!("cmd:{}", item.display_command());
        let pre = ctx
            .session_approvals
            .lock()
            .map(|s| s.contains(&key))
            .unwrap_or(false);
        if !pre {
            emit_approval_pending(ctx, &call.call_id).await;
        }
        emit_started(ctx, &item).await;
        let decision = if pre {
            audit.by = DecidedBy::Session;
            ReviewDecision::Approved
        } else {
            audit.by = ctx.approvals.decided_by();
            ctx.approvals
                .decide(ApprovalRequest::Command {
                    turn_id: ctx.turn_id.clone(),
                    call_id: call.call_id.clone(),
                    argv: argv.clone(),
                    cwd: workdir.clone(),
                    reason: args.justification.clone(),
                })
                .await
        };
        audit.decision = decision_name(decision);
        if decision == ReviewDecision::ApprovedForSession {
            if let Ok(mut s) = ctx.session_approvals.lock() {
                s.insert(key);
            }
        }
        if !decision.is_approved() {
            item.status = CommandStatus::Declined;
            emit_completed(ctx, &item).await;
            audit.record(&policy, "declined", None, None, None);
            let mut out = ToolOutput::error("exec command rejected by user");
            out.abort_turn = decision == ReviewDecision::Abort;
            return out;
        }
        policy = SandboxPolicy::DangerFullAccess;
    } else {
        emit_started(ctx, &item).await;
    }

    let mut request = ExecRequest {
        spec: CommandSpec {
            program: argv[0].clone(),
            arg0: None,
            args: argv[1..].to_vec(),
            cwd: workdir.clone(),
            env: exec::env::command_env(&ctx.env_policy, std::env::vars()),
        },
        policy,
        timeout: ctx.exec_timeout,
        capture_bytes: exec::DEFAULT_CAPTURE_BYTES,
        isolation: ctx.command_isolation,
    };
    let mut output = match run_streaming(ctx, &call.call_id, request.clone()).await {
        Ok(o) => o,
        Err(exec::ExecError::Sandbox(SandboxError::Unenforceable { policy, reason })) => {
            // Never run unconfined by surprise: refuse, or ask (per the
            // approval policy) to run it without the sandbox.
            let why = format!("the {policy} sandbox cannot be enforced here: {reason}");
            let decision = if ctx.approval_policy == AskForApproval::Never {
                audit.by = DecidedBy::Policy;
                ReviewDecision::Denied
            } else {
                audit.by = ctx.approvals.decided_by();
                let question = format!("{why}. Run it without the sandbox?");
                ask(ctx, call, &argv, &workdir, question).await
            };
            audit.decision = decision_name(decision);
            if !decision.is_approved() {
                item.status = CommandStatus::Declined;
                item.aggregated_output = why.clone();
                emit_completed(ctx, &item).await;
                audit.record(&request.policy, "refused", None, None, Some(why.clone()));
                let mut out = ToolOutput::error(format!("exec_command refused: {why}"));
                out.abort_turn = decision == ReviewDecision::Abort;
                return out;
            }
            request.policy = SandboxPolicy::DangerFullAccess;
            match run_streaming(ctx, &call.call_id, request.clone()).await {
                Ok(o) => o,
                Err(e) => return failed(ctx, &mut item, &audit, &request.policy, e).await,
            }
        }
        Err(e) => return failed(ctx, &mut item, &audit, &request.policy, e).await,
    };
    // `on-failure`: a command the sandbox stopped may run again outside it,
    // if the user agrees.
    if ctx.approval_policy == AskForApproval::OnFailure
        && output.exit_code() != 0
        && matches!(output.end, ExecEnd::Exited(_) | ExecEnd::Signaled(_))
        && request.policy != SandboxPolicy::DangerFullAccess
        && ctx.sandbox.enforces(&request.policy)
        && looks_like_sandbox_denial(&output.aggregated)
    {
        let reason = format!(
            "the command failed in the {} sandbox; run it again without the sandbox?",
            request.policy.mode()
        );
        audit.by = ctx.approvals.decided_by();
        let decision = ask(ctx, call, &argv, &workdir, reason).await;
        audit.decision = decision_name(decision);
        if decision.is_approved() {
            request.policy = SandboxPolicy::DangerFullAccess;
            match run_streaming(ctx, &call.call_id, request.clone()).await {
                Ok(o) => output = o,
                Err(e) => return failed(ctx, &mut item, &audit, &request.policy, e).await,
            }
        } else if decision == ReviewDecision::Abort {
            item.status = CommandStatus::Declined;
            emit_completed(ctx, &item).await;
            audit.record(&request.policy, "declined", None, None, None);
            let mut out = ToolOutput::error("exec command rejected by user");
            out.abort_turn = true;
            return out;
        }
    }
    let code = output.exit_code();
    item.exit_code = Some(code);
    item.duration_ms = Some(output.duration.as_millis() as u64);
    item.process_id = output.pid;
    item.aggregated_output = output.aggregated.clone();
    item.status = if code == 0 {
        CommandStatus::Completed
    } else {
        CommandStatus::Failed
    };
    emit_completed(ctx, &item).await;
    audit.record(
        &request.policy,
        if code == 0 { "completed" } else { "failed" },
        Some(code),
        item.duration_ms,
        match output.end {
            ExecEnd::TimedOut => Some("timed out".into()),
            ExecEnd::Cancelled => Some("interrupted".into()),
            _ => None,
        },
    );

    let mut text = output.aggregated;
    match output.end {
        ExecEnd::TimedOut => {
            text = format!(
                "command timed out after {} milliseconds\n{text}",
                ctx.exec_timeout.as_millis()
            )
        }
        ExecEnd::Cancelled => text = format!("command aborted by user\n{text}"),
        _ => {}
    }
    let budget = args
        .max_output_tokens
        .unwrap_or(ctx.output_token_limit)
        .clamp(1, MAX_OUTPUT_TOKENS_CEILING);
    let fitted = match &ctx.shaper {
        Some(s) => s.fit(&text, budget, &ctx.cancel).await,
        None => truncated(&text, budget),
    };
    ToolOutput {
        content: format_output(
            &short_hex_id(),
            output.duration.as_secs_f64(),
            code,
            &text,
            fitted.as_deref(),
        ),
        success: code == 0,
        abort_turn: false,
    }
}

/// Asks whether the command may run (unsandboxed).
async fn ask(
    ctx: &ToolContext,
    call: &ToolCall,
    argv: &[String],
    cwd: &std::path::Path,
    reason: String,
) -> ReviewDecision {
    ctx.approvals
        .decide(ApprovalRequest::Command {
            turn_id: ctx.turn_id.clone(),
            call_id: call.call_id.clone(),
            argv: argv.to_vec(),
            cwd: cwd.to_path_buf(),
            reason: Some(reason),
        })
        .await
}

/// The command could not be started: the item fails with the reason.
async fn failed(
    ctx: &ToolContext,
    item: &mut CommandExecutionItem,
    audit: &CommandAudit<'_>,
    policy: &SandboxPolicy,
    e: exec::ExecError,
) -> ToolOutput {
    item.status = CommandStatus::Failed;
    item.aggregated_output = e.to_string();
    emit_completed(ctx, item).await;
    audit.record(policy, "failed", None, None, Some(e.to_string()));
    ToolOutput::error(format!("exec_command failed: {e}"))
}

/// What the audit record of one command says, gathered as it runs.
struct CommandAudit<'a> {
    ctx: &'a ToolContext,
    call_id: &'a str,
    command: String,
    cwd: String,
    decision: &'static str,
    by: DecidedBy,
}

impl CommandAudit<'_> {
    fn record(
        &self,
        policy: &SandboxPolicy,
        status: &str,
        exit_code: Option<i32>,
        duration_ms: Option<u64>,
        note: Option<String>,
    ) {
        let backend = if *policy == SandboxPolicy::DangerFullAccess {
            "none"
        } else {
            self.ctx.sandbox.name()
        };
        self.ctx.audit.append(AuditRecord {
            timestamp: crate::rollout::timestamp_now(),
            thread_id: self.ctx.audit.thread_id().to_string(),
            turn_id: self.ctx.turn_id.clone(),
            call_id: self.call_id.to_string(),
            kind: "command".into(),
            command: Some(self.command.clone()),
            files: Vec::new(),
            cwd: self.cwd.clone(),
            policy: policy.mode().to_string(),
            backend: backend.into(),
            decision: self.decision.into(),
            decided_by: self.by,
            status: status.into(),
            exit_code,
            duration_ms,
            note,
        });
    }
}

/// The audit name of a decision.
pub(super) fn decision_name(d: ReviewDecision) -> &'static str {
    match d {
        ReviewDecision::Approved => "approved",
        ReviewDecision::ApprovedForSession => "approved_for_session",
        ReviewDecision::Denied => "denied",
        ReviewDecision::Abort => "abort",
    }
}

/// Runs the command, streaming its output as batched deltas: nothing for a
/// command that finishes within STREAM_AFTER (the completed item carries its
/// output), then at most one delta per STREAM_EVERY. Best effort: the channel
/// is bounded and drops when full.
async fn run_streaming(
    ctx: &ToolContext,
    call_id: &str,
    request: ExecRequest,
) -> Result<exec::ExecOutput, exec::ExecError> {
    let (dtx, mut drx) = mpsc::channel::<String>(64);
    let forward = async {
        let started = tokio::time::Instant::now();
        let mut pending = String::new();
        let mut streaming = false;
        let mut tick = tokio::time::interval_at(started + STREAM_AFTER, STREAM_EVERY);
        loop {
            tokio::select! {
                d = drx.recv() => match d {
                    Some(d) => pending.push_str(&d),
                    None => break,
                },
                _ = tick.tick() => {
                    streaming = true;
                    if !pending.is_empty() {
                        emit_delta(ctx, call_id, std::mem::take(&mut pending)).await;
                    }
                }
            }
        }
        if streaming && !pending.is_empty() {
            emit_delta(ctx, call_id, pending).await;
        }
    };
    let run = async {
        let r = exec::run(request, ctx.sandbox.as_ref(), ctx.cancel.clone(), |s| {
            let _ = dtx.try_send(s.to_string());
        })
        .await;
        drop(dtx);
        r
    };
    let (result, ()) = futures_util::future::join(run, forward).await;
    result
}

/// Output that suggests the sandbox, not the command, failed.
fn looks_like_sandbox_denial(output: &str) -> bool {
    const MARKERS: &[&str] = &[
        "Permission denied",
        "Operation not permitted",
        "Read-only file system",
        "sandbox",
        "Network is unreachable",
    ];
    MARKERS.iter().any(|m| output.contains(m))
}

/// `text` cut to `budget` tokens, or `None` when it fits.
fn truncated(text: &str, budget: u64) -> Option<String> {
    (approx_token_count(text) > budget).then(|| truncate_middle(text, budget))
}

/// The model-facing output; `fitted` is `text` cut (truncated or shaped)
/// to the budget, `None` when it goes in whole.
fn format_output(
    chunk_id: &str,
    wall_secs: f64,
    code: i32,
    text: &str,
    fitted: Option<&str>,
) -> String {
    let mut s = String::new();
    if !chunk_id.is_empty() {
        s.push_str(&format!("Chunk ID: {chunk_id}\n"));
    }
    s.push_str(&format!("Wall time: {wall_secs:.4} seconds\n"));
    s.push_str(&format!("Process exited with code {code}\n"));
    s.push_str(&format!(
        "Original token count: {}\n",
        approx_token_count(text)
    ));
    s.push_str("Output:\n");
    match fitted {
        Some(fitted) => s.push_str(&format!(
            "Total output lines: {}\n\n{fitted}",
            text.lines().count(),
        )),
        None => s.push_str(text),
    }
    s
}

fn default_shell() -> String {
    for candidate in ["/bin/bash", "/usr/bin/bash", "/bin/sh"] {
        if PathBuf::from(candidate).exists() {
            return candidate.to_string();
        }
    }
    "sh".to_string()
}

async fn emit_delta(ctx: &ToolContext, item_id: &str, delta: String) {
    ctx.events
        .emit(Event::CommandOutputDelta {
            turn_id: ctx.turn_id.clone(),
            item_id: item_id.to_string(),
            delta,
        })
        .await;
}

pub(crate) async fn emit_approval_pending(ctx: &ToolContext, item_id: &str) {
    ctx.events
        .emit(Event::ApprovalPending {
            turn_id: ctx.turn_id.clone(),
            item_id: item_id.to_string(),
        })
        .await;
}

async fn emit_started(ctx: &ToolContext, item: &CommandExecutionItem) {
    ctx.events
        .emit(Event::ItemStarted {
            turn_id: ctx.turn_id.clone(),
            item: ThreadItem::CommandExecution(item.clone()),
        })
        .await;
}

async fn emit_completed(ctx: &ToolContext, item: &CommandExecutionItem) {
    ctx.events
        .emit(Event::ItemCompleted {
            turn_id: ctx.turn_id.clone(),
            item: ThreadItem::CommandExecution(item.clone()),
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_format_matches_upstream_shape() {
        let s = format_output(
            "abc123",
            0.01234,
            0,
            "hello\n",
            truncated("hello\n", 10_000).as_deref(),
        );
        assert_eq!(
            s,
            "Chunk ID: abc123\nWall time: 0.0123 seconds\nProcess exited with code 0\nOriginal token count: 2\nOutput:\nhello\n"
        );
        let long = "x".repeat(1000);
        let s = format_output("c", 0.0, 1, &long, truncated(&long, 10).as_deref());
        assert!(s.contains("tokens truncated"));
        assert!(s.contains("Total output lines: 1"));
    }
}
