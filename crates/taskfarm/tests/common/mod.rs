//! Shared test support: real ZooKeeper servers, role processes, and waiting on events.
//!
//! Every wait here is for an event (a stdout line, a watch notification, a process exit),
//! bounded by a generous limit that only turns a hang into a failure; no test asserts speed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use taskfarm::zk::{ZkConfig, ZkSession};
use taskfarm_harness::process::ChildGuard;
use taskfarm_harness::RoleCommand;
use taskfarm_harness::{ZkCluster, ZkOptions};
use tokio::sync::mpsc;

/// Upper bound for any single wait: reaching it is a failure, never a measurement.
pub const LIMIT: Duration = Duration::from_secs(90);

/// The tests' tickTime is 200 ms, so a role may ask for sessions as short as 400 ms.
pub fn zk_options() -> ZkOptions {
    ZkOptions {
        base_dir: Some(test_dir("zk")),
        ..ZkOptions::default()
    }
}

/// A directory under the target dir for this test process.
pub fn test_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One standalone server shared by the tests of a test binary (each test uses its own chroot).
/// It dies with the test process (see taskfarm_harness::process).
pub fn shared_standalone() -> &'static ZkCluster {
    static ZK: OnceLock<ZkCluster> = OnceLock::new();
    ZK.get_or_init(|| {
        ZkCluster::standalone(zk_options()).expect("start ZooKeeper (is the zookeeper package installed?)")
    })
}

/// A farm under its own chroot, with helpers to run role processes against it.
pub struct Farm {
    pub hosts: String,
    pub chroot: String,
    pub session_timeout: Duration,
    pub dir: PathBuf,
}

impl Farm {
    pub fn new(hosts: &str, name: &str, session_timeout: Duration) -> Self {
        let chroot = format!("/{name}-{:08x}", rand::random::<u32>());
        Self {
            hosts: hosts.to_string(),
            chroot,
            session_timeout,
            dir: test_dir(name),
        }
    }

    pub fn connect_string(&self) -> String {
        format!("{}{}", self.hosts, self.chroot)
    }

    pub fn config(&self) -> ZkConfig {
        ZkConfig::new(
            &self.connect_string(),
            Duration::from_secs(10),
            Duration::from_secs(30),
            "",
        )
        .unwrap()
    }

    /// A session of the test's own, to observe (and tamper with) the farm.
    pub async fn observer(&self) -> ZkSession {
        let s = self.config().connect().await.expect("observer connects");
        s.ensure_layout().await.unwrap();
        s
    }

    /// Starts `taskfarm <args>` against this farm; stdout is captured line by line, stderr goes
    /// to `<dir>/<name>.log`.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        self.spawn_binary(Path::new(env!("CARGO_BIN_EXE_taskfarm")), name, args)
    }

    /// Like [`Farm::spawn`], from another copy of the role binary.
    pub fn spawn_binary(&self, binary: &Path, name: &str, args: &[&str]) -> Proc {
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut cmd = RoleCommand::new(binary, &self.connect_string(), self.session_timeout).command(args);
        cmd.stdout(Stdio::piped()).stderr(log);
        let mut guard = ChildGuard::spawn(name, cmd).expect("spawn taskfarm");
        let stdout = guard.child_mut().unwrap().stdout.take().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            guard,
            lines: rx,
            seen: Vec::new(),
            log_path,
        }
    }

    pub fn master(&self, id: &str) -> Proc {
        self.spawn(id, &["master", "--id", id])
    }

    pub fn worker(&self, id: &str) -> Proc {
        self.spawn(id, &["worker", "--id", id])
    }

    /// A client submitting `tasks` copies of `task`, recording results in `<dir>/<id>.jsonl`.
    pub fn client(&self, id: &str, tasks: u64, concurrency: u64, task: &str) -> Proc {
        let results = self.results_path(id);
        self.spawn(
            id,
            &[
                "client",
                "--id",
                id,
                "--tasks",
                &tasks.to_string(),
                "--concurrency",
                &concurrency.to_string(),
                "--task",
                task,
                "--json",
                "--results-log",
                results.to_str().unwrap(),
            ],
        )
    }

    pub fn results_path(&self, client: &str) -> PathBuf {
        self.dir.join(format!("{client}.jsonl"))
    }

    /// The results a client delivered, one JSON object per line.
    pub fn results(&self, client: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.results_path(client))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A running `taskfarm` process.
pub struct Proc {
    pub guard: ChildGuard,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
    pub log_path: PathBuf,
}

impl Proc {
    /// Waits for the next stdout line satisfying `pred` (lines before it are kept in `seen`).
    pub async fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if pred(&line) {
                    return Some(line);
                }
            }
            None
        };
        match tokio::time::timeout(LIMIT, wait).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "{}: stdout closed before {what}; seen {:?}; log:\n{}",
                self.guard.name(),
                self.seen,
                self.log()
            ),
            Err(_) => panic!(
                "{}: no {what} within {LIMIT:?}; seen {:?}; log:\n{}",
                self.guard.name(),
                self.seen,
                self.log()
            ),
        }
    }

    /// Lines already printed, without waiting.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    pub fn signal(&self, signal: Signal) {
        self.guard
            .signal(signal)
            .unwrap_or_else(|e| panic!("signal {signal} to {}: {e}", self.guard.name()));
    }

    /// Waits for the process to exit.
    pub async fn exit(&mut self) -> ExitStatus {
        let child = self.guard.child_mut().expect("running");
        let pid = child.id();
        // Reaping is blocking; do it on a blocking thread by pid.
        let status = tokio::time::timeout(LIMIT, tokio::task::spawn_blocking(move || wait_pid(pid)))
            .await
            .unwrap_or_else(|_| panic!("process {pid} did not exit within {LIMIT:?}"))
            .unwrap();
        let _ = self.guard.try_wait();
        status
    }

    /// The process's stdout after it exits, as one JSON value (the client's `--json` summary).
    pub async fn json_summary(&mut self) -> serde_json::Value {
        let line = self.expect_line("a JSON summary", |l| l.starts_with('{')).await;
        serde_json::from_str(&line).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the process's log holds `needle` (woken by each write to it, not polled).
    pub async fn wait_log(&self, needle: &str) {
        let appends = taskfarm_harness::Appends::watch([self.log_path.as_path()]).unwrap();
        if appends
            .first(LIMIT, || self.log().contains(needle).then_some(()))
            .await
            .is_none()
        {
            panic!("no {needle:?} in the log within {LIMIT:?}:\n{}", self.log());
        }
    }
}

fn wait_pid(pid: u32) -> ExitStatus {
    use nix::sys::wait::{waitpid, WaitStatus};
    use std::os::unix::process::ExitStatusExt as _;
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid as i32), None) {
            Ok(WaitStatus::Exited(_, code)) => return ExitStatus::from_raw(code << 8),
            Ok(WaitStatus::Signaled(_, sig, _)) => return ExitStatus::from_raw(sig as i32),
            Ok(_) => continue,
            Err(e) => panic!("waitpid {pid}: {e}"),
        }
    }
}

/// Waits until the children of `path` satisfy `check` (re-checked at every change).
pub async fn wait_children<T>(s: &ZkSession, path: &str, what: &str, check: impl FnMut(&[String]) -> Option<T>) -> T {
    taskfarm::waits::children(s, path, LIMIT, what, check)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Waits until the data of `path` (`None` when absent) satisfies `check`.
pub async fn wait_data<T>(s: &ZkSession, path: &str, what: &str, check: impl FnMut(Option<&[u8]>) -> Option<T>) -> T {
    taskfarm::waits::data(s, path, LIMIT, what, check)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Election candidates under /master, lowest sequence first, as (znode name, candidate id).
pub async fn candidates(s: &ZkSession) -> Vec<(String, String)> {
    let all = taskfarm::election::candidates(s).await.unwrap();
    all.into_iter().map(|(name, info)| (name, info.id)).collect()
}

/// The assignment a worker's znode carries now (None when free or absent).
pub fn assignment_of(data: Option<&[u8]>) -> Option<taskfarm::protocol::Assignment> {
    let record = taskfarm::protocol::WorkerRecord::parse(data?).ok()?;
    record.assignment().ok().flatten()
}

/// Pids of live processes whose command line contains `needle` (read from /proc; a zombie has
/// an empty command line and does not count).
pub fn processes_with(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) && pid != std::process::id() as i32 {
            pids.push(pid);
        }
    }
    pids
}

/// Waits until process `pid` (any process, not only a child) has exited: on a pidfd, which
/// becomes readable when the process ends (an event, not a poll).
pub async fn wait_gone(pid: i32, what: &str) {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new file descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return; // ESRCH: already gone.
    }
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open for as long as it lives.
    let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.to_string())
        .unwrap();
    let _ready = tokio::time::timeout(LIMIT, fd.readable())
        .await
        .unwrap_or_else(|_| panic!("{what} (pid {pid}) still runs after {LIMIT:?}"))
        .unwrap();
}

/// `GET path` on `addr` over HTTP/1.0: the status code and the body (None while nothing answers).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
