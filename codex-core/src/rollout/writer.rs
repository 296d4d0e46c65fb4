//! Append-only rollout writer. Each line reaches the file (the kernel's page
//! cache) as it is appended, so a worker killed with `kill -9` loses nothing
//! it recorded; [`RolloutWriter::sync`] makes it durable against power loss
//! (fsync, at turn boundaries).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::line::{timestamp_now, RolloutItem, RolloutLine};

#[derive(Debug)]
pub struct RolloutWriter {
    path: PathBuf,
    /// `None` until the first line is written (deferred creation).
    out: Option<BufWriter<File>>,
    /// The first line of a deferred file.
    pending_first: Option<RolloutItem>,
    ordinal: u64,
}

impl RolloutWriter {
    /// Creates a new rollout file (and its directories) now.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut w = Self::deferred(path, None);
        w.ensure_open()?;
        Ok(w)
    }

    /// A writer whose file is created (with `first` as its first line) only
    /// when something else is appended: a thread nobody talks to leaves no
    /// file, and starting a thread costs no disk I/O.
    pub fn deferred(path: &Path, first: Option<RolloutItem>) -> Self {
        Self {
            path: path.to_path_buf(),
            out: None,
            pending_first: first,
            ordinal: 0,
        }
    }

    /// Opens an existing rollout for appending. A torn last line (no final
    /// newline) is terminated first so the next line starts cleanly; the torn
    /// bytes stay as an unparsable line that readers skip.
    pub fn open_append(path: &Path, next_ordinal: u64) -> std::io::Result<Self> {
        let mut file = OpenOptions::new().read(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            out: Some(BufWriter::new(file)),
            pending_first: None,
            ordinal: next_ordinal,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file exists yet.
    pub fn is_open(&self) -> bool {
        self.out.is_some()
    }

    pub fn append(&mut self, item: RolloutItem) -> std::io::Result<()> {
        self.ensure_open()?;
        self.write_line(item)
    }

    /// Writes everything buffered and waits until it is on disk (a deferred
    /// file that was never created has nothing to sync).
    pub fn sync(&mut self) -> std::io::Result<()> {
        match self.out.as_mut() {
            Some(out) => {
                out.flush()?;
                out.get_ref().sync_data()
            }
            None => Ok(()),
        }
    }

    fn ensure_open(&mut self) -> std::io::Result<()> {
        if self.out.is_some() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&self.path)?;
        self.out = Some(BufWriter::new(file));
        if let Some(first) = self.pending_first.take() {
            self.write_line(first)?;
        }
        Ok(())
    }

    fn write_line(&mut self, item: RolloutItem) -> std::io::Result<()> {
        let line = RolloutLine {
            timestamp: timestamp_now(),
            item,
            ordinal: Some(self.ordinal),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| std::io::Error::other("rollout writer not open"))?;
        out.write_all(&bytes)?;
        out.flush()?;
        self.ordinal += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_file_appears_with_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/rollout.jsonl");
        let mut w = RolloutWriter::deferred(
            &path,
            Some(RolloutItem::EventMsg(serde_json::json!({"type": "first"}))),
        );
        w.sync().unwrap();
        assert!(!path.exists());
        w.append(RolloutItem::EventMsg(serde_json::json!({"type": "second"})))
            .unwrap();
        w.sync().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"first\"") && lines[0].contains("\"ordinal\":0"));
        assert!(lines[1].contains("\"second\""));
    }
}
