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
//!
//! With `[memories] score_model`, a background scorer ([`score_in_background`])
//! rates unscored memories on that model, a few at a time and only while
//! the lane has nothing else to do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_core::memory::service::DEFAULT_DEADLINE;
use codex_core::memory::{
    scoring, GeneratePurpose, LaneEmbedder, LocalMemory, LocalMemoryOptions, MemoryLayout,
    MemoryRequest, MemoryResponse, MemoryServiceError, MemoryStatus,
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

/// The background scorer's pace: one look per tick, at most a batch of
/// memories each, one at a time, each with a deadline.
const SCORE_TICK: Duration = Duration::from_secs(10);
const SCORE_BATCH: usize = 8;
const SCORE_DEADLINE: Duration = Duration::from_secs(60);
/// Failed scorings of one memory before it is left unscored (until
/// codex-memory restarts).
const SCORE_TRIES: u8 = 3;
/// Memories whose failures are remembered at most (past it the count
/// starts over: a retry too many, never unbounded memory).
const SCORE_TRACKED: usize = 1024;

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
        init.score_model.clone(),
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
    // A model known unusable at start is a warning in status already.
    if lanes.usable(GeneratePurpose::Score) {
        tokio::spawn(score_in_background(
            memory.clone(),
            lanes.clone(),
            out_tx.clone(),
            warnings.clone(),
        ));
    }
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

/// Scores unscored memories on the `score_model` lane, off the turn loop:
/// every [`SCORE_TICK`] at most [`SCORE_BATCH`], standing aside while the
/// lane has other work. A failure is logged at debug and retried on a
/// later tick, at most [`SCORE_TRIES`] times. Ends when the model cannot
/// be loaded (that is a status warning).
///
/// Scores live only in the index: a memory reindexed from its file (the
/// file changed, or the index was rebuilt from the files) is unscored
/// again and scored anew here.
async fn score_in_background(
    memory: LocalMemory,
    lanes: Arc<GenerationLanes>,
    out: mpsc::Sender<FromMemory>,
    warnings: Warnings,
) {
    let mut failures: HashMap<i64, u8> = HashMap::new();
    let mut tick = tokio::time::interval(SCORE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match score_batch(&memory, &lanes, &mut failures).await {
            Ok(0) => {}
            Ok(_) => report_status(memory.clone(), out.clone(), warnings.clone()).await,
            Err(why) => {
                tracing::debug!("codex-memory: scoring stops: {why}");
                // The load failure's warning, if it is new.
                report_status(memory, out, warnings).await;
                return;
            }
        }
    }
}

/// One tick's batch: how many memories got a score, or why scoring cannot
/// go on at all.
async fn score_batch(
    memory: &LocalMemory,
    lanes: &GenerationLanes,
    failures: &mut HashMap<i64, u8>,
) -> Result<usize, String> {
    if lanes.busy(GeneratePurpose::Score) {
        return Ok(0);
    }
    let given_up = failures.values().filter(|n| **n >= SCORE_TRIES).count();
    let todo = match memory
        .call_with_deadline(
            MemoryRequest::Unscored {
                limit: SCORE_BATCH + given_up,
            },
            DEFAULT_DEADLINE,
        )
        .await
    {
        Ok(MemoryResponse::Memories { memories }) => memories,
        Ok(other) => return Err(format!("unexpected answer to unscored: {other:?}")),
        Err(e) => {
            tracing::debug!("codex-memory: no memories to score now: {e}");
            return Ok(0);
        }
    };
    let mut scored = 0;
    let todo = todo
        .into_iter()
        .filter(|m| failures.get(&m.id).is_none_or(|n| *n < SCORE_TRIES))
        .take(SCORE_BATCH)
        .collect::<Vec<_>>();
    for m in todo {
        if lanes.busy(GeneratePurpose::Score) {
            break;
        }
        let answer = match lanes
            .generate(scoring::request(&m.text), SCORE_DEADLINE)
            .await
        {
            // Dense text or a small context: once more, much shorter.
            Err(e) if scoring::is_context_overflow(&e) => {
                let shorter = scoring::request_within(&m.text, scoring::MAX_NOTE_CHARS / 16);
                lanes.generate(shorter, SCORE_DEADLINE).await
            }
            other => other,
        };
        let failure = match answer {
            Ok(g) => match scoring::parse(&g.text) {
                Some(score) => match memory
                    .call_with_deadline(MemoryRequest::Score { id: m.id, score }, DEFAULT_DEADLINE)
                    .await
                {
                    Ok(_) => {
                        failures.remove(&m.id);
                        scored += 1;
                        continue;
                    }
                    Err(e) => format!("cannot store its score: {e}"),
                },
                None => format!("the model answered {:?}", g.text),
            },
            Err(MemoryServiceError::NoModel(why)) => return Err(why),
            // The lane is full: others need it more.
            Err(MemoryServiceError::Overloaded) => break,
            Err(e) => e.to_string(),
        };
        tracing::debug!("codex-memory: memory {} not scored: {failure}", m.id);
        if failures.len() >= SCORE_TRACKED && !failures.contains_key(&m.id) {
            failures.clear();
        }
        *failures.entry(m.id).or_default() += 1;
    }
    Ok(scored)
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
