//! The memory service and index on real files and a real SQLite database.

use std::fs;
use std::time::Duration;

use super::*;

fn opts(home: &std::path::Path) -> LocalMemoryOptions {
    let mut o = LocalMemoryOptions::new(MemoryLayout::new(home));
    o.index.sync_interval = Duration::ZERO;
    o.recall_delay = None;
    o
}

fn index(home: &std::path::Path, embedder: Option<Box<dyn Embedder>>) -> MemoryIndex {
    MemoryIndex::open(
        MemoryLayout::new(home),
        IndexOptions {
            busy_timeout: Duration::from_millis(200),
            sync_interval: Duration::ZERO,
        },
        embedder,
    )
    .unwrap()
}

fn texts(hits: &[RecallHit]) -> Vec<String> {
    hits.iter().map(|h| h.memory.text.clone()).collect()
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_full_queue_is_shed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.queue = 1;
    o.recall_delay = Some(Duration::from_millis(300));
    let memory = LocalMemory::start(o).unwrap();
    let recall = || MemoryRequest::Recall {
        query: "anything".into(),
        limit: 5,
    };
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let m = memory.clone();
            let r = recall();
            tokio::spawn(async move { m.call_with_deadline(r, LONG).await })
        })
        .collect();
    let mut shed = 0;
    let mut answered = 0;
    for c in calls {
        match c.await.unwrap() {
            Err(MemoryServiceError::Overloaded) => shed += 1,
            Ok(MemoryResponse::Hits { .. }) => answered += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(shed >= 2, "queue of 1 + one running: {shed} shed");
    assert!(answered >= 1);
    // Capacity is back afterwards.
    let r = memory.call_with_deadline(MemoryRequest::Status, LONG).await;
    assert!(matches!(r, Ok(MemoryResponse::Status { .. })), "{r:?}");
}

#[tokio::test]
async fn a_slow_store_times_out_without_blocking_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.recall_delay = Some(Duration::from_millis(500));
    let memory = LocalMemory::start(o).unwrap();
    let r = memory
        .call_with_deadline(
            MemoryRequest::Recall {
                query: "x".into(),
                limit: 1,
            },
            Duration::from_millis(20),
        )
        .await;
    assert_eq!(r, Err(MemoryServiceError::Timeout(20)));
}

#[tokio::test]
async fn remember_search_forget_reset_through_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let memory = LocalMemory::start(opts(dir.path())).unwrap();
    let call = |r| memory.call_with_deadline(r, LONG);
    let Ok(MemoryResponse::Remembered { id }) = call(MemoryRequest::Remember {
        text: "The deploy script lives in tools/deploy.sh".into(),
        source_thread_id: Some("t-1".into()),
    })
    .await
    else {
        panic!()
    };
    let notes = MemoryLayout::new(dir.path()).ad_hoc_notes();
    assert_eq!(fs::read_dir(&notes).unwrap().count(), 1, "a note file");
    let Ok(MemoryResponse::Hits { hits }) = call(MemoryRequest::Search {
        query: "where is the deploy script?".into(),
        limit: 5,
    })
    .await
    else {
        panic!()
    };
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, id);
    assert_eq!(hits[0].source_thread_id.as_deref(), Some("t-1"));
    assert!(hits[0]
        .source_path
        .as_deref()
        .unwrap()
        .starts_with("extensions/ad_hoc/notes/"));
    let r = call(MemoryRequest::Forget { id }).await;
    assert_eq!(r, Ok(MemoryResponse::Forgot { found: true }));
    assert_eq!(fs::read_dir(&notes).unwrap().count(), 0, "the file is gone");

    call(MemoryRequest::Remember {
        text: "one more".into(),
        source_thread_id: None,
    })
    .await
    .unwrap();
    fs::write(
        MemoryLayout::new(dir.path()).memory_md(),
        "# Build\nuse make\n",
    )
    .unwrap();
    let Ok(MemoryResponse::Reset { removed, rows }) = call(MemoryRequest::Reset).await else {
        panic!()
    };
    assert_eq!(
        rows, 1,
        "MEMORY.md was written after the last look at the files"
    );
    assert_eq!(
        removed,
        vec!["MEMORY.md".to_string(), "extensions".to_string()]
    );
    let Ok(MemoryResponse::Status { status }) = call(MemoryRequest::Status).await else {
        panic!()
    };
    assert_eq!(status.count, 0);
    assert_eq!(
        call(MemoryRequest::Embed { texts: vec![] }).await,
        Err(MemoryServiceError::NoEmbedder)
    );
}

#[test]
fn the_index_follows_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let layout = MemoryLayout::new(dir.path());
    fs::create_dir_all(layout.rollout_summaries()).unwrap();
    fs::write(
        layout.memory_md(),
        "# Testing\nRun cargo nextest.\n\n# Style\nPrefer small commits.\n",
    )
    .unwrap();
    fs::write(
        layout.rollout_summaries().join("fix-ci.md"),
        "Fixed the flaky CI job.\n",
    )
    .unwrap();
    fs::write(layout.raw_memories(), "## Thread a\nlikes rebase\n").unwrap();
    let mut idx = index(dir.path(), None);
    assert_eq!(idx.count().unwrap(), 4);
    let hit = &idx.recall("nextest", 5).unwrap()[0].memory;
    assert_eq!(hit.source_path.as_deref(), Some("MEMORY.md"));

    // An edit by someone else (phase 2, the user) is picked up.
    fs::write(layout.memory_md(), "# Testing\nRun cargo test.\n").unwrap();
    assert!(idx.recall("nextest", 5).unwrap().is_empty());
    assert_eq!(idx.count().unwrap(), 3);

    // Forgetting a section cuts it from the file.
    fs::write(layout.memory_md(), "# A\nalpha\n# B\nbravo\n").unwrap();
    let bravo = idx.recall("bravo", 5).unwrap()[0].memory.id;
    assert!(idx.forget(bravo).unwrap());
    assert_eq!(
        fs::read_to_string(layout.memory_md()).unwrap(),
        "# A\nalpha\n"
    );
    assert!(idx.recall("bravo", 5).unwrap().is_empty());

    // A deleted database is rebuilt from the files.
    drop(idx);
    fs::remove_file(layout.index_db()).unwrap();
    let mut idx = index(dir.path(), None);
    assert_eq!(
        texts(&idx.recall("flaky", 5).unwrap()),
        vec!["Fixed the flaky CI job."]
    );
}

#[test]
fn a_truncated_database_is_rebuilt_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let layout = MemoryLayout::new(dir.path());
    let mut idx = index(dir.path(), None);
    for i in 0..50 {
        idx.remember(&format!("note number {i} about widgets"), None)
            .unwrap();
    }
    idx.remember("the release key is in the vault", None)
        .unwrap();
    drop(idx);
    let db = layout.index_db();
    let len = fs::metadata(&db).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let _ = fs::remove_file(db.with_extension("sqlite-wal"));
    let mut idx = index(dir.path(), None);
    assert!(
        idx.warnings().iter().any(|w| w.contains("corrupt")),
        "{:?}",
        idx.warnings()
    );
    assert_eq!(idx.count().unwrap(), 51);
    assert_eq!(
        texts(&idx.recall("release vault", 1).unwrap()),
        vec!["the release key is in the vault"]
    );
}

/// Maps known synonyms to one direction: only vectors can match them.
struct Synonyms;

impl Embedder for Synonyms {
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, MemoryError> {
        Ok(texts
            .iter()
            .map(|t| {
                let t = t.to_lowercase();
                if t.contains("cat") || t.contains("kitten") {
                    vec![1.0, 0.0, 0.1]
                } else {
                    vec![0.0, 1.0, 0.1]
                }
            })
            .collect())
    }
}

#[test]
fn vector_recall_finds_what_words_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut idx = index(dir.path(), Some(Box::new(Synonyms)));
    idx.remember("the cat sleeps on the sofa", None).unwrap();
    idx.remember("deploys happen on fridays", None).unwrap();
    assert_eq!(idx.vector_count(), 2);
    let hits = idx.recall("kitten", 1).unwrap();
    assert_eq!(texts(&hits), vec!["the cat sleeps on the sofa"]);
    drop(idx);
    // Embeddings are stored: a reopened index has them without re-embedding.
    let mut idx = index(dir.path(), Some(Box::new(Synonyms)));
    assert_eq!(idx.vector_count(), 2);
    assert_eq!(
        texts(&idx.recall("kitten", 1).unwrap()),
        vec!["the cat sleeps on the sofa"]
    );
    // Without an embedder it is words only.
    drop(idx);
    let mut idx = index(dir.path(), None);
    assert!(idx.recall("kitten", 1).unwrap().is_empty());
}

#[test]
fn vector_index_top_k_is_cosine_order() {
    let mut v = VectorIndex::new();
    let e = HashEmbedder::new(384);
    let docs = [
        "red apple pie",
        "green apple",
        "blue car engine",
        "fast red car",
    ];
    for (i, d) in docs.iter().enumerate() {
        assert!(v.insert(MemoryId(i as i64), &e.embed_one(d)));
    }
    assert!(
        !v.insert(MemoryId(9), &[1.0, 2.0]),
        "other dimension refused"
    );
    let top = v.top_k(&e.embed_one("apple"), 2);
    let ids: Vec<i64> = top.iter().map(|(id, _)| id.0).collect();
    assert!(ids.contains(&0) && ids.contains(&1), "{top:?}");
    assert!(top[0].1 >= top[1].1);
    v.remove(MemoryId(0));
    assert_eq!(v.len(), 3);
    let top = v.top_k(&e.embed_one("apple"), 1);
    assert_eq!(top[0].0, MemoryId(1));
    assert!((embed::cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
}
