//! The `keyring` credential store against a real Secret Service (a headless
//! gnome-keyring-daemon in its own D-Bus session), and `auto` falling back
//! to the file where there is none. CI installs the daemon and sets
//! `CODEX_REQUIRE_KEYRING=1`; elsewhere the keyring test is skipped when the
//! tools are missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use codex_test_support::TestHome;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn keyring_tools() -> bool {
    let ok = have("dbus-run-session") && have("gnome-keyring-daemon");
    if !ok && std::env::var("CODEX_REQUIRE_KEYRING").as_deref() == Ok("1") {
        panic!("CODEX_REQUIRE_KEYRING=1 but dbus-run-session or gnome-keyring-daemon is missing");
    }
    ok
}

#[test]
fn keyring_store_round_trips_through_a_real_secret_service() {
    if !keyring_tools() {
        eprintln!("skipped: no dbus-run-session / gnome-keyring-daemon here");
        return;
    }
    let home = TestHome::new();
    std::fs::write(
        home.codex_home().join("config.toml"),
        "cli_auth_credentials_store = \"keyring\"\n",
    )
    .unwrap();
    let codex = common::CODEX;
    // One D-Bus session (and one unlocked keyring, in the test's own $HOME)
    // for the whole script.
    let script = format!(
        r#"set -e
echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null
echo sk-fake-test-1234567890abcdef | {codex} login --with-api-key
{codex} login status
test ! -e "$CODEX_HOME/auth.json" && echo "no file copy"
{codex} logout
{codex} login status || echo "status after logout: $?"
"#
    );
    let out = Command::new("dbus-run-session")
        .args(["--", "sh", "-c", &script])
        .env("HOME", home.home())
        .env("XDG_DATA_HOME", home.home().join(".local/share"))
        .env("CODEX_HOME", home.codex_home())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("API key saved"), "{text}");
    assert!(
        text.contains("API key configured - sk-fake-***bcdef"),
        "{text}"
    );
    assert!(text.contains("no file copy"), "{text}");
    assert!(text.contains("Successfully logged out"), "{text}");
    assert!(
        text.contains("Not logged in") && text.contains("status after logout: 1"),
        "{text}"
    );
}

#[test]
fn auto_falls_back_to_the_file_without_a_secret_service() {
    let home = TestHome::new();
    std::fs::write(
        home.codex_home().join("config.toml"),
        "cli_auth_credentials_store = \"auto\"\n",
    )
    .unwrap();
    let mut child = Command::new(common::CODEX)
        .args(["login", "--with-api-key"])
        .env("CODEX_HOME", home.codex_home())
        .env("HOME", home.home())
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("XDG_RUNTIME_DIR", home.root().join("no-runtime"))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"sk-fake-test-1234567890abcdef\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("the OS keyring is not available"), "{err}");
    let saved = std::fs::read_to_string(home.codex_home().join("auth.json")).unwrap();
    assert!(saved.contains("sk-fake-test-1234567890abcdef"));
}
