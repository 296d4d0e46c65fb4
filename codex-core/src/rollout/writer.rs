//! Append-only rollout writer. Each line reaches the file (the kernel's page
//! cache) as it is appended, so a worker killed with `kill -9` loses nothing
//! it recorded; [`RolloutWriter::sync`] makes it durable against power loss
//! (fsync, at turn boundaries).
//!
//! A line that cannot be written (a full disk, an I/O error) is never left
//! half-written: the file is cut back to its last complete line, and the
//! line waits in a bounded backlog, in order, to be written before anything
//! else. Until the backlog is empty every [`append`](RolloutWriter::append)
//! and [`sync`](RolloutWriter::sync) reports the failure, so the turn that
//! could not be recorded is never reported as completed; once the disk
//! takes the lines again, the file is whole.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::line::{timestamp_now, RolloutItem, RolloutLine};

/// Bytes of unwritten lines kept for a retry; beyond, lines are lost (and
/// the record says so at every sync).
const MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct RolloutWriter {
    path: PathBuf,
    /// `None` until the first line is written (deferred creation).
    out: Option<File>,
    /// The first line of a deferred file.
    pending_first: Option<RolloutItem>,
    ordinal: u64,
    /// Length of the file up to its last complete line.
    len: u64,
    /// Encoded lines not written yet, oldest first.
    backlog: VecDeque<Vec<u8>>,
    backlog_bytes: usize,
    /// Lines dropped because the backlog was full.
    lost: u64,
    /// This writer created the file (a failed first write may have left it).
    created: bool,
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
            len: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            lost: 0,
            created: false,
        }
    }

    /// Opens an existing rollout for appending. A torn last line (no final
    /// newline) is terminated first so the next line starts cleanly; the torn
    /// bytes stay as an unparsable line that readers skip.
    pub fn open_append(path: &Path, next_ordinal: u64) -> std::io::Result<Self> {
        let mut file = OpenOptions::new().read(true).append(true).open(path)?;
        let mut len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                len += 1;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            out: Some(file),
            pending_first: None,
            ordinal: next_ordinal,
            len,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            lost: 0,
            created: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file exists yet.
    pub fn is_open(&self) -> bool {
        self.out.is_some()
    }

    /// Appends a line. An error means the line (and maybe earlier ones) is
    /// not in the file yet; it is retried before the next line.
    pub fn append(&mut self, item: RolloutItem) -> std::io::Result<()> {
        if self.out.is_none() {
            if let Some(first) = self.pending_first.take() {
                self.queue(first)?;
            }
        }
        self.queue(item)?;
        self.write_backlog()
    }

    /// Writes every pending line and waits until the file is on disk (a
    /// deferred file that was never created has nothing to sync). Fails while
    /// a line is missing from the file.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.write_backlog()?;
        if self.lost > 0 {
            return Err(std::io::Error::other(format!(
                "{} lines could not be written and were dropped",
                self.lost
            )));
        }
        match self.out.as_mut() {
            Some(out) => out.sync_data(),
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
        let file = if self.created {
            // Created by an earlier attempt whose first line failed: it holds
            // nothing complete.
            let f = OpenOptions::new().append(true).open(&self.path)?;
            f.set_len(0)?;
            f
        } else {
            OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&self.path)?
        };
        self.created = true;
        self.out = Some(file);
        self.len = 0;
        if let Some(first) = self.pending_first.take() {
            self.backlog.push_front(encode(first, &mut self.ordinal)?);
        }
        Ok(())
    }

    /// Encodes `item` as the next line and queues it.
    fn queue(&mut self, item: RolloutItem) -> std::io::Result<()> {
        let bytes = encode(item, &mut self.ordinal)?;
        if self.backlog_bytes + bytes.len() > MAX_BACKLOG_BYTES {
            self.lost += 1;
            return Err(std::io::Error::other(format!(
                "{} lines could not be written and were dropped",
                self.lost
            )));
        }
        self.backlog_bytes += bytes.len();
        self.backlog.push_back(bytes);
        Ok(())
    }

    /// Writes the backlog in order; on failure cuts the file back to its last
    /// complete line and keeps the rest.
    fn write_backlog(&mut self) -> std::io::Result<()> {
        if self.backlog.is_empty() {
            return Ok(());
        }
        self.ensure_open()?;
        let Some(out) = self.out.as_mut() else {
            return Err(std::io::Error::other("rollout writer not open"));
        };
        while let Some(line) = self.backlog.front() {
            if let Err(e) = out.write_all(line) {
                // Nothing half-written stays behind to glue onto the next line.
                if let Err(cut) = out.set_len(self.len) {
                    tracing::error!(
                        "cannot cut {} back to its last line: {cut}",
                        self.path.display()
                    );
                }
                return Err(e);
            }
            self.len += line.len() as u64;
            self.backlog_bytes -= line.len();
            self.backlog.pop_front();
        }
        Ok(())
    }
}

fn encode(item: RolloutItem, ordinal: &mut u64) -> std::io::Result<Vec<u8>> {
    let line = RolloutLine {
        timestamp: timestamp_now(),
        item,
        ordinal: Some(*ordinal),
    };
    let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    *ordinal += 1;
    Ok(bytes)
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
