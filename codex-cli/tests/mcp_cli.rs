//! `codex mcp add|list|get|remove` against a temp CODEX_HOME: what upstream
//! 0.169 prints and writes, and the file's comments kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use codex_test_support::TestHome;
use serde_json::{json, Value};

fn config(home: &TestHome) -> String {
    std::fs::read_to_string(home.codex_home().join("config.toml")).unwrap_or_default()
}

async fn ok(home: &TestHome, args: &[&str]) -> common::Run {
    let r = common::run(home, args).await;
    assert_eq!(r.code, Some(0), "{args:?}: {}{}", r.stdout, r.stderr);
    r
}

fn json_of(r: &common::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[tokio::test]
async fn add_list_get_remove_as_upstream() {
    let home = TestHome::new();
    let r = ok(&home, &["mcp", "list"]).await;
    assert_eq!(
        r.stdout,
        "No MCP servers configured yet. Try `codex mcp add my-tool -- my-command`.\n"
    );
    assert_eq!(ok(&home, &["mcp", "list", "--json"]).await.stdout, "[]\n");

    let r = ok(
        &home,
        &[
            "mcp", "add", "echo", "--env", "B=two", "--env", "A=1", "--", "python3", "echo.py",
            "--flag",
        ],
    )
    .await;
    assert_eq!(r.stdout, "Added global MCP server 'echo'.\n");
    let r = ok(
        &home,
        &[
            "mcp",
            "add",
            "docs",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--bearer-token-env-var",
            "DOCS_TOKEN",
        ],
    )
    .await;
    assert_eq!(r.stdout, "Added global MCP server 'docs'.\n");
    let r = ok(
        &home,
        &["mcp", "add", "plain", "--url", "https://example.com/mcp"],
    )
    .await;
    assert_eq!(
        r.stdout,
        "Added global MCP server 'plain'.\nMCP server may or may not require login. Run `codex mcp login plain` to login.\n"
    );
    assert_eq!(
        config(&home),
        "[mcp_servers.echo]\ncommand = \"python3\"\nargs = [\"echo.py\", \"--flag\"]\n\n\
         [mcp_servers.echo.env]\nA = \"1\"\nB = \"two\"\n\n\
         [mcp_servers.docs]\nurl = \"http://127.0.0.1:9/mcp\"\nbearer_token_env_var = \"DOCS_TOKEN\"\n\n\
         [mcp_servers.plain]\nurl = \"https://example.com/mcp\"\n"
    );

    let list = json_of(&ok(&home, &["mcp", "list", "--json"]).await);
    assert_eq!(
        list,
        json!([
            {"name": "docs", "enabled": true, "disabled_reason": null,
             "transport": {"type": "streamable_http", "url": "http://127.0.0.1:9/mcp",
                           "bearer_token_env_var": "DOCS_TOKEN", "http_headers": null,
                           "env_http_headers": null, "http_headers_helper": null},
             "startup_timeout_sec": null, "tool_timeout_sec": null, "auth_status": "bearer_token"},
            {"name": "echo", "enabled": true, "disabled_reason": null,
             "transport": {"type": "stdio", "command": "python3", "args": ["echo.py", "--flag"],
                           "env": {"A": "1", "B": "two"}, "env_vars": [], "cwd": null},
             "startup_timeout_sec": null, "tool_timeout_sec": null, "auth_status": "unsupported"},
            {"name": "plain", "enabled": true, "disabled_reason": null,
             "transport": {"type": "streamable_http", "url": "https://example.com/mcp",
                           "bearer_token_env_var": null, "http_headers": null,
                           "env_http_headers": null, "http_headers_helper": null},
             "startup_timeout_sec": null, "tool_timeout_sec": null, "auth_status": "unknown"}
        ])
    );
    let r = ok(&home, &["mcp", "list"]).await;
    assert_eq!(
        r.stdout,
        "Name  Command  Args            Env               Cwd  Status   Auth       \n\
         echo  python3  echo.py --flag  A=*****, B=*****  -    enabled  Unsupported\n\
         \n\
         Name   Url                      Bearer Token Env Var  Status   Auth        \n\
         docs   http://127.0.0.1:9/mcp   DOCS_TOKEN            enabled  Bearer token\n\
         plain  https://example.com/mcp  -                     enabled  Unknown     \n"
    );

    let get = json_of(&ok(&home, &["mcp", "get", "echo", "--json"]).await);
    assert_eq!(
        get,
        json!({"name": "echo", "enabled": true, "disabled_reason": null,
               "transport": {"type": "stdio", "command": "python3", "args": ["echo.py", "--flag"],
                             "env": {"A": "1", "B": "two"}, "env_vars": [], "cwd": null},
               "enabled_tools": null, "disabled_tools": null,
               "startup_timeout_sec": null, "tool_timeout_sec": null})
    );
    let r = ok(&home, &["mcp", "get", "docs"]).await;
    assert_eq!(
        r.stdout,
        "docs\n  enabled: true\n  transport: streamable_http\n  url: http://127.0.0.1:9/mcp\n  \
         bearer_token_env_var: DOCS_TOKEN\n  http_headers: -\n  env_http_headers: -\n  \
         http_headers_helper: -\n  remove: codex mcp remove docs\n"
    );

    // Adding a name again replaces the server.
    ok(&home, &["mcp", "add", "echo", "--", "python3", "other.py"]).await;
    let get = json_of(&ok(&home, &["mcp", "get", "echo", "--json"]).await);
    assert_eq!(get["transport"]["args"], json!(["other.py"]));
    assert_eq!(get["transport"]["env"], Value::Null);

    for name in ["echo", "docs", "plain"] {
        let r = ok(&home, &["mcp", "remove", name]).await;
        assert_eq!(r.stdout, format!("Removed global MCP server '{name}'.\n"));
    }
    assert_eq!(config(&home), "");
    let r = ok(&home, &["mcp", "remove", "echo"]).await;
    assert_eq!(r.stdout, "No MCP server named 'echo' found.\n");
}

#[tokio::test]
async fn errors_name_what_is_wrong_with_upstreams_exit_codes() {
    let home = TestHome::new();
    let r = common::run(&home, &["mcp", "get", "nope"]).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("No MCP server named 'nope' found."),
        "{}",
        r.stderr
    );
    let r = common::run(&home, &["mcp", "add", "bad name", "--", "x"]).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("invalid server name 'bad name'"),
        "{}",
        r.stderr
    );
    let r = common::run(&home, &["mcp", "remove", "bad name"]).await;
    assert_eq!(r.code, Some(1));
    // Argument errors are clap's (exit 2).
    for args in [
        &["mcp", "add", "nocmd"][..],
        &["mcp", "add", "both", "--url", "http://x", "--", "cmd"],
        &["mcp", "add", "e", "--env", "A", "--", "cmd"],
        &[
            "mcp",
            "add",
            "b",
            "--bearer-token-env-var",
            "T",
            "--",
            "cmd",
        ],
        &[
            "mcp",
            "add",
            "s",
            "--url",
            "http://x",
            "--oauth-client-secret",
            "s",
        ],
    ] {
        let r = common::run(&home, args).await;
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
    }
    let r = common::run(
        &home,
        &["mcp", "add", "e", "--url", "http://x", "--env", "A=1"],
    )
    .await;
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("--env"), "{}", r.stderr);
    // A server the runtime could not start is not written.
    let r = common::run(&home, &["mcp", "add", "u", "--url", "notaurl"]).await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("[mcp_servers.u]"), "{}", r.stderr);
    let r = common::run(&home, &["mcp", "list", "-c", "bogus"]).await;
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("bogus"), "{}", r.stderr);
    assert_eq!(config(&home), "");
    let r = common::run(&home, &["mcp", "login", "x"]).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("No MCP server named 'x' found."),
        "{}",
        r.stderr
    );
    // OAuth is for HTTP servers only.
    let r = common::run(&home, &["mcp", "add", "s", "--", "true"]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let r = common::run(&home, &["mcp", "login", "s"]).await;
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("only supported for streamable HTTP"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn comments_are_kept_overrides_apply_and_unusable_servers_are_warned() {
    let home = TestHome::new();
    std::fs::create_dir_all(home.codex_home()).unwrap();
    let original = "# mine\nmodel = \"m\" # keep\n\n# the servers\n[mcp_servers.keep]\n\
                    # inner\ncommand = \"k\" # trailing\nstartup_timeout_sec = 12.5\n\
                    tool_timeout_sec = 60\nenabled = false\ncwd = \"/w\"\nenv_vars = [\"HOME\"]\n\
                    \n[mcp_servers.bad]\ncommand = \"x\"\nurl = \"http://y\"\n\n[tui]\nx = 1\n";
    std::fs::write(home.codex_home().join("config.toml"), original).unwrap();

    let r = ok(&home, &["mcp", "list", "--json"]).await;
    assert!(
        r.stderr.contains("[mcp_servers.bad]: invalid transport"),
        "{}",
        r.stderr
    );
    let list = json_of(&r);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["enabled"], false);
    assert_eq!(list[0]["startup_timeout_sec"], 12.5);
    assert_eq!(list[0]["tool_timeout_sec"], 60.0);
    assert_eq!(list[0]["transport"]["cwd"], "/w");
    assert_eq!(
        ok(&home, &["mcp", "get", "keep"]).await.stdout,
        "keep (disabled)\n"
    );

    ok(&home, &["mcp", "add", "new", "--", "n"]).await;
    let text = config(&home);
    assert!(
        text.starts_with(
            "# mine\nmodel = \"m\" # keep\n\n# the servers\n[mcp_servers.keep]\n# inner\ncommand = \"k\" # trailing\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("url = \"http://y\"\n\n[mcp_servers.new]\ncommand = \"n\"\n\n[tui]\n"),
        "{text}"
    );
    // The unusable server can still be removed.
    ok(&home, &["mcp", "remove", "bad"]).await;
    ok(&home, &["mcp", "remove", "new"]).await;
    assert_eq!(
        config(&home),
        original.replace(
            "[mcp_servers.bad]\ncommand = \"x\"\nurl = \"http://y\"\n\n",
            ""
        )
    );

    // `-c` applies to list and get as to every command.
    let r = ok(
        &home,
        &[
            "mcp",
            "-c",
            "mcp_servers.keep.enabled=true",
            "get",
            "keep",
            "-c",
            "mcp_servers.extra.command=\"y\"",
        ],
    )
    .await;
    assert!(
        r.stdout.starts_with("keep\n  enabled: true\n"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("  startup_timeout_sec: 12.5\n  tool_timeout_sec: 60\n"));
    let r = ok(
        &home,
        &["mcp", "list", "-c", "mcp_servers.extra.command=\"y\""],
    )
    .await;
    assert!(r.stdout.contains("\nextra "), "{}", r.stdout);
    // A timeout set to its default is shown (upstream shows what is set).
    let r = ok(
        &home,
        &[
            "mcp",
            "get",
            "extra",
            "--json",
            "-c",
            "mcp_servers.extra.command=\"y\"",
            "-c",
            "mcp_servers.extra.startup_timeout_sec=30",
        ],
    )
    .await;
    let get = json_of(&r);
    assert_eq!(get["startup_timeout_sec"], 30.0);
    assert_eq!(get["tool_timeout_sec"], Value::Null);
}

#[tokio::test]
async fn oauth_flags_are_written_where_upstream_writes_them() {
    let home = TestHome::new();
    let r = ok(
        &home,
        &[
            "mcp",
            "add",
            "o",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--oauth-client-id",
            "cid",
            "--oauth-client-secret",
            "sec",
            "--oauth-resource",
            "https://res",
            "--oauth-client-registration",
            "dcr",
        ],
    )
    .await;
    assert!(
        r.stderr.contains("--oauth-client-registration"),
        "{}",
        r.stderr
    );
    // Upstream's redirect URI, derived from the server URL (checked
    // against upstream 0.169.0's output for this URL).
    assert!(
        r.stdout
            .contains("OAuth callback URL: http://127.0.0.1/callback/9biCUt7SMRWF"),
        "{}",
        r.stdout
    );
    assert_eq!(
        config(&home),
        "[mcp_servers.o]\nurl = \"http://127.0.0.1:9/mcp\"\noauth_resource = \"https://res\"\n\n\
         [mcp_servers.o.oauth]\nclient_id = \"cid\"\nclient_secret = \"sec\"\n\
         callback_url = \"http://127.0.0.1/callback/9biCUt7SMRWF\"\n"
    );
    // Read back without a warning: every key is known.
    let r = ok(&home, &["mcp", "get", "o"]).await;
    assert!(!r.stderr.contains("not supported"), "{}", r.stderr);
}
