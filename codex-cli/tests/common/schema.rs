//! Validation of what the server sent against upstream's JSON Schema
//! (`../shared/upstream-protocol/schema`), with tests/schema/validate.py.
//! Skipped (with a note) when the schema or python3's jsonschema is
//! missing, unless `CODEX_REQUIRE_SCHEMA=1`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{json, Value};

pub fn schema_dir() -> Option<PathBuf> {
    schema_dir_named("schema")
}

/// `schema` (stable) or `schema-experimental` (what `experimentalApi`
/// clients such as upstream's TUI rely on).
fn schema_dir_named(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/upstream-protocol")
        .join(name);
    dir.join("ServerNotification.json").exists().then_some(dir)
}

fn required() -> bool {
    std::env::var("CODEX_REQUIRE_SCHEMA").as_deref() == Ok("1")
}

/// Validates `(request method, message)` pairs: a response is checked
/// against its request method's result schema, a notification or server
/// request (method `None`) against its method's branch.
pub fn validate(messages: &[(Option<String>, Value)]) {
    validate_against("schema", messages)
}

/// [`validate`] against the experimental schema.
pub fn validate_experimental(messages: &[(Option<String>, Value)]) {
    validate_against("schema-experimental", messages)
}

fn validate_against(name: &str, messages: &[(Option<String>, Value)]) {
    let Some(dir) = schema_dir_named(name) else {
        let msg = format!(
            "upstream schema not found next to the repository (../shared/upstream-protocol/{name})"
        );
        if required() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED schema validation: {msg}");
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/schema/validate.py");
    let input: String = messages
        .iter()
        .map(|(f, m)| format!("{}\n", json!({"for": f, "message": m})))
        .collect();
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'jsonschema'") {
        if required() {
            panic!("python3 module jsonschema is missing");
        }
        eprintln!("SKIPPED schema validation: jsonschema is not installed");
        return;
    }
    assert!(
        out.status.success(),
        "schema violations:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr
    );
}

/// The notifications and server requests among `seen`, for [`validate`].
pub fn unsolicited(seen: &[Value]) -> Vec<(Option<String>, Value)> {
    seen.iter()
        .filter(|m| m.get("method").is_some())
        .map(|m| (None, m.clone()))
        .collect()
}
