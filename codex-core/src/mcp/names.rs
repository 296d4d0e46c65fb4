//! How MCP tools are named to the model (upstream's rules): the namespace is
//! `mcp__` + the server's config key, the function its tool name, both
//! sanitized to `[A-Za-z0-9_]`; the flat name `mcp__SERVER__TOOL` (for
//! boundaries without namespaces) is kept within 64 bytes, and a name that
//! would collide or overflow gets a 12-hex digest suffix.
//!
//! Upstream derives the suffix from SHA-1; we use SHA-256 (already a
//! dependency), so only overflowing or colliding names differ.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "mcp__";
pub const MAX_NAME_BYTES: usize = 64;

pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".into()
    } else {
        out
    }
}

pub fn namespace(server: &str) -> String {
    format!("{PREFIX}{}", sanitize(server))
}

/// Model-facing names of one server's tools, in order: each raw name's
/// function name inside the namespace. Unique within the server, and the
/// flat name within [`MAX_NAME_BYTES`].
pub fn tool_names(server: &str, raw: &[String]) -> Vec<String> {
    let ns = namespace(server);
    let mut taken = HashSet::new();
    raw.iter()
        .map(|r| {
            let mut name = sanitize(r);
            let flat_len = ns.len() + 2 + name.len();
            if flat_len > MAX_NAME_BYTES || taken.contains(&name) {
                let digest = hex12(&format!("{server}\u{0}{r}"));
                let room = MAX_NAME_BYTES.saturating_sub(ns.len() + 2 + 13).max(1);
                name.truncate(room.min(name.len()));
                name = format!("{name}_{digest}");
            }
            taken.insert(name.clone());
            name
        })
        .collect()
}

/// The flat canonical name of a namespaced tool.
pub fn flat(namespace: &str, name: &str) -> String {
    format!("{namespace}__{name}")
}

fn hex12(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_and_bounded() {
        assert_eq!(namespace("my-server.v2"), "mcp__my_server_v2");
        let names = tool_names(
            "echo",
            &[
                "echo_text".into(),
                "hidden-tool".into(),
                "hidden_tool".into(),
            ],
        );
        assert_eq!(names[0], "echo_text");
        assert_eq!(names[1], "hidden_tool");
        assert!(
            names[2].starts_with("hidden_tool_") && names[2].len() == "hidden_tool_".len() + 12
        );
        let long = "x".repeat(100);
        let n = &tool_names("echo", &[long])[0];
        assert!(flat(&namespace("echo"), n).len() <= MAX_NAME_BYTES, "{n}");
    }
}
