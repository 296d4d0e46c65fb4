//! `codex memory status|list|search|add|forget|reset`: the memory service,
//! through a running codexd's `codex-memory` (`codexd/memory`) when one
//! answers on the socket, else in-process on the same service.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use codex_core::memory::{
    LocalMemory, LocalMemoryOptions, MemoryEntry, MemoryLayout, MemoryRequest, MemoryResponse,
};
use codex_ipc::app_server::client::{Client, ClientError};
use codex_ipc::app_server::methods::ClientInfo;

/// How long one command may take.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long the in-process service may take to close its database.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How long connecting to a daemon may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Args, Debug)]
pub struct MemoryArgs {
    #[command(subcommand)]
    command: MemoryCommand,
    /// Print the answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// The daemon's socket (default: `$CODEX_HOME/app-server-control/app-server-control.sock`).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum MemoryCommand {
    /// How many memories there are, where, and any problem with the index.
    Status,
    /// The most recently updated memories.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The memories most relevant to QUERY (as a turn recalls them).
    Search {
        query: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Remember TEXT (an ad-hoc note under `memories/extensions/ad_hoc/notes/`).
    Add { text: String },
    /// Forget memory ID (its note is deleted, or its section cut from its file).
    Forget { id: i64 },
    /// Forget every memory: deletes everything under `$CODEX_HOME/memories/`
    /// and empties the index.
    Reset,
}

pub fn main(args: MemoryArgs) -> i32 {
    let Some(rt) = crate::rt::current_thread() else {
        return 1;
    };
    let request = match &args.command {
        MemoryCommand::Status => MemoryRequest::Status,
        MemoryCommand::List { limit } => MemoryRequest::List { limit: *limit },
        MemoryCommand::Search { query, limit } => MemoryRequest::Search {
            query: query.clone(),
            limit: *limit,
        },
        MemoryCommand::Add { text } => MemoryRequest::Remember {
            text: text.clone(),
            source_thread_id: None,
        },
        MemoryCommand::Forget { id } => MemoryRequest::Forget { id: *id },
        MemoryCommand::Reset => MemoryRequest::Reset,
    };
    let name = request.name();
    match rt.block_on(ask(args.socket.clone(), request)) {
        Ok((response, via)) => render(&args.command, &response, &via, args.json),
        Err(e) => {
            eprintln!("codex memory {name}: {e:#}");
            1
        }
    }
}

/// Who answered.
enum Via {
    Daemon(PathBuf),
    InProcess,
}

async fn ask(
    socket: Option<PathBuf>,
    request: MemoryRequest,
) -> anyhow::Result<(MemoryResponse, Via)> {
    let codex_home = codex_core::config::find_codex_home().context("finding CODEX_HOME")?;
    let socket =
        socket.unwrap_or_else(|| codex_daemon::transport::default_socket_path(&codex_home));
    let info = ClientInfo {
        name: "codex_memory".into(),
        title: None,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    match Client::connect_unix(&socket, info, CONNECT_DEADLINE).await {
        Ok(mut client) => {
            let r: MemoryResponse = client
                .request(codex_daemon::server::MEMORY_METHOD, &request, DEADLINE)
                .await
                .with_context(|| format!("codexd on {}", socket.display()))?;
            Ok((r, Via::Daemon(socket)))
        }
        Err(ClientError::Connect { .. }) => {
            let mut options = LocalMemoryOptions::new(MemoryLayout::new(&codex_home));
            if let Some(model) = embedding_model(&codex_home) {
                // The same vectors codex-memory would use; a model that
                // cannot load leaves recall on BM25, said once.
                match codex_core::memory::LaneEmbedder::load(&model) {
                    Ok(e) => {
                        options.embedder = Some(Box::new(move || {
                            Some(Box::new(e) as Box<dyn codex_core::memory::Embedder>)
                        }))
                    }
                    Err(e) => eprintln!("warning: `memories.embedding_model`: {e}; using BM25"),
                }
            }
            let memory = LocalMemory::start(options).context("starting the memory service")?;
            let r = memory.call_with_deadline(request, DEADLINE).await;
            // Closed before exiting, so the database is left checkpointed.
            memory.close(CLOSE_WAIT);
            Ok((r.map_err(anyhow::Error::new)?, Via::InProcess))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("codexd on {}", socket.display()))),
    }
}

/// `[memories] embedding_model` (relative to `$CODEX_HOME`), if the config
/// names one. Working without a daemon, this command is the config's
/// reader, so its warnings (and a config it cannot read) are printed.
fn embedding_model(codex_home: &std::path::Path) -> Option<PathBuf> {
    let loaded = codex_core::config::Config::load(codex_core::config::LoadOptions {
        codex_home: Some(codex_home.to_path_buf()),
        ..Default::default()
    });
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warning: {e}; memory settings from it are not used");
            return None;
        }
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    config.memories.embedding_model.map(|p| codex_home.join(p))
}

fn render(cmd: &MemoryCommand, r: &MemoryResponse, via: &Via, json: bool) -> i32 {
    if json {
        let value = match r {
            MemoryResponse::Hits { hits } => serde_json::json!({ "memories": hits }),
            MemoryResponse::Memories { memories } => serde_json::json!({ "memories": memories }),
            other => serde_json::to_value(other).unwrap_or_default(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return match r {
            MemoryResponse::Forgot { found: false } => 1,
            _ => 0,
        };
    }
    match r {
        MemoryResponse::Status { status } => {
            println!("memories: {} ({} scored)", status.count, status.scored);
            println!("files:    {}", status.memories_dir.display());
            println!("index:    {}", status.db_path.display());
            println!(
                "recall:   {}",
                if status.embedder {
                    format!("BM25 + vectors ({} embedded)", status.vectors)
                } else {
                    "BM25".to_string()
                }
            );
            println!(
                "served:   {}",
                match via {
                    Via::Daemon(s) => format!("codex-memory of codexd ({})", s.display()),
                    Via::InProcess => "in-process (no codexd answering)".to_string(),
                }
            );
            for w in &status.warnings {
                println!("warning:  {w}");
            }
        }
        MemoryResponse::Hits { hits } => {
            print_entries(hits, matches!(cmd, MemoryCommand::Search { .. }))
        }
        MemoryResponse::Memories { memories } => print_entries(memories, false),
        MemoryResponse::Remembered { id } => println!("remembered as #{id}"),
        MemoryResponse::Forgot { found: true } => {
            if let MemoryCommand::Forget { id } = cmd {
                println!("forgot #{id}");
            }
        }
        MemoryResponse::Forgot { found: false } => {
            if let MemoryCommand::Forget { id } = cmd {
                eprintln!("codex memory forget: no memory #{id}");
            }
            return 1;
        }
        MemoryResponse::Reset { removed, rows } => {
            if removed.is_empty() {
                println!("removed no files under memories/");
            } else {
                println!("removed from memories/: {}", removed.join(", "));
            }
            println!("emptied the index ({rows} rows)");
        }
        other => println!("{other:?}"),
    }
    0
}

fn print_entries(entries: &[MemoryEntry], relevance: bool) {
    if entries.is_empty() {
        println!("no memories");
        return;
    }
    for e in entries {
        let first = e.text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let mut line: String = first.chars().take(100).collect();
        if line.len() < first.len() || e.text.lines().count() > 1 {
            line.push('…');
        }
        let rel = match (relevance, e.relevance) {
            // BM25 is near zero in a small collection: the order says it.
            (true, Some(r)) if r >= 0.0005 => format!("  ({r:.3})"),
            _ => String::new(),
        };
        println!(
            "#{:<6} {}{rel}\n        {}",
            e.id,
            line,
            e.source_path.as_deref().unwrap_or("-")
        );
    }
}
