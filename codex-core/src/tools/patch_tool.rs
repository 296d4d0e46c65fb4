//! Applying a patch as a tool call: verify, check the sandbox policy (and ask
//! when it requires), write, and report a file-change item.

use std::path::Path;

use super::apply_patch::{self, PlannedChange};
use super::{ToolContext, ToolOutput};
use crate::approval::{ApprovalRequest, ReviewDecision};
use crate::audit::{AuditRecord, DecidedBy};
use crate::config::AskForApproval;
use crate::protocol::{Event, FileChangeItem, PatchStatus, ThreadItem};

pub(super) async fn handle(
    ctx: &ToolContext,
    call_id: &str,
    patch: &str,
    base: &Path,
) -> ToolOutput {
    let planned = match apply_patch::verify(patch, base) {
        Ok(p) => p,
        Err(e) => return ToolOutput::error(format!("apply_patch verification failed: {e}")),
    };
    let item = |status| {
        ThreadItem::FileChange(FileChangeItem {
            id: call_id.to_string(),
            changes: planned.iter().map(PlannedChange::to_update).collect(),
            status,
        })
    };
    let outside: Vec<&PlannedChange> = planned
        .iter()
        .filter(|c| {
            !ctx.sandbox_policy.allows_write(&c.path, &ctx.cwd)
                || c.move_to
                    .as_ref()
                    .is_some_and(|m| !ctx.sandbox_policy.allows_write(m, &ctx.cwd))
        })
        .collect();
    let mut decision = "auto";
    let mut decided_by = DecidedBy::Policy;
    let record = |decision: &str, by: DecidedBy, status: &str, note: Option<String>| {
        let mut files: Vec<String> = Vec::new();
        for c in &planned {
            files.push(c.path.display().to_string());
            if let Some(m) = &c.move_to {
                files.push(m.display().to_string());
            }
        }
        ctx.audit.append(AuditRecord {
            timestamp: crate::rollout::timestamp_now(),
            thread_id: ctx.audit.thread_id().to_string(),
            turn_id: ctx.turn_id.clone(),
            call_id: call_id.to_string(),
            kind: "patch".into(),
            command: None,
            files,
            cwd: base.display().to_string(),
            policy: ctx.sandbox_policy.mode().to_string(),
            // Patches are written by the agent itself, checked against the
            // policy's writable roots (not by a kernel sandbox).
            backend: "policy-check".into(),
            decision: decision.into(),
            decided_by: by,
            status: status.into(),
            exit_code: None,
            duration_ms: None,
            note,
        });
    };
    let session_key = format!("patch:{}", ctx.cwd.display());
    let pre_approved = ctx
        .session_approvals
        .lock()
        .map(|s| s.contains(&session_key))
        .unwrap_or(false);
    if !outside.is_empty() && !pre_approved && ctx.approval_policy != AskForApproval::Never {
        super::exec_command::emit_approval_pending(ctx, call_id).await;
    }
    ctx.events
        .emit(Event::ItemStarted {
            turn_id: ctx.turn_id.clone(),
            item: item(PatchStatus::InProgress),
        })
        .await;
    if !outside.is_empty() && !pre_approved {
        let first = outside[0].path.display().to_string();
        if ctx.approval_policy == AskForApproval::Never {
            ctx.events
                .emit(Event::ItemCompleted {
                    turn_id: ctx.turn_id.clone(),
                    item: item(PatchStatus::Declined),
                })
                .await;
            record(
                "denied",
                DecidedBy::Policy,
                "declined",
                Some(format!("writes {first}, outside the sandbox")),
            );
            return ToolOutput::error(format!(
                "patch rejected: writing {first} is not allowed by the {} sandbox and approval_policy is never",
                ctx.sandbox_policy.mode()
            ));
        }
        decided_by = ctx.approvals.decided_by();
        let answer = ctx
            .approvals
            .decide(ApprovalRequest::Patch {
                turn_id: ctx.turn_id.clone(),
                call_id: call_id.to_string(),
                changes: planned.iter().map(PlannedChange::to_update).collect(),
                reason: Some(format!(
                    "the patch writes {first}, outside the {} sandbox",
                    ctx.sandbox_policy.mode()
                )),
            })
            .await;
        decision = super::exec_command::decision_name(answer);
        if answer == ReviewDecision::ApprovedForSession {
            if let Ok(mut s) = ctx.session_approvals.lock() {
                s.insert(session_key);
            }
        }
        if !answer.is_approved() {
            ctx.events
                .emit(Event::ItemCompleted {
                    turn_id: ctx.turn_id.clone(),
                    item: item(PatchStatus::Declined),
                })
                .await;
            record(decision, decided_by, "declined", None);
            let mut out = ToolOutput::error("patch rejected by user");
            out.abort_turn = answer == ReviewDecision::Abort;
            return out;
        }
    } else if !outside.is_empty() {
        decision = "approved";
        decided_by = DecidedBy::Session;
    }
    let changes = planned.clone();
    let result = tokio::task::spawn_blocking(move || apply_patch::apply_planned(changes)).await;
    match result {
        Ok(Ok(res)) => {
            ctx.events
                .emit(Event::ItemCompleted {
                    turn_id: ctx.turn_id.clone(),
                    item: item(PatchStatus::Completed),
                })
                .await;
            record(decision, decided_by, "completed", None);
            ToolOutput::ok(res.summary)
        }
        Ok(Err(e)) => {
            ctx.events
                .emit(Event::ItemCompleted {
                    turn_id: ctx.turn_id.clone(),
                    item: item(PatchStatus::Failed),
                })
                .await;
            record(decision, decided_by, "failed", Some(e.to_string()));
            ToolOutput::error(format!("apply_patch failed: {e}. No files were changed."))
        }
        Err(e) => ToolOutput::error(format!("apply_patch failed: {e}")),
    }
}
