//! Reading what the role processes append to their files while they run: JSON log lines and
//! result lines (the wake-up when one of the files is written to is the harness's `Appends`).

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

/// New JSON lines of a log file since the last call.
pub(super) struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn lines(&mut self) -> Vec<serde_json::Value> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map_or(0, |m| m.len());
        if len < self.offset {
            // Truncated (should not happen: logs are appended to across restarts).
            self.offset = 0;
        }
        let mut buf = String::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_string(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&buf);
        let Some(cut) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=cut).collect();
        complete.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Counts the lines of a growing file, reading only what was appended.
pub(super) struct LineCounter {
    path: PathBuf,
    offset: u64,
    lines: u64,
}

impl LineCounter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            lines: 0,
        }
    }

    pub fn count(&mut self) -> u64 {
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(self.offset)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                self.offset += buf.len() as u64;
                self.lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
            }
        }
        self.lines
    }
}
