//! Child processes that never outlive us, and the signals fault injection sends them.
//!
//! Children are spawned from one long-lived thread with `PR_SET_PDEATHSIG = SIGKILL`: the kernel
//! kills them when that thread (which lives as long as the process) dies, so a test run or a demo
//! that is killed leaves no ZooKeeper server or role process behind. (The death signal follows the
//! spawning *thread*, which is why a dedicated thread does the spawning.)

use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

type SpawnRequest = (Command, mpsc::SyncSender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(spawn_with_death_signal(&mut cmd));
                }
                // The sender lives in a static, so this thread only ends with the process.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the child-spawner thread");
        Mutex::new(tx)
    })
}

fn spawn_with_death_signal(cmd: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn()
}

/// Spawns `cmd` so that it is killed when this process dies.
pub fn spawn_tied(cmd: Command) -> io::Result<Child> {
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    spawner()
        .lock()
        .map_err(|_| io::Error::other("spawner poisoned"))?
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// A child process that is killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    pub fn spawn(name: impl Into<String>, cmd: Command) -> io::Result<Self> {
        Ok(Self {
            child: Some(spawn_tied(cmd)?),
            name: name.into(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends a signal (SIGTERM, SIGKILL, SIGSTOP, SIGCONT...).
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        match self.pid() {
            Some(pid) => kill(Pid::from_raw(pid as i32), signal).map_err(io::Error::from),
            None => Err(io::Error::other(format!("{} is not running", self.name))),
        }
    }

    /// Whether the process has exited (reaping it if so).
    pub fn try_wait(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c.try_wait(),
            None => Ok(None),
        }
    }

    /// Waits for exit, at most `limit`; `None` if still running.
    pub fn wait_timeout(&mut self, limit: std::time::Duration) -> io::Result<Option<std::process::ExitStatus>> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            // Polling the exit status: there is no event to await on a child from a sync context.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process must be continued to die promptly on some kernels' accounting.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Takes the std Child out (the caller now owns its lifetime).
    pub fn into_child(mut self) -> Option<Child> {
        self.child.take()
    }

    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
