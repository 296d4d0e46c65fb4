//! Logs go to stderr (stdout carries answers and JSON), filtered by
//! `RUST_LOG` (default: warnings and errors).

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

pub fn init(default: &str) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_string());
    let filter: Targets = spec
        .parse()
        .unwrap_or_else(|_| default.parse().unwrap_or_default());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .with_target(false),
        )
        .with(filter)
        .try_init();
}
