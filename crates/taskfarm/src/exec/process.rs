//! Running one admitted command: in a process group of its own led by the shim, stdin written,
//! stdout and stderr captured with a bound, the time limit enforced (SIGTERM to the group,
//! SIGKILL after the grace period), and the whole group killed when the run ends or is
//! dropped (a withdrawn task), so no process of a task outlives it.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

use super::capture::Tail;
use super::catalogue::Admitted;
use super::shim;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// A finished run.
#[derive(Debug)]
pub struct Finished {
    pub exit: Exit,
    /// The time limit passed and the group was signalled.
    pub timed_out: bool,
    pub stdout: Tail,
    pub stderr: Tail,
    pub duration: Duration,
}

/// The `PATH` a command gets: its catalogue's, else the worker's, else a plain default.
fn command_path(admitted: &Admitted<'_>) -> OsString {
    admitted
        .spec
        .env
        .get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

/// Finds the program as exec would, so that a missing or non-executable program is a clear
/// error result rather than an exit code of the shim.
pub fn resolve_program(program: &str, path: &OsString, workdir: Option<&Path>) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = match workdir {
            Some(dir) if !program.starts_with('/') => dir.join(program),
            _ => PathBuf::from(program),
        };
        return match std::fs::metadata(&p) {
            Err(e) => Err(format!("program {program:?} cannot be used: {e}")),
            Ok(_) if !executable(&p) => Err(format!("program {program:?} is not an executable file")),
            Ok(_) => Ok(p),
        };
    }
    let mut found_not_executable = false;
    for dir in std::env::split_paths(path) {
        let candidate = dir.join(program);
        if executable(&candidate) {
            return Ok(candidate);
        }
        found_not_executable |= candidate.exists();
    }
    if found_not_executable {
        Err(format!("program {program:?} is on PATH but not executable"))
    } else {
        Err(format!(
            "program {program:?} not found on this worker (PATH={})",
            path.to_string_lossy()
        ))
    }
}

/// Kills the process group on drop: an abandoned run (its task withdrawn, its worker
/// stopping) takes every process it started with it.
struct GroupGuard(Pid);

impl GroupGuard {
    fn signal(&self, signal: Signal) {
        // ESRCH: the group is already empty.
        let _ = kill(Pid::from_raw(-self.0.as_raw()), signal);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Runs an admitted command. `Err` means it could not be started (the reason is the task's
/// error result); a command that ran and failed is an `Ok` with its exit.
pub async fn run(admitted: &Admitted<'_>, stdin: Option<&str>) -> Result<Finished, String> {
    let spec = admitted.spec;
    let path = command_path(admitted);
    let program = resolve_program(&admitted.argv[0], &path, spec.workdir.as_deref())?;
    // The shim is this very binary. Through /proc/self/exe, the kernel runs the file the worker
    // was started from even when it has been replaced or removed on disk since (an upgrade, a
    // rebuild): the worker never starts a shim of another version, nor fails to find one.
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.arg("exec-shim")
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--")
        .arg(&program)
        .args(&admitted.argv[1..])
        // The worker's environment may hold the ZooKeeper secret: the command gets only what
        // the catalogue declares, and a PATH.
        .env_clear()
        .env("PATH", &path)
        .envs(&spec.env)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.workdir {
        cmd.current_dir(dir);
    }
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(shim::PARENT_DIED).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start the command: {e}"))?;
    let group = GroupGuard(Pid::from_raw(child.id().unwrap_or(0) as i32));
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
        let bytes = text.as_bytes().to_vec();
        // A command that does not read its stdin closes the pipe: not an error of the task.
        tokio::spawn(async move {
            let _ = pipe.write_all(&bytes).await;
        });
    }
    let stdout = read_tail(child.stdout.take(), spec.max_output);
    let stderr = read_tail(child.stderr.take(), spec.max_output);

    let mut timed_out = false;
    let status = tokio::select! {
        s = child.wait() => s,
        () = tokio::time::sleep(admitted.timeout) => {
            timed_out = true;
            group.signal(Signal::SIGTERM);
            tokio::select! {
                s = child.wait() => s,
                () = tokio::time::sleep(spec.grace) => {
                    group.signal(Signal::SIGKILL);
                    child.wait().await
                }
            }
        }
    }
    .map_err(|e| format!("cannot wait for the command: {e}"))?;
    let duration = started.elapsed();
    // The command is over: whatever it left running goes now (and stops holding the pipes).
    drop(group);
    let exit = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(sig),
        (None, None) => Exit::Code(-1),
    };
    let (mut stdout, mut stderr) = (join_tail(stdout).await, join_tail(stderr).await);
    // Both streams share the bound: each keeps up to half, and what one leaves the other may use.
    let total = spec.max_output;
    let err_keep = stderr.len().min((total / 2).max(total.saturating_sub(stdout.len())));
    stderr.shrink_to(err_keep);
    stdout.shrink_to(total - err_keep);
    Ok(Finished {
        exit,
        timed_out,
        stdout,
        stderr,
        duration,
    })
}

/// Reads a pipe to its end, keeping the last `limit` bytes.
fn read_tail<R: AsyncRead + Unpin + Send + 'static>(pipe: Option<R>, limit: usize) -> JoinHandle<Tail> {
    tokio::spawn(async move {
        let mut tail = Tail::new(limit);
        if let Some(mut pipe) = pipe {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.push(&buf[..n]);
            }
        }
        tail
    })
}

async fn join_tail(handle: JoinHandle<Tail>) -> Tail {
    handle.await.unwrap_or_else(|_| Tail::new(0))
}
