//! Starting a role process of the `taskfarm` binary: the flags every role gets and the
//! environment it must not inherit, written once for the lab's farm and the product's tests.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::bail;

/// How to start `taskfarm <role> ...` against one farm.
#[derive(Debug, Clone)]
pub struct RoleCommand {
    /// The `taskfarm` role binary.
    pub binary: PathBuf,
    /// Connect string with the farm's chroot.
    pub connect: String,
    pub session_timeout: Duration,
    /// `--log-format` (`text` or `json`); `None` leaves the role's default.
    pub log_format: Option<&'static str>,
}

impl RoleCommand {
    pub fn new(binary: &Path, connect: &str, session_timeout: Duration) -> Self {
        Self {
            binary: binary.to_path_buf(),
            connect: connect.to_string(),
            session_timeout,
            log_format: None,
        }
    }

    pub fn log_format(mut self, format: &'static str) -> Self {
        self.log_format = Some(format);
        self
    }

    /// `taskfarm --zk .. --session-timeout .. [--log-format ..] <args>`, with stdin closed.
    ///
    /// The variables that would make every process the same role instance (`TASKFARM_ID`) or
    /// bind the same port (`TASKFARM_HEALTH_ADDR`) are removed; `RUST_LOG` defaults to `info`
    /// so that the log lines the harness waits for are written.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--zk")
            .arg(&self.connect)
            .arg("--session-timeout")
            .arg(format!("{}ms", self.session_timeout.as_millis()));
        if let Some(format) = self.log_format {
            cmd.arg("--log-format").arg(format);
        }
        cmd.args(args)
            .env_remove("TASKFARM_ID")
            .env_remove("TASKFARM_HEALTH_ADDR")
            .stdin(Stdio::null());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd
    }
}

/// Where the `taskfarm` role binary is: `$TASKFARM_BIN` if set, else beside the running
/// executable (cargo puts every binary of the workspace in one directory; a test executable
/// sits one level down, in `deps/`).
pub fn role_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("TASKFARM_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("TASKFARM_BIN={} is not a file", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("taskfarm"));
        if dir.file_name() == Some(OsStr::new("deps")) {
            if let Some(up) = dir.parent() {
                candidates.push(up.join("taskfarm"));
            }
        }
    }
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => bail!(
            "the taskfarm role binary is not beside {} (build it with `cargo build -p taskfarm`, \
             same profile, or point TASKFARM_BIN at it)",
            exe.display()
        ),
    }
}
