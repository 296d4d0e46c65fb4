//! The sandbox seam: every tool command is wrapped by a [`Sandbox`] before it
//! is spawned. Backends that confine the command (Landlock + seccomp,
//! bubblewrap, Seatbelt) plug in here; this crate ships the passthrough
//! backend, which records the requested policy but does not enforce it.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::SandboxPolicy;

/// A command ready to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: String,
    /// `argv[0]` when it differs from `program` (the sandbox helper).
    pub arg0: Option<String>,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment of the command (nothing else is inherited).
    pub env: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The policy cannot be enforced here; the command must not run confined
    /// in name only.
    #[error("sandbox policy {policy} cannot be enforced: {reason}")]
    Unenforceable { policy: String, reason: String },
    #[error("sandbox setup failed: {0}")]
    Setup(String),
}

/// Wraps commands so that they run under a policy.
pub trait Sandbox: Send + Sync + std::fmt::Debug {
    /// A short name for logs and audit records (`none`, `landlock`, ...).
    fn name(&self) -> &'static str;
    /// Whether this backend actually enforces `policy`.
    fn enforces(&self, policy: &SandboxPolicy) -> bool;
    /// Turns `spec` into the command that runs it under `policy`.
    fn wrap(&self, spec: CommandSpec, policy: &SandboxPolicy) -> Result<CommandSpec, SandboxError>;
}

/// The confining backend of this platform: Landlock + seccomp on Linux
/// (through this binary as the helper), Seatbelt on macOS; elsewhere
/// nothing, which refuses every policy but `danger-full-access`. Whatever
/// the policy, commands never reach what `protection` protects.
pub fn platform_sandbox(protection: super::Protection) -> std::sync::Arc<dyn Sandbox> {
    #[cfg(target_os = "linux")]
    if let Ok(s) = super::linux::LinuxSandbox::current_exe() {
        return std::sync::Arc::new(s.with_protection(protection));
    }
    #[cfg(target_os = "macos")]
    return std::sync::Arc::new(super::seatbelt::SeatbeltSandbox::new(protection));
    #[allow(unreachable_code)]
    let _ = protection;
    #[allow(unreachable_code)]
    std::sync::Arc::new(Unconfined)
}

/// Runs commands as they are. Used for `danger-full-access`, by hosts that
/// confine commands themselves, and where no backend exists.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unconfined;

impl Sandbox for Unconfined {
    fn name(&self) -> &'static str {
        "none"
    }

    fn enforces(&self, policy: &SandboxPolicy) -> bool {
        matches!(policy, SandboxPolicy::DangerFullAccess)
    }

    fn wrap(
        &self,
        spec: CommandSpec,
        _policy: &SandboxPolicy,
    ) -> Result<CommandSpec, SandboxError> {
        Ok(spec)
    }
}
