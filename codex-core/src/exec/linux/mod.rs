//! The Linux sandbox backend: a command runs through a small helper (this
//! same binary started as `codex-linux-sandbox`) that confines itself and
//! then execs the command:
//!
//! 1. a private mount namespace: `.git` and `.codex` inside writable roots
//!    and `$CODEX_HOME` are bind-mounted read-only; the [`Protection`]'s
//!    hidden paths (credentials, audit logs, codexd's sockets, the D-Bus
//!    session bus, the keyring) and every bound pathname unix socket not
//!    named by `allow_unix_sockets` are covered;
//! 2. `no_new_privs`;
//! 3. Landlock: read everywhere, write only beneath the writable roots (and
//!    `/dev/null`); from ABI 6, no abstract unix sockets and no signals
//!    outside the sandbox; mounts can no longer change;
//! 4. seccomp: no x32 or foreign-architecture calls, no kernel keyring; no
//!    sockets but `AF_UNIX` unless the policy allows network, and no
//!    `connect` at all when neither network nor a local socket is allowed;
//! 5. `execvp`.
//!
//! A kernel that cannot enforce the policy (no Landlock) makes
//! [`LinuxSandbox::wrap`] refuse with the reason, before anything runs.

pub mod landlock;
pub mod namespace;
pub mod seccomp;

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::sandbox::{CommandSpec, Sandbox, SandboxError};
use super::Protection;
use crate::config::SandboxPolicy;

/// `argv[0]` that makes our binary run as the sandbox helper.
pub const HELPER_ARGV0: &str = "codex-linux-sandbox";
/// Exit status of the helper when it cannot set the sandbox up (the
/// command did not run).
pub const SETUP_FAILED: i32 = 126;
/// First line of the helper's message when it could not set up.
pub const SETUP_FAILED_PREFIX: &str = "codex-linux-sandbox: sandbox setup failed:";

/// Runs commands under Landlock + seccomp through the helper.
#[derive(Debug, Clone)]
pub struct LinuxSandbox {
    /// The binary that becomes the helper under [`HELPER_ARGV0`].
    helper: PathBuf,
    protection: Protection,
}

impl LinuxSandbox {
    pub fn new(helper: PathBuf) -> Self {
        Self {
            helper,
            protection: Protection::default(),
        }
    }

    /// Commands never reach what `protection` protects.
    pub fn with_protection(mut self, protection: Protection) -> Self {
        self.protection = protection;
        self
    }

    /// The helper is this process's own executable.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }
}

/// The Landlock ABI of this kernel, probed once.
fn landlock_abi() -> &'static Result<u32, String> {
    static ABI: OnceLock<Result<u32, String>> = OnceLock::new();
    ABI.get_or_init(|| landlock::abi_version().map_err(|e| e.to_string()))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl Sandbox for LinuxSandbox {
    fn name(&self) -> &'static str {
        "landlock"
    }

    fn enforces(&self, policy: &SandboxPolicy) -> bool {
        matches!(policy, SandboxPolicy::DangerFullAccess) || landlock_abi().is_ok()
    }

    fn wrap(&self, spec: CommandSpec, policy: &SandboxPolicy) -> Result<CommandSpec, SandboxError> {
        if matches!(policy, SandboxPolicy::DangerFullAccess) {
            return Ok(spec);
        }
        if let Err(reason) = landlock_abi() {
            return Err(SandboxError::Unenforceable {
                policy: policy.mode().to_string(),
                reason: format!(
                    "{reason} (kernel {}, Landlock ABI: none); the command was not run",
                    kernel_release()
                ),
            });
        }
        let policy_json =
            serde_json::to_string(policy).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let protect_json = serde_json::to_string(&self.protection)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        let mut args = vec![
            "--policy".to_string(),
            policy_json,
            "--protect".to_string(),
            protect_json,
            "--cwd".to_string(),
            spec.cwd.display().to_string(),
            "--".to_string(),
            spec.program.clone(),
        ];
        args.extend(spec.args.iter().cloned());
        Ok(CommandSpec {
            program: self.helper.display().to_string(),
            arg0: Some(HELPER_ARGV0.to_string()),
            args,
            cwd: spec.cwd,
            env: spec.env,
        })
    }
}

/// What the helper is asked to do.
#[derive(Debug)]
struct HelperArgs {
    policy: SandboxPolicy,
    protection: Protection,
    cwd: PathBuf,
    command: Vec<OsString>,
}

fn parse_args(args: &[OsString]) -> Result<HelperArgs, String> {
    let mut policy = None;
    let mut protection = Protection::default();
    let mut cwd = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--policy") => {
                let v = it.next().ok_or("--policy needs a value")?;
                let v = v.to_str().ok_or("--policy is not UTF-8")?;
                policy = Some(
                    serde_json::from_str::<SandboxPolicy>(v)
                        .map_err(|e| format!("bad --policy: {e}"))?,
                );
            }
            Some("--protect") => {
                let v = it.next().ok_or("--protect needs a value")?;
                let v = v.to_str().ok_or("--protect is not UTF-8")?;
                protection = serde_json::from_str::<Protection>(v)
                    .map_err(|e| format!("bad --protect: {e}"))?;
            }
            Some("--cwd") => cwd = Some(PathBuf::from(it.next().ok_or("--cwd needs a value")?)),
            Some("--") => break,
            _ => return Err(format!("unexpected argument {a:?}")),
        }
    }
    let command: Vec<OsString> = it.cloned().collect();
    if command.is_empty() {
        return Err("no command given after --".into());
    }
    Ok(HelperArgs {
        policy: policy.ok_or("--policy is required")?,
        protection,
        cwd: cwd.ok_or("--cwd is required")?,
        command,
    })
}

/// The read-only islands of `roots`: their `.git` and `.codex` entries.
pub fn read_only_islands(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = roots
        .iter()
        .flat_map(|r| [r.join(".git"), r.join(".codex")])
        .filter(|g| g.symlink_metadata().is_ok())
        .filter_map(|g| std::fs::canonicalize(&g).ok())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether `path` is `allowed` or lies beneath one of them.
fn covered_by(path: &Path, allowed: &[PathBuf]) -> bool {
    allowed.iter().any(|a| path.starts_with(a))
}

/// Sets up the mount namespace: read-only islands first, then what is
/// hidden on top (a hidden path may lie inside an island).
fn arrange_mounts(roots: &[PathBuf], protection: &Protection) -> Result<(), String> {
    let canonical = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect()
    };
    let mut read_only = read_only_islands(roots);
    // Read-only paths outside every writable root are read-only already.
    read_only.extend(
        canonical(&protection.read_only)
            .into_iter()
            .filter(|p| roots.iter().any(|r| p.starts_with(r))),
    );
    read_only.sort();
    read_only.dedup();
    let mut hidden: Vec<PathBuf> = protection.hidden.clone();
    if !protection.allow_all_unix_sockets {
        let allowed = canonical(&protection.allow_unix_sockets);
        hidden.extend(namespace::bound_unix_sockets().into_iter().filter(|s| {
            !covered_by(s, &allowed) && !covered_by(s, &protection.allow_unix_sockets)
        }));
    }
    hidden.sort();
    hidden.dedup();
    namespace::enter().map_err(|e| e.to_string())?;
    for p in &read_only {
        namespace::bind_read_only(p).map_err(|e| e.to_string())?;
    }
    for p in &hidden {
        namespace::hide(p).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Confines this process to `policy`, never reaching what `protection`
/// protects.
fn confine(policy: &SandboxPolicy, protection: &Protection, cwd: &Path) -> Result<(), String> {
    let roots: Vec<PathBuf> = policy
        .writable_roots(cwd)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect();
    let abi = landlock::abi_version().map_err(|e| {
        format!(
            "{e}; kernel {} cannot enforce the {} policy",
            kernel_release(),
            policy.mode()
        )
    })?;
    arrange_mounts(&roots, protection)?;
    let mut rules = landlock::Ruleset::new(abi).map_err(|e| e.to_string())?;
    rules
        .allow(Path::new("/"), landlock::READ_RIGHTS)
        .map_err(|e| e.to_string())?;
    rules
        .allow(
            Path::new("/dev/null"),
            landlock::READ_RIGHTS | landlock::ACCESS_WRITE_FILE,
        )
        .map_err(|e| e.to_string())?;
    for root in &roots {
        rules
            .allow(root, landlock::write_rights(abi))
            .map_err(|e| e.to_string())?;
    }
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) has no memory-safety preconditions.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "cannot set no_new_privs: {}",
            std::io::Error::last_os_error()
        ));
    }
    rules.restrict_self().map_err(|e| {
        format!(
            "{e} (kernel {}, Landlock ABI {abi}, policy {})",
            kernel_release(),
            policy.mode()
        )
    })?;
    let network = matches!(
        policy,
        SandboxPolicy::WorkspaceWrite {
            network_access: true,
            ..
        }
    );
    let filter = seccomp::confinement(seccomp::FilterPolicy {
        network,
        unix_connect: protection.allow_all_unix_sockets
            || !protection.allow_unix_sockets.is_empty(),
    });
    seccomp::install(&filter).map_err(|e| format!("cannot install the seccomp filter: {e}"))?;
    Ok(())
}

/// Entry point of the helper (`argv[0]` = [`HELPER_ARGV0`]): confines
/// itself and execs the command. Returns only on failure, with the exit
/// status to use.
pub fn helper_main(args: &[OsString]) -> i32 {
    let parsed = match parse_args(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{SETUP_FAILED_PREFIX} {e}");
            return SETUP_FAILED;
        }
    };
    if let Err(e) = confine(&parsed.policy, &parsed.protection, &parsed.cwd) {
        eprintln!("{SETUP_FAILED_PREFIX} {e}");
        return SETUP_FAILED;
    }
    let argv: Vec<CString> = parsed
        .command
        .iter()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `ptrs` is a NULL-terminated array of valid C strings that
    // outlive the call (execvp returns only on failure).
    unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
    let e = std::io::Error::last_os_error();
    eprintln!(
        "codex-linux-sandbox: cannot run {:?}: {e}",
        parsed.command[0]
    );
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_args_round_trip() {
        let policy = SandboxPolicy::WorkspaceWrite {
            writable_roots: vec!["/w".into()],
            network_access: false,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: true,
        };
        let spec = CommandSpec {
            program: "ls".into(),
            arg0: None,
            args: vec!["-l".into()],
            cwd: "/w".into(),
            env: Default::default(),
        };
        let wrapped = LinuxSandbox::new("/bin/codex".into())
            .wrap(spec, &policy)
            .unwrap();
        assert_eq!(wrapped.arg0.as_deref(), Some(HELPER_ARGV0));
        let args: Vec<OsString> = wrapped.args.iter().map(OsString::from).collect();
        let parsed = parse_args(&args).unwrap();
        assert_eq!(parsed.policy, policy);
        assert_eq!(parsed.cwd, PathBuf::from("/w"));
        assert_eq!(parsed.command, vec![OsString::from("ls"), "-l".into()]);
        assert!(parse_args(&["--cwd".into(), "/w".into()]).is_err());
    }
}
