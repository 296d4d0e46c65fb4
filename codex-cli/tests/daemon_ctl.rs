//! `codex app-server daemon start|stop|restart|version|install`, `codex
//! doctor` and `codex exec` through a running daemon, with real processes:
//! the daemon is started detached by the CLI, found through its pidfile and
//! socket, and proven gone by scanning `/proc`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use codex_test_support::{sse, MockModelServer, TestHome};
use common::app_server::Client;
use common::*;
use serde_json::{json, Value};

fn pid_file(home: &TestHome) -> PathBuf {
    home.codex_home().join("app-server-daemon/daemon.pid")
}

fn one_json(run: &Run) -> Value {
    assert_eq!(
        run.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    let lines: Vec<&str> = run.stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "one JSON object expected: {}", run.stdout);
    serde_json::from_str(lines[0]).unwrap()
}

async fn daemon(home: &TestHome, cmd: &str) -> Run {
    run(home, &["app-server", "daemon", cmd]).await
}

/// Kills a daemon a failed test left behind (by its recorded pid).
struct Reap(PathBuf);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(&self.0) {
            if let Some(pid) = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["pid"].as_u64())
            {
                // `--` first: a negative pid (the group) is not a signal.
                let _ = std::process::Command::new("kill")
                    .args(["-s", "KILL", "--", &format!("-{pid}"), &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Live processes in process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest: Vec<String> = s[s.rfind(')')? + 1..]
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                    Some(rest[0] != "Z" && rest[0] != "X" && rest[2] == pgid.to_string())
                })
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_starts_one_daemon_exec_runs_there_and_stop_leaves_nothing() {
    let mock = MockModelServer::start(vec![sse::message("Answered by the daemon.")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let _reap = Reap(pid_file(&home));

    // Two at once: the operation lock lets exactly one spawn.
    let (a, b) = tokio::join!(daemon(&home, "start"), daemon(&home, "start"));
    let (a, b) = (one_json(&a), one_json(&b));
    let mut statuses = [a["status"].as_str().unwrap(), b["status"].as_str().unwrap()];
    statuses.sort();
    assert_eq!(statuses, ["alreadyRunning", "started"], "{a}\n{b}");
    let pid = a["pid"].as_u64().unwrap() as u32;
    assert_eq!(b["pid"].as_u64(), Some(pid as u64), "both name one daemon");
    assert_eq!(a["backend"], "pid");
    assert!(codex_test_support::procs::is_alive(pid));
    let socket = PathBuf::from(a["socketPath"].as_str().unwrap());
    assert_eq!(
        socket,
        codex_daemon::transport::default_socket_path(&home.codex_home())
    );
    // Laid out as upstream's daemon lays it out (a link to a short path):
    // upstream's TUI sends its own cwd only to a daemon laid out so.
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_symlink(),
        "{} is not upstream's link",
        socket.display()
    );

    let v = one_json(&daemon(&home, "version").await);
    assert_eq!(v["status"], "running");
    assert_eq!(v["pid"].as_u64(), Some(pid as u64));
    for k in [
        "backend",
        "socketPath",
        "cliVersion",
        "appServerVersion",
        "managedCodexPath",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    // The protocol version the daemon speaks (its userAgent), as upstream reads it.
    assert_eq!(
        v["appServerVersion"],
        codex_ipc::app_server::UPSTREAM_PROTOCOL_VERSION
    );
    let doc = common::run(&home, &["doctor", "--json", "--offline"]).await;
    let doc: Value = serde_json::from_str(doc.stdout.trim()).unwrap();
    let d = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "daemon")
        .unwrap()
        .clone();
    assert_eq!(d["status"], "ok", "{doc}");
    assert!(d["detail"].as_str().unwrap().contains("answers"), "{d}");
    let auth = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "auth")
        .unwrap()
        .clone();
    assert_eq!(auth["status"], "ok", "MOCK_API_KEY is set: {auth}");

    // exec finds the daemon on the default socket and runs its thread there.
    let run = exec_json(&home, "Who answers?").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let thread_id = run.events()[0]["thread_id"].as_str().unwrap().to_string();
    assert_eq!(
        run.completed_items("agent_message")[0]["text"],
        "Answered by the daemon."
    );
    let mut c = Client::connect_unix(&socket).await;
    c.initialize("test").await;
    let list = c.call("thread/list", json!({})).await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == thread_id.as_str()),
        "{list}"
    );
    // Still loaded in the daemon (its worker is the daemon's child): the
    // turn ran there, not in an embedded supervisor.
    let worker = c.worker_pid(&thread_id).await;
    let worker_group = codex_core::process::read_proc(worker).unwrap().pgid;
    drop(c);

    let s = one_json(&daemon(&home, "stop").await);
    assert_eq!(s["status"], "stopped");
    for p in [pid, worker] {
        assert!(!codex_test_support::procs::is_alive(p), "{p} survived stop");
    }
    assert_eq!(group_members(pid), Vec::<u32>::new(), "daemon's group");
    assert_eq!(
        group_members(worker_group),
        Vec::<u32>::new(),
        "worker's group"
    );
    assert!(!pid_file(&home).exists());

    let again = one_json(&daemon(&home, "stop").await);
    assert_eq!(again["status"], "notRunning");
    let v = daemon(&home, "version").await;
    assert_eq!(v.code, Some(1));
    assert!(v.stderr.contains("not running"), "{}", v.stderr);

    // No daemon: exec embeds its own supervisor again.
    mock.push(sse::message("Embedded."));
    let run = exec_json(&home, "And now?").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_pidfiles_are_replaced() {
    let home = TestHome::new();
    home.write_config("http://127.0.0.1:9", "");
    let _reap = Reap(pid_file(&home));
    std::fs::create_dir_all(pid_file(&home).parent().unwrap()).unwrap();
    // A live pid that is not codexd (this test), then a dead one.
    for stale in [
        json!({"pid": std::process::id(), "processStartTime": "1"}),
        json!({"pid": 999_999_999u64, "processStartTime": "1"}),
    ] {
        std::fs::write(pid_file(&home), stale.to_string()).unwrap();
        assert_eq!(daemon(&home, "version").await.code, Some(1));
        let s = one_json(&daemon(&home, "stop").await);
        assert_eq!(s["status"], "notRunning", "a stale record is not a daemon");
        std::fs::write(pid_file(&home), stale.to_string()).unwrap();
        let started = one_json(&daemon(&home, "start").await);
        assert_eq!(started["status"], "started");
        let pid = started["pid"].as_u64().unwrap();
        assert_ne!(pid, stale["pid"].as_u64().unwrap());
        let r = one_json(&daemon(&home, "restart").await);
        assert_eq!(r["status"], "restarted");
        assert_ne!(r["pid"].as_u64().unwrap(), pid);
        assert_eq!(one_json(&daemon(&home, "stop").await)["status"], "stopped");
        assert!(codex_test_support::procs::wait_none_matching(
            &format!("unix://{}", started["socketPath"].as_str().unwrap()),
            Duration::from_secs(30)
        )
        .is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_that_cannot_start_fails_with_its_log() {
    let home = TestHome::new();
    home.write_config("http://127.0.0.1:9", "");
    // The socket's directory is a file: codexd cannot listen.
    let socket = codex_daemon::transport::default_socket_path(&home.codex_home());
    std::fs::create_dir_all(socket.parent().unwrap().parent().unwrap()).unwrap();
    std::fs::write(socket.parent().unwrap(), "not a directory").unwrap();
    let run = daemon(&home, "start").await;
    assert_eq!(run.code, Some(1), "stdout: {}", run.stdout);
    assert!(
        run.stderr.contains("exited before answering"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("daemon.stderr.log"), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot listen"),
        "log tail shown: {}",
        run.stderr
    );
    assert!(!pid_file(&home).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn install_writes_a_unit_pair_systemd_accepts() {
    let home = TestHome::new();
    let dir = home.root().join("units");
    let run = run(
        &home,
        &[
            "app-server",
            "daemon",
            "install",
            "--manager",
            "systemd",
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run
        .stdout
        .contains("systemctl --user daemon-reload && systemctl --user enable --now codexd.socket"));
    let socket = std::fs::read_to_string(dir.join("codexd.socket")).unwrap();
    let service = std::fs::read_to_string(dir.join("codexd.service")).unwrap();
    // Upstream's layout: systemd binds the short path, codexd links the
    // default path to it (upstream's clients look for that link).
    let sock_path = codex_daemon::transport::default_socket_path(&home.codex_home());
    let bind = codex_daemon::transport::short_socket_path(&sock_path).unwrap();
    assert!(socket.contains(&format!("ListenStream={}\n", bind.display())));
    assert!(service.contains(&format!(
        "ExecStart={} app-server --listen unix://\n",
        std::fs::canonicalize(CODEX).unwrap().display(),
    )));
    for k in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "Delegate=yes",
        "KillMode=control-group",
        "Restart=on-failure",
    ] {
        assert!(service.contains(k), "{k}: {service}");
    }

    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CODEX_REQUIRE_SYSTEMD").is_none(),
            "CODEX_REQUIRE_SYSTEMD is set but systemd-analyze is missing"
        );
        eprintln!("skipping systemd-analyze verify: systemd-analyze is not installed");
    } else {
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.join("codexd.socket"))
            .arg(dir.join("codexd.service"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "systemd-analyze verify: {stderr}");
        // verify also reports problems it does not fail on.
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("codexd.")).collect();
        assert!(ours.is_empty(), "systemd-analyze complained: {stderr}");
    }

    let run2 = common::run(
        &home,
        &[
            "app-server",
            "daemon",
            "uninstall",
            "--manager",
            "systemd",
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run2.code, Some(0), "stderr: {}", run2.stderr);
    assert!(!dir.join("codexd.socket").exists() && !dir.join("codexd.service").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn launchd_plist_has_a_sockets_entry_and_parses() {
    let home = TestHome::new();
    let dir = home.root().join("agents");
    let run = run(
        &home,
        &[
            "app-server",
            "daemon",
            "install",
            "--manager",
            "launchd",
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let plist = dir.join("dev.codex.codexd.plist");
    assert!(
        run.stdout.contains("launchctl bootstrap gui/$(id -u)"),
        "{}",
        run.stdout
    );
    // Parsed by a real plist reader (python's plistlib).
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,plistlib,sys; print(json.dumps(plistlib.load(open(sys.argv[1],'rb'))))",
        ])
        .arg(&plist)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sock = &v["Sockets"]["codexd"];
    assert_eq!(
        sock["SockPathName"],
        codex_daemon::transport::default_socket_path(&home.codex_home())
            .display()
            .to_string()
    );
    assert_eq!(sock["SockPathMode"], 384);
    assert_eq!(v["ProgramArguments"][1], "app-server");
    assert_eq!(
        v["EnvironmentVariables"]["CODEX_HOME"],
        home.codex_home().display().to_string()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_the_config_error_with_file_and_key() {
    let home = TestHome::new();
    std::fs::write(
        home.codex_home().join("config.toml"),
        "model = \"m\"\napproval_policy = \"sometimes\"\n",
    )
    .unwrap();
    let run = common::run(&home, &["doctor", "--json", "--offline"]).await;
    assert_eq!(
        run.code,
        Some(1),
        "a failed check fails doctor: {}",
        run.stderr
    );
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["status"], "fail");
    let checks = v["checks"].as_array().unwrap();
    let config = checks.iter().find(|c| c["name"] == "config").unwrap();
    assert_eq!(config["status"], "fail");
    let detail = config["detail"].as_str().unwrap();
    assert!(
        detail.contains("config.toml") && detail.contains("approval_policy"),
        "{detail}"
    );
    assert!(config["fix"].as_str().is_some());
    for name in ["installation", "sandbox.seccomp", "daemon"] {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {v}"));
        assert!(c["status"].is_string() && c["detail"].is_string(), "{c}");
    }
    assert!(
        checks
            .iter()
            .all(|c| c["status"] == "ok" || c["fix"].is_string()),
        "{v}"
    );
    // Where containment must use cgroups (CI as root), doctor agrees that
    // it can (it once asked for `cgroup.kill` in the root cgroup, which has
    // none, and for write bits root does not need).
    if std::env::var("CODEX_REQUIRE_CGROUPS").as_deref() == Ok("1") {
        let cg = checks
            .iter()
            .find(|c| c["name"] == "sandbox.cgroup")
            .unwrap();
        assert_eq!(cg["status"], "ok", "{cg}");
    }

    // A good config, and the human checklist.
    home.write_config("http://127.0.0.1:9", "");
    let run = run_cmd(
        {
            let mut c = command(&home, &["doctor"]);
            c.env("MOCK_API_KEY", "sk");
            c
        },
        None,
    )
    .await;
    assert!(run.stdout.contains("[ok]   config"), "{}", run.stdout);
    assert!(run.stdout.contains("provider"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_remote_names_a_daemon_and_no_daemon_opts_out() {
    let mock = MockModelServer::start(vec![sse::message("Remote."), sse::message("Local.")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    // No configured approval policy: exec's own default ("never") must
    // reach the daemon's thread.
    let cfg = home.codex_home().join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("approval_policy"))
        .collect();
    std::fs::write(&cfg, text.join("\n")).unwrap();
    let server = common::app_server::SocketServer::start(&home).await;
    let url = format!("unix://{}", server.socket.display());
    let extra = home.root().join("extra");
    std::fs::create_dir_all(&extra).unwrap();

    let run = common::run(
        &home,
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--remote",
            &url,
            "--add-dir",
            extra.to_str().unwrap(),
            "-c",
            "model_reasoning_effort=\"low\"",
            "Hi",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let remote_id = run.events()[0]["thread_id"].as_str().unwrap().to_string();
    let mut c = server.client("test").await;
    c.worker_pid(&remote_id).await;
    // exec's own defaults reached the daemon's thread as params.
    let rollout = home
        .rollouts()
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&remote_id))
        .expect("the daemon's worker wrote the session");
    let ctx = rollout_lines(&rollout)
        .into_iter()
        .find(|l| l["type"] == "turn_context")
        .expect("turn_context")["payload"]
        .clone();
    assert_eq!(ctx["approval_policy"], "never", "{ctx}");
    assert_eq!(ctx["effort"], "low", "{ctx}");
    let extra = std::fs::canonicalize(&extra).unwrap();
    assert!(
        ctx["sandbox_policy"]["writable_roots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == extra.to_str().unwrap()),
        "{ctx}"
    );

    // Not the default socket, and opted out: embedded.
    let run = common::run(
        &home,
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--no-daemon",
            "Hi",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let local_id = run.events()[0]["thread_id"].as_str().unwrap().to_string();
    let status = c.status().await;
    assert!(
        !status["threads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["threadId"] == local_id.as_str()),
        "{status}"
    );

    let bad = common::run(
        &home,
        &["exec", "--skip-git-repo-check", "--remote", "tcp://x", "Hi"],
    )
    .await;
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stderr
            .contains("--remote must be unix://PATH or ws://HOST:PORT"),
        "{}",
        bad.stderr
    );
    let missing = common::run(
        &home,
        &[
            "exec",
            "--skip-git-repo-check",
            "--remote",
            "ws://127.0.0.1:9",
            "--remote-auth-token-env",
            "NO_SUCH_VAR_X",
            "Hi",
        ],
    )
    .await;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("$NO_SUCH_VAR_X is not set"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_remote_over_websocket_sends_the_token_from_the_named_variable() {
    let mock = MockModelServer::start(vec![sse::message("Over WebSocket.")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    let token_file = home.root().join("ws-token");
    std::fs::write(&token_file, "t0ken-for-exec").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("ws://127.0.0.1:{port}");
    let mut server = common::app_server::app_server_command(
        &home,
        &[
            "--listen",
            &listen,
            "--ws-auth",
            "capability-token",
            "--ws-token-file",
            token_file.to_str().unwrap(),
        ],
    )
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + common::app_server::WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(server.try_wait().unwrap().is_none(), "codexd exited");
        assert!(std::time::Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut cmd = command(
        &home,
        &[
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--remote",
            &listen,
            "--remote-auth-token-env",
            "EXEC_WS_TOKEN",
            "Hi",
        ],
    );
    cmd.env("EXEC_WS_TOKEN", "t0ken-for-exec");
    let run = run_cmd(cmd, None).await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(
        run.completed_items("agent_message")[0]["text"],
        "Over WebSocket."
    );

    // Without the token the daemon refuses, and exec says so (no fallback).
    let run = common::run(
        &home,
        &["exec", "--skip-git-repo-check", "--remote", &listen, "Hi"],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains(&format!("cannot reach the daemon at {listen}")),
        "{}",
        run.stderr
    );
    server.start_kill().unwrap();
    let _ = server.wait().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_default_socket_means_embedded_exec_and_a_doctor_failure() {
    let mock = MockModelServer::start(vec![sse::message("Embedded anyway.")]).await;
    let home = TestHome::new();
    home.write_config(&mock.url(), "");
    // A socket file nobody listens on (a daemon that was killed -9).
    let socket = codex_daemon::transport::default_socket_path(&home.codex_home());
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let run = exec_json(&home, "Hi").await;
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(
        run.completed_items("agent_message")[0]["text"],
        "Embedded anyway."
    );

    let doc = common::run(&home, &["doctor", "--json", "--offline"]).await;
    assert_eq!(doc.code, Some(1));
    let doc: Value = serde_json::from_str(doc.stdout.trim()).unwrap();
    let d = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "daemon")
        .unwrap()
        .clone();
    assert_eq!(d["status"], "fail", "{d}");
    assert!(d["fix"].as_str().unwrap().contains("daemon restart"), "{d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn start_after_the_daemon_was_killed_replaces_pidfile_and_socket() {
    let home = TestHome::new();
    home.write_config("http://127.0.0.1:9", "");
    let _reap = Reap(pid_file(&home));
    let first = one_json(&daemon(&home, "start").await);
    let pid = first["pid"].as_u64().unwrap() as u32;
    codex_test_support::procs::signal(pid, "-9");
    let deadline = std::time::Instant::now() + common::DEADLINE;
    while codex_test_support::procs::is_alive(pid) {
        assert!(std::time::Instant::now() < deadline, "kill -9 did not take");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        pid_file(&home).exists(),
        "the record outlives a killed daemon"
    );
    assert_eq!(daemon(&home, "version").await.code, Some(1));

    let second = one_json(&daemon(&home, "start").await);
    assert_eq!(second["status"], "started", "{second}");
    assert_ne!(second["pid"].as_u64().unwrap() as u32, pid);
    assert_eq!(
        one_json(&daemon(&home, "version").await)["status"],
        "running"
    );
    assert_eq!(one_json(&daemon(&home, "stop").await)["status"], "stopped");
}
