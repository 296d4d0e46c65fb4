//! The `codex` command. A thin binary: it parses flags and wires library
//! pieces together; behaviour lives in `codex-core` and `codex-ipc`.

mod exec;
mod logging;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "codex",
    version,
    about = "Codex: a coding agent that runs as a supervised local service",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run Codex non-interactively: one turn from a prompt, then exit.
    #[command(visible_alias = "e")]
    Exec(exec::ExecArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Some(Command::Exec(args)) => exec::main(args),
        None => {
            eprintln!("codex: no command given. Try `codex exec \"<prompt>\"` or `codex --help`.");
            2
        }
    };
    std::process::exit(code);
}
