//! `codex exec`: one turn, non-interactively, rendered for humans or as
//! upstream's JSONL event stream.

mod human;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use codex_core::config::{
    AskForApproval, CliOverride, Config, ConfigOverrides, LoadOptions, SandboxMode,
    LMSTUDIO_PROVIDER_ID, OLLAMA_PROVIDER_ID,
};
use codex_core::protocol::{Event, UserInput};
use codex_core::rollout::{find_thread_file, latest_thread_file};
use codex_core::CancellationToken;
use codex_core::{Thread, ThreadOptions, TurnRequest, TurnStatus};
use codex_ipc::exec_events::ExecEventMapper;

/// Env var the TypeScript SDK sets to name itself as the originator.
const ORIGINATOR_ENV: &str = "CODEX_INTERNAL_ORIGINATOR_OVERRIDE";
/// Largest prompt read from stdin.
const MAX_STDIN_PROMPT: u64 = 16 * 1024 * 1024;

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
enum SandboxArg {
    ReadOnly,
    WorkspaceWrite,
    DangerFullAccess,
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
    // Orphans of tool commands re-parent to us so they can be reaped.
    if let Err(e) = codex_core::process::become_subreaper() {
        tracing::warn!("cannot become child subreaper: {e}");
    }
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
    let mut thread_opts = ThreadOptions::new(originator, "exec");
    thread_opts.ephemeral = opts.ephemeral;

    let (thread, events) = match resume {
        Some(r) => {
            let sessions = config.sessions_dir();
            let path = if r.last {
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
            let (thread, rx, loaded) = Thread::resume(config, &path, thread_opts)?;
            if loaded.skipped_lines > 0 {
                tracing::warn!(
                    "{}: skipped {} unreadable line(s) (a torn write?)",
                    path.display(),
                    loaded.skipped_lines
                );
            }
            (thread, rx)
        }
        None => Thread::start(config, thread_opts)?,
    };

    let color = match opts.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let renderer = if json {
        tokio::spawn(render_json(thread.id().to_string(), events))
    } else {
        let header = human::Header::from_thread(&thread);
        tokio::spawn(human::render(header, events, color))
    };

    let cancel = CancellationToken::new();
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };
    let outcome = thread
        .run_turn(TurnRequest {
            input,
            output_schema,
            cancel,
            ..Default::default()
        })
        .await;
    ctrl_c.abort();
    drop(thread);
    let _ = renderer.await;

    if let Some(path) = &opts.output_last_message {
        write_last_message(path, outcome.last_agent_message.as_deref().unwrap_or(""))?;
    }
    Ok(match outcome.status {
        TurnStatus::Completed => 0,
        TurnStatus::Failed(_) => 1,
        TurnStatus::Aborted(_) => 130,
    })
}

fn load_config(opts: &ExecOptions) -> anyhow::Result<Config> {
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
    overrides.sandbox_mode = opts.sandbox.map(|s| match s {
        SandboxArg::ReadOnly => SandboxMode::ReadOnly,
        SandboxArg::WorkspaceWrite => SandboxMode::WorkspaceWrite,
        SandboxArg::DangerFullAccess => SandboxMode::DangerFullAccess,
    });
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
