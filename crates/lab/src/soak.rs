//! The chaos soak (issue 7): a 3-server ensemble, masters, workers and clients as processes,
//! a fault injector, and an independent checker; see docs/SOAK.md.
//!
//! The run is a sequence of fault episodes. Each episode injects one fault chosen at random
//! (seeded): SIGKILL, SIGTERM, or SIGSTOP shorter / longer than the session timeout, of a
//! master (the leader half of the time), a worker or a client; or the death of one ZooKeeper
//! server (never two: it is restarted before the next episode). Dead roles are restarted
//! (a client as a new incarnation with a new name). The episode ends when the farm has
//! completed a task submitted after the fault (its recovery time) and every follow-up
//! (SIGCONT, restart) has happened; the next one starts a few seconds later.
//!
//! The checker (its own ZooKeeper session, a persistent recursive watch on the farm's root)
//! reads back every master-made write with its zxid and epoch, and every completion; the
//! invariants themselves are pure functions in [`check`].

pub mod check;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures::stream::{FuturesUnordered, StreamExt as _};
use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::watch;
use zookeeper_client::{AddWatchMode, EventType, SessionState};

use self::check::{FaultRecord, FencedWrite, Incarnation, Progress, Report};
use crate::farm::{LocalFarm, Role};
use taskfarm_harness::{ZkCluster, ZkOptions};
use taskfarm::protocol::{now_ms, paths, FarmStatus, TaskRecord, TaskState, WorkerRecord};
use taskfarm::zk::{is_terminal, ZkConfig};

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Inject faults for this long, then drain (default 2m when --tasks is not given).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Inject faults until this many results have been delivered, then drain.
    #[arg(long)]
    pub tasks: Option<u64>,
    /// Seed of the fault injector's choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Masters (one leads, the others wait).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..=5))]
    pub masters: u64,
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..=32))]
    pub workers: u64,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..=32))]
    pub clients: u64,
    /// Tasks per client incarnation (a client that finishes is replaced by a new one).
    #[arg(long, default_value_t = 300)]
    pub batch: u64,
    /// Tasks each client keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u64,
    /// The task every client submits.
    #[arg(long, default_value = r#"{"kind":"sleep","ms":10}"#)]
    pub task: String,
    /// Session timeout of the roles (the servers' tickTime is 200 ms: 400ms..40s).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub role_session_timeout: Duration,
    /// Mean pause between fault episodes (each pause is 0.5x..1.5x this).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub fault_interval: Duration,
    /// Progress must resume within the session timeout plus this margin after every fault.
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    pub recovery_margin: Duration,
    /// Where logs, results and the report go (default: runs/soak-<time>-<pid>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
}

/// What the checker's session has seen so far.
#[derive(Debug, Default)]
struct Observed {
    writes: Vec<FencedWrite>,
    progress: Vec<Progress>,
    /// (task, czxid, mzxid) of every result read (`/data/<task>` at version 1 or more).
    dones: Vec<(String, i64, i64)>,
    leader: Option<String>,
    events: u64,
    sessions: u64,
}

/// The independent checker: its own session, a persistent recursive watch on the farm's root,
/// and a read of every created or changed task, worker and status znode.
async fn checker(config: ZkConfig, seen: Arc<Mutex<Observed>>, mut stop: watch::Receiver<bool>) {
    loop {
        let session = tokio::select! {
            s = config.connect() => match s {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "checker cannot connect; retrying");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        seen.lock().unwrap().sessions += 1;
        let mut events = match session.client.watch("/", AddWatchMode::PersistentRecursive).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "checker cannot watch; reconnecting");
                continue;
            }
        };
        let mut reads = FuturesUnordered::new();
        loop {
            tokio::select! {
                event = events.changed() => {
                    if event.event_type == EventType::Session {
                        // Persistent-watch events can be lost across a reconnection
                        // (ZOOKEEPER-4698), and zookeeper-client 0.11.2 does not re-register
                        // persistent watches at all after one: start afresh with a new session.
                        if is_terminal(event.session_state) || event.session_state == SessionState::Disconnected {
                            break;
                        }
                        continue;
                    }
                    if !matches!(event.event_type, EventType::NodeCreated | EventType::NodeDataChanged) {
                        continue;
                    }
                    let interesting = event.path == paths::STATUS
                        || event.path.starts_with("/tasks/")
                        || event.path.starts_with("/workers/")
                        || (event.path.starts_with("/data/") && event.event_type == EventType::NodeDataChanged);
                    if interesting {
                        let client = session.client.clone();
                        reads.push(async move {
                            let r = tokio::time::timeout(Duration::from_secs(10), client.get_data(&event.path)).await;
                            (event.path, r, now_ms())
                        });
                    }
                }
                Some((path, read, at)) = reads.next() => {
                    if let Ok(Ok((data, stat))) = read {
                        record(&seen, &path, &data, &stat, at);
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}

fn record(seen: &Mutex<Observed>, path: &str, data: &[u8], stat: &zookeeper_client::Stat, at: u64) {
    let mut o = seen.lock().unwrap();
    o.events += 1;
    if path == paths::STATUS {
        if let Ok(s) = FarmStatus::parse(data) {
            o.leader = Some(s.leader.clone());
            o.writes.push(FencedWrite {
                zxid: stat.mzxid,
                epoch: s.epoch,
                path: path.to_string(),
            });
        }
    } else if path.starts_with("/tasks/") {
        if let Ok(TaskRecord {
            state: TaskState::Assigned,
            epoch: Some(epoch),
            ..
        }) = TaskRecord::parse(data)
        {
            o.writes.push(FencedWrite {
                zxid: stat.mzxid,
                epoch,
                path: path.to_string(),
            });
        }
    } else if let Some(task) = path.strip_prefix("/data/") {
        // Version 0 is the payload; a commit (or a poison failure) writes the result.
        if stat.version >= 1 {
            o.progress.push(Progress {
                observed_ms: at,
                created_ms: stat.ctime.max(0) as u64,
            });
            o.dones.push((task.to_string(), stat.czxid, stat.mzxid));
        }
    } else if path.starts_with("/workers/") {
        if let Ok(Some(a)) = WorkerRecord::parse(data).map(|w| w.assignment().ok().flatten()) {
            o.writes.push(FencedWrite {
                zxid: stat.mzxid,
                epoch: a.epoch,
                path: path.to_string(),
            });
        }
    }
}

/// What the injector can do to a role process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blow {
    Kill,
    Term,
    StopShort,
    StopLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Role(Role, Blow),
    ZkServer,
}

impl Fault {
    fn label(self) -> String {
        match self {
            Fault::ZkServer => "ZooKeeper server death".into(),
            Fault::Role(role, blow) => {
                let b = match blow {
                    Blow::Kill => "SIGKILL",
                    Blow::Term => "SIGTERM",
                    Blow::StopShort => "SIGSTOP<session",
                    Blow::StopLong => "SIGSTOP>session",
                };
                format!("{b} {}", role.as_str())
            }
        }
    }
}

/// Picks a fault: each of the 12 role faults as likely as the others; a ZooKeeper server death
/// as likely as any role's faults of one kind.
fn pick_fault(rng: &mut StdRng) -> Fault {
    let n = rng.random_range(0..15u32);
    if n >= 12 {
        return Fault::ZkServer;
    }
    let role = [Role::Master, Role::Worker, Role::Client][(n / 4) as usize];
    let blow = [Blow::Kill, Blow::Term, Blow::StopShort, Blow::StopLong][(n % 4) as usize];
    Fault::Role(role, blow)
}

/// Something to do later, because of a fault.
#[derive(Debug, Clone)]
enum FollowUp {
    Cont(String),
    Restart(String),
    ZkStart(usize),
}

/// A client slot: one incarnation at a time.
struct Slot {
    index: u64,
    generation: u64,
    name: String,
    interrupted: bool,
}

struct Soak {
    args: SoakArgs,
    farm: LocalFarm,
    zk: ZkCluster,
    rng: StdRng,
    seen: Arc<Mutex<Observed>>,
    slots: Vec<Slot>,
    finished: Vec<Incarnation>,
    followups: Vec<(Instant, FollowUp)>,
    /// Roles killed by the injector and not yet restarted (their exit is expected).
    awaiting_restart: HashSet<String>,
    faults: Vec<FaultRecord>,
    /// SIGSTOP'ed processes: (name, stop time, SIGCONT time once sent).
    freezes: Vec<(String, u64, Option<u64>)>,
    violations: Vec<String>,
    started: Instant,
    seed: u64,
}

impl Soak {
    fn client_args(&self) -> Vec<String> {
        vec![
            "--tasks".into(),
            self.args.batch.to_string(),
            "--concurrency".into(),
            self.args.concurrency.to_string(),
            "--task".into(),
            self.args.task.clone(),
        ]
    }

    fn spawn_incarnation(&mut self, slot: usize) -> anyhow::Result<()> {
        let s = &mut self.slots[slot];
        s.generation += 1;
        s.name = format!("c{}i{}", s.index, s.generation);
        s.interrupted = false;
        let name = s.name.clone();
        let args = self.client_args();
        self.farm.spawn(Role::Client, &name, &args)
    }

    fn incarnation(&self, slot: &Slot, exit_ok: Option<bool>) -> Incarnation {
        let text = std::fs::read_to_string(self.farm.results_path(&slot.name)).unwrap_or_default();
        Incarnation {
            name: slot.name.clone(),
            batch: self.args.batch,
            interrupted: slot.interrupted,
            exit_ok,
            summary: crate::farm::read_summary(&self.farm.out_path(&slot.name)),
            deliveries: check::parse_results(&text),
        }
    }

    fn delivered(&self) -> u64 {
        let done: u64 = self.finished.iter().map(|i| i.deliveries.len() as u64).sum();
        let running: u64 = self
            .slots
            .iter()
            .map(|s| {
                std::fs::read_to_string(self.farm.results_path(&s.name))
                    .map(|t| t.lines().count() as u64)
                    .unwrap_or(0)
            })
            .sum();
        done + running
    }

    fn elapsed(&self) -> String {
        format!("[{:7.1}s]", self.started.elapsed().as_secs_f64())
    }

    /// Restarts what died, notes what died unasked, replaces finished clients.
    fn supervise(&mut self, replace_clients: bool) -> anyhow::Result<()> {
        let mut names = self.farm.names(Role::Master);
        names.extend(self.farm.names(Role::Worker));
        for name in names {
            if self.awaiting_restart.contains(&name) {
                continue;
            }
            if let Some(status) = self.farm.exited(&name) {
                let v = format!("{name} exited on its own ({status}); restarting it");
                println!("{} VIOLATION {v}", self.elapsed());
                self.violations.push(v);
                self.farm.restart(&name)?;
            }
        }
        for i in 0..self.slots.len() {
            let name = self.slots[i].name.clone();
            if let Some(status) = self.farm.exited(&name) {
                let inc = self.incarnation(&self.slots[i], Some(status.success()));
                self.finished.push(inc);
                if replace_clients {
                    self.spawn_incarnation(i)?;
                } else {
                    self.slots[i].name.clear();
                }
            }
        }
        self.slots.retain(|s| !s.name.is_empty());
        Ok(())
    }

    fn target(&mut self, role: Role) -> String {
        let names = self.farm.names(role);
        if role == Role::Client {
            let i = self.rng.random_range(0..self.slots.len());
            return self.slots[i].name.clone();
        }
        if role == Role::Master && self.rng.random_bool(0.5) {
            if let Some(leader) = self.seen.lock().unwrap().leader.clone() {
                if names.contains(&leader) {
                    return leader;
                }
            }
        }
        names[self.rng.random_range(0..names.len())].clone()
    }

    fn later(&mut self, min_ms: u64, max_ms: u64, what: FollowUp) {
        let at = Instant::now() + Duration::from_millis(self.rng.random_range(min_ms..=max_ms));
        self.followups.push((at, what));
    }

    /// Injects one fault; returns its record (recovery still unknown).
    fn inject(&mut self, fault: Fault) -> anyhow::Result<FaultRecord> {
        let at_ms = now_ms();
        let session = self.args.role_session_timeout.as_millis() as u64;
        let target = match fault {
            Fault::ZkServer => {
                let i = self.rng.random_range(0..self.zk.len());
                let mode = self.zk.mode(i).unwrap_or_else(|| "?".into());
                self.zk.stop_server(i, Signal::SIGKILL)?;
                self.later(2_000, 8_000, FollowUp::ZkStart(i));
                format!("zk{} ({mode})", i + 1)
            }
            Fault::Role(role, blow) => {
                let name = self.target(role);
                let leader = self.seen.lock().unwrap().leader.as_deref() == Some(name.as_str());
                let signal = match blow {
                    Blow::Kill => Signal::SIGKILL,
                    Blow::Term => Signal::SIGTERM,
                    Blow::StopShort | Blow::StopLong => Signal::SIGSTOP,
                };
                if self.farm.signal(&name, signal).is_err() {
                    // It exited just now (a client finishing its batch): nothing was injected.
                    anyhow::bail!("{name} is not running");
                }
                if signal == Signal::SIGSTOP {
                    self.freezes.push((name.clone(), now_ms(), None));
                }
                match blow {
                    Blow::StopShort => self.later(session / 4, session * 3 / 4, FollowUp::Cont(name.clone())),
                    Blow::StopLong => self.later(session * 3 / 2, session * 3, FollowUp::Cont(name.clone())),
                    Blow::Kill | Blow::Term if role == Role::Client => {
                        if let Some(s) = self.slots.iter_mut().find(|s| s.name == name) {
                            s.interrupted = true;
                        }
                    }
                    Blow::Kill | Blow::Term => {
                        self.awaiting_restart.insert(name.clone());
                        self.later(300, 2_000, FollowUp::Restart(name.clone()));
                    }
                }
                if leader && role == Role::Master {
                    format!("{name} (leader)")
                } else {
                    name
                }
            }
        };
        Ok(FaultRecord {
            kind: fault.label(),
            target,
            at_ms,
            recovery_ms: None,
        })
    }

    /// Runs the follow-ups that are due (all of them when `all`).
    fn follow_up(&mut self, all: bool) -> anyhow::Result<()> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.followups.drain(..).partition(|(at, _)| all || *at <= now);
        self.followups = later;
        for (_, f) in due {
            match f {
                FollowUp::Cont(name) => {
                    let _ = self.farm.signal(&name, Signal::SIGCONT);
                    let now = now_ms();
                    if let Some(f) = self.freezes.iter_mut().rev().find(|f| f.0 == name && f.2.is_none()) {
                        f.2 = Some(now);
                    }
                }
                FollowUp::Restart(name) => {
                    self.farm.restart(&name)?;
                    self.awaiting_restart.remove(&name);
                }
                FollowUp::ZkStart(i) => self.zk.start_server(i)?,
            }
        }
        Ok(())
    }

    fn bound_ms(&self) -> u64 {
        (self.args.role_session_timeout + self.args.recovery_margin).as_millis() as u64
    }

    fn should_stop(&self, delivered: u64) -> bool {
        let by_time = self.args.duration.is_some_and(|d| self.started.elapsed() >= d);
        let by_tasks = self.args.tasks.is_some_and(|n| delivered >= n);
        by_time || by_tasks
    }
}

pub async fn run(args: SoakArgs) -> anyhow::Result<ExitCode> {
    let mut args = args;
    if args.duration.is_none() && args.tasks.is_none() {
        args.duration = Some(Duration::from_secs(120));
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    let run_dir = match &args.run_dir {
        Some(d) => d.clone(),
        None => crate::farm::new_run_dir("soak")?,
    };
    std::fs::create_dir_all(&run_dir)?;
    println!(
        "soak: seed {seed}, run directory {}, {} masters, {} workers, {} clients of {} tasks, session {:?}",
        run_dir.display(),
        args.masters,
        args.workers,
        args.clients,
        args.batch,
        args.role_session_timeout
    );
    let zk = ZkCluster::ensemble(
        3,
        ZkOptions {
            base_dir: Some(run_dir.join("zk")),
            ..ZkOptions::default()
        },
    )
    .context("starting the 3-server ZooKeeper ensemble")?;
    let binary = taskfarm_harness::role_binary()?;
    let farm = LocalFarm::new(&zk, "/soak", &run_dir, &binary, args.role_session_timeout)?;
    let observer = farm.observer().await.context("the checker's session")?;
    observer.close().await;

    let seen = Arc::new(Mutex::new(Observed::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let checker_task = tokio::spawn(checker(farm.config()?, seen.clone(), stop_rx));

    let mut soak = Soak {
        rng: StdRng::seed_from_u64(seed),
        farm,
        zk,
        seen: seen.clone(),
        slots: (1..=args.clients)
            .map(|index| Slot {
                index,
                generation: 0,
                name: String::new(),
                interrupted: false,
            })
            .collect(),
        finished: Vec::new(),
        followups: Vec::new(),
        awaiting_restart: HashSet::new(),
        faults: Vec::new(),
        freezes: Vec::new(),
        violations: Vec::new(),
        started: Instant::now(),
        seed,
        args,
    };
    for i in 1..=soak.args.masters {
        soak.farm.spawn(Role::Master, &format!("m{i}"), &[])?;
    }
    for i in 1..=soak.args.workers {
        soak.farm.spawn(Role::Worker, &format!("w{i}"), &[])?;
    }
    for i in 0..soak.slots.len() {
        soak.spawn_incarnation(i)?;
    }

    let result = drive(&mut soak).await;
    let _ = stop_tx.send(true);
    let _ = checker_task.await;
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            soak.farm.stop_all();
            return Err(e);
        }
    };
    let table = report.render();
    println!("\n{table}");
    std::fs::write(run_dir.join("report.md"), &table)?;
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn drive(soak: &mut Soak) -> anyhow::Result<Report> {
    let tick = Duration::from_millis(100);
    let bound = soak.bound_ms();
    // How long to wait for progress before declaring it never came.
    let give_up = Duration::from_millis(bound * 4).max(Duration::from_secs(60));
    // Warm up: the first completion, before any fault.
    let warm = Instant::now();
    while soak.seen.lock().unwrap().progress.is_empty() {
        anyhow::ensure!(
            warm.elapsed() < Duration::from_secs(120),
            "the farm completed no task within 2 minutes of starting"
        );
        soak.supervise(true)?;
        tokio::time::sleep(tick).await;
    }
    println!("{} farm running; injecting faults", soak.elapsed());
    soak.started = Instant::now();
    let mut next_fault = Instant::now() + soak.args.fault_interval / 2;
    let mut open: Option<(FaultRecord, Instant)> = None;
    let mut last_report = Instant::now();
    let mut last_count = Instant::now();
    let mut delivered = 0;
    let mut stopping = false;
    loop {
        tokio::time::sleep(tick).await;
        soak.follow_up(false)?;
        soak.supervise(true)?;
        if let Some((mut f, since)) = open.take() {
            f.recovery_ms = check::recovery_ms(f.at_ms, &soak.seen.lock().unwrap().progress);
            // Settled once every follow-up ran and a restarted ZooKeeper server serves again
            // (so that the next fault can never take a second server out of the quorum).
            let settled = f.recovery_ms.is_some()
                && soak.followups.is_empty()
                && soak.awaiting_restart.is_empty()
                && (0..soak.zk.len()).all(|i| soak.zk.mode(i).is_some());
            if settled || since.elapsed() > give_up {
                let how = match f.recovery_ms {
                    Some(ms) if ms <= bound => format!("progress after {ms} ms"),
                    Some(ms) => format!("progress after {ms} ms: OVER the {bound} ms bound"),
                    None => "NO progress".to_string(),
                };
                println!("{} {} of {}: {how}", soak.elapsed(), f.kind, f.target);
                soak.faults.push(f);
                let factor = soak.rng.random_range(0.5..1.5);
                next_fault = Instant::now() + soak.args.fault_interval.mul_f64(factor);
            } else {
                open = Some((f, since));
            }
        }
        if last_count.elapsed() >= Duration::from_secs(1) {
            last_count = Instant::now();
            delivered = soak.delivered();
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            let o = soak.seen.lock().unwrap();
            println!(
                "{} {delivered} results delivered, {} faults, {} master writes seen, checker sessions {}",
                soak.elapsed(),
                soak.faults.len(),
                o.writes.len(),
                o.sessions
            );
        }
        if open.is_none() && soak.should_stop(delivered) {
            stopping = true;
        }
        if stopping {
            break;
        }
        if open.is_none() && Instant::now() >= next_fault && (0..soak.zk.len()).all(|i| soak.zk.mode(i).is_some()) {
            let fault = pick_fault(&mut soak.rng);
            match soak.inject(fault) {
                Ok(f) => {
                    println!("{} inject {} of {}", soak.elapsed(), f.kind, f.target);
                    open = Some((f, Instant::now()));
                }
                Err(e) => tracing::debug!(error = %format!("{e:#}"), "fault not injected"),
            }
        }
    }
    let elapsed_s = soak.started.elapsed().as_secs_f64();
    // Drain: every follow-up now, no new client incarnations, let the running ones finish.
    println!("{} draining: the running clients finish their batches", soak.elapsed());
    soak.follow_up(true)?;
    let drain = Instant::now();
    while !soak.slots.is_empty() && drain.elapsed() < Duration::from_secs(180) {
        soak.supervise(false)?;
        tokio::time::sleep(tick).await;
    }
    for i in 0..soak.slots.len() {
        let inc = soak.incarnation(&soak.slots[i], None);
        soak.finished.push(inc);
    }
    soak.farm.stop_all();
    println!(
        "{} all roles stopped; checking what is left in ZooKeeper",
        soak.elapsed()
    );
    let left = leftovers(&soak.farm, soak.args.role_session_timeout * 3 + Duration::from_secs(10)).await?;

    let mut violations = std::mem::take(&mut soak.violations);
    let (clients, v) = check::check_clients(&soak.finished);
    violations.extend(v);
    violations.extend(check::check_recoveries(&soak.faults, bound));
    violations.extend(check::check_leftovers(&left));
    let (writes, dones) = {
        let o = soak.seen.lock().unwrap();
        (o.writes.clone(), o.dones.clone())
    };
    violations.extend(check::check_fencing(&writes));
    violations.extend(check::check_single_commit(&dones));
    let mut logged = Vec::new();
    for name in soak.farm.names(Role::Master) {
        let text = std::fs::read_to_string(soak.farm.log_path(&name)).unwrap_or_default();
        logged.extend(text.lines().filter_map(|l| check::parse_assigned_line(&name, l)));
    }
    let freezes: Vec<check::Freeze> = soak
        .freezes
        .iter()
        .map(|(name, stop, cont)| check::Freeze {
            master: name.clone(),
            stop_ms: *stop,
            cont_ms: cont.unwrap_or(u64::MAX),
        })
        .collect();
    check::undo_freezes(&mut logged, &freezes, 500);
    let reassignments = logged.iter().filter(|l| l.attempt >= 2).count() as u64;
    let discarded_results = soak
        .farm
        .names(Role::Worker)
        .iter()
        .map(|w| {
            std::fs::read_to_string(soak.farm.log_path(w))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("result discarded"))
                .count() as u64
        })
        .sum();
    let (terms, v) = check::terms(&logged);
    violations.extend(v);
    violations.extend(check::check_terms(&terms, 250));
    Ok(Report {
        seed: soak.seed,
        elapsed_s,
        faults: std::mem::take(&mut soak.faults),
        clients,
        fenced_writes_checked: writes.len(),
        terms: terms.len(),
        reassignments,
        discarded_results,
        bound_ms: bound,
        violations,
    })
}

/// Waits (bounded) until the farm's znodes are gone, then returns what is left by parent.
async fn leftovers(farm: &LocalFarm, limit: Duration) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let session = farm.config()?.connect().await?;
    let deadline = Instant::now() + limit;
    let mut left = BTreeMap::new();
    loop {
        left.clear();
        for parent in [paths::TASKS, paths::DATA, paths::WORKERS, paths::MASTER] {
            let children = taskfarm::zk::timed(Duration::from_secs(10), session.client.list_children(parent))
                .await
                .with_context(|| format!("listing {parent}"))?;
            left.insert(parent.to_string(), children);
        }
        // Sessions of processes stopped by SIGKILL end only at their timeout: poll until then.
        if left.values().all(Vec::is_empty) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    session.close().await;
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_kind_comes_up_and_a_seed_repeats_the_sequence() {
        let mut rng = StdRng::seed_from_u64(7);
        let faults: Vec<Fault> = (0..2000).map(|_| pick_fault(&mut rng)).collect();
        let kinds: HashSet<String> = faults.iter().map(|f| f.label()).collect();
        assert_eq!(kinds.len(), 13, "{kinds:?}");
        let zk = faults.iter().filter(|f| **f == Fault::ZkServer).count();
        assert!((300..500).contains(&zk), "about 3/15 of the faults: {zk}");
        let mut again = StdRng::seed_from_u64(7);
        assert!(faults.iter().all(|f| *f == pick_fault(&mut again)));
    }
}
