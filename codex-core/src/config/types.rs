//! Enumerations shared by config, the turn loop and front ends, with
//! upstream's spellings.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// When the user is asked before a command or patch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AskForApproval {
    /// Only commands known to be safe run without asking.
    Untrusted,
    /// Run sandboxed; ask to re-run unsandboxed when the sandbox denies.
    OnFailure,
    /// The model decides when to ask (`sandbox_permissions: require_escalated`).
    #[default]
    OnRequest,
    /// Never ask; failures go back to the model.
    Never,
}

impl AskForApproval {
    pub fn as_str(&self) -> &'static str {
        match self {
            AskForApproval::Untrusted => "untrusted",
            AskForApproval::OnFailure => "on-failure",
            AskForApproval::OnRequest => "on-request",
            AskForApproval::Never => "never",
        }
    }
}

impl fmt::Display for AskForApproval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The sandbox mode selected by config or flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    #[default]
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
}

impl SandboxMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            SandboxMode::ReadOnly => "read-only",
            SandboxMode::WorkspaceWrite => "workspace-write",
            SandboxMode::DangerFullAccess => "danger-full-access",
        }
    }
}

impl fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read-only" => Ok(SandboxMode::ReadOnly),
            "workspace-write" => Ok(SandboxMode::WorkspaceWrite),
            "danger-full-access" => Ok(SandboxMode::DangerFullAccess),
            other => Err(format!(
                "unknown sandbox mode `{other}` (expected read-only, workspace-write or danger-full-access)"
            )),
        }
    }
}

/// `[sandbox_workspace_write]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxWorkspaceWrite {
    #[serde(default)]
    pub writable_roots: Vec<PathBuf>,
    #[serde(default)]
    pub network_access: bool,
    #[serde(default)]
    pub exclude_tmpdir_env_var: bool,
    #[serde(default)]
    pub exclude_slash_tmp: bool,
}

/// The effective sandbox policy of a turn, in upstream's rollout shape
/// (`{"type": "read-only"}`, `{"type": "workspace-write", ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SandboxPolicy {
    ReadOnly,
    WorkspaceWrite {
        #[serde(default)]
        writable_roots: Vec<PathBuf>,
        #[serde(default)]
        network_access: bool,
        #[serde(default)]
        exclude_tmpdir_env_var: bool,
        #[serde(default)]
        exclude_slash_tmp: bool,
    },
    DangerFullAccess,
}

impl SandboxPolicy {
    pub fn from_mode(mode: SandboxMode, ww: &SandboxWorkspaceWrite) -> Self {
        match mode {
            SandboxMode::ReadOnly => SandboxPolicy::ReadOnly,
            SandboxMode::DangerFullAccess => SandboxPolicy::DangerFullAccess,
            SandboxMode::WorkspaceWrite => SandboxPolicy::WorkspaceWrite {
                writable_roots: ww.writable_roots.clone(),
                network_access: ww.network_access,
                exclude_tmpdir_env_var: ww.exclude_tmpdir_env_var,
                exclude_slash_tmp: ww.exclude_slash_tmp,
            },
        }
    }

    pub fn mode(&self) -> SandboxMode {
        match self {
            SandboxPolicy::ReadOnly => SandboxMode::ReadOnly,
            SandboxPolicy::WorkspaceWrite { .. } => SandboxMode::WorkspaceWrite,
            SandboxPolicy::DangerFullAccess => SandboxMode::DangerFullAccess,
        }
    }

    pub fn has_network(&self) -> bool {
        match self {
            SandboxPolicy::ReadOnly => false,
            SandboxPolicy::WorkspaceWrite { network_access, .. } => *network_access,
            SandboxPolicy::DangerFullAccess => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
    Max,
    Ultra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningSummary {
    #[default]
    Auto,
    Concise,
    Detailed,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    Low,
    Medium,
    High,
}

/// Which HTTP API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireApi {
    #[default]
    Responses,
    Chat,
}

impl SandboxPolicy {
    /// Directories a command may write under this policy (empty for
    /// read-only; `None` means everywhere).
    pub fn writable_roots(&self, cwd: &std::path::Path) -> Option<Vec<PathBuf>> {
        match self {
            SandboxPolicy::ReadOnly => Some(Vec::new()),
            SandboxPolicy::DangerFullAccess => None,
            SandboxPolicy::WorkspaceWrite {
                writable_roots,
                exclude_tmpdir_env_var,
                exclude_slash_tmp,
                ..
            } => {
                let mut roots = vec![cwd.to_path_buf()];
                roots.extend(writable_roots.iter().map(|r| {
                    if r.is_absolute() {
                        r.clone()
                    } else {
                        cwd.join(r)
                    }
                }));
                if !exclude_tmpdir_env_var {
                    if let Some(t) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
                        roots.push(PathBuf::from(t));
                    }
                }
                if !exclude_slash_tmp {
                    roots.push(PathBuf::from("/tmp"));
                }
                Some(roots.into_iter().map(|r| normalize_path(&r)).collect())
            }
        }
    }

    /// Whether writing `path` stays inside the policy's writable roots
    /// (`.git` directories inside a root stay read-only).
    pub fn allows_write(&self, path: &std::path::Path, cwd: &std::path::Path) -> bool {
        let Some(roots) = self.writable_roots(cwd) else {
            return true;
        };
        let target = normalize_path(&if path.is_absolute() {
            path.to_path_buf()
        } else {
            cwd.join(path)
        });
        roots.iter().any(|root| {
            target.strip_prefix(root).is_ok_and(|rel| {
                !rel.components()
                    .any(|c| c.as_os_str() == std::ffi::OsStr::new(".git"))
            })
        })
    }
}

/// Resolves `.`/`..` lexically and symlinks in the longest existing prefix.
pub fn normalize_path(p: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    // Canonicalize the deepest existing ancestor so symlinked roots compare equal.
    let mut existing = out.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(name) => {
                rest.push(name.to_os_string());
                existing.pop();
            }
            None => return out,
        }
    }
    let mut resolved = std::fs::canonicalize(&existing).unwrap_or(existing);
    for name in rest.into_iter().rev() {
        resolved.push(name);
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_checks() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = std::fs::canonicalize(dir.path()).unwrap();
        let ww = SandboxPolicy::WorkspaceWrite {
            writable_roots: vec![],
            network_access: false,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: true,
        };
        assert!(ww.allows_write(std::path::Path::new("a/b.txt"), &cwd));
        assert!(!ww.allows_write(std::path::Path::new("../outside.txt"), &cwd));
        assert!(!ww.allows_write(std::path::Path::new(".git/config"), &cwd));
        assert!(!ww.allows_write(std::path::Path::new("/etc/passwd"), &cwd));
        assert!(!SandboxPolicy::ReadOnly.allows_write(std::path::Path::new("a"), &cwd));
        assert!(SandboxPolicy::DangerFullAccess.allows_write(std::path::Path::new("/etc/x"), &cwd));
    }
}
