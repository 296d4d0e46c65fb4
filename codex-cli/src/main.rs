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
    // One binary, several roles: a worker is this binary started under its
    // role's name by the launcher.
    let argv0 = std::env::args().next().unwrap_or_default();
    if let Some(role) = codex_ipc::launcher::Role::from_argv0(&argv0) {
        logging::init("warn");
        let code = match role {
            codex_ipc::launcher::Role::Session => codex_daemon::worker::main(),
            other => {
                eprintln!("{}: this role is not implemented yet", other.process_name());
                2
            }
        };
        std::process::exit(code);
    }
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
