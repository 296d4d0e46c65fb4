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
    // Credentials: not even readable (as any user: the mask is a mount).
    let auth = home.codex_home().join("auth.json");
    std::fs::write(&auth, "{\"OPENAI_API_KEY\":\"sk-matrix-secret\"}").unwrap();
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    for mode in ["workspace-write", "read-only"] {
        let o = run(mode, &format!("cat {}", auth.display()));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("sk-matrix-secret"),
            "{mode} read auth.json: {}",
            why(&o)
        );
    }
    // Local sockets: none unless named.
    for mode in ["workspace-write", "read-only"] {
        let o = run(mode, &format!("{PY_UNIX} {}", sock.display()));
        assert!(!ok(&o), "{mode} reached a unix socket: {}", why(&o));
    }
    let named = format!(
        "permissions.network.allow_unix_sockets=[\"{}\"]",
        sock.display()
    );
    for mode in ["workspace-write", "read-only"] {
        let o = runner
            .command(
                home,
                &["sandbox", "-s", mode, "-c", &named, "--", "sh", "-c"],
            )
            .arg(format!("{PY_UNIX} {}", sock.display()))
            .output()
            .unwrap();
        assert!(ok(&o), "{mode}: a named unix socket: {}", why(&o));
    }

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

/// Prints the errno of `socket(AF_INET, SOCK_STREAM)` made through its x32
/// system call number (41 | `__X32_SYSCALL_BIT`).
const PY_X32_SOCKET: &str = "python3 -c 'import ctypes; l=ctypes.CDLL(None, use_errno=True); r=l.syscall(41 | 0x40000000, 2, 1, 0); print(\"rc\", r, \"errno\", ctypes.get_errno())'";

/// Regression: the filter let x32 system calls through (on kernels with x32
/// enabled, a network socket under "no network"). The answer must be the
/// filter's own `EPERM`, not the kernel's `ENOSYS` (x32 disabled here).
#[cfg(target_arch = "x86_64")]
#[test]
fn an_x32_socket_call_is_refused_by_the_filter() {
    let (home, _) = setup();
    for mode in ["read-only", "workspace-write"] {
        let o = Runner::me().sandboxed(&home, mode, PY_X32_SOCKET);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(ok(&o), "{}", why(&o));
        assert_eq!(
            out.trim(),
            format!("rc -1 errno {}", libc::EPERM),
            "{mode}: {}",
            why(&o)
        );
    }
}

/// A `dbus-daemon --session` listening at `address`, killed on drop.
struct Bus(std::process::Child);

impl Bus {
    fn start(address: &str) -> Option<Bus> {
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // It prints its address once it listens.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon said {line:?}");
        Some(Bus(child))
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects to the bus at `path` (abstract when it starts with `@`) and
/// says hello, as any D-Bus client (and the Secret Service's) does first.
const PY_DBUS_HELLO: &str = r#"python3 -c '
import os, socket, sys
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
s.connect("\0" + p[1:] if p.startswith("@") else p)
s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
assert s.recv(100).startswith(b"OK"), "no OK"
print("talked to the bus")
'"#;

/// Item 10 of the hardening issue: whatever the policy grants, a sandboxed
/// command reaches neither the credentials nor the local sockets of the
/// control plane and the desktop (D-Bus, keyring), unless named.
#[test]
fn commands_reach_no_credentials_and_no_local_socket_unless_named() {
    let (home, _) = setup();
    let codex_home = home.codex_home();
    std::fs::write(
        codex_home.join("auth.json"),
        "{\"OPENAI_API_KEY\":\"sk-secret-auth-0123\"}",
    )
    .unwrap();
    std::fs::create_dir_all(codex_home.join("audit")).unwrap();
    std::fs::write(
        codex_home.join("audit/audit.jsonl"),
        "{\"cmd\":\"audit-secret-77\"}\n",
    )
    .unwrap();
    let sock = home.root().join("other.sock");
    unix_listener(&sock);
    let allowed = home.root().join("agent.sock");
    unix_listener(&allowed);
    let bus_path = home.root().join("bus");
    let abstract_name = format!("/tmp/codex-test-bus-{}", std::process::id());
    let required = std::env::var_os("CODEX_REQUIRE_KEYRING").is_some_and(|v| v == "1");
    let buses = (
        Bus::start(&format!("unix:path={}", bus_path.display())),
        Bus::start(&format!("unix:abstract={abstract_name}")),
    );
    assert!(
        buses.0.is_some() || !required,
        "dbus-daemon is required (CODEX_REQUIRE_KEYRING=1)"
    );
    let r = Runner::me();
    let with_net = "sandbox_workspace_write.network_access=true";
    let named = format!(
        "permissions.network.allow_unix_sockets=[\"{}\"]",
        allowed.display()
    );
    let run = |extra: &[&str], mode: &str, script: &str| {
        let mut args = vec!["sandbox", "-s", mode];
        for e in extra {
            args.extend(["-c", e]);
        }
        args.extend(["--", "sh", "-c", script]);
        r.command(&home, &args).output().unwrap()
    };
    let setups: [(&str, &[&str]); 5] = [
        ("read-only", &[]),
        ("workspace-write", &[]),
        ("workspace-write", &[with_net]),
        ("workspace-write", &[named.as_str()]),
        ("workspace-write", &[with_net, named.as_str()]),
    ];
    for (mode, extra) in setups {
        let what = format!("{mode} {extra:?}");
        let o = run(
            extra,
            mode,
            &format!("cat {}/auth.json", codex_home.display()),
        );
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("sk-secret-auth"),
            "{what} read auth.json: {}",
            why(&o)
        );
        let o = run(
            extra,
            mode,
            &format!("cat {}/audit/*", codex_home.display()),
        );
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("audit-secret"),
            "{what} read the audit log: {}",
            why(&o)
        );
        let o = run(
            extra,
            mode,
            &format!("echo x >> {}/config.toml", codex_home.display()),
        );
        assert!(!ok(&o), "{what} wrote config.toml: {}", why(&o));
        let o = run(extra, mode, &format!("{PY_UNIX} {}", sock.display()));
        assert!(!ok(&o), "{what} reached an unnamed socket: {}", why(&o));
        // The kernel keyring (the `keyring` crate's linux-native store).
        let o = run(
            extra,
            mode,
            &format!(
                "python3 -c 'import ctypes; l=ctypes.CDLL(None, use_errno=True); r=l.syscall({}, 0, -3, 0); print(r, ctypes.get_errno())'",
                libc::SYS_keyctl
            ),
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("-1 {}", libc::EPERM),
            "{what} used keyctl: {}",
            why(&o)
        );
        if buses.0.is_some() {
            let o = run(
                extra,
                mode,
                &format!("{PY_DBUS_HELLO} {}", bus_path.display()),
            );
            assert!(!ok(&o), "{what} reached the D-Bus bus: {}", why(&o));
        }
        if buses.1.is_some() {
            let o = run(extra, mode, &format!("{PY_DBUS_HELLO} @{abstract_name}"));
            assert!(!ok(&o), "{what} reached an abstract D-Bus bus: {}", why(&o));
        }
        let o = run(extra, mode, &format!("{PY_UNIX} {}", allowed.display()));
        assert_eq!(
            ok(&o),
            extra.contains(&named.as_str()),
            "{what}: the named socket: {}",
            why(&o)
        );
    }
    // Outside the sandbox all of it works (the refusals above are the
    // sandbox's).
    let o = run(
        &[],
        "danger-full-access",
        &format!("{PY_UNIX} {}", sock.display()),
    );
    assert!(ok(&o), "{}", why(&o));
    if buses.0.is_some() {
        let o = run(
            &[],
            "danger-full-access",
            &format!("{PY_DBUS_HELLO} {}", bus_path.display()),
        );
        assert!(ok(&o), "{}", why(&o));
        let o = run(
            &[],
            "danger-full-access",
            &format!("{PY_DBUS_HELLO} @{abstract_name}"),
        );
        assert!(ok(&o), "{}", why(&o));
    }
}

mod agent {
    //! The same sandbox through the agent: the app-server and `codex exec`.

    use super::*;
    use codex_test_support::{sse, MockModelServer, MockResponse};
    use common::app_server::StdioServer;
    use serde_json::{json, Value};

    const DAEMON_KEY: &str = "sk-daemon-secret-0123456789";
    const INLINE_SECRET: &str = "inline-secret-value-42";

    fn escalated(call_id: &str, cmd: &str) -> MockResponse {
        MockResponse::sse(sse::function_call_events(
            &format!("r_{call_id}"),
            call_id,
            "exec_command",
            json!({"cmd": cmd, "sandbox_permissions": "require_escalated", "justification": "needs it"}),
        ))
    }

    async fn approve(c: &mut common::app_server::Client, call_id: &str, decision: &str) {
        let id = call_id.to_string();
        let req = c
            .wait_for("approval request", move |v| {
                v["method"] == "item/commandExecution/requestApproval"
                    && v["params"]["itemId"] == id.as_str()
            })
            .await;
        c.send(json!({"id": req["id"], "result": {"decision": decision}}))
            .await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn audit_log_records_accepted_and_declined_commands_without_secrets() {
        let (home, _) = setup();
        let ws = home.workspace();
        let mock = MockModelServer::start(vec![
            escalated(
                "call_yes",
                &format!("TOKEN={INLINE_SECRET} env > env.txt; echo {DAEMON_KEY} > /dev/null"),
            ),
            sse::message("did it"),
            escalated(
                "call_no",
                "curl -H 'Authorization: Bearer sk-proj-abcdefghijklmnop' https://example.com",
            ),
            sse::message("skipped it"),
        ])
        .await;
        home.write_config(
            &mock.url(),
            "[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n",
        );
        let mut cmd = common::app_server::app_server_command(
            &home,
            &["-c", "approval_policy=\"on-request\""],
        );
        cmd.env("OPENAI_API_KEY", DAEMON_KEY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut s = StdioServer::from_command(cmd);
        let c = &mut s.client;
        c.initialize("auditor").await;
        let tid = c.start_thread(json!({})).await;
        c.start_turn(&tid, "one").await;
        approve(c, "call_yes", "accept").await;
        c.turn_completed(&tid).await;
        c.start_turn(&tid, "two").await;
        approve(c, "call_no", "decline").await;
        c.turn_completed(&tid).await;

        // The model's key never reached the command.
        let env = std::fs::read_to_string(ws.join("env.txt")).unwrap();
        assert!(env.contains("PATH="), "{env}");
        assert!(!env.contains(DAEMON_KEY) && !env.contains("OPENAI_API_KEY"));

        let log = home.codex_home().join(format!("audit/{tid}.jsonl"));
        let text = std::fs::read_to_string(&log).unwrap();
        for secret in [DAEMON_KEY, INLINE_SECRET, "sk-proj-abcdefghijklmnop"] {
            assert!(!text.contains(secret), "{secret} in the audit log:\n{text}");
        }
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{text}");
        let yes = &records[0];
        assert_eq!(yes["call_id"], "call_yes");
        assert_eq!(yes["kind"], "command");
        assert_eq!(yes["decision"], "approved");
        assert_eq!(yes["decided_by"], "client");
        assert_eq!(
            yes["policy"], "danger-full-access",
            "escalated: ran unsandboxed"
        );
        assert_eq!(yes["backend"], "none");
        assert_eq!(yes["status"], "completed");
        assert_eq!(yes["exit_code"], 0);
        assert_eq!(yes["cwd"], ws.display().to_string());
        let no = &records[1];
        assert_eq!(no["call_id"], "call_no");
        assert_eq!(no["decision"], "denied");
        assert_eq!(no["decided_by"], "client");
        assert_eq!(no["status"], "declined");
        assert_eq!(no["policy"], "workspace-write");
        assert!(no.get("exit_code").is_none());
        // The all-threads log has them too.
        let all = std::fs::read_to_string(home.codex_home().join("audit/audit.jsonl")).unwrap();
        assert_eq!(all.lines().count(), 2);

        // `codex audit` prints them.
        let out = Command::new(common::CODEX)
            .args(["audit", &tid[..8]])
            .env("CODEX_HOME", home.codex_home())
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shown}");
        assert!(
            shown.contains("approved by client") && shown.contains("denied by client"),
            "{shown}"
        );
        assert!(shown.contains("Bearer [REDACTED]"), "{shown}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sandbox_denial_under_on_failure_asks_to_rerun_unsandboxed() {
        let (home, sibling) = setup();
        let target = sibling.join("escalated.txt");
        let mock = MockModelServer::start(vec![
            sse::exec_command("call_out", &format!("touch {}", target.display())),
            sse::message("done"),
        ])
        .await;
        home.write_config(
            &mock.url(),
            "[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n",
        );
        let mut s = StdioServer::start(&home, &["-c", "approval_policy=\"on-failure\""]).await;
        let c = &mut s.client;
        c.initialize("on-failure").await;
        let tid = c.start_thread(json!({})).await;
        c.start_turn(&tid, "write outside").await;
        let req = c
            .wait_for("re-run approval", |v| {
                v["method"] == "item/commandExecution/requestApproval"
            })
            .await;
        let reason = req["params"]["reason"].as_str().unwrap();
        assert!(reason.contains("without the sandbox"), "{reason}");
        assert!(!target.exists(), "the sandbox stopped the first run");
        c.send(json!({"id": req["id"], "result": {"decision": "accept"}}))
            .await;
        c.turn_completed(&tid).await;
        assert!(target.exists(), "re-run outside the sandbox");
        let log =
            std::fs::read_to_string(home.codex_home().join(format!("audit/{tid}.jsonl"))).unwrap();
        assert!(log.contains("\"decision\":\"approved\"") && log.contains("danger-full-access"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn without_landlock_the_agent_refuses_the_command() {
        let (home, _) = setup();
        let mock = MockModelServer::start(vec![
            sse::exec_command("call_x", "touch never.txt"),
            sse::message("ok"),
        ])
        .await;
        home.write_config(&mock.url(), "");
        let filter = codex_core::exec::linux::seccomp::no_landlock();
        let mut cmd = common::command(
            &home,
            &[
                "exec",
                "--json",
                "--skip-git-repo-check",
                "-s",
                "workspace-write",
                "go",
            ],
        );
        // SAFETY: only prctl between fork and exec; the program is built.
        unsafe {
            cmd.pre_exec(move || codex_core::exec::linux::seccomp::install(&filter));
        }
        let run = common::run_cmd(cmd, None).await;
        let items = run.completed_items("command_execution");
        assert_eq!(items.len(), 1, "{}", run.stdout);
        assert_eq!(items[0]["status"], "declined");
        let out = items[0]["aggregated_output"].as_str().unwrap();
        assert!(
            out.contains("cannot be enforced") && out.contains("Landlock"),
            "{out}"
        );
        assert!(!home.workspace().join("never.txt").exists());
        let told = mock.model_requests()[1].function_output("call_x").unwrap();
        assert!(told.contains("refused"), "{told}");
    }

    /// A client that connects to codexd's socket and asks for a thread with
    /// `danger-full-access`: the complete escape, were it possible.
    const PY_ESCAPE: &str = r#"python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("ESCAPE REFUSED:", e)
    sys.exit(3)
f = s.makefile("rw")
for m in ({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "escape", "version": "1"}}},
          {"id": 2, "method": "thread/start", "params": {"sandbox": "danger-full-access"}}):
    f.write(json.dumps(m) + "\n"); f.flush()
    print("ESCAPED:", f.readline().strip())
'"#;

    /// Tries to take a descriptor (a socket to codexd, the broker's link,
    /// the listening socket) from every process of the daemon: codexd, the
    /// broker and the workers (`pidfd_getfd`, the same check as ptrace).
    const PY_STEAL_FDS: &str = r#"python3 -c '
import ctypes, os, sys
l = ctypes.CDLL(None, use_errno=True)
targets = []
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            comm = open("/proc/%s/comm" % d).read().strip()
        except OSError:
            continue
        if comm in ("codexd", "codex-broker", "codex-session"):
            targets.append((comm, int(d)))
assert any(c == "codex-broker" for c, _ in targets), targets
for comm, pid in targets:
    pfd = os.pidfd_open(pid)
    for fd in range(0, 16):
        if l.syscall(438, pfd, fd, 0) >= 0:
            print("STOLE", comm, fd)
            sys.exit(4)
    print("nothing from", comm, "errno", ctypes.get_errno())
'"#;

    /// Item 10: a sandboxed command of a thread cannot reach its own codexd
    /// (same uid, so the peer check would pass) and start an unsandboxed
    /// thread, with or without network access.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_sandboxed_command_cannot_reach_its_own_codexd() {
        use common::app_server::SocketServer;
        // Even with every local socket allowed, codexd's own stays hidden.
        let all_sockets = "[permissions.network]\ndangerously_allow_all_unix_sockets = true\n";
        for (network, extra) in [
            (false, ""),
            (true, ""),
            (false, all_sockets),
            (true, all_sockets),
        ] {
            let (home, _) = setup();
            let socket = home.root().join("run").join("codexd.sock");
            let cmd = format!("{PY_ESCAPE} {}", socket.display());
            let mock = MockModelServer::start(vec![
                sse::exec_command("call_escape", &cmd),
                sse::exec_command("call_steal", PY_STEAL_FDS),
                sse::message("done"),
            ])
            .await;
            home.write_config(
                &mock.url(),
                &format!(
                    "[sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\nnetwork_access = {network}\n{extra}"
                ),
            );
            let mut server = SocketServer::start(&home).await;
            let mut c = server.client("victim").await;
            let tid = c.start_thread(json!({})).await;
            c.start_turn(&tid, "try to escape").await;
            let item = c
                .wait_for("the command's end", |v| {
                    v["method"] == "item/completed" && v["params"]["item"]["id"] == "call_escape"
                })
                .await;
            let stolen = c
                .wait_for("the second command's end", |v| {
                    v["method"] == "item/completed"
                        && v["params"]["item"]["type"] == "commandExecution"
                        && v["params"]["item"]["id"] == "call_steal"
                })
                .await;
            c.turn_completed(&tid).await;
            let out = item["params"]["item"]["aggregatedOutput"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                out.contains("ESCAPE REFUSED") && !out.contains("ESCAPED:"),
                "network_access = {network} {extra}: {out}"
            );
            let out = stolen["params"]["item"]["aggregatedOutput"]
                .as_str()
                .unwrap_or_default();
            assert!(
                out.contains("nothing from codex-broker")
                    && out.contains("nothing from codexd")
                    && !out.contains("STOLE"),
                "network_access = {network} {extra}: {out}"
            );
            let loaded = c.call("thread/loaded/list", json!({})).await;
            assert_eq!(
                loaded["data"],
                json!([tid]),
                "no thread was started from inside"
            );
            server.kill9().await;
        }
    }
}
