//! `codex sandbox [-s MODE | --full-auto] -- CMD...`: runs any command under
//! a sandbox policy, exactly as the agent's commands run, so users can see
//! what the agent sees.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use codex_core::config::{CliOverride, Config, ConfigOverrides, LoadOptions, SandboxMode};
use codex_core::exec::{self, CommandSpec, SandboxError};

use crate::exec::SandboxArg;

#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// The policy (default: `sandbox_mode` from config, else read-only).
    #[arg(short = 's', long = "sandbox", value_enum)]
    sandbox: Option<SandboxArg>,
    /// Shorthand for `-s workspace-write`.
    #[arg(long, conflicts_with = "sandbox")]
    full_auto: bool,
    /// Run in (and treat as the workspace) this directory.
    #[arg(short = 'C', long = "cd")]
    cd: Option<PathBuf>,
    /// Override a config value: `-c key=value`.
    #[arg(short = 'c', long = "config", value_name = "key=value")]
    config: Vec<String>,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn main(args: SandboxArgs) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("codex sandbox: {e:#}");
            1
        }
    }
}

fn run(args: SandboxArgs) -> anyhow::Result<i32> {
    let cli_overrides = args
        .config
        .iter()
        .map(|c| CliOverride::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sandbox_mode = args.sandbox.map(SandboxArg::mode);
    if args.full_auto {
        sandbox_mode = Some(SandboxMode::WorkspaceWrite);
    }
    let config = Config::load(LoadOptions {
        codex_home: None,
        cli_overrides,
        overrides: ConfigOverrides {
            sandbox_mode,
            cwd: args.cd.clone(),
            ..Default::default()
        },
    })?;
    for w in &config.warnings {
        eprintln!("codex sandbox: warning: {w}");
    }
    let sandbox = exec::platform_sandbox(exec::Protection::for_config(&config));
    let policy = &config.sandbox_policy;
    let spec = CommandSpec {
        program: args.command[0].clone(),
        arg0: None,
        args: args.command[1..].to_vec(),
        cwd: config.cwd.clone(),
        env: exec::env::command_env(&config.shell_environment_policy, std::env::vars()),
    };
    let spec = match sandbox.wrap(spec, policy) {
        Ok(s) => s,
        Err(SandboxError::Unenforceable { policy, reason }) => {
            bail!("refusing to run: the {policy} sandbox cannot be enforced here: {reason}")
        }
        Err(e) => return Err(e.into()),
    };
    let mut cmd = std::process::Command::new(&spec.program);
    if let Some(arg0) = &spec.arg0 {
        use std::os::unix::process::CommandExt as _;
        cmd.arg0(arg0);
    }
    let status = cmd
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env)
        .status()
        .with_context(|| format!("cannot run {}", args.command[0]))?;
    use std::os::unix::process::ExitStatusExt as _;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}
