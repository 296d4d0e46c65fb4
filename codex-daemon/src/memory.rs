//! `codex-memory`: the process that owns the memory index (the only writer
//! of the database among the daemon's processes) and serves the memory
//! service to codexd and, through it, to the workers. Started by codexd
//! through the launcher and restarted with backoff
//! ([`codex_ipc::memory_link`]).
//!
//! It answers `Ready` at once (the index opens on the service's own
//! thread, so a locked or corrupt database never delays startup) and
//! reports the index's status after opening and after every change.
//! `Generate` requests go to the local generation models
//! ([`crate::memory_lanes`], loaded on first use), never to the store
//! thread, with the caller's deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_core::memory::service::DEFAULT_DEADLINE;
use codex_core::memory::{
    LaneEmbedder, LocalMemory, LocalMemoryOptions, MemoryLayout, MemoryRequest, MemoryResponse,
    MemoryStatus,
};
use codex_ipc::launcher::Role;
use codex_ipc::memory_link::{FromMemory, MemoryEvent, MemoryReady, ToMemory};
use codex_ipc::supervised::{FromService, ToService};
use tokio::sync::mpsc;

use crate::memory_lanes::GenerationLanes;

const INIT_DEADLINE: Duration = Duration::from_secs(30);
/// A `Generate` without a deadline from the supervisor, and the longest
/// one honoured (a phase-1 extraction on a slow machine takes minutes).
const GENERATE_DEADLINE: Duration = Duration::from_secs(300);

type Warnings = Arc<Mutex<Vec<String>>>;

/// Entry point of the `codex-memory` role. Returns the exit code.
pub fn main() -> i32 {
    crate::broker::service_main(Role::Memory, run)
}

async fn run(link: std::os::unix::net::UnixStream) -> i32 {
    let (out_tx, mut in_rx, writer) =
        match codex_ipc::link::serve_link::<ToMemory, FromMemory>(link, 1024, "codex-memory") {
            Ok(l) => l,
            Err(e) => {
                eprintln!("codex-memory: bad link: {e}");
                return 2;
            }
        };
    let init = match tokio::time::timeout(INIT_DEADLINE, in_rx.recv()).await {
        Ok(Some(ToService::Init(i))) => i,
        _ => {
            eprintln!("codex-memory: no Init from the supervisor");
            return 2;
        }
    };
    let layout = MemoryLayout::new(&init.codex_home);
    // This process's warnings (a generation model's can come later, when
    // it fails to load).
    let warnings: Warnings = Arc::default();
    let mut options = LocalMemoryOptions::new(layout.clone());
    // The one embedding model of this daemon, loaded before `Ready` so a bad
    // file is a warning in codexd/status; recall falls back to BM25.
    if let Some(model) = &init.embedding_model {
        match LaneEmbedder::load(model) {
            Ok(embedder) => {
                tracing::info!(
                    "codex-memory: embeddings from {} ({} dims)",
                    model.display(),
                    embedder.dims()
                );
                options.embedder = Some(Box::new(move || {
                    Some(Box::new(embedder) as Box<dyn codex_core::memory::Embedder>)
                }));
            }
            Err(e) => {
                if let Ok(mut w) = warnings.lock() {
                    w.push(format!(
                        "`memories.embedding_model` ({}) cannot be used, so recall uses BM25 only: {e}",
                        model.display()
                    ));
                }
            }
        }
    }
    let lanes = Arc::new(GenerationLanes::new(
        init.extract_model.clone(),
        init.shape_model.clone(),
        warnings.clone(),
    ));
    let memory = match LocalMemory::start(options) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("codex-memory: cannot start the store thread: {e}");
            return 1;
        }
    };
    let skeleton = MemoryStatus {
        db_path: layout.index_db(),
        memories_dir: layout.root(),
        warnings: snapshot(&warnings),
        ..MemoryStatus::default()
    };
    let _ = out_tx
        .send(FromService::Ready(MemoryReady { status: skeleton }))
        .await;
    tokio::spawn(report_status(
        memory.clone(),
        out_tx.clone(),
        warnings.clone(),
    ));
    while let Some(msg) = in_rx.recv().await {
        match msg {
            ToService::Request {
                id,
                request: MemoryRequest::Generate { request },
                deadline_ms,
            } => {
                let lanes = lanes.clone();
                let out = out_tx.clone();
                let memory = memory.clone();
                let warnings = warnings.clone();
                let deadline = deadline_ms
                    .map(Duration::from_millis)
                    .unwrap_or(GENERATE_DEADLINE)
                    .min(GENERATE_DEADLINE);
                tokio::spawn(async move {
                    let before = snapshot(&warnings).len();
                    let result = lanes
                        .generate(request, deadline)
                        .await
                        .map(|generated| MemoryResponse::Generated { generated });
                    let _ = out.send(FromService::Reply { id, result }).await;
                    if snapshot(&warnings).len() != before {
                        // A model failed to load: say so in the status.
                        report_status(memory, out, warnings).await;
                    }
                });
            }
            ToService::Request { id, request, .. } => {
                let changes = matches!(
                    request,
                    MemoryRequest::Remember { .. }
                        | MemoryRequest::Forget { .. }
                        | MemoryRequest::Reset
                );
                let memory = memory.clone();
                let out = out_tx.clone();
                let warnings = warnings.clone();
                // Each request waits on its own: the service sheds when its
                // queue is full, so nothing piles up here.
                tokio::spawn(async move {
                    let result = memory.call_with_deadline(request, DEFAULT_DEADLINE).await;
                    let ok = result.is_ok();
                    let _ = out.send(FromService::Reply { id, result }).await;
                    if changes && ok {
                        report_status(memory, out, warnings).await;
                    }
                });
            }
            ToService::Init(_) => tracing::warn!("codex-memory: ignoring a second Init"),
        }
    }
    // The supervisor is gone.
    drop(out_tx);
    writer.close(Duration::from_secs(2)).await;
    0
}

fn snapshot(warnings: &Warnings) -> Vec<String> {
    warnings.lock().map(|w| w.clone()).unwrap_or_default()
}

/// Sends the index's status as an event (with this process's warnings).
async fn report_status(memory: LocalMemory, out: mpsc::Sender<FromMemory>, warnings: Warnings) {
    match memory
        .call_with_deadline(MemoryRequest::Status, DEFAULT_DEADLINE)
        .await
    {
        Ok(MemoryResponse::Status { mut status }) => {
            status.warnings.splice(0..0, snapshot(&warnings));
            let _ = out
                .send(FromService::Event {
                    event: MemoryEvent::Status { status },
                })
                .await;
        }
        Ok(other) => tracing::warn!("codex-memory: unexpected status answer {other:?}"),
        Err(e) => tracing::warn!("codex-memory: no status: {e}"),
    }
}
