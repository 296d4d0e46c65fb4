//! The tokio runtimes the subcommands run on, built in one place: a
//! runtime that cannot be built is reported once, the same way everywhere.

/// A single-threaded runtime for short client commands, or `None` after
/// saying why it could not be built.
pub fn current_thread() -> Option<tokio::runtime::Runtime> {
    report(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    )
}

/// A multi-threaded runtime (commands that host a supervisor).
pub fn multi_thread() -> Option<tokio::runtime::Runtime> {
    report(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    )
}

fn report(built: std::io::Result<tokio::runtime::Runtime>) -> Option<tokio::runtime::Runtime> {
    built
        .map_err(|e| eprintln!("codex: cannot start runtime: {e}"))
        .ok()
}
