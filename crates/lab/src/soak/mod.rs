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
//! This module drives the run: it starts everything, keeps the roles running, opens and closes
//! the episodes and drains. The parts: `injector` (the faults), `observer` (the checker's own
//! session, which reads back every master-made write with its zxid and epoch, and every
//! completion), `verdict` (the evidence gathered at the end) and [`check`] (the invariants,
//! pure functions).

pub mod check;
mod injector;
mod observer;
mod verdict;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use tokio::sync::watch;

use self::check::{FaultRecord, Incarnation, Report};
use self::injector::Injector;
use self::observer::Observed;
use crate::farm::{LocalFarm, Role};
use taskfarm_harness::{ZkCluster, ZkOptions};

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
    injector: Injector,
    seen: Arc<Mutex<Observed>>,
    slots: Vec<Slot>,
    finished: Vec<Incarnation>,
    faults: Vec<FaultRecord>,
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
            if self.injector.expects_exit(&name) {
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

    /// Injects one fault; returns its record (recovery still unknown).
    fn inject(&mut self) -> anyhow::Result<FaultRecord> {
        let clients: Vec<String> = self.slots.iter().map(|s| s.name.clone()).collect();
        let leader = self.seen.lock().unwrap().leader.clone();
        let injected = self
            .injector
            .inject(&mut self.farm, &mut self.zk, &clients, leader.as_deref())?;
        if let Some(name) = injected.ended_client {
            if let Some(s) = self.slots.iter_mut().find(|s| s.name == name) {
                s.interrupted = true;
            }
        }
        Ok(injected.record)
    }

    fn follow_up(&mut self, all: bool) -> anyhow::Result<()> {
        self.injector.follow_up(all, &mut self.farm, &mut self.zk)
    }

    /// Every ZooKeeper server is up and serving.
    fn zk_whole(&self) -> bool {
        (0..self.zk.len()).all(|i| self.zk.mode(i).is_some())
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
    let checker_task = tokio::spawn(observer::observe(farm.config()?, seen.clone(), stop_rx));

    let mut soak = Soak {
        injector: Injector::new(seed, args.role_session_timeout),
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
        faults: Vec::new(),
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

/// The fault episodes, then the drain, then the verdict.
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
            let settled = f.recovery_ms.is_some() && soak.injector.settled() && soak.zk_whole();
            if settled || since.elapsed() > give_up {
                let how = match f.recovery_ms {
                    Some(ms) if ms <= bound => format!("progress after {ms} ms"),
                    Some(ms) => format!("progress after {ms} ms: OVER the {bound} ms bound"),
                    None => "NO progress".to_string(),
                };
                println!("{} {} of {}: {how}", soak.elapsed(), f.kind, f.target);
                soak.faults.push(f);
                next_fault = Instant::now() + soak.injector.pause(soak.args.fault_interval);
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
        if open.is_none() && Instant::now() >= next_fault && soak.zk_whole() {
            match soak.inject() {
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
    verdict::judge(soak, elapsed_s).await
}
