//! [`MemoryStore`]: one SQLite connection to the memory database and the
//! operations on it, each of which first finishes opening the store if a
//! lock held by someone else kept [`MemoryStore::open`] from doing so.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::ffi::ErrorCode;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::error::{MemoryError, MemoryWarning};
use super::query::fts_query;
use super::schema::{migrate, Migrated};

/// How long an operation waits for another connection's lock before it
/// reports [`MemoryError::Busy`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `open` itself waits for a lock: startup must not stall on a
/// database someone else holds, so past this the rest of opening is left to
/// the first operation.
const OPEN_LOCK_WAIT: Duration = Duration::from_millis(50);

/// Upper bound on rows one `list` or `recall` returns.
const MAX_ROWS: usize = 10_000;

const COLUMNS: &str =
    "id, text, source_thread_id, created_at_ms, updated_at_ms, score, source_path";

/// A memory's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemoryId(pub i64);

/// A stored memory (without its embedding, which only vector recall reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub id: MemoryId,
    pub text: String,
    /// The thread the memory came from, when it came from one.
    pub source_thread_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Usefulness as judged by the local scorer, 0.1..=1.0; 0 means not
    /// scored yet (see [`super::scoring`]).
    pub score: f64,
    /// The memory file it was read from, relative to `memories/` (`None`
    /// for a row stored without a file).
    pub source_path: Option<String>,
}

/// What a memory file looked like when it was indexed: a change in either
/// means it must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub size: i64,
    pub mtime_ns: i64,
}

/// The rows of one memory file, as [`MemoryStore::replace_source`] stores
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    /// Relative to `memories/`.
    pub path: String,
    pub stamp: FileStamp,
    pub entries: Vec<NewMemory>,
}

/// A memory matched by [`MemoryStore::recall`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecallHit {
    pub memory: Memory,
    /// BM25 relevance to the query; higher is more relevant (FTS5's
    /// `bm25()`, which is lower-is-better, negated).
    pub relevance: f64,
}

/// A memory to insert by [`MemoryStore::rebuild_from`], e.g. one read back
/// from the memory files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMemory {
    pub text: String,
    pub source_thread_id: Option<String>,
    /// When it was first remembered; now if unknown.
    pub created_at_ms: Option<i64>,
    pub score: f64,
    /// The memory file it comes from, relative to `memories/`.
    pub source_path: Option<String>,
    /// Its embedding, when an embedder made one.
    pub embedding: Option<Vec<f32>>,
}

/// The memory database. Blocking: run it on a thread of its own.
pub struct MemoryStore {
    path: PathBuf,
    conn: Connection,
    busy_timeout: Duration,
    /// Pragmas set, integrity checked and migrations applied.
    ready: bool,
    /// A corrupt database was replaced by an empty one not yet refilled.
    needs_rebuild: bool,
    warnings: Vec<MemoryWarning>,
}

/// What opening found beyond SQLite errors.
enum Init {
    Ready,
    Corrupt(String),
    TooNew(i64),
}

impl MemoryStore {
    /// Opens (creating if needed) the database at `path` with
    /// [`DEFAULT_BUSY_TIMEOUT`].
    pub fn open(path: impl AsRef<Path>) -> Result<MemoryStore, MemoryError> {
        Self::open_with_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// Opens the database at `path`; operations wait up to `busy_timeout`
    /// for another connection's lock.
    ///
    /// Fails only when the file cannot be opened at all or was written by a
    /// newer schema. A database locked by another connection still opens
    /// (finishing is left to the first operation); a corrupt one is set
    /// aside with a warning (see [`MemoryStore::warnings`]) and an empty
    /// one created.
    pub fn open_with_timeout(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> Result<MemoryStore, MemoryError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| MemoryError::Io {
                path: path.clone(),
                source,
            })?;
        }
        let conn = connect(&path, busy_timeout.min(OPEN_LOCK_WAIT))?;
        let mut store = MemoryStore {
            path,
            conn,
            busy_timeout,
            ready: false,
            needs_rebuild: false,
            warnings: Vec::new(),
        };
        match store.ensure_ready() {
            Ok(()) => {}
            Err(MemoryError::Busy { .. }) => {
                tracing::info!(
                    path = %store.path.display(),
                    "memory database is locked by another connection; opening finishes on first use"
                );
            }
            Err(err) => return Err(err),
        }
        store
            .conn
            .busy_timeout(busy_timeout)
            .map_err(|e| store.error(e))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Warnings recorded since opening (or since the last
    /// [`MemoryStore::take_warnings`]).
    pub fn warnings(&self) -> &[MemoryWarning] {
        &self.warnings
    }

    pub fn take_warnings(&mut self) -> Vec<MemoryWarning> {
        std::mem::take(&mut self.warnings)
    }

    /// True after a corrupt database was set aside, until
    /// [`MemoryStore::rebuild_from`] refills the fresh one.
    pub fn needs_rebuild(&self) -> bool {
        self.needs_rebuild
    }

    /// Stores a memory and returns its id.
    pub fn remember(
        &mut self,
        text: &str,
        source_thread_id: Option<&str>,
    ) -> Result<MemoryId, MemoryError> {
        if text.trim().is_empty() {
            return Err(MemoryError::EmptyText);
        }
        let now = now_ms();
        self.with_conn(|conn| {
            conn.prepare_cached(
                "INSERT INTO memories (text, source_thread_id, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(params![text, source_thread_id, now])?;
            Ok(MemoryId(conn.last_insert_rowid()))
        })
    }

    /// Deletes a memory; false when there was none with that id.
    pub fn forget(&mut self, id: MemoryId) -> Result<bool, MemoryError> {
        self.with_conn(|conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM memories WHERE id = ?1")?
                .execute([id.0])?;
            Ok(deleted > 0)
        })
    }

    pub fn get(&mut self, id: MemoryId) -> Result<Option<Memory>, MemoryError> {
        self.with_conn(|conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM memories WHERE id = ?1"))?
                .query_row([id.0], memory_from_row)
                .optional()
        })
    }

    /// The most recently updated memories first, at most `limit`.
    pub fn list(&mut self, limit: usize) -> Result<Vec<Memory>, MemoryError> {
        let limit = row_limit(limit);
        self.with_conn(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM memories ORDER BY updated_at_ms DESC, id DESC LIMIT ?1"
            ))?
            .query_map([limit], memory_from_row)?
            .collect()
        })
    }

    pub fn count(&mut self) -> Result<usize, MemoryError> {
        self.with_conn(|conn| {
            let n: i64 = conn.query_row("SELECT count(*) FROM memories", [], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    /// The memories matching any word of `query`, most relevant (BM25)
    /// first, at most `limit`. Punctuation in `query` is never FTS syntax;
    /// a query without words matches nothing.
    pub fn recall(&mut self, query: &str, limit: usize) -> Result<Vec<RecallHit>, MemoryError> {
        let Some(fts) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let limit = row_limit(limit);
        self.with_conn(|conn| {
            // Rank inside the FTS table first so only the top rows are joined.
            conn.prepare_cached(
                "SELECT m.id, m.text, m.source_thread_id, m.created_at_ms, m.updated_at_ms,
                        m.score, m.source_path, f.rank
                 FROM (SELECT rowid, rank FROM memories_fts
                       WHERE memories_fts MATCH ?1 ORDER BY rank LIMIT ?2) AS f
                 JOIN memories AS m ON m.id = f.rowid
                 ORDER BY f.rank",
            )?
            .query_map(params![fts, limit], |row| {
                let rank: f64 = row.get(7)?;
                Ok(RecallHit {
                    memory: memory_from_row(row)?,
                    relevance: -rank,
                })
            })?
            .collect()
        })
    }

    /// Deletes every memory; returns how many there were.
    pub fn reset(&mut self) -> Result<usize, MemoryError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let deleted = tx.execute("DELETE FROM memories", [])?;
            tx.execute("DELETE FROM indexed_files", [])?;
            tx.commit()?;
            Ok(deleted)
        })
    }

    /// Replaces every memory with `entries` in one transaction (a failure
    /// keeps the old contents) and clears [`MemoryStore::needs_rebuild`].
    /// Entries without text are skipped; returns how many were stored.
    pub fn rebuild_from(
        &mut self,
        entries: impl IntoIterator<Item = NewMemory>,
    ) -> Result<usize, MemoryError> {
        let now = now_ms();
        let stored = self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM memories", [])?;
            tx.execute("DELETE FROM indexed_files", [])?;
            let mut stored = 0;
            {
                for entry in entries {
                    if insert_entry(&tx, &entry, now)?.is_some() {
                        stored += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(stored)
        })?;
        self.needs_rebuild = false;
        Ok(stored)
    }

    /// Replaces the rows of every file in `files` (and records their
    /// stamps) and removes the rows of every path in `gone`, in one
    /// transaction. Returns the new rows' ids, per file, in entry order
    /// (`None` for a blank entry, which is skipped).
    pub fn replace_sources(
        &mut self,
        files: &[SourceFile],
        gone: &[String],
    ) -> Result<Vec<Vec<Option<MemoryId>>>, MemoryError> {
        let now = now_ms();
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(files.len());
            for path in gone {
                delete_source(&tx, path)?;
            }
            for file in files {
                delete_source(&tx, &file.path)?;
                tx.prepare_cached(
                    "INSERT INTO indexed_files (path, size, mtime_ns) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    file.path,
                    file.stamp.size,
                    file.stamp.mtime_ns
                ])?;
                let mut file_ids = Vec::with_capacity(file.entries.len());
                for entry in &file.entries {
                    let mut entry = entry.clone();
                    entry.source_path = Some(file.path.clone());
                    file_ids.push(insert_entry(&tx, &entry, now)?);
                }
                ids.push(file_ids);
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    /// Every indexed file and its stamp when it was indexed.
    pub fn indexed_files(
        &mut self,
    ) -> Result<std::collections::BTreeMap<String, FileStamp>, MemoryError> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT path, size, mtime_ns FROM indexed_files")?
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        FileStamp {
                            size: row.get(1)?,
                            mtime_ns: row.get(2)?,
                        },
                    ))
                })?
                .collect()
        })
    }

    /// The memories with these ids (unknown ids are left out), in no
    /// particular order.
    pub fn get_many(&mut self, ids: &[MemoryId]) -> Result<Vec<Memory>, MemoryError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.get(*id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Stores a memory's embedding (f32, little endian).
    pub fn set_embedding(&mut self, id: MemoryId, vector: &[f32]) -> Result<bool, MemoryError> {
        let blob = embedding_blob(vector);
        self.with_conn(|conn| {
            let n = conn
                .prepare_cached("UPDATE memories SET embedding = ?2 WHERE id = ?1")?
                .execute(params![id.0, blob])?;
            Ok(n > 0)
        })
    }

    /// Every stored embedding, by id order.
    pub fn embeddings(&mut self) -> Result<Vec<(MemoryId, Vec<f32>)>, MemoryError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT id, embedding FROM memories WHERE embedding IS NOT NULL ORDER BY id",
            )?
            .query_map([], |row| {
                let blob: Vec<u8> = row.get(1)?;
                Ok((MemoryId(row.get(0)?), embedding_from_blob(&blob)))
            })?
            .collect()
        })
    }

    /// Sets a memory's score; false when there was none with that id. A
    /// score is derived, not an edit: `updated_at_ms` (the list order) is
    /// left alone.
    pub fn set_score(&mut self, id: MemoryId, score: f64) -> Result<bool, MemoryError> {
        self.with_conn(|conn| {
            let n = conn
                .prepare_cached("UPDATE memories SET score = ?2 WHERE id = ?1")?
                .execute(params![id.0, score])?;
            Ok(n > 0)
        })
    }

    /// Memories not scored yet (score 0), oldest id first, at most `limit`.
    pub fn unscored(&mut self, limit: usize) -> Result<Vec<Memory>, MemoryError> {
        let limit = row_limit(limit);
        self.with_conn(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM memories WHERE score <= 0 ORDER BY id LIMIT ?1"
            ))?
            .query_map([limit], memory_from_row)?
            .collect()
        })
    }

    /// How many memories have a score.
    pub fn scored_count(&mut self) -> Result<usize, MemoryError> {
        self.with_conn(|conn| {
            let n: i64 =
                conn.query_row("SELECT count(*) FROM memories WHERE score > 0", [], |r| {
                    r.get(0)
                })?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    /// Runs `op` on a ready connection. Corruption found on the way sets
    /// the database aside (the operation reports [`MemoryError::Corrupt`]);
    /// a lock held too long is [`MemoryError::Busy`].
    fn with_conn<T>(
        &mut self,
        op: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, MemoryError> {
        self.ensure_ready()?;
        match op(&mut self.conn) {
            Ok(value) => Ok(value),
            Err(err) if is_corruption(&err) => {
                let moved_to = self.set_aside(err.to_string())?;
                Err(MemoryError::Corrupt {
                    path: self.path.clone(),
                    moved_to,
                })
            }
            Err(err) => Err(self.error(err)),
        }
    }

    /// Finishes opening: pragmas, integrity check, migrations. Until it
    /// succeeds (a lock can hold it up) every operation retries it.
    fn ensure_ready(&mut self) -> Result<(), MemoryError> {
        if self.ready {
            return Ok(());
        }
        match init(&mut self.conn) {
            Ok(Init::Ready) => {
                self.ready = true;
                Ok(())
            }
            Ok(Init::TooNew(found)) => Err(self.too_new(found)),
            Ok(Init::Corrupt(reason)) => self.set_aside(reason).map(drop),
            Err(err) if is_corruption(&err) => self.set_aside(err.to_string()).map(drop),
            Err(err) => Err(self.error(err)),
        }
    }

    /// Renames the database and its `-wal`/`-shm` files to
    /// `<name>.corrupt-<unix-ms>…` (a stale WAL must not be replayed into
    /// the fresh file) and starts an empty, ready database in its place.
    fn set_aside(&mut self, reason: String) -> Result<PathBuf, MemoryError> {
        // Move the files while our handle is still open: SQLite adopts any
        // `-wal` it finds and deletes it when its last connection closes,
        // so closing first would lose it. (Unix renames open files fine.)
        let moved_to = aside_path(&self.path);
        rename_if_exists(&self.path, &moved_to)?;
        for suffix in ["-wal", "-shm"] {
            rename_if_exists(
                &with_suffix(&self.path, suffix),
                &with_suffix(&moved_to, suffix),
            )?;
        }
        self.ready = false;
        let placeholder = Connection::open_in_memory().map_err(|e| self.error(e))?;
        drop(std::mem::replace(&mut self.conn, placeholder));

        self.conn = connect(&self.path, self.busy_timeout)?;
        match init(&mut self.conn) {
            Ok(Init::Ready) => {}
            Ok(Init::TooNew(found)) => return Err(self.too_new(found)),
            Ok(Init::Corrupt(_)) => {
                return Err(MemoryError::Corrupt {
                    path: self.path.clone(),
                    moved_to,
                })
            }
            Err(err) => return Err(self.error(err)),
        }
        self.ready = true;
        self.needs_rebuild = true;
        let warning = MemoryWarning::SetAside {
            path: self.path.clone(),
            moved_to: moved_to.clone(),
            reason,
        };
        tracing::warn!("{warning}");
        self.warnings.push(warning);
        Ok(moved_to)
    }

    fn too_new(&self, found: i64) -> MemoryError {
        MemoryError::SchemaTooNew {
            path: self.path.clone(),
            found,
            supported: super::schema::SCHEMA_VERSION,
        }
    }

    fn error(&self, source: rusqlite::Error) -> MemoryError {
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => MemoryError::Busy {
                path: self.path.clone(),
                waited: self.busy_timeout,
            },
            _ => MemoryError::Sqlite {
                path: self.path.clone(),
                source,
            },
        }
    }
}

/// Opens the file without touching it: SQLite reads lazily, so this cannot
/// fail on a locked or corrupt database.
fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection, MemoryError> {
    let sqlite = |source| MemoryError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(sqlite)?;
    conn.busy_timeout(busy_timeout).map_err(sqlite)?;
    Ok(conn)
}

fn init(conn: &mut Connection) -> rusqlite::Result<Init> {
    conn.pragma_update(None, "foreign_keys", true)?;
    // WAL lets readers proceed while a writer holds its lock.
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "memory database could not switch to WAL");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if problems.first().map(String::as_str) != Some("ok") {
        return Ok(Init::Corrupt(format!(
            "quick_check: {}",
            problems.join("; ")
        )));
    }
    Ok(match migrate(conn)? {
        Migrated::Current => Init::Ready,
        Migrated::TooNew(found) => Init::TooNew(found),
    })
}

fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

fn memory_from_row(row: &Row<'_>) -> rusqlite::Result<Memory> {
    Ok(Memory {
        id: MemoryId(row.get(0)?),
        text: row.get(1)?,
        source_thread_id: row.get(2)?,
        created_at_ms: row.get(3)?,
        updated_at_ms: row.get(4)?,
        score: row.get(5)?,
        source_path: row.get(6)?,
    })
}

fn delete_source(tx: &rusqlite::Transaction<'_>, path: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM memories WHERE source_path = ?1")?
        .execute([path])?;
    tx.prepare_cached("DELETE FROM indexed_files WHERE path = ?1")?
        .execute([path])?;
    Ok(())
}

/// Inserts one entry; `None` (nothing stored) for an entry without text.
fn insert_entry(
    tx: &rusqlite::Transaction<'_>,
    entry: &NewMemory,
    now: i64,
) -> rusqlite::Result<Option<MemoryId>> {
    if entry.text.trim().is_empty() {
        return Ok(None);
    }
    let created = entry.created_at_ms.unwrap_or(now);
    let blob = entry.embedding.as_deref().map(embedding_blob);
    tx.prepare_cached(
        "INSERT INTO memories
             (text, source_thread_id, created_at_ms, updated_at_ms, score, source_path, embedding)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        entry.text,
        entry.source_thread_id,
        created,
        now,
        entry.score,
        entry.source_path,
        blob
    ])?;
    Ok(Some(MemoryId(tx.last_insert_rowid())))
}

fn embedding_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn embedding_from_blob(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn row_limit(limit: usize) -> i64 {
    i64::try_from(limit.min(MAX_ROWS)).unwrap_or(0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `<name>.corrupt-<unix-ms>` beside `path`, numbered if that is taken.
fn aside_path(path: &Path) -> PathBuf {
    let base = with_suffix(path, &format!(".corrupt-{}", now_ms()));
    let mut candidate = base.clone();
    let mut n = 1;
    while candidate.exists() {
        candidate = with_suffix(&base, &format!("-{n}"));
        n += 1;
    }
    candidate
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn rename_if_exists(from: &Path, to: &Path) -> Result<(), MemoryError> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(MemoryError::Io {
            path: from.to_path_buf(),
            source,
        }),
    }
}
