//! `taskfarm exec-shim`: the small process between a worker and a command it runs.
//!
//! Why it exists: the kernel kills a child when its parent dies only if that child asked
//! (`PR_SET_PDEATHSIG`), and a command's own children never ask. The shim leads the command's
//! process group, asks for a signal when the worker dies, and then kills the whole group, so
//! no process of a task outlives a SIGKILLed worker. Otherwise it only waits: it passes the
//! command's exit on as its own (the same code, or death by the same signal), so the worker
//! reads the command's exit from the shim's.
//!
//! Synchronous on purpose: it runs before any runtime or logging is set up.

use std::ffi::OsString;
use std::process::Command;

use nix::sys::signal::{kill, raise, signal, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getppid, Pid};

/// The signal the kernel sends the shim when its worker dies.
pub const PARENT_DIED: Signal = Signal::SIGUSR1;

/// Exit code when the program cannot be started (as shells use: 127 not found, 126 otherwise).
pub const CANNOT_START_NOT_FOUND: i32 = 127;
pub const CANNOT_START: i32 = 126;

#[derive(Debug, clap::Args)]
pub struct ShimArgs {
    /// Process id of the worker that started us (to notice it died before we could ask for
    /// a signal).
    #[arg(long)]
    pub parent: i32,
    /// The program (a path) and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub argv: Vec<OsString>,
}

/// Runs the command and exits as it did. Never returns.
pub fn run(args: ShimArgs) -> ! {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        PARENT_DIED,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        mask.add(s);
    }
    // Blocked and taken with sigwait below: no handler runs, no signal is lost. (The command
    // gets an empty mask back before it starts: see the spawn below.)
    if mask.thread_block().is_err() {
        fail(CANNOT_START, "cannot block signals");
    }
    if nix::sys::prctl::set_pdeathsig(PARENT_DIED).is_err() {
        fail(CANNOT_START, "cannot ask for the parent-death signal");
    }
    // The worker may have died before the request above took effect.
    if getppid().as_raw() != args.parent {
        kill_group_and_die();
    }
    let mut command = Command::new(&args.argv[0]);
    command.args(&args.argv[1..]);
    // The command must start with no signal blocked: a blocked mask is inherited across exec,
    // and its time limit's SIGTERM would never reach it (found by the exec-kill scenario).
    // SAFETY: pthread_sigmask is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            SigSet::empty().thread_set_mask().map_err(std::io::Error::from)
        });
    }
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                CANNOT_START_NOT_FOUND
            } else {
                CANNOT_START
            };
            fail(code, &format!("cannot run {:?}: {e}", args.argv[0]))
        }
    };
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        match mask.wait() {
            Ok(Signal::SIGCHLD) => match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => die_by(sig),
                _ => {}
            },
            Ok(s) if s == PARENT_DIED => kill_group_and_die(),
            // SIGTERM and the like went to the whole group: the command decides what to do.
            _ => {}
        }
    }
}

/// Kills our process group, the command and everything it started, and us with it.
fn kill_group_and_die() -> ! {
    let _ = kill(Pid::from_raw(0), Signal::SIGKILL);
    std::process::exit(137)
}

/// Ends the shim the way the command ended: by the same signal.
fn die_by(sig: Signal) -> ! {
    // SAFETY: restoring the default disposition installs no handler.
    let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    let mut only = SigSet::empty();
    only.add(sig);
    let _ = only.thread_unblock();
    let _ = raise(sig);
    std::process::exit(128 + sig as i32)
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("taskfarm exec-shim: {message}");
    std::process::exit(code)
}
