//! The Linux sandbox (Landlock + seccomp + a read-only `.git`), through
//! `codex sandbox` and through the agent: what each policy lets a command
//! do, on this kernel, as root and (when CI provides one, via
//! `CODEX_TEST_UNPRIVILEGED_USER`) as an unprivileged user.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use codex_test_support::TestHome;

/// How to run `codex`: as ourselves, or as another user (with a copy of the
/// binary that user can reach).
struct Runner {
    user: Option<String>,
    exe: PathBuf,
}

impl Runner {
    fn me() -> Self {
        Self {
            user: None,
            exe: PathBuf::from(common::CODEX),
        }
    }

    /// The unprivileged user CI provides, when running as root.
    fn unprivileged(home: &TestHome) -> Option<Self> {
        let user = std::env::var("CODEX_TEST_UNPRIVILEGED_USER").ok()?;
        if std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("Uid:") && !l.contains("\t0\t"))
        {
            return None; // not root: we are the unprivileged run already
        }
        let exe = home.root().join("codex");
        std::fs::copy(common::CODEX, &exe).unwrap();
        let status = Command::new("chown")
            .args(["-R", &user])
            .arg(home.root())
            .status()
            .unwrap();
        assert!(status.success());
        // The temp dir itself is 0700.
        std::fs::set_permissions(home.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(Self {
            user: Some(user),
            exe,
        })
    }

    fn command(&self, home: &TestHome, args: &[&str]) -> Command {
        let mut cmd = match &self.user {
            None => Command::new(&self.exe),
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={u}"),
                    "--init-groups",
                ])
                .arg(&self.exe);
                c
            }
        };
        cmd.args(args)
            .current_dir(home.workspace())
            .env("CODEX_HOME", home.codex_home())
            .env("HOME", home.home())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        cmd
    }

    /// `codex sandbox -s MODE -- sh -c SCRIPT`.
    fn sandboxed(&self, home: &TestHome, mode: &str, script: &str) -> Output {
        self.command(home, &["sandbox", "-s", mode, "--", "sh", "-c", script])
            .output()
            .unwrap()
    }
}

/// A test home whose config keeps `/tmp` and `$TMPDIR` out of the writable
/// roots (the test home itself lives in /tmp), with a git repository as the
/// workspace, a sibling directory and a symlink pointing at it.
fn setup() -> (TestHome, PathBuf) {
    let home = TestHome::new();
    std::fs::write(
        home.codex_home().join("config.toml"),
        "[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n",
    )
    .unwrap();
    let ws = home.workspace();
    std::fs::create_dir_all(ws.join(".git")).unwrap();
    std::fs::write(ws.join(".git/config"), "[core]\n").unwrap();
    let sibling = home.root().join("sibling");
    std::fs::create_dir_all(&sibling).unwrap();
    std::os::unix::fs::symlink(&sibling, ws.join("outside")).unwrap();
    (home, sibling)
}

fn ok(o: &Output) -> bool {
    o.status.success()
}

fn why(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A loopback TCP listener that accepts in the background.
fn tcp_listener() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            drop(s);
        }
    });
    port
}

/// A unix socket listener at `path` that accepts in the background.
fn unix_listener(path: &Path) {
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            drop(s);
        }
    });
}

const PY_UNIX: &str =
    "python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])'";
const PY_TCP: &str =
    "python3 -c 'import socket,sys; s=socket.socket(); s.connect((\"127.0.0.1\", int(sys.argv[1])))'";

fn matrix(runner: &Runner, home: &TestHome, sibling: &Path) {
    let ws = home.workspace();
    let port = tcp_listener();
    let sock = ws.join("agent.sock");
    unix_listener(&sock);
    let home_dir = home.home();
    let run = |mode: &str, script: &str| runner.sandboxed(home, mode, script);

    // workspace-write
    let o = run(
        "workspace-write",
        "echo hi > inside.txt && mkdir -p d/e && touch d/e/f",
    );
    assert!(ok(&o), "write inside the cwd: {}", why(&o));
    assert!(ws.join("d/e/f").exists());
    for (what, script) in [
        ("$HOME", format!("touch {}/x", home_dir.display())),
        ("/etc", "touch /etc/codex-sandbox-test".to_string()),
        ("a sibling dir", format!("touch {}/x", sibling.display())),
        ("through a symlink", "touch outside/x".to_string()),
        (".git/config", "echo '[evil]' >> .git/config".to_string()),
        ("a new file in .git", "touch .git/hooks-new".to_string()),
        ("TCP to loopback", format!("{PY_TCP} {port}")),
    ] {
        let o = run("workspace-write", &script);
        assert!(!ok(&o), "workspace-write allowed {what}: {}", why(&o));
    }
    assert!(!Path::new("/etc/codex-sandbox-test").exists());
    assert!(!sibling.join("x").exists());
    assert_eq!(
        std::fs::read_to_string(ws.join(".git/config")).unwrap(),
        "[core]\n"
    );
    let o = run("workspace-write", &format!("{PY_UNIX} {}", sock.display()));
    assert!(ok(&o), "unix socket under workspace-write: {}", why(&o));

    // read-only: nothing is written anywhere.
    for script in [
        "touch ro.txt".to_string(),
        format!("touch {}/ro", home_dir.display()),
        format!("touch {}/ro", sibling.display()),
        "touch /tmp/codex-ro-test".to_string(),
    ] {
        let o = run("read-only", &script);
        assert!(!ok(&o), "read-only allowed `{script}`: {}", why(&o));
    }
    assert!(!ws.join("ro.txt").exists());
    let o = run("read-only", "cat .git/config && ls /");
    assert!(ok(&o), "read-only still reads: {}", why(&o));

    // danger-full-access: all of it.
    let o = run(
        "danger-full-access",
        &format!(
            "touch full.txt {h}/full {s}/full outside/full && echo x >> .git/config && {PY_TCP} {port}",
            h = home_dir.display(),
            s = sibling.display()
        ),
    );
    assert!(ok(&o), "danger-full-access: {}", why(&o));
    assert!(sibling.join("full").exists());
}

#[test]
fn policies_confine_commands_as_this_user() {
    let (home, sibling) = setup();
    matrix(&Runner::me(), &home, &sibling);
}

#[test]
fn policies_confine_commands_as_an_unprivileged_user() {
    let (home, sibling) = setup();
    let Some(runner) = Runner::unprivileged(&home) else {
        eprintln!("CODEX_TEST_UNPRIVILEGED_USER not set (or not root): covered by the other test");
        return;
    };
    matrix(&runner, &home, &sibling);
}

#[test]
fn codex_sandbox_touch() {
    let (home, _) = setup();
    let r = Runner::me();
    let o = r
        .command(
            &home,
            &["sandbox", "-s", "workspace-write", "--", "touch", "/etc/x"],
        )
        .output()
        .unwrap();
    assert!(!ok(&o));
    assert!(!Path::new("/etc/x").exists());
    let o = r
        .command(
            &home,
            &["sandbox", "-s", "workspace-write", "--", "touch", "./x"],
        )
        .output()
        .unwrap();
    assert!(ok(&o), "{}", why(&o));
    assert!(home.workspace().join("x").exists());
}

#[test]
fn without_landlock_the_command_is_refused_not_run_unconfined() {
    let (home, _) = setup();
    let filter = codex_core::exec::linux::seccomp::no_landlock();
    let mut cmd = Runner::me().command(
        &home,
        &["sandbox", "-s", "workspace-write", "--", "touch", "./never"],
    );
    // SAFETY: installing a seccomp filter between fork and exec uses only
    // prctl, which is async-signal-safe; the program was built before fork.
    unsafe {
        cmd.pre_exec(move || codex_core::exec::linux::seccomp::install(&filter));
    }
    let o = cmd.output().unwrap();
    assert!(!ok(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot be enforced") && err.contains("Landlock") && err.contains("ABI"),
        "{err}"
    );
    assert!(!home.workspace().join("never").exists());
}
