//! codex-memory's local generation models (`MemoryRequest::Generate`): one
//! lane per model file — the extraction model (`[memories] extract_model`),
//! the shaping model (`[context_shaping] model`) and the scoring model
//! (`[memories] score_model`) are one instance when they are the same file
//! — each one inference thread behind a bounded queue, never the store
//! thread. Each lane counts the requests waiting or running on it other
//! than scoring, so the background scorer can stand aside ([`GenerationLanes::busy`]).
//!
//! A configured file is checked at start (missing, or a build without the
//! `local-llm` feature: a warning in status naming the key) and loaded on
//! its first request, off the async threads: a daemon that never extracts
//! never pays for the model. A load failure is a warning too, and every
//! request for that purpose then fails with `NoModel` saying why. The
//! configuration is read when codex-memory starts; a change takes effect
//! when it restarts (with codexd).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_core::memory::{
    GeneratePurpose, Generator, LaneGenerator, LocalGenerate, LocalGenerated, MemoryServiceError,
};
use tokio::sync::OnceCell;

/// The config key of each purpose's model.
pub const EXTRACT_KEY: &str = "memories.extract_model";
pub const SHAPE_KEY: &str = "context_shaping.model";
pub const SCORE_KEY: &str = "memories.score_model";

type Loaded = Result<Arc<LaneGenerator>, String>;

/// One model file, loaded at most once.
struct LazyLane {
    path: PathBuf,
    /// Why it cannot be used, known at start (missing file, no feature).
    unusable: Option<String>,
    lane: OnceCell<Loaded>,
    /// Requests for other purposes than scoring, waiting or running
    /// (including a first request's load).
    in_flight: AtomicUsize,
}

/// Counts one request in [`LazyLane::in_flight`] while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Slot {
    key: &'static str,
    lane: Arc<LazyLane>,
}

pub struct GenerationLanes {
    extract: Option<Slot>,
    shape: Option<Slot>,
    score: Option<Slot>,
    /// Warnings for codex-memory's status (start checks, load failures).
    warnings: Arc<Mutex<Vec<String>>>,
}

impl GenerationLanes {
    /// Checks the configured files; problems go to `warnings`.
    pub fn new(
        extract: Option<PathBuf>,
        shape: Option<PathBuf>,
        score: Option<PathBuf>,
        warnings: Arc<Mutex<Vec<String>>>,
    ) -> Self {
        let mut by_file: HashMap<PathBuf, Arc<LazyLane>> = HashMap::new();
        let mut slot = |key: &'static str, path: Option<PathBuf>| -> Option<Slot> {
            let path = path?;
            let id = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            let lane = by_file
                .entry(id)
                .or_insert_with(|| {
                    Arc::new(LazyLane {
                        unusable: unusable(&path),
                        path: path.clone(),
                        lane: OnceCell::new(),
                        in_flight: AtomicUsize::new(0),
                    })
                })
                .clone();
            if let Some(why) = &lane.unusable {
                push(
                    &warnings,
                    format!("`{key}` ({}) cannot be used: {why}", path.display()),
                );
            }
            Some(Slot { key, lane })
        };
        let extract = slot(EXTRACT_KEY, extract);
        let shape = slot(SHAPE_KEY, shape);
        let score = slot(SCORE_KEY, score);
        Self {
            extract,
            shape,
            score,
            warnings,
        }
    }

    fn slot(&self, purpose: GeneratePurpose) -> (&Option<Slot>, &'static str) {
        match purpose {
            GeneratePurpose::Extract => (&self.extract, EXTRACT_KEY),
            GeneratePurpose::Shape => (&self.shape, SHAPE_KEY),
            GeneratePurpose::Score => (&self.score, SCORE_KEY),
        }
    }

    /// Whether `purpose` has a model that may work (configured, and not
    /// known at start to be unusable; a load can still fail).
    pub fn usable(&self, purpose: GeneratePurpose) -> bool {
        matches!(self.slot(purpose).0, Some(s) if s.lane.unusable.is_none())
    }

    /// Whether `purpose`'s model has requests of other purposes waiting or
    /// running: cheap, for the background scorer to stand aside.
    pub fn busy(&self, purpose: GeneratePurpose) -> bool {
        matches!(self.slot(purpose).0, Some(s) if s.lane.in_flight.load(Ordering::Relaxed) > 0)
    }

    /// Whether the two purposes share one instance.
    #[cfg(test)]
    pub fn shared(&self) -> bool {
        match (&self.extract, &self.shape) {
            (Some(a), Some(b)) => Arc::ptr_eq(&a.lane, &b.lane),
            _ => false,
        }
    }

    /// Runs `request` on its purpose's model, giving up by `deadline`
    /// (the first request's load counts against it).
    pub async fn generate(
        &self,
        request: LocalGenerate,
        deadline: Duration,
    ) -> Result<LocalGenerated, MemoryServiceError> {
        let purpose = request.purpose;
        let (slot, key) = self.slot(purpose);
        let Some(slot) = slot else {
            return Err(MemoryServiceError::NoModel(format!(
                "`{key}` does not name a local GGUF model (set it to a `.gguf` path, relative to $CODEX_HOME or absolute, and restart codexd)"
            )));
        };
        // Scoring is background work: it never makes the lane look busy.
        let _counted =
            (purpose != GeneratePurpose::Score).then(|| InFlight::new(&slot.lane.in_flight));
        let run = async {
            let generator = self.load(slot).await?;
            generator.generate(request, deadline).await
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(r) => r,
            Err(_) => Err(MemoryServiceError::Timeout(deadline.as_millis() as u64)),
        }
    }

    async fn load(&self, slot: &Slot) -> Result<Arc<LaneGenerator>, MemoryServiceError> {
        let lane = &slot.lane;
        let no_model = |why: &str| {
            MemoryServiceError::NoModel(format!(
                "`{}` ({}) cannot be used: {why}",
                slot.key,
                lane.path.display()
            ))
        };
        if let Some(why) = &lane.unusable {
            return Err(no_model(why));
        }
        let loaded = lane
            .lane
            .get_or_init(|| async {
                let path = lane.path.clone();
                let loaded = tokio::task::spawn_blocking(move || LaneGenerator::load(&path))
                    .await
                    .map_err(|e| format!("the load panicked: {e}"))
                    .and_then(|r| r.map_err(|e| e.to_string()));
                match loaded {
                    Ok(g) => {
                        tracing::info!("codex-memory: generation model {}", lane.path.display());
                        Ok(Arc::new(g))
                    }
                    Err(why) => {
                        push(
                            &self.warnings,
                            format!(
                                "`{}` ({}) cannot be loaded: {why}",
                                slot.key,
                                lane.path.display()
                            ),
                        );
                        Err(why)
                    }
                }
            })
            .await;
        loaded.clone().map_err(|why| no_model(&why))
    }
}

/// Why `path` cannot be loaded, when that is known without loading it.
fn unusable(path: &Path) -> Option<String> {
    if !codex_core::client::local::AVAILABLE {
        return Some(
            "local models are not available: codex was built without the `local-llm` feature; rebuild with `--features local-llm`".into(),
        );
    }
    if !path.is_file() {
        return Some("the file does not exist".into());
    }
    None
}

fn push(warnings: &Mutex<Vec<String>>, w: String) {
    tracing::warn!("codex-memory: {w}");
    if let Ok(mut ws) = warnings.lock() {
        if !ws.contains(&w) {
            ws.push(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(purpose: GeneratePurpose) -> LocalGenerate {
        LocalGenerate {
            purpose,
            system: String::new(),
            user: "hi".into(),
            max_tokens: 4,
            grammar: None,
        }
    }

    #[tokio::test]
    async fn no_model_names_the_key() {
        let warnings = Arc::default();
        let lanes = GenerationLanes::new(None, None, None, warnings);
        for (purpose, key) in [
            (GeneratePurpose::Extract, EXTRACT_KEY),
            (GeneratePurpose::Shape, SHAPE_KEY),
            (GeneratePurpose::Score, SCORE_KEY),
        ] {
            assert!(!lanes.usable(purpose) && !lanes.busy(purpose));
            let e = lanes
                .generate(ask(purpose), Duration::from_secs(5))
                .await
                .unwrap_err();
            assert!(
                matches!(&e, MemoryServiceError::NoModel(m) if m.contains(key)),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_file_is_a_warning_and_one_file_is_one_instance() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.gguf");
        let warnings: Arc<Mutex<Vec<String>>> = Arc::default();
        let lanes = GenerationLanes::new(
            Some(missing.clone()),
            Some(missing.clone()),
            Some(missing.clone()),
            warnings.clone(),
        );
        assert!(lanes.shared());
        assert!(!lanes.usable(GeneratePurpose::Score));
        let ws = warnings.lock().unwrap().clone();
        assert_eq!(ws.len(), 3, "{ws:?}");
        assert!(ws[2].contains(SCORE_KEY), "{ws:?}");
        assert!(
            ws[0].contains(EXTRACT_KEY) && ws[0].contains("nope.gguf"),
            "{ws:?}"
        );
        assert!(ws[1].contains(SHAPE_KEY), "{ws:?}");
        let e = lanes
            .generate(ask(GeneratePurpose::Extract), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, MemoryServiceError::NoModel(m) if m.contains(EXTRACT_KEY) && m.contains("nope.gguf")),
            "{e}"
        );
    }
}
