//! MCP test support: the stdio mock server's locator and the tool and
//! resource catalog it shares with the HTTP mock.

pub mod catalog;

use std::path::PathBuf;

/// The `mock-mcp-server` binary. Tests in other crates run from the same
/// target dir (`target/debug/deps/x`), so it sits next to `deps/`;
/// `CODEX_MOCK_MCP_SERVER` overrides.
pub fn mock_mcp_server_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("CODEX_MOCK_MCP_SERVER") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir.join(format!("mock-mcp-server{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "mock-mcp-server is not built: run `cargo build -p codex-test-support --bins` \
             (scripts/test builds it); looked for {}",
            path.display()
        );
    }
    path
}
