//! The macOS backend: a Seatbelt (SBPL) profile generated from the policy,
//! run through `/usr/bin/sandbox-exec`. The generator is plain code (tested
//! on every platform); only the backend itself is macOS-only.
//!
//! Paths are passed as `-D` parameters rather than spliced into the profile,
//! so no path can change the profile's meaning.

use std::path::{Path, PathBuf};

use super::Protection;
use crate::config::SandboxPolicy;

/// Where `sandbox-exec` lives (never looked up on `PATH`).
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

const BASE: &str = r#"(version 1)
(deny default)
(allow process-exec)
(allow process-fork)
(allow signal (target same-sandbox))
(allow process-info* (target same-sandbox))
(allow file-read*)
(allow file-write-data (literal "/dev/null") (literal "/dev/zero"))
(allow file-ioctl (literal "/dev/null") (literal "/dev/zero") (literal "/dev/tty"))
(allow sysctl-read)
(allow ipc-posix-sem)
(allow ipc-posix-shm)
(allow pseudo-tty)
(allow mach-lookup (global-name "com.apple.system.opendirectoryd.libinfo"))
"#;

/// A profile and the parameters it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub text: String,
    /// `-D NAME=VALUE` pairs.
    pub params: Vec<(String, String)>,
}

/// The profile for `policy` with commands running in `cwd`, never reaching
/// what `protection` protects; `None` for `danger-full-access` (no sandbox).
pub fn profile(policy: &SandboxPolicy, cwd: &Path, protection: &Protection) -> Option<Profile> {
    let roots: Vec<PathBuf> = policy.writable_roots(cwd)?;
    let mut text = BASE.to_string();
    let mut params = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let name = format!("WRITABLE_ROOT_{i}");
        params.push((name.clone(), root.display().to_string()));
        let git = root.join(".git");
        let rule = if git.symlink_metadata().is_ok() {
            // `.git` inside a writable root stays read-only.
            let ro = format!("{name}_RO_0");
            params.push((ro.clone(), git.display().to_string()));
            format!(
                "(allow file-write* (require-all (subpath (param \"{name}\")) (require-not (subpath (param \"{ro}\")))))\n"
            )
        } else {
            format!("(allow file-write* (subpath (param \"{name}\")))\n")
        };
        text.push_str(&rule);
    }
    let network = matches!(
        policy,
        SandboxPolicy::WorkspaceWrite {
            network_access: true,
            ..
        }
    );
    if network {
        text.push_str("(allow network-outbound (remote ip))\n(allow network-inbound)\n(allow system-socket)\n");
    } else {
        text.push_str("(allow system-socket (socket-domain AF_UNIX))\n(allow network-bind (local unix-socket))\n");
    }
    // Local sockets: only the named ones (or all, when asked).
    if protection.allow_all_unix_sockets {
        text.push_str("(allow network-outbound (remote unix-socket))\n");
    } else {
        for (i, sock) in protection.allow_unix_sockets.iter().enumerate() {
            let name = format!("UNIX_SOCKET_{i}");
            params.push((name.clone(), sock.display().to_string()));
            text.push_str(&format!(
                "(allow network-outbound (remote unix-socket (path-literal (param \"{name}\"))))\n"
            ));
        }
    }
    // Later rules win: what is protected stays so inside writable roots.
    for (i, ro) in protection.read_only.iter().enumerate() {
        let name = format!("READ_ONLY_{i}");
        params.push((name.clone(), ro.display().to_string()));
        text.push_str(&format!(
            "(deny file-write* (subpath (param \"{name}\")))\n"
        ));
    }
    for (i, hidden) in protection.hidden.iter().enumerate() {
        let name = format!("HIDDEN_{i}");
        params.push((name.clone(), hidden.display().to_string()));
        text.push_str(&format!(
            "(deny file-read* file-write* (subpath (param \"{name}\")))\n(deny network-outbound (remote unix-socket (path-literal (param \"{name}\"))))\n"
        ));
    }
    Some(Profile { text, params })
}

/// `sandbox-exec` arguments that run `program args` under `profile`.
pub fn sandbox_exec_args(profile: &Profile, program: &str, args: &[String]) -> Vec<String> {
    let mut out = vec!["-p".to_string(), profile.text.clone()];
    for (k, v) in &profile.params {
        out.push("-D".into());
        out.push(format!("{k}={v}"));
    }
    out.push("--".into());
    out.push(program.to_string());
    out.extend(args.iter().cloned());
    out
}

/// Runs commands under Seatbelt.
#[cfg(target_os = "macos")]
#[derive(Debug, Default, Clone)]
pub struct SeatbeltSandbox {
    protection: Protection,
}

#[cfg(target_os = "macos")]
impl SeatbeltSandbox {
    pub fn new(protection: Protection) -> Self {
        Self { protection }
    }
}

#[cfg(target_os = "macos")]
impl super::Sandbox for SeatbeltSandbox {
    fn name(&self) -> &'static str {
        "seatbelt"
    }

    fn enforces(&self, _policy: &SandboxPolicy) -> bool {
        Path::new(SANDBOX_EXEC).exists()
    }

    fn wrap(
        &self,
        spec: super::CommandSpec,
        policy: &SandboxPolicy,
    ) -> Result<super::CommandSpec, super::SandboxError> {
        let Some(profile) = profile(policy, &spec.cwd, &self.protection) else {
            return Ok(spec);
        };
        if !Path::new(SANDBOX_EXEC).exists() {
            return Err(super::SandboxError::Unenforceable {
                policy: policy.mode().to_string(),
                reason: format!("{SANDBOX_EXEC} is missing; the command was not run"),
            });
        }
        Ok(super::CommandSpec {
            program: SANDBOX_EXEC.into(),
            arg0: None,
            args: sandbox_exec_args(&profile, &spec.program, &spec.args),
            cwd: spec.cwd,
            env: spec.env,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ww(network: bool) -> SandboxPolicy {
        SandboxPolicy::WorkspaceWrite {
            writable_roots: vec!["/extra".into()],
            network_access: network,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: true,
        }
    }

    #[test]
    fn full_access_has_no_profile() {
        assert!(profile(
            &SandboxPolicy::DangerFullAccess,
            Path::new("/w"),
            &Protection::default()
        )
        .is_none());
    }

    #[test]
    fn read_only_writes_nothing_but_dev_null() {
        let p = profile(
            &SandboxPolicy::ReadOnly,
            Path::new("/w"),
            &Protection::default(),
        )
        .unwrap();
        assert!(p.text.starts_with("(version 1)\n(deny default)"));
        assert!(p.text.contains("(allow file-read*)"));
        assert!(!p.text.contains("(allow file-write* (subpath"));
        assert!(!p.text.contains("require-all"));
        assert!(p.params.is_empty());
        assert!(
            !p.text.contains("(remote unix-socket)"),
            "no local socket by default"
        );
        assert!(!p.text.contains("(allow network-outbound"));
    }

    #[test]
    fn workspace_write_protects_git_and_passes_paths_as_params() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w");
        std::fs::create_dir_all(w.join(".git")).unwrap();
        let p = profile(&ww(false), &w, &Protection::default()).unwrap();
        let w_s = w.display().to_string();
        assert!(p.params.contains(&("WRITABLE_ROOT_0".into(), w_s.clone())));
        assert!(p
            .params
            .contains(&("WRITABLE_ROOT_0_RO_0".into(), format!("{w_s}/.git"))));
        assert!(p
            .params
            .contains(&("WRITABLE_ROOT_1".into(), "/extra".into())));
        assert!(p.text.contains(
            "(allow file-write* (require-all (subpath (param \"WRITABLE_ROOT_0\")) (require-not (subpath (param \"WRITABLE_ROOT_0_RO_0\")))))"
        ));
        assert!(p
            .text
            .contains("(allow file-write* (subpath (param \"WRITABLE_ROOT_1\")))"));
        // No path is spliced into the profile text.
        assert!(!p.text.contains(&w_s));
        let with_net = profile(&ww(true), &w, &Protection::default()).unwrap();
        assert!(with_net
            .text
            .contains("(allow network-outbound (remote ip))\n"));
    }

    #[test]
    fn sandbox_exec_command_line() {
        let p = profile(&ww(false), Path::new("/w"), &Protection::default()).unwrap();
        let args = sandbox_exec_args(&p, "ls", &["-l".into()]);
        assert_eq!(args[0], "-p");
        assert_eq!(args[2], "-D");
        assert!(args[3].starts_with("WRITABLE_ROOT_0="));
        let dd = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(&args[dd + 1..], ["ls", "-l"]);
    }

    #[test]
    fn protected_paths_are_denied_after_everything_else() {
        let protection = Protection {
            hidden: vec!["/h/.codex/auth.json".into()],
            read_only: vec!["/h/.codex".into()],
            allow_unix_sockets: vec!["/run/agent.sock".into()],
            allow_all_unix_sockets: false,
        };
        let p = profile(&ww(false), Path::new("/w"), &protection).unwrap();
        assert!(p
            .params
            .contains(&("HIDDEN_0".into(), "/h/.codex/auth.json".into())));
        assert!(p
            .params
            .contains(&("UNIX_SOCKET_0".into(), "/run/agent.sock".into())));
        let deny = p
            .text
            .find("(deny file-read* file-write* (subpath (param \"HIDDEN_0\")))")
            .unwrap();
        let allow = p.text.rfind("(allow ").unwrap();
        assert!(deny > allow, "the denials come last: {}", p.text);
        assert!(p
            .text
            .contains("(deny file-write* (subpath (param \"READ_ONLY_0\")))"));
        assert!(p.text.contains(
            "(allow network-outbound (remote unix-socket (path-literal (param \"UNIX_SOCKET_0\"))))"
        ));
    }
}
