//! `codex exec`: one turn, non-interactively, rendered for humans or as
//! upstream's JSONL event stream.

mod human;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use codex_core::approval::ReviewDecision;
use codex_core::config::{
    AskForApproval, CliOverride, Config, ConfigOverrides, LoadOptions, SandboxMode,
    LMSTUDIO_PROVIDER_ID, OLLAMA_PROVIDER_ID,
};
use codex_core::protocol::{Event, UserInput};
use codex_core::rollout::{find_thread_file, latest_thread_file};
use codex_ipc::exec_events::ExecEventMapper;
use codex_ipc::launcher::{LaunchSpec, Launcher, Role};
use codex_ipc::link::{ThreadInit, WorkerMessage, WorkerThread};

/// Env var the TypeScript SDK sets to name itself as the originator.
const ORIGINATOR_ENV: &str = "CODEX_INTERNAL_ORIGINATOR_OVERRIDE";
/// Largest prompt read from stdin.
const MAX_STDIN_PROMPT: u64 = 16 * 1024 * 1024;
/// How long a new session worker may take to become ready.
const WORKER_START_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a session worker may take to exit after the turn.
const WORKER_EXIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

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
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codex: cannot start runtime: {e}");
            return 1;
        }
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

    let config = load_config(&opts)?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if !opts.skip_git_repo_check && !inside_git_repo(&config.cwd) {
        bail!(
            "Not inside a trusted directory and --skip-git-repo-check was not specified ({}).",
            config.cwd.display()
        );
    }

    let prompt = read_prompt(prompt_arg)?;
    let output_schema = match &opts.output_schema {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read output schema {}", path.display()))?;
            Some(
                serde_json::from_str::<serde_json::Value>(&text).with_context(|| {
                    format!("output schema {} is not valid JSON", path.display())
                })?,
            )
        }
        None => None,
    };
    let mut input = vec![UserInput::Text { text: prompt }];
    for img in &opts.images {
        if !img.is_file() {
            bail!("image {} does not exist", img.display());
        }
        input.push(UserInput::LocalImage { path: img.clone() });
    }

    let originator = std::env::var(ORIGINATOR_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "codex_exec".to_string());
    let resume_path = match resume {
        Some(r) => {
            let sessions = config.sessions_dir();
            Some(if r.last {
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
            })
        }
        None => None,
    };
    let (cli_overrides, overrides) = config_inputs(&opts)?;
    let init = ThreadInit {
        codex_home: config.codex_home.clone(),
        cwd: Some(config.cwd.clone()),
        config_overrides: cli_overrides
            .iter()
            .map(|o| {
                Ok((
                    o.path.join("."),
                    serde_json::to_value(&o.value).context("config override")?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        model: overrides.model.clone(),
        model_provider: overrides.model_provider.clone(),
        approval_policy: overrides.approval_policy,
        default_approval_policy: overrides.default_approval_policy,
        sandbox_mode: overrides.sandbox_mode,
        base_instructions: None,
        developer_instructions: None,
        originator,
        source: "exec".into(),
        ephemeral: opts.ephemeral,
        thread_id: None,
        resume_path,
        additional_writable_roots: overrides
            .additional_writable_roots
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
            .collect(),
        // exec waits on its one worker directly; no watchdog.
        heartbeat_ms: None,
        // Without a daemon the worker refreshes in-process (under the same
        // cross-process lock as any broker).
        use_broker: false,
        protected_paths: Vec::new(),
    };

    // The thread runs in a `codex-session` worker, as under the daemon.
    let launcher = Launcher::new(tokio::runtime::Handle::current())?;
    let spec = LaunchSpec::current_exe(Role::Session)?;
    let (worker, mut messages) =
        WorkerThread::launch(&launcher, spec, init, WORKER_START_DEADLINE).await?;

    let color = match opts.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let (ev_tx, ev_rx) = tokio::sync::mpsc::channel::<Event>(1024);
    let renderer = if json {
        tokio::spawn(render_json(worker.ready.thread_id.clone(), ev_rx))
    } else {
        let header = human::Header::from_ready(&worker.ready);
        tokio::spawn(human::render(header, ev_rx, color))
    };

    // One listener for the whole turn: a signal between two polls is not lost.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let turn_id = uuid::Uuid::now_v7().to_string();
    worker
        .start_turn(turn_id.clone(), input, output_schema, Default::default())
        .await?;
    let mut interrupts = 0u32;
    let mut outcome: Option<Event> = None;
    loop {
        tokio::select! {
            msg = messages.recv() => match msg {
                Some(WorkerMessage::Event(ev)) => {
                    let terminal = ev.is_terminal();
                    if terminal {
                        outcome = Some(ev.clone());
                    }
                    let _ = ev_tx.send(ev).await;
                    if terminal {
                        break;
                    }
                }
                // `exec` cannot ask anyone.
                Some(WorkerMessage::Approval { approval_id, .. }) => {
                    let _ = worker.decide(approval_id, ReviewDecision::Denied).await;
                }
                Some(WorkerMessage::TurnAccepted { .. } | WorkerMessage::ApprovalCancelled { .. }) => {}
                // The worker was told to refresh in-process; never asks.
                Some(WorkerMessage::Broker { id, .. }) => {
                    let _ = worker
                        .send(codex_ipc::link::ToWorker::BrokerReply {
                            id,
                            result: Err(codex_core::auth::AuthError::Unavailable(
                                "no broker in `codex exec`".into(),
                            )),
                        })
                        .await;
                }
                Some(WorkerMessage::TurnRejected { message, .. }) => {
                    drop(ev_tx);
                    let _ = renderer.await;
                    bail!("the session refused the turn: {message}");
                }
                Some(WorkerMessage::Exited { .. }) | None => break,
            },
            Some(()) = sigint.recv() => {
                interrupts += 1;
                if interrupts > 1 {
                    worker.kill();
                    std::process::exit(130);
                }
                let _ = worker.interrupt(Some(turn_id.clone())).await;
            }
        }
    }
    // Let the worker record everything and exit; then make sure it did.
    worker.shutdown().await;
    let exited = tokio::time::timeout(WORKER_EXIT_DEADLINE, async {
        while let Some(m) = messages.recv().await {
            if matches!(m, WorkerMessage::Exited { .. }) {
                break;
            }
        }
    })
    .await;
    if exited.is_err() {
        worker.kill();
    }
    drop(ev_tx);
    let _ = renderer.await;

    let (code, last) = match &outcome {
        Some(Event::TurnCompleted {
            last_agent_message, ..
        }) => (0, last_agent_message.clone()),
        Some(Event::TurnFailed { .. }) => (1, None),
        Some(Event::TurnAborted { .. }) => (130, None),
        _ => {
            eprintln!("Error: the session worker exited before the turn ended");
            (1, None)
        }
    };
    if let Some(path) = &opts.output_last_message {
        write_last_message(path, last.as_deref().unwrap_or(""))?;
    }
    Ok(code)
}

/// The `-c` overrides and typed overrides the flags ask for.
fn config_inputs(opts: &ExecOptions) -> anyhow::Result<(Vec<CliOverride>, ConfigOverrides)> {
    let cli_overrides = opts
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
    // Nobody can answer an approval prompt in exec mode: unless configured
    // otherwise, never ask.
    overrides.default_approval_policy = Some(AskForApproval::Never);
    Ok((cli_overrides, overrides))
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

async fn render_json(thread_id: String, mut events: tokio::sync::mpsc::Receiver<Event>) {
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
