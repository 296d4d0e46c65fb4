//! `codex doctor`: each check returns a typed result (ok / warn / fail,
//! what was found, what to do); the CLI prints them. A check never
//! panics or hangs: every external wait has a short deadline.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codex_core::config::{Config, LoadOptions};
use serde::Serialize;

use super::{pidfile, probe, DaemonPaths};

/// How long the model provider has to answer.
const PROVIDER_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `installation`, `config`, `auth`, `sandbox.landlock`, ...
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do (absent when there is nothing to do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
            fix,
        }
    }
    fn ok(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Ok, detail, None)
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Status::Warn, detail, Some(fix.into()))
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Status::Fail, detail, Some(fix.into()))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The worst status of all checks.
    pub status: Status,
    pub version: String,
    pub codex_home: PathBuf,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone)]
pub struct DoctorOptions {
    pub codex_home: PathBuf,
    /// The running `codex` binary.
    pub codex_exe: Option<PathBuf>,
    /// The daemon's socket (`None`: the default).
    pub socket: Option<PathBuf>,
    /// Contact the model provider.
    pub check_provider: bool,
}

pub async fn run(opts: &DoctorOptions) -> Report {
    let mut checks = vec![installation(opts.codex_exe.as_deref())];
    let config = Config::load(LoadOptions {
        codex_home: Some(opts.codex_home.clone()),
        cli_overrides: Vec::new(),
        overrides: Default::default(),
    });
    checks.push(match &config {
        Ok(c) if c.warnings.is_empty() => Check::ok("config", config_detail(&opts.codex_home)),
        Ok(c) => Check::warn(
            "config",
            format!(
                "{}; {}",
                config_detail(&opts.codex_home),
                c.warnings.join("; ")
            ),
            "remove or correct the keys named above",
        ),
        Err(e) => Check::fail(
            "config",
            e.to_string(),
            format!(
                "fix the key named above in {} (or move the file aside to use the defaults)",
                opts.codex_home.join("config.toml").display()
            ),
        ),
    });
    match &config {
        Ok(c) => checks.push(auth(c)),
        Err(_) => checks.push(Check::warn(
            "auth",
            "not checked: the config does not load",
            "fix the config first",
        )),
    }
    checks.extend(sandbox());
    checks.extend(daemon(&DaemonPaths::new(&opts.codex_home, opts.socket.clone())).await);
    if let Ok(c) = &config {
        if opts.check_provider {
            checks.push(provider(c).await);
        }
    }
    Report {
        status: checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok),
        version: env!("CARGO_PKG_VERSION").into(),
        codex_home: opts.codex_home.clone(),
        checks,
    }
}

fn config_detail(home: &Path) -> String {
    let file = home.join("config.toml");
    if file.exists() {
        format!("{} loads", file.display())
    } else {
        format!("no {} (defaults)", file.display())
    }
}

fn installation(exe: Option<&Path>) -> Check {
    let exe = exe
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_exe().ok());
    let this = exe
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "unknown path".into());
    match crate::runtime::find_worker_exe(None) {
        Ok(w) => Check::ok(
            "installation",
            format!(
                "codex {} at {this}; workers run {}",
                env!("CARGO_PKG_VERSION"),
                w.display()
            ),
        ),
        Err(e) => Check::fail(
            "installation",
            format!("codex {} at {this}; {e}", env!("CARGO_PKG_VERSION")),
            format!(
                "install the `codex` binary on PATH or set {}",
                crate::runtime::WORKER_PATH_ENV
            ),
        ),
    }
}

fn auth(config: &Config) -> Check {
    let p = &config.model_provider;
    let id = &config.model_provider_id;
    let env_set = p
        .env_key
        .as_ref()
        .filter(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()));
    if !p.requires_openai_auth {
        return match (&p.env_key, env_set) {
            (_, Some(k)) => Check::ok("auth", format!("provider `{id}` uses ${k} (set)")),
            (Some(k), None) if p.experimental_bearer_token.is_none() => Check::fail(
                "auth",
                format!("provider `{id}` reads its key from ${k}, which is not set"),
                p.env_key_instructions
                    .clone()
                    .unwrap_or_else(|| format!("export {k}=<your key>")),
            ),
            _ => Check::ok("auth", format!("provider `{id}` needs no sign-in")),
        };
    }
    // OpenAI auth: the credentials store, or the provider's key variable.
    let mode = config.cli_auth_credentials_store;
    let (store, note) = codex_core::auth::store::open(mode, &config.codex_home);
    let file = config.codex_home.join(codex_core::auth::store::AUTH_FILE);
    let loose = std::fs::metadata(&file)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
        .filter(|m| m & 0o077 != 0);
    let signed_in = match store.load() {
        Ok(Some(a)) if a.tokens.is_some() => Ok("signed in with ChatGPT"),
        Ok(Some(a)) if a.openai_api_key.is_some() => Ok("signed in with an API key"),
        Ok(_) => Err("not signed in".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let detail = format!(
        "store `{}` ({mode:?}){}",
        store.name(),
        note.map(|n| format!("; {n}")).unwrap_or_default()
    );
    match (signed_in, loose, env_set) {
        (Ok(s), None, _) => Check::ok("auth", format!("{detail}: {s}")),
        (Ok(s), Some(m), _) => Check::warn(
            "auth",
            format!("{detail}: {s}; {} is mode {m:o}", file.display()),
            format!("chmod 600 {}", file.display()),
        ),
        (Err(e), _, Some(k)) => Check::ok("auth", format!("{detail}: {e}; ${k} is set")),
        (Err(e), _, None) => Check::fail(
            "auth",
            format!("{detail}: {e}"),
            "sign in with `codex login` (or `codex login --with-api-key`, or set OPENAI_API_KEY)",
        ),
    }
}

#[cfg(target_os = "linux")]
fn sandbox() -> Vec<Check> {
    use codex_core::exec::linux::landlock;
    let mut out = Vec::new();
    out.push(match landlock::abi_version() {
        Ok(v) => Check::ok("sandbox.landlock", format!("Landlock ABI {v}")),
        Err(e) => Check::warn(
            "sandbox.landlock",
            format!("Landlock is not available: {e}"),
            "use a kernel with Landlock (5.13+, `lsm=landlock,...`); without it commands are confined by namespaces and seccomp only",
        ),
    });
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
        });
    out.push(match seccomp {
        Some(mode) => Check::ok(
            "sandbox.seccomp",
            format!("seccomp available (this process: mode {mode})"),
        ),
        None => Check::fail(
            "sandbox.seccomp",
            "the kernel does not report seccomp",
            "use a kernel built with CONFIG_SECCOMP_FILTER; sandboxed commands cannot be confined without it",
        ),
    });
    out.push(user_namespaces());
    let cg = crate::containment::cgroup_support();
    out.push(match (&cg.mount, &cg.own, cg.delegated) {
        (Some(_), Some(own), true) => Check::ok(
            "sandbox.cgroup",
            format!("cgroup v2, {} is delegated (per-worker cgroups)", own.display()),
        ),
        (Some(m), own, false) => Check::warn(
            "sandbox.cgroup",
            format!(
                "cgroup v2 at {}, but {} is not writable by this user",
                m.display(),
                own.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "this process's cgroup".into())
            ),
            "run codexd under systemd (`codex app-server daemon install`: Delegate=yes); until then workers are contained by process-tree sweep",
        ),
        _ => Check::warn(
            "sandbox.cgroup",
            "no cgroup v2 hierarchy",
            "mount cgroup2 (systemd does by default); until then workers are contained by process-tree sweep",
        ),
    });
    out
}

/// Tries what the sandbox helper does: a child that unshares a user
/// namespace (root needs none).
#[cfg(target_os = "linux")]
fn user_namespaces() -> Check {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Check::ok(
            "sandbox.userns",
            "running as root: mount namespaces need no user namespace",
        );
    }
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "exit 0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: unshare is async-signal-safe and affects only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match cmd.status() {
        Ok(s) if s.success() => Check::ok("sandbox.userns", "unprivileged user namespaces work"),
        Ok(s) => Check::warn("sandbox.userns", format!("test child failed: {s}"), "check /bin/sh"),
        Err(e) => Check::fail(
            "sandbox.userns",
            format!("cannot create an unprivileged user namespace: {e}"),
            "enable them (`sysctl kernel.unprivileged_userns_clone=1`, or allow them in AppArmor: `kernel.apparmor_restrict_unprivileged_userns=0`); the sandbox helper needs one for its mount namespace",
        ),
    }
}

#[cfg(target_os = "macos")]
fn sandbox() -> Vec<Check> {
    let p = Path::new("/usr/bin/sandbox-exec");
    vec![if p.exists() {
        Check::ok("sandbox.seatbelt", "sandbox-exec is available")
    } else {
        Check::fail(
            "sandbox.seatbelt",
            "/usr/bin/sandbox-exec is missing",
            "sandboxed commands need macOS's Seatbelt",
        )
    }]
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn sandbox() -> Vec<Check> {
    vec![Check::warn(
        "sandbox",
        "no sandbox backend on this OS",
        "run only with `--sandbox danger-full-access` in an external sandbox",
    )]
}

async fn daemon(paths: &DaemonPaths) -> Vec<Check> {
    let sock = &paths.socket;
    let mut out = Vec::new();
    if let Ok(pidfile::PidState::Stale(r)) = pidfile::read(&paths.pid_file) {
        out.push(Check::warn(
            "daemon.pidfile",
            format!(
                "{} names pid {}, which is not a running codexd",
                paths.pid_file.display(),
                r.pid
            ),
            "`codex app-server daemon start` replaces it",
        ));
    }
    let meta = match std::fs::metadata(sock) {
        Ok(m) => m,
        Err(_) => {
            out.push(Check::ok(
                "daemon",
                format!("not running (no socket at {})", sock.display()),
            ));
            return out;
        }
    };
    let mode = meta.permissions().mode() & 0o777;
    let dir_mode = sock
        .parent()
        .and_then(|d| std::fs::metadata(d).ok())
        .map(|m| m.permissions().mode() & 0o777);
    match probe::probe(sock, probe::PROBE_DEADLINE).await {
        Ok(info) => out.push(Check::ok(
            "daemon",
            format!(
                "codexd {} answers on {}",
                info.app_server_version,
                sock.display()
            ),
        )),
        Err(e) => out.push(Check::fail(
            "daemon",
            format!("{} exists but does not answer: {e}", sock.display()),
            "restart it: `codex app-server daemon restart` (or remove a stale socket)",
        )),
    }
    if mode & 0o077 != 0 || dir_mode.is_some_and(|m| m & 0o077 != 0) {
        out.push(Check::fail(
            "daemon.permissions",
            format!(
                "socket mode {mode:o}, directory mode {}: other users can connect",
                dir_mode
                    .map(|m| format!("{m:o}"))
                    .unwrap_or_else(|| "?".into())
            ),
            format!(
                "chmod 600 {}; chmod 700 {}",
                sock.display(),
                sock.parent().unwrap_or(sock).display()
            ),
        ));
    }
    out
}

async fn provider(config: &Config) -> Check {
    let url = config.model_provider.base_url().to_string();
    let name = format!("provider `{}` ({url})", config.model_provider_id);
    let client = match reqwest::Client::builder()
        .timeout(PROVIDER_DEADLINE)
        .connect_timeout(PROVIDER_DEADLINE)
        .build()
    {
        Ok(c) => c,
        Err(e) => return Check::warn("provider", format!("{name}: {e}"), "check TLS setup"),
    };
    match tokio::time::timeout(PROVIDER_DEADLINE, client.get(&url).send()).await {
        Ok(Ok(r)) => Check::ok(
            "provider",
            format!("{name} answers (HTTP {})", r.status().as_u16()),
        ),
        Ok(Err(e)) => Check::warn(
            "provider",
            format!("{name} is not reachable: {e}"),
            "check the network, a proxy, or `base_url` in config.toml",
        ),
        Err(_) => Check::warn(
            "provider",
            format!("{name} did not answer within {PROVIDER_DEADLINE:?}"),
            "check the network, a proxy, or `base_url` in config.toml",
        ),
    }
}
