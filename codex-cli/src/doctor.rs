//! `codex doctor [--json]`: the checks of `codex_daemon::lifecycle::doctor`
//! as a checklist (or one JSON object); exit 1 when a check fails.

use std::path::PathBuf;

use clap::Args;
use codex_daemon::lifecycle::doctor::{self, DoctorOptions, Report, Status};

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print one JSON object instead of the checklist.
    #[arg(long)]
    json: bool,
    /// Do not contact the model provider.
    #[arg(long)]
    offline: bool,
    /// The daemon's socket (default: upstream's control socket).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

pub fn main(args: DoctorArgs) -> i32 {
    crate::logging::init("error");
    let codex_home = match codex_core::config::find_codex_home() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("codex doctor: {e}");
            return 1;
        }
    };
    let Some(rt) = crate::rt::current_thread() else {
        return 1;
    };
    let report = rt.block_on(doctor::run(&DoctorOptions {
        codex_home,
        codex_exe: std::env::current_exe().ok(),
        socket: args.socket,
        check_provider: !args.offline,
    }));
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("codex doctor: {e}");
                return 1;
            }
        }
    } else {
        print!("{}", render(&report));
    }
    i32::from(report.status == Status::Fail)
}

fn render(r: &Report) -> String {
    let mut out = format!(
        "codex {} · CODEX_HOME {}\n",
        r.version,
        r.codex_home.display()
    );
    for c in &r.checks {
        let mark = match c.status {
            Status::Ok => "[ok]  ",
            Status::Warn => "[warn]",
            Status::Fail => "[FAIL]",
        };
        out.push_str(&format!("{mark} {:<18} {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("       {:<18} → {fix}\n", ""));
        }
    }
    out.push_str(match r.status {
        Status::Ok => "All checks passed.\n",
        Status::Warn => "No failures; see the warnings above.\n",
        Status::Fail => "Some checks failed; see above for what to do.\n",
    });
    out
}
