//! Memory store tests, each on a real SQLite file in a temp dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::*;

/// Short enough that tests hitting a held lock finish quickly.
const TEST_BUSY: Duration = Duration::from_millis(200);

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("memories.sqlite")
}

fn open(path: &Path) -> MemoryStore {
    MemoryStore::open_with_timeout(path, TEST_BUSY).unwrap()
}

/// FTS5's own consistency check of the index against the `memories` table.
fn assert_fts_in_sync(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute(
        "INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)",
        [],
    )
    .unwrap();
}

fn texts(hits: &[RecallHit]) -> Vec<&str> {
    hits.iter().map(|h| h.memory.text.as_str()).collect()
}

/// Files in `dir` whose name starts with `prefix`.
fn set_aside_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn bundled_sqlite_has_fts5() {
    let conn = Connection::open_in_memory().unwrap();
    let used: i64 = conn
        .query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(used, 1);
    conn.execute_batch("CREATE VIRTUAL TABLE t USING fts5(x)")
        .unwrap();
}

#[test]
fn remember_get_list_forget() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut store = open(&path);
    let a = store
        .remember("the build uses cargo nextest", Some("thread-1"))
        .unwrap();
    let b = store.remember("prefer small commits", None).unwrap();

    let got = store.get(a).unwrap().unwrap();
    assert_eq!(got.text, "the build uses cargo nextest");
    assert_eq!(got.source_thread_id.as_deref(), Some("thread-1"));
    assert_eq!(got.created_at_ms, got.updated_at_ms);
    assert_eq!(got.score, 0.0);

    let listed: Vec<MemoryId> = store.list(10).unwrap().iter().map(|m| m.id).collect();
    assert_eq!(listed, vec![b, a], "newest first");
    assert_eq!(store.list(1).unwrap().len(), 1);

    assert!(store.forget(a).unwrap());
    assert!(!store.forget(a).unwrap(), "already gone");
    assert_eq!(store.get(a).unwrap(), None);
    assert_eq!(store.count().unwrap(), 1);
    assert!(store.recall("nextest", 10).unwrap().is_empty());
    assert_fts_in_sync(&path);
    assert!(store.warnings().is_empty());
    assert!(!store.needs_rebuild());
}

#[test]
fn empty_text_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&db_path(&dir));
    assert!(matches!(
        store.remember("  \n", None),
        Err(MemoryError::EmptyText)
    ));
}

#[test]
fn recall_ranks_by_bm25() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut store = open(&path);
    store.remember("rust borrow checker notes", None).unwrap();
    store
        .remember("rust ownership moves values; ownership is checked", None)
        .unwrap();
    store.remember("python has a GIL", None).unwrap();
    store.remember("the weather was nice", None).unwrap();

    let hits = store.recall("Rust ownership?", 10).unwrap();
    assert_eq!(
        texts(&hits),
        vec![
            "rust ownership moves values; ownership is checked",
            "rust borrow checker notes"
        ]
    );
    assert!(hits[0].relevance > hits[1].relevance);
    assert!(hits.iter().all(|h| h.relevance > 0.0));

    assert_eq!(store.recall("rust", 1).unwrap().len(), 1);
    assert_eq!(
        texts(&store.recall("gil", 10).unwrap()),
        vec!["python has a GIL"]
    );
    // remove_diacritics: "café" finds "cafe".
    store.remember("meet at the cafe", None).unwrap();
    assert_eq!(
        texts(&store.recall("café", 10).unwrap()),
        vec!["meet at the cafe"]
    );
}

#[test]
fn recall_never_turns_punctuation_into_fts_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&db_path(&dir));
    store
        .remember("NEAR the AND gate, NOT the OR gate", None)
        .unwrap();
    for query in [
        "\"unbalanced",
        "foo AND (bar",
        "NEAR(a b",
        "col:value",
        "prefix*",
        "-negated ^start",
        "a'b\"c",
        "OR",
        "AND NOT",
        "{x y}",
        "x + y",
        "ünïcödé 日本語 ✓",
        "\u{0903}",
        "a\0b",
    ] {
        store
            .recall(query, 5)
            .unwrap_or_else(|e| panic!("query {query:?} failed: {e}"));
    }
    assert_eq!(
        store.recall("NOT", 5).unwrap().len(),
        1,
        "keywords are plain words"
    );
    for nothing in ["", "   ", "!!! ??? ()", "\"*\""] {
        assert!(store.recall(nothing, 5).unwrap().is_empty());
    }
}

#[test]
fn fts_query_quotes_words_and_drops_syntax() {
    assert_eq!(
        fts_query("foo AND (bar").as_deref(),
        Some("\"foo\" OR \"AND\" OR \"bar\"")
    );
    assert_eq!(fts_query("a a a b").as_deref(), Some("\"a\" OR \"b\""));
    assert_eq!(fts_query("\"*:^-()"), None);
    let many: String = (0..100).map(|i| format!("w{i} ")).collect();
    let terms = fts_query(&many).unwrap();
    assert_eq!(terms.matches(" OR ").count(), 31, "at most 32 terms");
}

#[test]
fn reset_and_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut store = open(&path);
    store.remember("one", None).unwrap();
    store.remember("two", None).unwrap();
    assert_eq!(store.reset().unwrap(), 2);
    assert_eq!(store.count().unwrap(), 0);
    assert!(store.recall("one", 10).unwrap().is_empty());
    assert_fts_in_sync(&path);

    store.remember("stale", None).unwrap();
    let stored = store
        .rebuild_from(vec![
            NewMemory {
                text: "from MEMORY.md".into(),
                source_thread_id: Some("t-9".into()),
                created_at_ms: Some(1_000),
                score: 0.5,
                ..NewMemory::default()
            },
            NewMemory {
                text: " ".into(),
                ..NewMemory::default()
            },
            NewMemory {
                text: "from raw_memories.md".into(),
                ..NewMemory::default()
            },
        ])
        .unwrap();
    assert_eq!(stored, 2, "the blank entry is skipped");
    assert_eq!(store.count().unwrap(), 2);
    assert!(store.recall("stale", 10).unwrap().is_empty());
    let hit = &store.recall("memory", 10).unwrap()[0].memory;
    assert_eq!(hit.text, "from MEMORY.md");
    assert_eq!(hit.created_at_ms, 1_000);
    assert_eq!(hit.score, 0.5);
    assert_eq!(hit.source_thread_id.as_deref(), Some("t-9"));
    assert_fts_in_sync(&path);
}

#[test]
fn reopen_keeps_data_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/memories.sqlite");
    let id = {
        let mut store = open(&path);
        store.remember("survives a restart", Some("t")).unwrap()
    };
    // A second run of migration 1 would fail on `CREATE TABLE memories`.
    let mut store = open(&path);
    assert_eq!(store.get(id).unwrap().unwrap().text, "survives a restart");
    assert_eq!(store.recall("restart", 5).unwrap().len(), 1);
    assert!(store.warnings().is_empty());

    let raw = Connection::open(&path).unwrap();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    drop(open(&path));
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = MemoryStore::open_with_timeout(&path, TEST_BUSY)
        .err()
        .unwrap();
    assert!(
        matches!(err, MemoryError::SchemaTooNew { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
    assert!(path.exists(), "a newer database is left alone");
    assert!(set_aside_files(dir.path(), "memories.sqlite.corrupt").is_empty());
}

/// openai/codex#35555: a writer holding the lock never fails `open`; reads
/// go on (WAL), writes report `Busy` and succeed once it lets go.
#[test]
fn write_lock_held_by_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    open(&path).remember("before the lock", None).unwrap();

    let holder = Connection::open(&path).unwrap();
    holder
        .execute_batch(
            "BEGIN EXCLUSIVE;
             INSERT INTO memories (text, created_at_ms, updated_at_ms) VALUES ('uncommitted', 1, 1);",
        )
        .unwrap();

    let mut store = open(&path);
    assert!(store.warnings().is_empty());
    assert_eq!(texts_of(&store.list(10).unwrap()), vec!["before the lock"]);
    let err = store.remember("while locked", None).unwrap_err();
    assert!(matches!(err, MemoryError::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains("locked"), "{err}");

    holder.execute_batch("COMMIT").unwrap();
    store.remember("after the lock", None).unwrap();
    assert_eq!(store.count().unwrap(), 3);
    assert_fts_in_sync(&path);
}

/// A database another connection holds exclusively before it was ever
/// ours (rollback journal, so even reads block): `open` still returns, and
/// opening finishes on the first operation after the holder lets go.
#[test]
fn exclusive_lock_before_first_open_defers_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let holder = Connection::open(&path).unwrap();
    holder
        .execute_batch(
            "PRAGMA journal_mode = DELETE;
             BEGIN EXCLUSIVE;
             CREATE TABLE someone_elses (x);",
        )
        .unwrap();

    let mut store = open(&path);
    let err = store.list(10).unwrap_err();
    assert!(matches!(err, MemoryError::Busy { .. }), "{err:?}");
    assert!(matches!(
        store.remember("x", None),
        Err(MemoryError::Busy { .. })
    ));

    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    assert!(store.list(10).unwrap().is_empty());
    store.remember("now it works", None).unwrap();
    assert_eq!(store.recall("works", 5).unwrap().len(), 1);
    assert!(store.warnings().is_empty());

    let raw = Connection::open(&path).unwrap();
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    raw.execute_batch("SELECT x FROM someone_elses").unwrap();
}

fn texts_of(memories: &[Memory]) -> Vec<&str> {
    memories.iter().map(|m| m.text.as_str()).collect()
}

fn assert_set_aside_once(store: &MemoryStore, path: &Path) -> PathBuf {
    let warnings = store.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let MemoryWarning::SetAside {
        path: original,
        moved_to,
        ..
    } = &warnings[0];
    assert_eq!(original, path);
    let name = moved_to.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("memories.sqlite.corrupt-"), "{name}");
    assert!(moved_to.exists());
    assert!(warnings[0].to_string().contains("corrupt"));
    assert!(store.needs_rebuild());
    moved_to.clone()
}

#[test]
fn garbage_file_is_set_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    fs::write(&path, &garbage).unwrap();
    // A stale WAL must go with it, not be replayed into the fresh file.
    fs::write(dir.path().join("memories.sqlite-wal"), b"stale wal").unwrap();

    let mut store = open(&path);
    let moved_to = assert_set_aside_once(&store, &path);
    assert_eq!(fs::read(&moved_to).unwrap(), garbage);
    let mut wal = moved_to.into_os_string();
    wal.push("-wal");
    assert_eq!(fs::read(PathBuf::from(wal)).unwrap(), b"stale wal");

    assert_eq!(store.count().unwrap(), 0);
    store
        .rebuild_from(vec![NewMemory {
            text: "refilled from the memory files".into(),
            ..NewMemory::default()
        }])
        .unwrap();
    assert!(!store.needs_rebuild());
    assert_eq!(store.recall("refilled", 5).unwrap().len(), 1);
    drop(store);

    let store = open(&path);
    assert!(store.warnings().is_empty(), "the fresh file is healthy");
    let databases: Vec<PathBuf> = set_aside_files(dir.path(), "memories.sqlite.corrupt")
        .into_iter()
        .filter(|p| {
            !p.to_string_lossy().ends_with("-wal") && !p.to_string_lossy().ends_with("-shm")
        })
        .collect();
    assert_eq!(databases.len(), 1, "set aside once: {databases:?}");
}

/// Fills a store with enough memories to span many pages, then closes it
/// (checkpointing the WAL into the main file).
fn populated(path: &Path) {
    let mut store = open(path);
    let filler = "lorem ipsum dolor sit amet ".repeat(20);
    for i in 0..300 {
        store
            .remember(&format!("memory {i} {filler}"), None)
            .unwrap();
    }
}

#[test]
fn truncated_file_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    populated(&path);
    let len = fs::metadata(&path).unwrap().len();
    assert!(len > 64 * 1024, "{len}");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let mut store = open(&path);
    assert_set_aside_once(&store, &path);
    assert_eq!(store.count().unwrap(), 0);
    store.remember("fresh", None).unwrap();
}

#[test]
fn garbage_pages_behind_a_valid_header_are_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    populated(&path);
    let mut bytes = fs::read(&path).unwrap();
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i % 251) as u8;
    }
    fs::write(&path, &bytes).unwrap();

    let mut store = open(&path);
    assert_set_aside_once(&store, &path);
    assert_eq!(store.count().unwrap(), 0);
}
