//! Append-only rollout writer. Lines are buffered and written by
//! [`RolloutWriter::append`]; [`RolloutWriter::sync`] flushes and fsyncs.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::line::{timestamp_now, RolloutItem, RolloutLine};

#[derive(Debug)]
pub struct RolloutWriter {
    path: PathBuf,
    out: BufWriter<File>,
    ordinal: u64,
}

impl RolloutWriter {
    /// Creates a new rollout file (and its directories).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            ordinal: 0,
        })
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
            out: BufWriter::new(file),
            ordinal: next_ordinal,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, item: RolloutItem) -> std::io::Result<()> {
        let line = RolloutLine {
            timestamp: timestamp_now(),
            item,
            ordinal: Some(self.ordinal),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        self.out.write_all(&bytes)?;
        self.ordinal += 1;
        Ok(())
    }

    /// Writes everything buffered and waits until it is on disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}
