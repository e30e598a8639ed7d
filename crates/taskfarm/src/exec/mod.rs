//! The `exec` task kind: a command the operator declared in the worker's catalogue, run as
//! its own process group with a time limit and bounded output (PROTOCOL.md §3, "exec").
//!
//! - [`catalogue`]: the declared commands and what a task may vary (pure);
//! - [`capture`]: the bounded output tails (pure);
//! - [`process`]: spawning, time limit, killing the group;
//! - [`shim`]: the process that leads the group and takes it down with a dead worker.

pub mod capture;
pub mod catalogue;
pub mod process;
pub mod shim;

use serde::{Deserialize, Serialize};

pub use catalogue::Catalogue;
use process::{Exit, Finished};

use crate::protocol::MAX_RESULT_BYTES;
use crate::task::TaskFailure;

/// Room left in a result for the fields around the output.
const RESULT_MARGIN: usize = 1024;

/// What an `exec` task's result value holds (success or failure alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExecOutput {
    /// The exit code, when the command exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed it (e.g. `SIGKILL`), when it was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Its time limit passed (the group got SIGTERM, then SIGKILL after the grace period).
    pub timed_out: bool,
    /// The tail of stdout (UTF-8; invalid bytes replaced by U+FFFD).
    pub stdout: String,
    /// The tail of stderr.
    pub stderr: String,
    /// Bytes of stdout before the kept tail.
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
    /// Wall-clock time from start to exit.
    pub duration_ms: u64,
    /// The time limit that applied.
    pub timeout_ms: u64,
}

impl ExecOutput {
    /// The error of a failed run, `None` for a success (exit 0 in time).
    pub fn error(&self) -> Option<String> {
        if self.timed_out {
            return Some(format!("timed out after {} ms", self.timeout_ms));
        }
        match (self.exit_code, &self.signal) {
            (Some(0), _) => None,
            (Some(code), _) => Some(format!("exited with status {code}")),
            (None, Some(sig)) => Some(format!("killed by {sig}")),
            (None, None) => Some("ended in an unknown way".into()),
        }
    }

    /// The exit status a shell would report: the code, 128 + a signal, 124 for a timeout
    /// (as `timeout(1)` does).
    pub fn shell_status(&self) -> i32 {
        if self.timed_out {
            return 124;
        }
        match (self.exit_code, &self.signal) {
            (Some(code), _) => code,
            (None, Some(sig)) => sig
                .parse::<nix::sys::signal::Signal>()
                .map(|s| 128 + s as i32)
                .unwrap_or(128),
            (None, None) => 1,
        }
    }
}

/// Builds the result value of a finished run, cutting the kept tails further when the value
/// would not fit a result znode (JSON escaping can make output grow up to six times).
pub fn output_of(mut run: Finished, timeout_ms: u64) -> ExecOutput {
    loop {
        let out = ExecOutput {
            exit_code: match run.exit {
                Exit::Code(c) => Some(c),
                Exit::Signal(_) => None,
            },
            signal: match run.exit {
                Exit::Signal(s) => Some(
                    nix::sys::signal::Signal::try_from(s)
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|_| format!("signal {s}")),
                ),
                Exit::Code(_) => None,
            },
            timed_out: run.timed_out,
            stdout: run.stdout.text(),
            stderr: run.stderr.text(),
            stdout_dropped: run.stdout.dropped(),
            stderr_dropped: run.stderr.dropped(),
            duration_ms: run.duration.as_millis() as u64,
            timeout_ms,
        };
        let size = serde_json::to_vec(&out).map(|v| v.len()).unwrap_or(usize::MAX);
        if size <= MAX_RESULT_BYTES - RESULT_MARGIN || (run.stdout.is_empty() && run.stderr.is_empty()) {
            return out;
        }
        // Halve the longer tail and try again: a few rounds at most.
        if run.stdout.len() >= run.stderr.len() {
            let n = run.stdout.len() / 2;
            run.stdout.shrink_to(n);
        } else {
            let n = run.stderr.len() / 2;
            run.stderr.shrink_to(n);
        }
    }
}

/// Runs an `exec` task: admitted by the catalogue, or refused at once with the reason.
pub async fn run(
    catalogue: &Catalogue,
    command: &str,
    args: &[String],
    stdin: Option<&str>,
    timeout_ms: Option<u64>,
) -> Result<serde_json::Value, TaskFailure> {
    let admitted = catalogue
        .admit(command, args, stdin.is_some(), timeout_ms)
        .map_err(|e| TaskFailure::from(format!("refused: {e}")))?;
    let timeout_ms = admitted.timeout.as_millis() as u64;
    let finished = process::run(&admitted, stdin)
        .await
        .map_err(|e| TaskFailure::from(format!("cannot run {command:?}: {e}")))?;
    let output = output_of(finished, timeout_ms);
    let value = serde_json::to_value(&output).expect("exec output serializes");
    match output.error() {
        None => Ok(value),
        Some(error) => Err(TaskFailure {
            error: format!("command {command:?} {error}"),
            value: Some(value),
        }),
    }
}

/// `taskfarm copy-self DEST`: copies the running binary to `dest`, executable. An init
/// container runs it to put the role binary into a volume shared with a worker container of
/// any image (the image needs no shell or `cp`).
pub fn copy_self(dest: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let me = std::env::current_exe()?;
    // Write beside, then rename: a reader never sees a half-written binary.
    let partial = dest.with_extension("partial");
    std::fs::copy(&me, &partial)
        .map_err(|e| anyhow::anyhow!("cannot copy {} to {}: {e}", me.display(), partial.display()))?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, dest).map_err(|e| anyhow::anyhow!("cannot move the copy to {}: {e}", dest.display()))?;
    println!("copied {} to {}", me.display(), dest.display());
    Ok(())
}
