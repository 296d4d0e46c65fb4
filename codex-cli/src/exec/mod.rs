//! `codex exec`: one turn, non-interactively, rendered for humans or as
//! upstream's JSONL event stream.

mod human;
mod remote;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use codex_core::config::{
    AskForApproval, CliOverride, Config, ConfigOverrides, LoadOptions, SandboxMode,
    LMSTUDIO_PROVIDER_ID, LOCAL_PROVIDER_ID, OLLAMA_PROVIDER_ID,
};
use codex_core::rollout::{find_thread_file, latest_thread_file};
use codex_daemon::runtime::{EmbeddedOptions, Endpoint, Runtime, RuntimeOptions};
use codex_daemon::server::ThreadDefaults;
use codex_ipc::app_server::methods::ClientInfo;
use codex_ipc::app_server::turn_view::{self, TurnEvent, TurnStatus};
use codex_ipc::exec_events::ExecEventMapper;
use codex_ipc::jsonrpc::Incoming;
use serde_json::{json, Map, Value};

/// Env var the TypeScript SDK sets to name itself as the originator.
const ORIGINATOR_ENV: &str = "CODEX_INTERNAL_ORIGINATOR_OVERRIDE";
/// Largest prompt read from stdin.
const MAX_STDIN_PROMPT: u64 = 16 * 1024 * 1024;
/// How long the session may take to record its end and exit after the turn.
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = false,
    subcommand_negates_reqs = true
)]
pub struct ExecArgs {
    #[command(subcommand)]
    command: Option<ExecCommand>,

    /// Instructions for the agent. Read from stdin when omitted or `-`.
    prompt: Option<String>,

    #[command(flatten)]
    opts: ExecOptions,
}

#[derive(Subcommand, Debug)]
enum ExecCommand {
    /// Resume a previous session by id, or the most recent with --last.
    Resume(ResumeArgs),
}

#[derive(Args, Debug)]
struct ResumeArgs {
    /// Session (thread) id. Omit with --last.
    session_id: Option<String>,
    /// Prompt to send after resuming. Read from stdin when omitted or `-`.
    prompt: Option<String>,
    /// Resume the most recent session started in this directory.
    #[arg(long)]
    last: bool,
    /// With --last: consider sessions from every directory.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug, Clone)]
struct ExecOptions {
    /// Override a config value: `-c key=value` (dotted path; value parsed as TOML).
    #[arg(short = 'c', long = "config", value_name = "key=value", global = true)]
    config: Vec<String>,
    /// Model to use.
    #[arg(short = 'm', long, global = true)]
    model: Option<String>,
    /// Config profile to use.
    #[arg(short = 'p', long, global = true)]
    profile: Option<String>,
    /// Sandbox policy for model-generated commands.
    #[arg(short = 's', long, value_enum, global = true)]
    sandbox: Option<SandboxArg>,
    /// workspace-write sandbox with on-request approvals.
    #[arg(long, global = true)]
    full_auto: bool,
    /// No sandbox, no approvals. Only for externally sandboxed environments.
    #[arg(
        long = "dangerously-bypass-approvals-and-sandbox",
        alias = "yolo",
        global = true
    )]
    dangerously_bypass: bool,
    /// Working directory of the agent.
    #[arg(short = 'C', long = "cd", value_name = "DIR", global = true)]
    cd: Option<PathBuf>,
    /// Additional writable directory (workspace-write).
    #[arg(long = "add-dir", value_name = "DIR", global = true)]
    add_dir: Vec<PathBuf>,
    /// Allow running outside a Git repository.
    #[arg(long, global = true)]
    skip_git_repo_check: bool,
    /// Do not write a session file.
    #[arg(long, global = true)]
    ephemeral: bool,
    /// Do not read $CODEX_HOME/config.toml.
    #[arg(long, global = true)]
    ignore_user_config: bool,
    /// Use a local open-source model provider (Ollama by default).
    #[arg(long, global = true)]
    oss: bool,
    /// Run the turn on the embedded local model (llama.cpp, in-process; no
    /// server, no network). `-m PATH.gguf` names the model file (else
    /// `local_model_path`, else `$CODEX_MODELS_DIR` or `$CODEX_HOME/models`).
    /// Needs a build with `--features local-llm`.
    #[arg(long, global = true, conflicts_with = "oss")]
    local: bool,
    /// With --oss: `ollama` or `lmstudio`.
    #[arg(long, value_name = "PROVIDER", global = true)]
    local_provider: Option<String>,
    /// Image(s) to attach to the prompt.
    #[arg(short = 'i', long = "image", value_name = "FILE", value_delimiter = ',', num_args = 1.., global = true)]
    images: Vec<PathBuf>,
    /// JSON Schema the final answer must follow.
    #[arg(long, value_name = "FILE", global = true)]
    output_schema: Option<PathBuf>,
    /// Write the last agent message to FILE.
    #[arg(short = 'o', long, value_name = "FILE", global = true)]
    output_last_message: Option<PathBuf>,
    /// Print events to stdout as JSONL.
    #[arg(long, global = true)]
    json: bool,
    /// Same as --json (the TypeScript SDK's flag).
    #[arg(long, hide = true, global = true)]
    experimental_json: bool,
    /// Color of human output.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto, global = true)]
    color: ColorArg,
    /// Source classification recorded for new threads.
    #[arg(long, hide = true, global = true)]
    thread_source: Option<String>,
    /// Accepted for compatibility; has no effect here.
    #[arg(long, hide = true, global = true)]
    cyber_access_program: Option<String>,
    /// Run the thread on a running daemon: `unix://PATH` or
    /// `ws://HOST:PORT` (default: the daemon on the default socket, if one
    /// answers; else an embedded supervisor).
    #[arg(long, value_name = "URL", global = true)]
    remote: Option<String>,
    /// With `--remote ws://…`: the environment variable holding the
    /// daemon's capability token (sent as `Authorization: Bearer`).
    #[arg(long, value_name = "VAR", global = true)]
    remote_auth_token_env: Option<String>,
    /// Never use a running daemon: embed a supervisor (also
    /// `CODEX_EXEC_NO_DAEMON=1`).
    #[arg(long, global = true, conflicts_with = "remote")]
    no_daemon: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SandboxArg {
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
}

impl SandboxArg {
    pub(crate) fn mode(self) -> SandboxMode {
        match self {
            SandboxArg::ReadOnly => SandboxMode::ReadOnly,
            SandboxArg::WorkspaceWrite => SandboxMode::WorkspaceWrite,
            SandboxArg::DangerFullAccess => SandboxMode::DangerFullAccess,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Always,
    Never,
    Auto,
}

pub fn main(args: ExecArgs) -> i32 {
    crate::logging::init("warn");
    // exec owns its process and embeds a supervisor: what a dead worker
    // leaves behind re-parents here and is reaped, as under codexd.
    if let Err(e) = codex_core::process::become_subreaper() {
        tracing::warn!("cannot become child subreaper: {e}");
    }
    let Some(rt) = crate::rt::multi_thread() else {
        return 1;
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            1
        }
    }
}

async fn run(args: ExecArgs) -> anyhow::Result<i32> {
    let opts = args.opts.clone();
    let json = opts.json || opts.experimental_json;

    let (resume, prompt_arg) = match args.command {
        Some(ExecCommand::Resume(mut r)) => {
            // `resume --last PROMPT`: the only positional is the prompt.
            if r.last && r.prompt.is_none() {
                r.prompt = r.session_id.take();
            }
            let prompt = r.prompt.clone().or(args.prompt.clone());
            (Some(r), prompt)
        }
        None => (None, args.prompt.clone()),
    };
    if opts.cyber_access_program.is_some() {
        eprintln!("warning: --cyber-access-program has no effect in this runtime (ignored)");
    }

    // Validated here, before anything starts: a bad config fails fast with
    // the file and key.
    let config = load_config(&opts)?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if config.uses_embedded_model() {
        codex_core::client::local::check_model(&config.local_model_path)?;
    }
    if !opts.skip_git_repo_check && !inside_git_repo(&config.cwd) {
        bail!(
            "Not inside a trusted directory and --skip-git-repo-check was not specified ({}).",
            config.cwd.display()
        );
    }

    let prompt = read_prompt(prompt_arg)?;
    let output_schema =
        match &opts.output_schema {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read output schema {}", path.display()))?;
                Some(serde_json::from_str::<Value>(&text).with_context(|| {
                    format!("output schema {} is not valid JSON", path.display())
                })?)
            }
            None => None,
        };
    let mut input = vec![json!({"type": "text", "text": prompt})];
    for img in &opts.images {
        if !img.is_file() {
            bail!("image {} does not exist", img.display());
        }
        let path = std::fs::canonicalize(img).unwrap_or_else(|_| img.clone());
        input.push(json!({"type": "localImage", "path": path}));
    }

    let originator = std::env::var(ORIGINATOR_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "codex_exec".to_string());
    let resume_id = match resume {
        Some(r) => {
            let sessions = config.sessions_dir();
            let file = if r.last {
                let cwd = (!r.all).then_some(config.cwd.as_path());
                latest_thread_file(&sessions, cwd)
                    .with_context(|| "no previous session found to resume (try --all)")?
            } else {
                let id = r
                    .session_id
                    .as_deref()
                    .context("give a session id or --last")?;
                find_thread_file(&sessions, id)
                    .with_context(|| format!("no saved session found with id {id}"))?
            };
            Some(thread_id_of(&file)?)
        }
        None => None,
    };
    let (cli_overrides, overrides) = config_inputs(&opts)?;

    // A running daemon (named, or answering on the default socket) runs
    // the thread, so every client sees it; otherwise it runs in a
    // `codex-session` worker of a supervisor in this process: the same
    // code path, and the same containment, as codexd.
    let mut local_only = Vec::new();
    if opts.ignore_user_config {
        local_only.push("--ignore-user-config");
    }
    if opts.profile.is_some() {
        local_only.push("--profile");
    }
    if opts.thread_source.is_some() {
        local_only.push("--thread-source");
    }
    let target = remote::target(
        &remote::RemoteRequest {
            remote: opts.remote.as_deref(),
            token_env: opts.remote_auth_token_env.as_deref(),
            no_daemon: opts.no_daemon,
            local_only,
        },
        &config.codex_home,
    )?;
    let client_info = ClientInfo {
        name: originator,
        version: env!("CARGO_PKG_VERSION").into(),
        title: None,
    };
    let on_daemon = match target {
        Some(t) => remote::open(t, client_info.clone()).await?,
        None => None,
    };
    let remote_thread = on_daemon.is_some();
    let embedded = EmbeddedOptions {
        codex_home: config.codex_home.clone(),
        worker_exe: Some(std::env::current_exe().context("cannot find this executable")?),
        cwd: Some(config.cwd.clone()),
        config_overrides: cli_overrides.clone(),
        thread_defaults: ThreadDefaults {
            source: opts.thread_source.clone().unwrap_or_else(|| "exec".into()),
            default_approval_policy: overrides.default_approval_policy,
            additional_writable_roots: overrides
                .additional_writable_roots
                .iter()
                .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
                .collect(),
            ignore_user_config: overrides.ignore_user_config,
        },
    };
    let remote_overrides = cli_overrides;
    let (rt, mut messages) = match on_daemon {
        Some(opened) => opened,
        None => {
            let mut ropts = RuntimeOptions::new(Endpoint::Embedded(embedded));
            ropts.client_info = client_info;
            Runtime::open(ropts).await?
        }
    };

    let mut params = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            params.insert(k.into(), v);
        }
    };
    put("model", overrides.model.clone().map(Value::from));
    put(
        "modelProvider",
        overrides.model_provider.clone().map(Value::from),
    );
    put(
        "approvalPolicy",
        overrides
            .approval_policy
            .map(|a| Value::from(a.to_string())),
    );
    put(
        "sandbox",
        overrides.sandbox_mode.map(|m| Value::from(m.to_string())),
    );
    put("cwd", Some(Value::from(config.cwd.display().to_string())));
    if remote_thread {
        remote::thread_params(&mut params, &config, &remote_overrides, &opts.add_dir);
    }
    let session = match &resume_id {
        Some(id) => {
            params.insert("threadId".into(), Value::from(id.clone()));
            params.insert("excludeTurns".into(), Value::Bool(true));
            rt.request("thread/resume", Value::Object(params)).await?
        }
        None => {
            if opts.ephemeral {
                params.insert("ephemeral".into(), Value::Bool(true));
            }
            rt.request("thread/start", Value::Object(params)).await?
        }
    };
    let thread_id = session
        .pointer("/thread/id")
        .and_then(Value::as_str)
        .context("the session did not say its thread id")?
        .to_string();

    let color = match opts.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let (ev_tx, ev_rx) = tokio::sync::mpsc::channel::<TurnEvent>(1024);
    let renderer = if json {
        tokio::spawn(render_json(thread_id.clone(), ev_rx))
    } else {
        let header = human::Header::from_session(&session);
        tokio::spawn(human::render(header, ev_rx, color))
    };

    // One listener for the whole turn: a signal between two polls is not lost.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut turn = json!({"threadId": thread_id, "input": input});
    if let Some(schema) = output_schema {
        turn["outputSchema"] = schema;
    }
    let started = rt.request("turn/start", turn).await;
    let turn_id = match started {
        Ok(r) => r
            .pointer("/turn/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Err(e) => {
            drop(ev_tx);
            let _ = renderer.await;
            rt.close(SHUTDOWN_DEADLINE).await;
            bail!("the session refused the turn: {e}");
        }
    };
    let mut interrupts = 0u32;
    let mut outcome: Option<(TurnStatus, bool)> = None;
    let mut last_agent_message: Option<String> = None;
    let mut worker_exited = false;
    loop {
        tokio::select! {
            msg = messages.recv() => {
                let Some(msg) = msg else { break };
                if let Incoming::Request { id, method, .. } = &msg.message {
                    // Nobody can answer a prompt in exec mode: approvals are
                    // declined, anything else is refused by name.
                    let conn = rt.connection();
                    let _ = match method.as_str() {
                        "item/commandExecution/requestApproval"
                        | "item/fileChange/requestApproval" => {
                            conn.respond(id, json!({"decision": "decline"}))
                        }
                        other => conn.respond_error(
                            id,
                            &codex_ipc::jsonrpc::RpcError::invalid_request(format!(
                                "codex exec cannot answer `{other}`"
                            )),
                        ),
                    };
                    continue;
                }
                let (Some(method), params) = (msg.method(), msg.params()) else { continue };
                if params.get("threadId").and_then(Value::as_str).is_some_and(|t| t != thread_id) {
                    continue;
                }
                let Some(ev) = turn_view::parse(method, params) else { continue };
                match &ev {
                    TurnEvent::ItemCompleted(turn_view::Item::AgentMessage { text, .. }) => {
                        last_agent_message = Some(text.clone());
                    }
                    TurnEvent::Error { worker_exited: true, .. } => worker_exited = true,
                    _ => {}
                }
                let end = match &ev {
                    TurnEvent::TurnCompleted { turn_id: t, status, .. } if *t == turn_id => {
                        Some(*status)
                    }
                    _ => None,
                };
                let closed = matches!(ev, TurnEvent::ThreadClosed);
                let _ = ev_tx.send(ev).await;
                if let Some(status) = end {
                    outcome = Some((status, worker_exited));
                    break;
                }
                if closed {
                    break;
                }
            },
            Some(()) = sigint.recv() => {
                interrupts += 1;
                if interrupts > 1 {
                    rt.close(std::time::Duration::ZERO).await;
                    std::process::exit(130);
                }
                let _ = rt
                    .request("turn/interrupt", json!({"threadId": thread_id, "turnId": turn_id}))
                    .await;
            }
        }
    }
    drop(ev_tx);
    let _ = renderer.await;
    // Let the worker record everything and exit.
    rt.close(SHUTDOWN_DEADLINE).await;

    let (code, last) = match outcome {
        Some((TurnStatus::Completed, _)) => (0, last_agent_message),
        Some((TurnStatus::Interrupted, false)) => (130, None),
        Some((_, true)) | None => {
            eprintln!("Error: the session worker exited before the turn ended");
            (1, None)
        }
        Some(_) => (1, None),
    };
    if let Some(path) = &opts.output_last_message {
        write_last_message(path, last.as_deref().unwrap_or(""))?;
    }
    Ok(code)
}

/// The thread id of a session file (`rollout-<time>-<uuid>.jsonl`).
fn thread_id_of(file: &Path) -> anyhow::Result<String> {
    let name = file
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let id = name
        .get(name.len().saturating_sub(36)..)
        .unwrap_or_default();
    if uuid::Uuid::parse_str(id).is_err() {
        bail!(
            "{} is not a session file (no thread id in its name)",
            file.display()
        );
    }
    Ok(id.to_string())
}

/// The `-c` overrides and typed overrides the flags ask for.
fn config_inputs(opts: &ExecOptions) -> anyhow::Result<(Vec<CliOverride>, ConfigOverrides)> {
    let mut cli_overrides = opts
        .config
        .iter()
        .map(|c| CliOverride::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut overrides = ConfigOverrides {
        model: opts.model.clone(),
        profile: opts.profile.clone(),
        cwd: opts.cd.clone(),
        additional_writable_roots: opts.add_dir.clone(),
        ignore_user_config: opts.ignore_user_config,
        ..Default::default()
    };
    overrides.sandbox_mode = opts.sandbox.map(SandboxArg::mode);
    if opts.full_auto {
        overrides.sandbox_mode = Some(SandboxMode::WorkspaceWrite);
        overrides.approval_policy = Some(AskForApproval::OnRequest);
    }
    if opts.dangerously_bypass {
        overrides.sandbox_mode = Some(SandboxMode::DangerFullAccess);
        overrides.approval_policy = Some(AskForApproval::Never);
    }
    if opts.oss {
        let provider = opts.local_provider.as_deref().unwrap_or(OLLAMA_PROVIDER_ID);
        if provider != OLLAMA_PROVIDER_ID && provider != LMSTUDIO_PROVIDER_ID {
            bail!("--local-provider must be `ollama` or `lmstudio`, not `{provider}`");
        }
        overrides.model_provider = Some(provider.to_string());
    }
    if opts.local {
        local_inputs(opts, &mut cli_overrides, &mut overrides)?;
    }
    // Nobody can answer an approval prompt in exec mode: unless configured
    // otherwise, never ask.
    overrides.default_approval_policy = Some(AskForApproval::Never);
    Ok((cli_overrides, overrides))
}

/// `--local`: the `local` provider; `-m PATH.gguf` is the model file (as
/// the `local_model_path` override, so the worker sees it too) and its
/// name the model's. Fails fast when this build cannot run it.
fn local_inputs(
    opts: &ExecOptions,
    cli_overrides: &mut Vec<CliOverride>,
    overrides: &mut ConfigOverrides,
) -> anyhow::Result<()> {
    if !codex_core::client::local::AVAILABLE {
        bail!("{}", codex_core::client::local::UNAVAILABLE);
    }
    overrides.model_provider = Some(LOCAL_PROVIDER_ID.to_string());
    let Some(model) = &opts.model else {
        return Ok(());
    };
    let path = Path::new(model);
    if !(model.ends_with(".gguf") || path.is_file()) {
        return Ok(());
    }
    let path = std::path::absolute(path)
        .with_context(|| format!("cannot resolve the model path {model}"))?;
    let value = serde_json::Value::from(path.display().to_string());
    cli_overrides.push(CliOverride::from_json("local_model_path", &value)?);
    overrides.model = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    Ok(())
}

/// Loads (and so validates) the configuration here, before any worker
/// starts, so a bad config fails fast with the file and key.
fn load_config(opts: &ExecOptions) -> anyhow::Result<Config> {
    let (cli_overrides, overrides) = config_inputs(opts)?;
    Ok(Config::load(LoadOptions {
        codex_home: None,
        cli_overrides,
        overrides,
    })?)
}

fn inside_git_repo(cwd: &Path) -> bool {
    cwd.ancestors().any(|d| d.join(".git").exists())
}

fn read_prompt(arg: Option<String>) -> anyhow::Result<String> {
    match arg.as_deref() {
        Some(p) if p != "-" => Ok(p.to_string()),
        _ => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("no prompt provided: pass one as an argument or pipe it into stdin");
            }
            eprintln!("Reading prompt from stdin...");
            let mut buf = String::new();
            stdin
                .by_ref()
                .take(MAX_STDIN_PROMPT)
                .read_to_string(&mut buf)
                .context("cannot read the prompt from stdin")?;
            let prompt = buf.trim().to_string();
            if prompt.is_empty() {
                bail!("no prompt provided: stdin was empty");
            }
            Ok(prompt)
        }
    }
}

fn write_last_message(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

async fn render_json(thread_id: String, mut events: tokio::sync::mpsc::Receiver<TurnEvent>) {
    let mut mapper = ExecEventMapper::default();
    let mut out = std::io::stdout();
    emit_json(&mut out, &mapper.thread_started(&thread_id));
    while let Some(ev) = events.recv().await {
        for e in mapper.map(&ev) {
            emit_json(&mut out, &e);
        }
    }
}

fn emit_json(out: &mut impl Write, ev: &codex_ipc::exec_events::ExecEvent) {
    if let Ok(line) = serde_json::to_string(ev) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
