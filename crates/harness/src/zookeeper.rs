//! Real ZooKeeper servers on loopback: a standalone server or an N-server ensemble, each with
//! its own ports and data directory, for tests, the demo, scenarios and benchmarks.
//!
//! Servers are child processes tied to this process (see [`crate::process`]), killed when the
//! [`ZkCluster`] is dropped, and their directories removed unless the caller chose to keep them.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;

use crate::process::ChildGuard;

/// How to start the servers.
#[derive(Debug, Clone)]
pub struct ZkOptions {
    /// ZooKeeper's tickTime: sessions may last 2..=`max_session_ticks` ticks.
    pub tick_ms: u32,
    /// Largest session timeout a client may negotiate, in ticks.
    pub max_session_ticks: u32,
    /// fsync the transaction log (ZooKeeper's default); off only for throwaway speed.
    pub force_sync: bool,
    /// Where the servers' directories go; a fresh temporary directory when `None`.
    pub base_dir: Option<PathBuf>,
    /// JVM heap cap per server.
    pub heap_mb: u32,
    /// Let the JVM compile hot code with its optimizing compiler (C2), as a production server
    /// does. Off by default: tests start many short-lived servers, and C1 alone starts faster.
    pub full_jit: bool,
    /// Connections one host may hold per server (ZooKeeper's `maxClientCnxns`; 0 = no limit,
    /// as the tests want: they run many roles from one host).
    pub max_client_connections: u32,
    /// Enforce hard quotas (`enforceQuota=true`, ZooKeeper 3.7+): the farm's admission bound
    /// (a quota on its `/data`) refuses creates beyond it. On by default, as in the Helm chart.
    pub enforce_quota: bool,
}

impl Default for ZkOptions {
    fn default() -> Self {
        Self {
            tick_ms: 200,
            max_session_ticks: 200,
            force_sync: true,
            base_dir: None,
            heap_mb: 256,
            full_jit: false,
            max_client_connections: 0,
            enforce_quota: true,
        }
    }
}

/// One server of a cluster.
#[derive(Debug)]
pub struct ZkServer {
    pub myid: u32,
    pub client_port: u16,
    dir: PathBuf,
    process: Option<ChildGuard>,
}

impl ZkServer {
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.pid())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }
}

/// A standalone server or an ensemble.
#[derive(Debug)]
pub struct ZkCluster {
    servers: Vec<ZkServer>,
    options: ZkOptions,
    _tempdir: Option<tempfile::TempDir>,
}

impl ZkCluster {
    /// Starts one standalone server and waits until it serves.
    pub fn standalone(options: ZkOptions) -> anyhow::Result<Self> {
        Self::start(1, options)
    }

    /// Starts an ensemble of `n` servers (3 for a quorum that survives one loss).
    pub fn ensemble(n: usize, options: ZkOptions) -> anyhow::Result<Self> {
        Self::start(n, options)
    }

    /// Starts `n` servers: a standalone server for 1, an ensemble otherwise.
    pub fn with_servers(n: usize, options: ZkOptions) -> anyhow::Result<Self> {
        Self::start(n, options)
    }

    fn start(n: usize, options: ZkOptions) -> anyhow::Result<Self> {
        let java = find_java()?;
        let classpath = find_classpath()?;
        let (tempdir, base) = match &options.base_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (None, dir.clone())
            }
            None => {
                let t = tempfile::Builder::new().prefix("taskfarm-zk-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let ports: Vec<[u16; 3]> = (0..n).map(|_| [free_port(), free_port(), free_port()]).collect();
        let mut servers = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let myid = i as u32 + 1;
            let dir = base.join(format!("zk{myid}"));
            std::fs::create_dir_all(dir.join("data"))?;
            let mut cfg = format!(
                "tickTime={tick}\ninitLimit=20\nsyncLimit=10\ndataDir={data}\nclientPort={port}\n\
                 clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n\
                 maxSessionTimeout={max}\nforceSync={sync}\nmaxClientCnxns={cnxns}\nenforceQuota={quota}\n",
                tick = options.tick_ms,
                data = dir.join("data").display(),
                port = p[0],
                max = options.tick_ms * options.max_session_ticks,
                sync = if options.force_sync { "yes" } else { "no" },
                cnxns = options.max_client_connections,
                quota = options.enforce_quota,
            );
            if n > 1 {
                cfg.push_str("reconfigEnabled=false\nstandaloneEnabled=false\ncnxTimeout=1000\n");
                for (j, q) in ports.iter().enumerate() {
                    cfg.push_str(&format!("server.{}=127.0.0.1:{}:{}\n", j + 1, q[1], q[2]));
                }
                std::fs::write(dir.join("data/myid"), format!("{myid}\n"))?;
            }
            std::fs::write(dir.join("zoo.cfg"), cfg)?;
            servers.push(ZkServer {
                myid,
                client_port: p[0],
                dir,
                process: None,
            });
        }
        let mut cluster = Self {
            servers,
            options,
            _tempdir: tempdir,
        };
        for i in 0..n {
            cluster.launch(i, &java, &classpath)?;
        }
        cluster.wait_serving(Duration::from_secs(60))?;
        Ok(cluster)
    }

    fn launch(&mut self, i: usize, java: &Path, classpath: &str) -> anyhow::Result<()> {
        let n = self.servers.len();
        let (heap, full_jit) = (self.options.heap_mb, self.options.full_jit);
        let server = &mut self.servers[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(server.log_path())?;
        let main_class = if n > 1 {
            "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        } else {
            "org.apache.zookeeper.server.ZooKeeperServerMain"
        };
        let mut cmd = Command::new(java);
        cmd.arg(format!("-Xmx{heap}m"))
            .args(["-XX:+UseSerialGC", "-Xss512k", "-Djava.net.preferIPv4Stack=true"]);
        if !full_jit {
            cmd.arg("-XX:TieredStopAtLevel=1");
        }
        cmd.arg(format!("-Dzookeeper.log.dir={}", server.dir.display()))
            .arg("-cp")
            .arg(classpath)
            .arg(main_class)
            .arg(server.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let guard = ChildGuard::spawn(format!("zk{}", server.myid), cmd)
            .with_context(|| format!("starting ZooKeeper server {} with {}", server.myid, java.display()))?;
        server.process = Some(guard);
        Ok(())
    }

    /// Waits until every running server reports a `Mode:` (it serves clients).
    pub fn wait_serving(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        for i in 0..self.servers.len() {
            if !self.servers[i].is_running() {
                continue;
            }
            loop {
                if self.mode(i).is_some() {
                    break;
                }
                if let Some(p) = self.servers[i].process.as_mut() {
                    if let Some(status) = p.try_wait()? {
                        bail!(
                            "ZooKeeper server {} exited ({status}) during start; see {}",
                            self.servers[i].myid,
                            self.servers[i].log_path().display()
                        );
                    }
                }
                if Instant::now() >= deadline {
                    bail!(
                        "ZooKeeper server {} did not start serving within {limit:?}; see {}",
                        self.servers[i].myid,
                        self.servers[i].log_path().display()
                    );
                }
                // Nothing to await: the server offers no readiness event, so poll `srvr`.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// `host:port,...` of all servers (running or not).
    pub fn connect_string(&self) -> String {
        self.servers.iter().map(|s| s.address()).collect::<Vec<_>>().join(",")
    }

    pub fn servers(&self) -> &[ZkServer] {
        &self.servers
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.options.tick_ms as u64)
    }

    /// Sends a four-letter word to server `i` and returns the answer.
    pub fn four_letter(&self, i: usize, word: &str) -> Option<String> {
        four_letter_word(self.servers[i].client_port, word)
    }

    /// `leader`, `follower` or `standalone` when the server serves; `None` otherwise.
    pub fn mode(&self, i: usize) -> Option<String> {
        let srvr = self.four_letter(i, "srvr")?;
        srvr.lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_string()))
    }

    /// Index of the ensemble's current leader (or the standalone server).
    pub fn leader_index(&self) -> Option<usize> {
        (0..self.servers.len()).find(|&i| matches!(self.mode(i).as_deref(), Some("leader" | "standalone")))
    }

    /// Kills server `i` with `signal` (SIGKILL or SIGTERM) and reaps it.
    pub fn stop_server(&mut self, i: usize, signal: Signal) -> anyhow::Result<()> {
        if let Some(mut p) = self.servers[i].process.take() {
            p.signal(signal)?;
            if p.wait_timeout(Duration::from_secs(10))?.is_none() {
                p.kill();
            }
        }
        Ok(())
    }

    /// Restarts a stopped server (same ports, same data) without waiting for it to serve.
    pub fn start_server(&mut self, i: usize) -> anyhow::Result<()> {
        if self.servers[i].is_running() {
            return Ok(());
        }
        let java = find_java()?;
        let classpath = find_classpath()?;
        self.launch(i, &java, &classpath)
    }

    /// Sum of the `wchp` output lines that name a session (for herd-effect checks).
    pub fn watches_by_path(&self) -> String {
        (0..self.servers.len())
            .filter(|&i| self.servers[i].is_running())
            .filter_map(|i| self.four_letter(i, "wchp"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ZkCluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            if let Some(mut p) = s.process.take() {
                p.kill();
            }
        }
    }
}

/// Sends a four-letter word to a server on loopback.
pub fn four_letter_word(port: u16, word: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out)
}

/// A loopback port nobody in this process has been handed yet.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed = HANDED_OUT.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if port != 0 && handed.lock().unwrap().insert(port) {
            return port;
        }
    }
}

fn find_java() -> anyhow::Result<PathBuf> {
    if let Ok(home) = std::env::var("JAVA_HOME") {
        let p = Path::new(&home).join("bin/java");
        if p.exists() {
            return Ok(p);
        }
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("java");
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("java not found: install Java 17 (e.g. `apt-get install -y default-jre-headless`)")
}

/// The classpath that runs a ZooKeeper server: `$ZOOKEEPER_HOME` (a release tarball's layout)
/// or Debian's `zookeeper` package.
pub fn find_classpath() -> anyhow::Result<String> {
    if let Ok(home) = std::env::var("ZOOKEEPER_HOME") {
        let home = PathBuf::from(home);
        let mut jars = vec![home.join("conf").display().to_string()];
        for dir in [home.clone(), home.join("lib")] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "jar") {
                        jars.push(p.display().to_string());
                    }
                }
            }
        }
        if jars.len() > 1 {
            return Ok(jars.join(":"));
        }
        bail!("ZOOKEEPER_HOME={} holds no jars", home.display());
    }
    let debian = Path::new("/usr/share/java/zookeeper.jar");
    if debian.exists() {
        return Ok(format!("/etc/zookeeper/conf:{}", debian.display()));
    }
    bail!(
        "ZooKeeper not found: install it with `sudo apt-get install -y zookeeper` \
         (Debian/Ubuntu), or set ZOOKEEPER_HOME to an unpacked Apache ZooKeeper release"
    )
}
