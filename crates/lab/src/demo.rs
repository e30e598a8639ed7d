//! `taskfarm demo`: the whole farm locally on a real 3-server ZooKeeper ensemble: masters,
//! workers and clients as child processes, a live progress line, optional chaos, and an
//! evidence summary at the end. Every process logs to its own file under the run directory.
//! With `--exec` the tasks are real programs (a command catalogue and a workload, by default
//! those of `examples/`), and the summary adds their results by command and outcome.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nix::sys::signal::Signal;
use rand::seq::IndexedRandom as _;

use crate::exec::outcome::{self, Tally};
use crate::exec::{example, procs, Workload, EXAMPLE_CATALOGUE, EXAMPLE_WORKLOAD};
use crate::farm::{new_run_dir, read_deliveries, read_results, read_summary, LocalFarm, Role};
use taskfarm::protocol::FarmStatus;
use taskfarm_harness::{ZkCluster, ZkOptions};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// ZooKeeper servers (3 = an ensemble that survives the loss of one).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=5))]
    pub zk_servers: u32,
    /// Master processes (one leads, the others are hot backups).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub masters: u32,
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub clients: u32,
    /// Tasks per client (0 = keep going until Ctrl-C or --duration).
    #[arg(long, default_value_t = 500)]
    pub tasks: u64,
    /// Tasks in flight per client.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u64,
    /// The task each client submits.
    #[arg(long, default_value = r#"{"kind":"sleep","ms":20}"#)]
    pub task: String,
    /// Kill a random master, worker, client or ZooKeeper server every --chaos-interval, and
    /// restart it.
    #[arg(long)]
    pub chaos: bool,
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub chaos_interval: Duration,
    /// Stop after this long (default: when every client has finished).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Session timeout of the farm's processes (short, so that failovers show quickly).
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    pub role_session_timeout: Duration,
    /// Where logs go (default: runs/demo-<time>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Run real programs: workers get the command catalogue (--commands), and each client
    /// submits --tasks tasks taken in turn from the workload (--workload) instead of --task.
    #[arg(long)]
    pub exec: bool,
    /// The workers' command catalogue with --exec [default: examples/commands.yaml]
    #[arg(long, requires = "exec")]
    pub commands: Option<PathBuf>,
    /// The tasks with --exec, one JSON task a line [default: examples/exec-workload.jsonl]
    #[arg(long, requires = "exec")]
    pub workload: Option<PathBuf>,
}

/// What `--exec` runs: the catalogue and the workload.
struct ExecSetup {
    commands: PathBuf,
    workload: Workload,
}

impl ExecSetup {
    /// Checks the files before anything starts: a broken catalogue would stop every worker.
    fn load(args: &DemoArgs) -> anyhow::Result<Self> {
        // A client submits a file's tasks once: an endless one has nothing to go round.
        anyhow::ensure!(args.tasks > 0, "--exec needs --tasks above 0");
        let commands = args.commands.clone().unwrap_or_else(|| example(EXAMPLE_CATALOGUE));
        taskfarm::exec::Catalogue::load(&commands)?;
        let workload = Workload::load(&args.workload.clone().unwrap_or_else(|| example(EXAMPLE_WORKLOAD)))?;
        Ok(Self { commands, workload })
    }

    /// Writes the tasks each client submits (`tasks` of them, going round the workload).
    fn write_tasks(&self, run_dir: &std::path::Path, tasks: u64) -> anyhow::Result<PathBuf> {
        let file = run_dir.join("exec-tasks.jsonl");
        self.workload.write_cycled(tasks as usize, &file)?;
        Ok(file)
    }

    /// Results of every client incarnation by command and outcome, and the workers' peak memory.
    fn summary(&self, farm: &LocalFarm, incarnations: &[Vec<String>], peak_rss: u64) -> String {
        let mut tally = Tally::default();
        for c in incarnations.iter().flatten() {
            for (task, result) in read_results(&farm.results_path(c))
                .iter()
                .filter_map(outcome::parse_record)
            {
                let command = self.workload.task(&task).map(outcome::command_of).unwrap_or_default();
                tally.add(&command, &result);
            }
        }
        format!(
            "\nexec results by command and outcome ({}):\n\n{}\nworkers' peak resident memory (largest, incarnations alive at the end): {:.1} MiB\n",
            self.commands.display(),
            tally.render(),
            peak_rss as f64 / f64::from(1 << 20)
        )
    }
}

/// One chaos action, for the log and the summary.
struct ChaosAction {
    at: Duration,
    target: String,
    action: &'static str,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    taskfarm::task::TaskSpec::parse(args.task.as_bytes()).context("--task")?;
    let exec = if args.exec { Some(ExecSetup::load(&args)?) } else { None };
    let run_dir = match &args.run_dir {
        Some(d) => d.clone(),
        None => new_run_dir("demo")?,
    };
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let tasks_file = match &exec {
        Some(e) => Some(e.write_tasks(&run_dir, args.tasks)?),
        None => None,
    };
    let servers = args.zk_servers as usize;
    eprintln!(
        "taskfarm demo: starting a {servers}-server ZooKeeper ensemble (logs in {})",
        run_dir.display()
    );
    let options = ZkOptions {
        base_dir: Some(run_dir.join("zk")),
        ..ZkOptions::default()
    };
    let mut zk = tokio::task::spawn_blocking(move || ZkCluster::with_servers(servers, options)).await??;
    let binary = taskfarm_harness::role_binary()?;
    let mut farm = LocalFarm::new(&zk, "/demo", &run_dir, &binary, args.role_session_timeout)?;
    let observer = farm.observer().await?;
    for i in 1..=args.masters {
        farm.spawn(Role::Master, &format!("m{i}"), &[])?;
    }
    let worker_args: Vec<String> = match &exec {
        Some(e) => vec!["--commands".into(), e.commands.display().to_string()],
        None => Vec::new(),
    };
    for i in 1..=args.workers {
        farm.spawn(Role::Worker, &format!("w{i}"), &worker_args)?;
    }
    let client_args = |tasks: u64| -> Vec<String> {
        let concurrency = args.concurrency.to_string();
        match &tasks_file {
            Some(file) => vec![
                "--tasks-from".into(),
                file.display().to_string(),
                "--concurrency".into(),
                concurrency,
            ],
            None => vec![
                "--tasks".into(),
                tasks.to_string(),
                "--concurrency".into(),
                concurrency,
                "--task".into(),
                args.task.clone(),
            ],
        }
    };
    // Each client slot runs one incarnation after another (a killed client comes back as a new
    // client: its unfinished tasks went with its session, by design).
    let mut incarnations: Vec<Vec<String>> = Vec::new();
    for i in 1..=args.clients {
        let name = format!("c{i}");
        farm.spawn(Role::Client, &name, &client_args(args.tasks))?;
        incarnations.push(vec![name]);
    }

    let total = if args.tasks == 0 {
        0
    } else {
        args.tasks * args.clients as u64
    };
    let bar = if total > 0 {
        ProgressBar::new(total)
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} tasks {per_sec:.0} | {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut chaos_log: Vec<ChaosAction> = Vec::new();
    let mut next_chaos = started + args.chaos_interval;
    let mut pending_restarts: Vec<(Instant, Restart)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let interrupted = taskfarm::role::shutdown_signal();
    tokio::pin!(interrupted);
    let mut rng = rand::rng();
    let reason = loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut interrupted => break "interrupted (SIGINT or SIGTERM)".to_string(),
        }
        let now = Instant::now();
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break "duration reached".to_string();
        }
        // Restarts that are due.
        let (due, later): (Vec<_>, Vec<_>) = pending_restarts.into_iter().partition(|(at, _)| *at <= now);
        pending_restarts = later;
        for (_, r) in due {
            match r {
                Restart::Process(name) => farm.restart(&name)?,
                Restart::Client(slot) => {
                    let name = format!("c{}-{}", slot + 1, incarnations[slot].len() + 1);
                    farm.spawn(Role::Client, &name, &client_args(args.tasks))?;
                    incarnations[slot].push(name);
                }
                Restart::ZkServer(i) => zk.start_server(i)?,
            }
        }
        if args.chaos && now >= next_chaos && pending_restarts.is_empty() {
            next_chaos = now + args.chaos_interval;
            if let Some((action, restart)) = inject(&mut farm, &mut zk, &incarnations, &mut rng)? {
                bar.println(format!("chaos: {action}"));
                let (target, what) = action.split_once(' ').unwrap_or((&action, ""));
                chaos_log.push(ChaosAction {
                    at: started.elapsed(),
                    target: target.into(),
                    action: chaos_kind(what),
                });
                pending_restarts.push((now + Duration::from_secs(1), restart));
            }
        }
        // Progress: deliveries from the clients' own records; the leader from /status.
        let delivered: u64 = incarnations
            .iter()
            .flatten()
            .map(|c| read_deliveries(&farm.results_path(c)).delivered)
            .sum();
        bar.set_position(delivered);
        let status = match observer.client.get_data("/status").await {
            Ok((d, _)) => FarmStatus::parse(&d).ok(),
            Err(_) => None,
        };
        if let Some(s) = &status {
            bar.set_message(format!(
                "leader {} (epoch {}) | workers {} | pending {} | failovers {} | chaos {}",
                s.leader,
                s.epoch,
                s.workers,
                s.pending,
                s.failovers,
                chaos_log.len()
            ));
        }
        let clients_done = incarnations
            .iter()
            .all(|slot| slot.last().is_some_and(|c| farm.exited(c).is_some()));
        if args.tasks > 0 && clients_done && pending_restarts.is_empty() {
            break "every client finished".to_string();
        }
    };
    bar.finish_and_clear();
    eprintln!("taskfarm demo: stopping ({reason})");
    let status = match observer.client.get_data("/status").await {
        Ok((d, _)) => FarmStatus::parse(&d).unwrap_or_default(),
        Err(_) => FarmStatus::default(),
    };
    // Before the workers stop: their peak memory (a flood of output must not show in it).
    let workers = farm.names(Role::Worker);
    let peak_rss = procs::largest_peak_rss(&farm, workers.iter().map(String::as_str));
    farm.stop_all();
    // Every session was closed by SIGTERM (ephemerals go at once); confirm nothing is left.
    let left = taskfarm::waits::children(
        &observer,
        "/tasks",
        Duration::from_secs(30),
        "task znodes cleaned up",
        |c| c.is_empty().then_some(()),
    )
    .await
    .is_err();
    let (table, ok) = summary(&farm, &incarnations, &status, &chaos_log, started.elapsed(), left);
    print!("{table}");
    if let Some(e) = &exec {
        print!("{}", e.summary(&farm, &incarnations, peak_rss));
    }
    println!("logs: {}", run_dir.display());
    drop(observer);
    drop(farm);
    drop(zk);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

enum Restart {
    Process(String),
    Client(usize),
    ZkServer(usize),
}

fn chaos_kind(what: &str) -> &'static str {
    if what.contains("SIGTERM") {
        "SIGTERM"
    } else {
        "SIGKILL"
    }
}

/// Kills one random process or ZooKeeper server; returns what it did and how to undo it.
fn inject(
    farm: &mut LocalFarm,
    zk: &mut ZkCluster,
    incarnations: &[Vec<String>],
    rng: &mut impl rand::Rng,
) -> anyhow::Result<Option<(String, Restart)>> {
    let signal = if rng.random_bool(0.5) {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    let kind = ["master", "worker", "client", "zookeeper"]
        .choose(rng)
        .copied()
        .unwrap_or("worker");
    Ok(match kind {
        "zookeeper" if zk.len() >= 3 => {
            let i = rng.random_range(0..zk.len());
            zk.stop_server(i, Signal::SIGKILL)?;
            Some((format!("zk{} SIGKILL (restarting in 1s)", i + 1), Restart::ZkServer(i)))
        }
        "client" => {
            let live: Vec<usize> = (0..incarnations.len())
                .filter(|&s| incarnations[s].last().is_some_and(|c| farm.exited(c).is_none()))
                .collect();
            let Some(&slot) = live.choose(rng) else { return Ok(None) };
            let name = incarnations[slot].last().cloned().unwrap_or_default();
            farm.signal(&name, signal)?;
            Some((
                format!("{name} {} (a new client takes its place)", signal.as_str()),
                Restart::Client(slot),
            ))
        }
        _ => {
            let role = if kind == "master" { Role::Master } else { Role::Worker };
            let names = farm.names(role);
            let Some(name) = names.choose(rng).cloned() else {
                return Ok(None);
            };
            if !farm.is_running(&name) {
                return Ok(None);
            }
            farm.signal(&name, signal)?;
            Some((
                format!("{name} {} (restarting in 1s)", signal.as_str()),
                Restart::Process(name),
            ))
        }
    })
}

/// The evidence table printed at the end.
fn summary(
    farm: &LocalFarm,
    incarnations: &[Vec<String>],
    status: &FarmStatus,
    chaos: &[ChaosAction],
    elapsed: Duration,
    left_behind: bool,
) -> (String, bool) {
    let (mut submitted, mut delivered, mut duplicates, mut lost, mut failed) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut withdrawn = 0u64;
    let (mut finished, mut killed) = (0, 0);
    for c in incarnations.iter().flatten() {
        let d = read_deliveries(&farm.results_path(c));
        delivered += d.delivered;
        duplicates += d.duplicates;
        failed += d.failed;
        match read_summary(&farm.out_path(c)) {
            Some(s) => {
                finished += 1;
                let sub = s["submitted"].as_u64().unwrap_or(0);
                let abandoned = s["abandoned"].as_u64().unwrap_or(0);
                submitted += sub;
                withdrawn += abandoned;
                let accounted = d.delivered - d.duplicates + abandoned;
                lost += s["lost"].as_u64().unwrap_or(0) + sub.saturating_sub(accounted);
            }
            None => killed += 1,
        }
    }
    let count = |k: &str| chaos.iter().filter(|c| c.action == k).count();
    let restarts: u32 = farm.processes().map(|p| p.restarts).sum();
    let mut out = String::new();
    out.push_str("\n| figure | value |\n|---|---|\n");
    out.push_str(&format!("| run time | {:.1} s |\n", elapsed.as_secs_f64()));
    out.push_str(&format!(
        "| client incarnations (finished or stopped / SIGKILLed) | {finished} / {killed} |\n"
    ));
    out.push_str(&format!("| tasks submitted by finished clients | {submitted} |\n"));
    out.push_str(&format!("| results delivered (all incarnations) | {delivered} |\n"));
    out.push_str(&format!("| of which error results | {failed} |\n"));
    out.push_str(&format!("| lost (finished clients) | {lost} |\n"));
    out.push_str(&format!(
        "| in flight when the demo stopped (withdrawn) | {withdrawn} |\n"
    ));
    out.push_str(&format!("| duplicate deliveries | {duplicates} |\n"));
    out.push_str(&format!(
        "| leader at the end | {} (epoch {}) |\n",
        status.leader, status.epoch
    ));
    out.push_str(&format!("| failovers | {} |\n", status.failovers));
    out.push_str(&format!(
        "| chaos actions (SIGKILL / SIGTERM) | {} / {} |\n",
        count("SIGKILL"),
        count("SIGTERM")
    ));
    out.push_str(&format!("| process restarts | {restarts} |\n"));
    out.push_str(&format!(
        "| task znodes left behind | {} |\n",
        if left_behind { "YES" } else { "none" }
    ));
    if !chaos.is_empty() {
        out.push_str("\n| at (s) | chaos target | signal |\n|---|---|---|\n");
        for c in chaos {
            out.push_str(&format!(
                "| {:.1} | {} | {} |\n",
                c.at.as_secs_f64(),
                c.target,
                c.action
            ));
        }
    }
    let ok = lost == 0 && duplicates == 0 && !left_behind;
    let verdict = if ok {
        "nothing lost, nothing duplicated"
    } else {
        "VIOLATION"
    };
    out.push_str(&format!("\nverdict: {verdict}\n"));
    (out, ok)
}
