//! Reading what the role processes append to their files while they run: JSON log lines, result
//! lines, and a wake-up (inotify) whenever one of the files is written to, so that a wait for
//! a log line reads the files only when they grew.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::fd::{AsFd as _, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

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

/// Writes to a set of existing files, as inotify reports them.
pub(super) struct Appends {
    fd: AsyncFd<InotifyFd>,
}

/// tokio's `AsyncFd` asks for `AsRawFd`, nix's `Inotify` offers `AsFd`.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Appends {
    /// Watches `paths` from now on: a write after this call is never missed.
    pub fn watch<'a>(paths: impl IntoIterator<Item = &'a Path>) -> anyhow::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        for path in paths {
            inotify.add_watch(path, AddWatchFlags::IN_MODIFY)?;
        }
        // SAFETY: the descriptor is the one `Inotify` owns; it moves into the `AsyncFd` with
        // it, so it stays open and the same for as long as the `AsyncFd` lives.
        let fd = unsafe { AsyncFd::register_with_interest(InotifyFd(inotify), Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Self { fd })
    }

    /// Until one of the files was written to since the last call.
    async fn next(&self) -> std::io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(read) => return read.map(drop),
                // Nothing to read after all (readiness cleared): wait again.
                Err(_would_block) => continue,
            }
        }
    }

    /// Runs `find` now and after every write to the files until it finds something; `None`
    /// after `limit`.
    pub async fn first<T>(&self, limit: Duration, mut find: impl FnMut() -> Option<T>) -> Option<T> {
        let search = async {
            loop {
                if let Some(x) = find() {
                    return Some(x);
                }
                self.next().await.ok()?;
            }
        };
        tokio::time::timeout(limit, search).await.ok().flatten()
    }
}
