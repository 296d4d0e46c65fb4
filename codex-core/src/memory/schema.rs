//! The store's schema as ordered migrations, tracked in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only:
/// a released migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: memories and their FTS5 index, kept in sync by triggers so no code
    // path can update one without the other.
    r#"
    CREATE TABLE memories (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        source_thread_id TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        score REAL NOT NULL DEFAULT 0,
        embedding BLOB
    );
    CREATE INDEX memories_by_source ON memories(source_thread_id);
    CREATE INDEX memories_by_updated ON memories(updated_at_ms);
    CREATE VIRTUAL TABLE memories_fts USING fts5(
        text,
        content = 'memories',
        content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER memories_fts_update AFTER UPDATE OF text ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text);
    END;
    "#,
    // 2: the memory files are the source of truth and this database their
    // index: each row records the file it came from (relative to
    // `memories/`), and `indexed_files` what each file looked like when it
    // was indexed, so a changed file is seen without reading it.
    r#"
    ALTER TABLE memories ADD COLUMN source_path TEXT;
    CREATE INDEX memories_by_path ON memories(source_path);
    CREATE TABLE indexed_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL
    );
    "#,
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Where a database stands relative to this build.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Migrated {
    /// At [`SCHEMA_VERSION`] (possibly after applying migrations).
    Current,
    /// Written by a newer build.
    TooNew(i64),
}

/// Applies the pending migrations in order, all in one `IMMEDIATE`
/// transaction (so two openers cannot both migrate, and a failure leaves
/// the old version intact). A current database needs only a read.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<Migrated> {
    let version = user_version(conn)?;
    if version > SCHEMA_VERSION {
        return Ok(Migrated::TooNew(version));
    }
    if version == SCHEMA_VERSION {
        return Ok(Migrated::Current);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another opener may have migrated between our read and our lock.
    let version = user_version(&tx)?;
    if version > SCHEMA_VERSION {
        return Ok(Migrated::TooNew(version));
    }
    let start = usize::try_from(version.max(0)).unwrap_or(0);
    for sql in MIGRATIONS.iter().skip(start) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(Migrated::Current)
}

pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}
