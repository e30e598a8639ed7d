//! Waiting for what role processes append to their files (log lines, result lines): inotify
//! wakes the waiter whenever one of the files is written to, so a wait reads the files only
//! when they grew, instead of polling them.

use std::os::fd::{AsFd as _, AsRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Writes to a set of existing files, as inotify reports them.
pub struct Appends {
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
