//! The C ABI from C: the programs in `codex-ffi/tests/c/` are compiled with
//! `cc` against `include/codex.h` and `libcodex_ffi` (static and shared)
//! and run against the mock model, with this package's `codex` binary as
//! the worker: an embedded supervisor and a running codexd on its socket,
//! callback and poll mode, and again under valgrind (leaks and memory
//! errors fail the test).
//!
//! valgrind is optional unless `CODEX_REQUIRE_VALGRIND=1` (the valgrind
//! tests then fail instead of skipping when it is missing).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use codex_test_support::{sse, MockModelServer, MockResponse, TestHome};
use common::app_server::SocketServer;
use common::CODEX;
use serde_json::json;

/// Without valgrind a run takes seconds; under it, a minute or two.
const RUN_DEADLINE: Duration = Duration::from_secs(900);
const MARKER: &str = "ffi-approved-run";

struct Programs {
    drive_static: PathBuf,
    drive_shared: PathBuf,
    bad_input: PathBuf,
}

fn ffi_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("codex-ffi")
}

/// `libcodex_ffi.{a,so}`: built with this test as a dev-dependency, into
/// `deps/` beside the `codex` binary.
fn lib_dir() -> PathBuf {
    let deps = Path::new(CODEX).parent().unwrap().join("deps");
    for lib in ["libcodex_ffi.a", "libcodex_ffi.so"] {
        assert!(
            deps.join(lib).is_file(),
            "{} was not built (codex-ffi is a dev-dependency of codex-cli)",
            deps.join(lib).display()
        );
    }
    deps
}

fn cc(out: &Path, source: &str, link: &[String]) {
    let ffi = ffi_dir();
    let o = std::process::Command::new("cc")
        .args(["-std=c11", "-g", "-O1", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(ffi.join("include"))
        .arg("-I")
        .arg(ffi.join("tests/c"))
        .arg(ffi.join("tests/c").join(source))
        .arg("-o")
        .arg(out)
        .args(link)
        .output()
        .expect("cc (a C compiler) is needed for the C ABI tests");
    assert!(
        o.status.success(),
        "cc {source} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Compiles the C programs once per test binary.
fn programs() -> &'static Programs {
    static P: OnceLock<Programs> = OnceLock::new();
    P.get_or_init(|| {
        let libs = lib_dir();
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi-c");
        std::fs::create_dir_all(&out).unwrap();
        let system = ["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s"].map(String::from);
        let mut static_link = vec![libs.join("libcodex_ffi.a").display().to_string()];
        static_link.extend(system.iter().cloned());
        let shared_link = vec![
            libs.join("libcodex_ffi.so").display().to_string(),
            format!("-Wl,-rpath,{}", libs.display()),
            "-lpthread".into(),
        ];
        let p = Programs {
            drive_static: out.join("drive_static"),
            drive_shared: out.join("drive_shared"),
            bad_input: out.join("bad_input"),
        };
        cc(&p.drive_static, "drive.c", &static_link);
        cc(&p.drive_shared, "drive.c", &shared_link);
        cc(&p.bad_input, "bad_input.c", &shared_link);
        p
    })
}

fn valgrind() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("valgrind"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CODEX_REQUIRE_VALGRIND").as_deref() != Ok("1"),
            "valgrind is required (CODEX_REQUIRE_VALGRIND=1) but not installed"
        );
        eprintln!("valgrind is not installed: skipping (set CODEX_REQUIRE_VALGRIND=1 to fail)");
    }
    found
}

/// The command asks to run outside the sandbox, so `on-request` asks for
/// approval.
fn escalated(call_id: &str, cmd: &str) -> MockResponse {
    MockResponse::sse(sse::function_call_events(
        &format!("r_{call_id}"),
        call_id,
        "exec_command",
        json!({"cmd": cmd, "sandbox_permissions": "require_escalated", "justification": "the test"}),
    ))
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// valgrind's own report.
    valgrind_log: Option<String>,
}

async fn run(
    home: &TestHome,
    program: &Path,
    args: &[&str],
    envs: &[(&str, String)],
    under_valgrind: Option<&Path>,
) -> Output {
    let log = home.root().join("valgrind.log");
    let mut cmd = match under_valgrind {
        Some(vg) => {
            let mut c = tokio::process::Command::new(vg);
            c.args([
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
                "--error-exitcode=99",
                "--child-silent-after-fork=yes",
                "--num-callers=30",
            ])
            .arg(format!("--log-file={}", log.display()))
            .arg(program);
            c
        }
        None => tokio::process::Command::new(program),
    };
    cmd.args(args)
        .current_dir(home.workspace())
        .env("CODEX_HOME", home.codex_home())
        .env("HOME", home.home())
        .env("MOCK_API_KEY", "sk-mock-test")
        .env_remove("OPENAI_API_KEY")
        .env_remove("CODEX_API_KEY")
        .env_remove("CODEX_WORKER_PATH")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn the C program");
    let out = tokio::time::timeout(RUN_DEADLINE, child.wait_with_output())
        .await
        .expect("the C program did not finish within the deadline")
        .unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        valgrind_log: under_valgrind.map(|_| std::fs::read_to_string(&log).unwrap_or_default()),
    }
}

/// Checks valgrind's report: no errors, nothing definitely lost; prints
/// its summary.
fn check_valgrind(what: &str, o: &Output) {
    let Some(log) = &o.valgrind_log else { return };
    let summary: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("ERROR SUMMARY")
                || l.contains("definitely lost")
                || l.contains("indirectly lost")
                || l.contains("possibly lost")
                || l.contains("still reachable")
                || l.contains("in use at exit")
        })
        .collect();
    eprintln!("valgrind, {what}:\n{}", summary.join("\n"));
    assert!(
        log.contains("ERROR SUMMARY: 0 errors"),
        "valgrind found errors in {what}:\n{log}"
    );
    assert!(
        log.contains("definitely lost: 0 bytes") || log.contains("All heap blocks were freed"),
        "valgrind found leaks in {what}:\n{log}"
    );
}

enum Server {
    Embedded,
    Codexd,
}

/// One turn from C: open, thread, turn, approve, command, turn/completed,
/// close.
async fn drive(program: &Path, server: Server, mode: &str, under_valgrind: Option<&Path>) {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![
        escalated(
            "call_ffi",
            &format!("echo {MARKER} > approved.txt && cat approved.txt"),
        ),
        sse::message("done"),
    ])
    .await;
    home.write_config(&mock.url(), "");
    let codexd = match server {
        Server::Codexd => Some(SocketServer::start(&home).await),
        Server::Embedded => None,
    };
    let endpoint = match &codexd {
        Some(s) => format!("unix://{}", s.socket.display()),
        None => "embedded".to_string(),
    };
    let mut envs = vec![
        ("DRIVE_CWD", home.workspace().display().to_string()),
        ("DRIVE_MARKER", MARKER.to_string()),
    ];
    // The worker binary: the option in callback mode, the environment in
    // poll mode (both paths of the lookup).
    if mode == "callback" {
        envs.push(("DRIVE_WORKER", CODEX.to_string()));
    } else {
        envs.push(("CODEX_WORKER_PATH", CODEX.to_string()));
    }
    let o = run(&home, program, &[&endpoint, mode], &envs, under_valgrind).await;
    let what = format!("{} {endpoint} {mode}", program.display());
    assert_eq!(
        o.code,
        Some(0),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}\nvalgrind:\n{}",
        o.stdout,
        o.stderr,
        o.valgrind_log.as_deref().unwrap_or("-")
    );
    assert!(o.stdout.contains("drive: ok"), "{}", o.stdout);
    // The command really ran, approved, outside the sandbox.
    let ran = std::fs::read_to_string(home.workspace().join("approved.txt")).unwrap();
    assert_eq!(ran.trim(), MARKER);
    let requests = mock.model_requests();
    assert_eq!(requests.len(), 2, "one tool call, one answer");
    let output = requests[1].function_output("call_ffi").unwrap();
    assert!(output.contains(MARKER), "{output}");
    check_valgrind(&what, &o);
    drop(codexd);
    no_process_left(&home);
}

/// Live processes (the C program's workers) with this home in their
/// environment.
fn processes_of(home: &TestHome) -> Vec<u32> {
    let needle = format!("CODEX_HOME={}", home.codex_home().display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let found = env.split(|b| *b == 0).any(|v| v == needle.as_bytes());
        if found && codex_test_support::procs::is_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Closing the runtime (and, for codexd, killing it) leaves no worker.
fn no_process_left(home: &TestHome) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_of(home);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn bad_input(under_valgrind: Option<&Path>) {
    let home = TestHome::new();
    let mock = MockModelServer::start(vec![]).await;
    home.write_config(&mock.url(), "");
    let envs = [
        ("BAD_CWD", home.workspace().display().to_string()),
        ("CODEX_WORKER_PATH", CODEX.to_string()),
    ];
    let p = programs();
    let o = run(&home, &p.bad_input, &[], &envs, under_valgrind).await;
    assert_eq!(
        o.code,
        Some(0),
        "bad_input failed:\nstdout:\n{}\nstderr:\n{}\nvalgrind:\n{}",
        o.stdout,
        o.stderr,
        o.valgrind_log.as_deref().unwrap_or("-")
    );
    assert!(o.stdout.contains("bad_input: ok"), "{}", o.stdout);
    check_valgrind("bad_input", &o);
    no_process_left(&home);
}

#[tokio::test(flavor = "multi_thread")]
async fn c_drives_an_approved_turn_embedded_callback_static() {
    drive(&programs().drive_static, Server::Embedded, "callback", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c_drives_an_approved_turn_embedded_poll_shared() {
    drive(&programs().drive_shared, Server::Embedded, "poll", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c_drives_an_approved_turn_over_codexd_socket_callback() {
    drive(&programs().drive_static, Server::Codexd, "callback", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c_drives_an_approved_turn_over_codexd_socket_poll() {
    drive(&programs().drive_shared, Server::Codexd, "poll", None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn c_bad_input_gets_result_codes() {
    bad_input(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn valgrind_drive_embedded_callback() {
    let Some(vg) = valgrind() else { return };
    drive(
        &programs().drive_shared,
        Server::Embedded,
        "callback",
        Some(&vg),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn valgrind_drive_codexd_socket_poll() {
    let Some(vg) = valgrind() else { return };
    drive(&programs().drive_static, Server::Codexd, "poll", Some(&vg)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn valgrind_bad_input() {
    let Some(vg) = valgrind() else { return };
    bad_input(Some(&vg)).await;
}
