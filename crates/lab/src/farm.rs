//! A whole farm on one machine: a real ZooKeeper cluster plus master, worker and client
//! processes of the `taskfarm` role binary, each logging to its own file under a run directory.
//! The demo, the scenarios, the benchmark and the soak are built on it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::Signal;

pub use taskfarm::role::Role;
use taskfarm::zk::{ZkConfig, ZkSession};
use taskfarm_harness::process::ChildGuard;
use taskfarm_harness::RoleCommand;
use taskfarm_harness::ZkCluster;

/// One role process and how to start it again.
#[derive(Debug)]
pub struct RoleProcess {
    pub role: Role,
    pub name: String,
    args: Vec<String>,
    guard: Option<ChildGuard>,
    pub restarts: u32,
    /// SIGSTOP'ed and not yet continued.
    pub frozen: bool,
}

impl RoleProcess {
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().and_then(|g| g.pid())
    }
}

/// The processes of a farm and where their files go.
pub struct LocalFarm {
    pub run_dir: PathBuf,
    pub binary: PathBuf,
    /// Connect string with the farm's chroot.
    pub connect: String,
    pub session_timeout: Duration,
    pub log_format: &'static str,
    procs: BTreeMap<String, RoleProcess>,
}

impl LocalFarm {
    /// A farm in `chroot` on `zk`; process files go to `run_dir`.
    pub fn new(
        zk: &ZkCluster,
        chroot: &str,
        run_dir: &Path,
        binary: &Path,
        session_timeout: Duration,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
        Ok(Self {
            run_dir: run_dir.to_path_buf(),
            binary: binary.to_path_buf(),
            connect: format!("{}{}", zk.connect_string(), chroot),
            session_timeout,
            log_format: "json",
            procs: BTreeMap::new(),
        })
    }

    /// A ZooKeeper config for an observer of this farm (not a role).
    pub fn config(&self) -> anyhow::Result<ZkConfig> {
        ZkConfig::new(
            &self.connect,
            Duration::from_secs(10),
            Duration::from_secs(30),
            &std::env::var("TASKFARM_ZK_SECRET").unwrap_or_default(),
        )
    }

    pub async fn observer(&self) -> anyhow::Result<ZkSession> {
        let s = self.config()?.connect().await?;
        s.ensure_layout().await?;
        Ok(s)
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.log"))
    }

    /// Where a client's stdout (its summary) goes.
    pub fn out_path(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.out"))
    }

    /// Where a client records delivered results.
    pub fn results_path(&self, name: &str) -> PathBuf {
        self.run_dir.join(format!("{name}.jsonl"))
    }

    /// Starts `taskfarm <role> --id <name> <extra...>`.
    pub fn spawn(&mut self, role: Role, name: &str, extra: &[String]) -> anyhow::Result<()> {
        let mut args = vec![role.as_str().to_string(), "--id".to_string(), name.to_string()];
        if role == Role::Client {
            args.push("--results-log".into());
            args.push(self.results_path(name).display().to_string());
            args.push("--json".into());
        }
        args.extend(extra.iter().cloned());
        let mut p = RoleProcess {
            role,
            name: name.to_string(),
            args,
            guard: None,
            restarts: 0,
            frozen: false,
        };
        self.launch(&mut p)?;
        self.procs.insert(name.to_string(), p);
        Ok(())
    }

    fn launch(&self, p: &mut RoleProcess) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(&p.name))?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.out_path(&p.name))?;
        let mut cmd = RoleCommand::new(&self.binary, &self.connect, self.session_timeout)
            .log_format(self.log_format)
            .command(&p.args);
        cmd.stdout(out).stderr(log);
        p.guard = Some(ChildGuard::spawn(p.name.clone(), cmd).with_context(|| format!("starting {}", p.name))?);
        p.frozen = false;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&RoleProcess> {
        self.procs.get(name)
    }

    /// Names of the processes of a role.
    pub fn names(&self, role: Role) -> Vec<String> {
        self.procs
            .values()
            .filter(|p| p.role == role)
            .map(|p| p.name.clone())
            .collect()
    }

    pub fn signal(&mut self, name: &str, signal: Signal) -> anyhow::Result<()> {
        let p = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        let g = p.guard.as_ref().with_context(|| format!("{name} is not running"))?;
        g.signal(signal)?;
        match signal {
            Signal::SIGSTOP => p.frozen = true,
            Signal::SIGCONT => p.frozen = false,
            _ => {}
        }
        Ok(())
    }

    /// Whether the process is alive (reaping it if it exited).
    pub fn is_running(&mut self, name: &str) -> bool {
        let Some(p) = self.procs.get_mut(name) else {
            return false;
        };
        match p.guard.as_mut().map(|g| g.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                p.guard = None;
                false
            }
            None => false,
        }
    }

    /// Exit status of a process that has exited (None while running).
    pub fn exited(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        let p = self.procs.get_mut(name)?;
        p.guard.as_mut()?.try_wait().ok().flatten()
    }

    /// Starts a process again with the same arguments (after it died or was killed).
    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let mut p = self.procs.remove(name).with_context(|| format!("no process {name}"))?;
        if let Some(mut g) = p.guard.take() {
            g.kill();
        }
        p.restarts += 1;
        let r = self.launch(&mut p);
        self.procs.insert(name.to_string(), p);
        r
    }

    /// Waits (blocking, bounded) for a process to exit.
    pub fn wait_exit(&mut self, name: &str, limit: Duration) -> Option<std::process::ExitStatus> {
        let p = self.procs.get_mut(name)?;
        p.guard.as_mut()?.wait_timeout(limit).ok().flatten()
    }

    /// SIGTERM everything (continuing frozen processes first), then SIGKILL what lingers.
    pub fn stop_all(&mut self) {
        for p in self.procs.values_mut() {
            if let Some(g) = &p.guard {
                if p.frozen {
                    let _ = g.signal(Signal::SIGCONT);
                }
                let _ = g.signal(Signal::SIGTERM);
            }
        }
        for p in self.procs.values_mut() {
            if let Some(mut g) = p.guard.take() {
                if g.wait_timeout(Duration::from_secs(5)).ok().flatten().is_none() {
                    g.kill();
                }
            }
        }
    }

    pub fn processes(&self) -> impl Iterator<Item = &RoleProcess> {
        self.procs.values()
    }
}

impl Drop for LocalFarm {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// What the clients' own records say (each client appends one JSON line per delivered result).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Deliveries {
    pub delivered: u64,
    pub ok: u64,
    pub failed: u64,
    /// Task ids delivered more than once.
    pub duplicates: u64,
}

/// The records of a client's results log, `{"task": id, "result": {...}}` each (a line cut
/// short by a kill is skipped).
pub fn read_results(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Reads a client's results log.
pub fn read_deliveries(path: &Path) -> Deliveries {
    let mut seen = std::collections::HashMap::<String, u32>::new();
    let mut d = Deliveries::default();
    for v in read_results(path) {
        d.delivered += 1;
        if v["result"]["ok"].as_bool() == Some(true) {
            d.ok += 1;
        } else {
            d.failed += 1;
        }
        let n = seen
            .entry(v["task"].as_str().unwrap_or_default().to_string())
            .or_default();
        *n += 1;
        if *n == 2 {
            d.duplicates += 1;
        }
    }
    d
}

/// A client's final summary (the JSON line it prints on stdout), if it finished.
pub fn read_summary(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find_map(|l| serde_json::from_str(l).ok())
}

/// A run directory `runs/<kind>-<timestamp>` under the current directory.
pub fn new_run_dir(kind: &str) -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = PathBuf::from("runs").join(format!("{kind}-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
