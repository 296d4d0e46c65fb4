//! Writing `config.toml` for clients (`config/batchWrite`,
//! `config/value/write`): edits addressed by TOML dotted key paths
//! (`projects."/work/repo".trust_level`), applied to the file as written
//! (comments and layout kept), checked against the version the client read,
//! and written atomically.

use std::path::{Path, PathBuf};

use serde_json::Value;
use toml_edit::{DocumentMut, Item, Table};

/// How an edit's value meets what is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// The value replaces whatever is at the path.
    Replace,
    /// Tables are merged key by key; anything else is replaced.
    Upsert,
}

/// One edit: `null` removes the key.
#[derive(Debug, Clone)]
pub struct Edit {
    pub key_path: String,
    pub value: Value,
    pub merge: Merge,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML, so it cannot be edited: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid key path `{0}`")]
    KeyPath(String),
    #[error("`{key_path}`: {reason}")]
    Conflict { key_path: String, reason: String },
    #[error("config version conflict: the file is at {actual}, the edit expected {expected}")]
    Version { expected: String, actual: String },
}

/// The version clients see for a file's contents (`config/read` layers).
pub fn version_of(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a:{h:016x}")
}

/// Applies `edits` to the file at `path` (created if missing) and returns
/// its new version.
pub fn apply(
    path: &Path,
    edits: &[Edit],
    expected_version: Option<&str>,
) -> Result<String, WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    if let Some(expected) = expected_version {
        let actual = version_of(&text);
        if expected != actual {
            return Err(WriteError::Version {
                expected: expected.to_string(),
                actual,
            });
        }
    }
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| WriteError::Syntax {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            })?;
    for edit in edits {
        apply_one(doc.as_table_mut(), edit)?;
    }
    let out = doc.to_string();
    write_atomically(path, &out).map_err(io)?;
    Ok(version_of(&out))
}

fn apply_one(root: &mut Table, edit: &Edit) -> Result<(), WriteError> {
    let keys = toml_edit::Key::parse(&edit.key_path)
        .map_err(|_| WriteError::KeyPath(edit.key_path.clone()))?;
    let Some((last, parents)) = keys.split_last() else {
        return Err(WriteError::KeyPath(edit.key_path.clone()));
    };
    let conflict = |reason: String| WriteError::Conflict {
        key_path: edit.key_path.clone(),
        reason,
    };
    let mut table = root;
    for k in parents {
        let entry = table
            .entry(k.get())
            .or_insert_with(|| Item::Table(implicit_table()));
        if let Some(inline) = entry.as_inline_table().cloned() {
            *entry = Item::Table(inline.into_table());
        }
        table = entry
            .as_table_mut()
            .ok_or_else(|| conflict(format!("`{}` is not a table", k.get())))?;
    }
    if edit.value.is_null() {
        table.remove(last.get());
        return Ok(());
    }
    let new = to_item(&edit.value).map_err(conflict)?;
    match (edit.merge, table.get_mut(last.get())) {
        (Merge::Upsert, Some(existing)) if existing.is_table_like() && new.is_table_like() => {
            merge(existing, new);
        }
        _ => {
            table.insert(last.get(), new);
        }
    }
    Ok(())
}

fn implicit_table() -> Table {
    let mut t = Table::new();
    t.set_implicit(true);
    t
}

fn merge(into: &mut Item, from: Item) {
    let Some(from) = from.into_table().ok() else {
        return;
    };
    if let Some(inline) = into.as_inline_table().cloned() {
        *into = Item::Table(inline.into_table());
    }
    let Some(into) = into.as_table_mut() else {
        return;
    };
    for (k, v) in from {
        match into.get_mut(&k) {
            Some(existing) if existing.is_table_like() && v.is_table_like() => merge(existing, v),
            _ => {
                into.insert(&k, v);
            }
        }
    }
}

/// JSON → TOML: objects become tables, arrays of objects arrays of tables.
fn to_item(v: &Value) -> Result<Item, String> {
    Ok(match v {
        Value::Object(map) => {
            let mut t = Table::new();
            for (k, v) in map {
                if !v.is_null() {
                    t.insert(k, to_item(v)?);
                }
            }
            Item::Table(t)
        }
        other => Item::Value(to_value(other)?),
    })
}

fn to_value(v: &Value) -> Result<toml_edit::Value, String> {
    Ok(match v {
        Value::Bool(b) => (*b).into(),
        Value::String(s) => s.as_str().into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            _ => return Err(format!("{n} does not fit a TOML number")),
        },
        Value::Array(items) => {
            let mut a = toml_edit::Array::new();
            for i in items {
                a.push(to_value(i)?);
            }
            toml_edit::Value::Array(a)
        }
        Value::Object(map) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, v) in map {
                if !v.is_null() {
                    t.insert(k, to_value(v)?);
                }
            }
            toml_edit::Value::InlineTable(t)
        }
        Value::Null => return Err("null cannot stand inside a value".into()),
    })
}

/// Writes beside the file and renames over it, keeping its permissions
/// (0600 for a new file: it may name credentials' locations).
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let tmp = path.with_extension(format!("toml.tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edit(key_path: &str, value: Value, merge: Merge) -> Edit {
        Edit {
            key_path: key_path.into(),
            value,
            merge,
        }
    }

    #[test]
    fn a_quoted_path_key_is_set_and_the_rest_of_the_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# mine\nmodel = \"m\" # keep\n").unwrap();
        let v = apply(
            &path,
            &[edit(
                "projects.\"/work/a.b\".trust_level",
                json!("trusted"),
                Merge::Replace,
            )],
            None,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\nmodel = \"m\" # keep\n"), "{text}");
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(
            t["projects"]["/work/a.b"]["trust_level"].as_str(),
            Some("trusted")
        );
        assert_eq!(v, version_of(&text));
    }

    #[test]
    fn upsert_merges_tables_replace_does_not_and_null_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[tui]\na = 1\nb = 2\n").unwrap();
        apply(
            &path,
            &[edit("tui", json!({"b": 3, "c": 4}), Merge::Upsert)],
            None,
        )
        .unwrap();
        let t: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_eq!(t["tui"]["a"].as_integer(), Some(1));
        assert_eq!(t["tui"]["b"].as_integer(), Some(3));
        apply(
            &path,
            &[edit("tui", json!({"z": true}), Merge::Replace)],
            None,
        )
        .unwrap();
        let t: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert!(t["tui"].get("a").is_none() && t["tui"]["z"].as_bool() == Some(true));
        apply(&path, &[edit("tui.z", Value::Null, Merge::Replace)], None).unwrap();
        let t: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert!(t["tui"].get("z").is_none());
    }

    #[test]
    fn a_stale_version_and_a_bad_path_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "model = \"m\"\n").unwrap();
        let err = apply(
            &path,
            &[edit("model", json!("n"), Merge::Replace)],
            Some("fnv1a:0000000000000000"),
        )
        .unwrap_err();
        assert!(matches!(err, WriteError::Version { .. }), "{err}");
        let err = apply(&path, &[edit("model.x", json!(1), Merge::Replace)], None).unwrap_err();
        assert!(matches!(err, WriteError::Conflict { .. }), "{err}");
        assert!(apply(&path, &[edit("a..b", json!(1), Merge::Replace)], None).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "model = \"m\"\n");
        let current = version_of("model = \"m\"\n");
        apply(
            &path,
            &[edit("model", json!("n"), Merge::Replace)],
            Some(&current),
        )
        .unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"n\""));
    }
}

/// A value for [`set_table`]: a plain value, or a table written under its
/// own `[header]` with its keys in the order given (as upstream writes
/// `[mcp_servers.NAME.env]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Value(Value),
    Table(Vec<(String, Entry)>),
}

/// Sets (`Some`) or removes (`None`) the table at `keys` (keys as written,
/// not a dotted path: a server may be named `a.b`), keeping the rest of the
/// file, and the comments and place of a table it replaces. Returns whether
/// something was at `keys` before.
pub fn set_table(
    path: &Path,
    keys: &[&str],
    table: Option<&[(String, Entry)]>,
) -> Result<bool, WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let key_path = keys.join(".");
    let conflict = |reason: String| WriteError::Conflict {
        key_path: key_path.clone(),
        reason,
    };
    let Some((last, parents)) = keys.split_last() else {
        return Err(WriteError::KeyPath(key_path.clone()));
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| WriteError::Syntax {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            })?;
    let mut parent = doc.as_table_mut();
    for k in parents {
        if table.is_none() && !parent.contains_key(k) {
            return Ok(false);
        }
        let entry = parent
            .entry(k)
            .or_insert_with(|| Item::Table(implicit_table()));
        if let Some(inline) = entry.as_inline_table().cloned() {
            *entry = Item::Table(inline.into_table());
        }
        parent = entry
            .as_table_mut()
            .ok_or_else(|| conflict(format!("`{k}` is not a table")))?;
    }
    let existed = parent.contains_key(last);
    match table {
        None => {
            parent.remove(last);
        }
        Some(entries) => {
            let mut new = Table::new();
            fill_table(&mut new, entries).map_err(conflict)?;
            if let Some(old) = parent.get(last).and_then(Item::as_table) {
                new.decor_mut().clone_from(old.decor());
                if let Some(p) = old.position() {
                    new.set_position(p);
                }
            }
            parent.insert(last, Item::Table(new));
        }
    }
    if table.is_none() && !existed {
        return Ok(false);
    }
    let out = doc.to_string();
    // A table that moved up to the top keeps the blank line that separated
    // it from the one removed; the file did not start with one.
    let out = if text.starts_with('\n') {
        &out
    } else {
        out.trim_start_matches('\n')
    };
    write_atomically(path, out).map_err(io)?;
    Ok(existed)
}

fn fill_table(into: &mut Table, entries: &[(String, Entry)]) -> Result<(), String> {
    for (k, e) in entries {
        match e {
            Entry::Value(v) => {
                into.insert(k, Item::Value(to_value(v)?));
            }
            Entry::Table(sub) => {
                let mut t = Table::new();
                fill_table(&mut t, sub)?;
                into.insert(k, Item::Table(t));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod set_table_tests {
    use super::*;
    use serde_json::json;

    fn server() -> Vec<(String, Entry)> {
        vec![
            ("command".into(), Entry::Value(json!("python3"))),
            ("args".into(), Entry::Value(json!(["echo.py"]))),
            (
                "env".into(),
                Entry::Table(vec![("A".into(), Entry::Value(json!("1")))]),
            ),
        ]
    }

    #[test]
    fn a_table_is_written_in_order_replaced_in_place_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert!(!set_table(&path, &["mcp_servers", "a.b"], Some(&server())).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[mcp_servers.\"a.b\"]\ncommand = \"python3\"\nargs = [\"echo.py\"]\n\n[mcp_servers.\"a.b\".env]\nA = \"1\"\n"
        );
        std::fs::write(
            &path,
            "# top\nmodel = \"m\"\n\n[mcp_servers.x]\ncommand = \"old\"\nargs = [\"o\"]\n\n# about y\n[mcp_servers.y]\ncommand = \"y\"\n\n[other]\nk = 1\n",
        )
        .unwrap();
        let one = vec![("command".to_string(), Entry::Value(json!("new")))];
        assert!(set_table(&path, &["mcp_servers", "x"], Some(&one)).unwrap());
        assert!(!set_table(&path, &["mcp_servers", "z"], Some(&one)).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# top\nmodel = \"m\"\n\n[mcp_servers.x]\ncommand = \"new\"\n\n# about y\n[mcp_servers.y]\ncommand = \"y\"\n\n[mcp_servers.z]\ncommand = \"new\"\n\n[other]\nk = 1\n"
        );
        assert!(set_table(&path, &["mcp_servers", "x"], None).unwrap());
        assert!(set_table(&path, &["mcp_servers", "z"], None).unwrap());
        assert!(!set_table(&path, &["mcp_servers", "gone"], None).unwrap());
        assert!(!set_table(&path, &["nothing", "gone"], None).unwrap());
        assert!(set_table(&path, &["mcp_servers", "y"], Some(&server())).unwrap());
        assert!(!set_table(&path, &["mcp_servers", "w"], Some(&one)).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# top\nmodel = \"m\"\n\n# about y\n[mcp_servers.y]\ncommand = \"python3\"\nargs = [\"echo.py\"]\n\n[mcp_servers.y.env]\nA = \"1\"\n\n[mcp_servers.w]\ncommand = \"new\"\n\n[other]\nk = 1\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[mcp_servers.a]\ncommand = \"a\"\n\n[mcp_servers.b]\ncommand = \"b\"\n",
        )
        .unwrap();
        assert!(set_table(&path, &["mcp_servers", "a"], None).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[mcp_servers.b]\ncommand = \"b\"\n"
        );
    }
}
