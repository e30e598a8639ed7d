//! Benchmarks (issue 6): ZooKeeper's own write ceiling on the very servers the farm uses, no-op
//! throughput end to end against it, failover latency, backlog scaling and footprint.
//!
//! Everything runs as real processes (ZooKeeper servers from [`taskfarm_harness`], roles from
//! [`crate::farm`]); figures come from the clients' own summaries and result logs, the roles'
//! JSON logs (timestamps of `assigned`), ZooKeeper's `srvr` zxid and `/proc`.

mod plot;
pub mod report;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use clap::Args;
use futures::stream::{FuturesUnordered, StreamExt as _};
use indicatif::{ProgressBar, ProgressStyle};
use nix::sys::signal::Signal;

use self::report::{Backlog, Ceiling, Failover, Footprint, Machine, Point, Report, ServersReport, SpreadCeiling};
use self::stats::{Quantiles, PROTOCOL_WRITES_PER_TASK, USER_HZ};
use crate::farm::{read_summary, LocalFarm, Role};
use taskfarm_harness::{ZkCluster, ZkOptions};
use taskfarm::protocol::paths;
use taskfarm::zk::{ZkConfig, ZkSession};

const NOOP_TASK: &str = r#"{"kind":"sleep","ms":0}"#;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// ZooKeeper servers to run on: 1 or 3 (default: both, one after the other).
    #[arg(long, value_parser = parse_servers)]
    pub zk_servers: Option<usize>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A short run (well under a minute) that checks the bench works; its figures mean little.
    #[arg(long)]
    pub quick: bool,
    /// Where to draw the throughput chart (SVG; default: the run directory).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Also write the Markdown tables to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Worker counts of the throughput sweep (default 1,2,4,8,16; --quick: 1,2).
    #[arg(long, value_delimiter = ',')]
    pub workers: Option<Vec<usize>>,
    /// No-op tasks per throughput point (default 4000; --quick: 200).
    #[arg(long)]
    pub tasks: Option<u64>,
    /// Session timeout of the farm's roles (a SIGKILLed leader is replaced after about this).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub farm_session_timeout: Duration,
    /// Parts to run (default all): ceiling, throughput, failover, backlog.
    #[arg(long, value_delimiter = ',', value_parser = ["ceiling", "throughput", "failover", "backlog"])]
    pub only: Option<Vec<String>>,
    /// Measure nothing: redraw the chart (--plot) and reprint the tables from an earlier --json file.
    #[arg(long, value_name = "JSON")]
    pub replot: Option<PathBuf>,
    /// Run ZooKeeper with forceSync=no (no fsync of its transaction log): not a real deployment.
    #[arg(long)]
    pub no_force_sync: bool,
}

fn parse_servers(s: &str) -> Result<usize, String> {
    match s {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err(format!("{s:?}: expected 1 or 3")),
    }
}

/// How big each part of the run is.
#[derive(Debug, Clone)]
struct Plan {
    ceiling_ops: u64,
    window: usize,
    serial_ops: u64,
    workers: Vec<usize>,
    tasks_per_point: u64,
    sigterm_trials: u32,
    sigkill_trials: u32,
    worker_kill_trials: u32,
    backlog_sizes: Vec<u64>,
    backlog_measured: u64,
    backlog_workers: usize,
    session_timeout: Duration,
    force_sync: bool,
    parts: Vec<String>,
}

impl Plan {
    fn new(args: &BenchArgs) -> Self {
        let q = args.quick;
        Self {
            ceiling_ops: if q { 2_000 } else { 20_000 },
            window: 1_000,
            serial_ops: if q { 100 } else { 1_000 },
            workers: args
                .workers
                .clone()
                .unwrap_or_else(|| if q { vec![1, 2] } else { vec![1, 2, 4, 8, 16] }),
            tasks_per_point: args.tasks.unwrap_or(if q { 200 } else { 4_000 }),
            sigterm_trials: if q { 3 } else { 20 },
            sigkill_trials: if q { 1 } else { 5 },
            worker_kill_trials: if q { 1 } else { 5 },
            // A-B-B-A: a drift in the machine's load hits both sizes alike.
            backlog_sizes: if q {
                vec![100, 1_000]
            } else {
                vec![100, 10_000, 10_000, 100]
            },
            backlog_measured: if q { 300 } else { 4_000 },
            backlog_workers: 4,
            session_timeout: args.farm_session_timeout,
            force_sync: !args.no_force_sync,
            parts: args.only.clone().unwrap_or_else(|| {
                ["ceiling", "throughput", "failover", "backlog"]
                    .map(String::from)
                    .to_vec()
            }),
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(json) = &args.replot {
        let text = std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
        let report: Report = serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
        let plot = args.plot.clone().unwrap_or_else(|| json.with_extension("svg"));
        plot::throughput_svg(&report.runs, &plot)?;
        print!("{}", report::render_markdown(&report));
        println!("Chart: {}", plot.display());
        return Ok(ExitCode::SUCCESS);
    }
    let plan = Plan::new(&args);
    let run_dir = crate::farm::new_run_dir("bench")?;
    let binary = taskfarm_harness::role_binary()?;
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg} {pos}/{len}").expect("template"));
    pb.enable_steady_tick(Duration::from_millis(200));
    let progress = Progress { pb };
    progress.note(format!("bench: run directory {}", run_dir.display()));
    let mut report = Report {
        quick: args.quick,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_utc: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        machine: machine(),
        runs: Vec::new(),
    };
    let server_counts = match args.zk_servers {
        Some(n) => vec![n],
        None => vec![1, 3],
    };
    for n in server_counts {
        let dir = run_dir.join(format!("zk{n}"));
        let r = bench_servers(n, &plan, &dir, &binary, &progress, &mut report.machine).await?;
        report.runs.push(r);
    }
    progress.pb.finish_and_clear();
    let plot = args.plot.clone().unwrap_or_else(|| run_dir.join("throughput.svg"));
    if let Some(parent) = plot.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    plot::throughput_svg(&report.runs, &plot)?;
    let md = report::render_markdown(&report);
    print!("{md}");
    println!("Chart: {}", plot.display());
    if let Some(path) = &args.markdown {
        std::fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
    }
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(run_dir.join("bench.json"), &json)?;
    if let Some(path) = &args.json {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Progress on stderr: a spinner on a terminal, plain lines otherwise.
struct Progress {
    pb: ProgressBar,
}

impl Progress {
    fn note(&self, line: impl AsRef<str>) {
        if self.pb.is_hidden() {
            eprintln!("{}", line.as_ref());
        } else {
            self.pb.println(line.as_ref());
        }
    }

    fn phase(&self, msg: impl Into<String>, len: u64) {
        let msg = msg.into();
        if self.pb.is_hidden() {
            eprintln!("... {msg}");
        }
        self.pb.set_message(msg);
        self.pb.set_length(len);
        self.pb.set_position(0);
    }
}

async fn bench_servers(
    n: usize,
    plan: &Plan,
    dir: &Path,
    binary: &Path,
    progress: &Progress,
    machine: &mut Machine,
) -> anyhow::Result<ServersReport> {
    progress.phase(format!("starting {n} ZooKeeper server(s)"), 0);
    let options = ZkOptions {
        tick_ms: 200,
        max_session_ticks: 200,
        force_sync: plan.force_sync,
        base_dir: Some(dir.join("zookeeper")),
        heap_mb: 512,
        // Measure ZooKeeper as it runs in production, not as the tests start it.
        full_jit: true,
    };
    let zk = tokio::task::block_in_place(|| {
        if n == 1 {
            ZkCluster::standalone(options)
        } else {
            ZkCluster::ensemble(n, options)
        }
    })?;
    if machine.zookeeper.is_empty() {
        machine.zookeeper = zk
            .four_letter(0, "srvr")
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .unwrap_or_default();
    }
    let mut r = ServersReport {
        servers: n,
        force_sync: plan.force_sync,
        protocol_writes_per_task: PROTOCOL_WRITES_PER_TASK,
        ..Default::default()
    };

    if plan.runs("ceiling") {
        progress.phase(
            format!("[{n} server(s)] ceiling: pipelined writes"),
            plan.ceiling_ops * 2,
        );
        r.ceiling = ceiling(&zk, plan, progress).await?;
        progress.note(format!(
            "[{n}] ceiling {:.0} writes/s ({:.2} zxid/write), serial p50 {:.2} ms p99 {:.2} ms",
            r.ceiling.writes_per_s, r.ceiling.zxid_per_write, r.ceiling.serial_ms.p50, r.ceiling.serial_ms.p99
        ));
    }
    if plan.runs("throughput") {
        throughput(&zk, plan, &dir.join("throughput"), binary, progress, &mut r).await?;
    }
    if plan.runs("failover") {
        r.failover = failover(&zk, plan, &dir.join("failover"), binary, progress).await?;
    }
    let backlog_sizes = if plan.runs("backlog") {
        plan.backlog_sizes.clone()
    } else {
        Vec::new()
    };
    for &queued in &backlog_sizes {
        let b = backlog(
            &zk,
            plan,
            queued,
            &dir.join(format!("backlog-{queued}-{}", r.backlog.len())),
            binary,
            progress,
            &mut r.footprint,
        )
        .await?;
        progress.note(format!(
            "[{n}] backlog {queued}: {:.0} tasks/s, master {:.0} us CPU/task",
            b.tasks_per_s, b.master_cpu_us_per_task
        ));
        r.backlog.push(b);
    }
    r.evaluate();
    for t in &r.targets {
        progress.note(format!(
            "[{n}] {} {}: {} (goal {})",
            if t.pass { "PASS" } else { "MISS" },
            t.name,
            t.value,
            t.goal
        ));
    }
    drop(zk);
    // The servers' data (preallocated transaction logs, hundreds of MB) is of no use after the
    // run; their logs stay next to the roles' logs.
    if let Ok(entries) = std::fs::read_dir(dir.join("zookeeper")) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir_all(e.path().join("data"));
        }
    }
    Ok(r)
}

/// The highest zxid any running server reports.
fn zxid(zk: &ZkCluster) -> Option<(u32, u32)> {
    (0..zk.len())
        .filter(|&i| zk.servers()[i].is_running())
        .filter_map(|i| zk.four_letter(i, "srvr").and_then(|s| stats::parse_srvr_zxid(&s)))
        .max()
}

/// `mntr` counters summed over the running servers (each counts its own clients' packets).
fn mntr_sum(zk: &ZkCluster) -> BTreeMap<String, f64> {
    let mut sum = BTreeMap::new();
    for i in (0..zk.len()).filter(|&i| zk.servers()[i].is_running()) {
        for (k, v) in zk
            .four_letter(i, "mntr")
            .map(|m| stats::parse_mntr(&m))
            .unwrap_or_default()
        {
            *sum.entry(k).or_insert(0.0) += v;
        }
    }
    sum
}

/// CPU ticks used so far by all running ZooKeeper servers.
fn zk_cpu_ticks(zk: &ZkCluster) -> u64 {
    zk.servers().iter().filter_map(|s| s.pid()).map(cpu_ticks).sum()
}

fn counter_delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, key: &str) -> f64 {
    match (before.get(key), after.get(key)) {
        (Some(a), Some(b)) if b >= a => b - a,
        _ => 0.0,
    }
}

fn zxid_delta(before: Option<(u32, u32)>, after: Option<(u32, u32)>) -> Option<u64> {
    stats::zxid_delta(before?, after?)
}

/// ZooKeeper's raw write rate: pipelined creates then deletes of small znodes from one
/// connection, and one write at a time for the round-trip latency.
async fn ceiling(zk: &ZkCluster, plan: &Plan, progress: &Progress) -> anyhow::Result<Ceiling> {
    let config = ZkConfig::new(
        &format!("{}/bench-ceiling", zk.connect_string()),
        Duration::from_secs(10),
        Duration::from_secs(30),
        "",
    )?;
    let session = config.connect().await?;
    let client = &session.client;
    let options = session.persistent();
    // An unmeasured round first: the servers' JIT compiles the write path before we time it
    // (the farm, measured later, runs on warm servers too).
    let warm_up: Vec<String> = (0..plan.ceiling_ops).map(|i| format!("/w{i:08}")).collect();
    pipelined_creates_and_deletes(client, &options, &warm_up, plan.window, &|_| {}).await?;
    let names: Vec<String> = (0..plan.ceiling_ops).map(|i| format!("/n{i:08}")).collect();
    let z0 = tokio::task::block_in_place(|| zxid(zk));
    let m0 = tokio::task::block_in_place(|| mntr_sum(zk));
    let zcpu0 = zk_cpu_ticks(zk);
    let (creates, deletes) = pipelined_creates_and_deletes(client, &options, &names, plan.window, &|done| {
        progress.pb.set_position(done)
    })
    .await?;
    let z1 = tokio::task::block_in_place(|| zxid(zk));
    let m1 = tokio::task::block_in_place(|| mntr_sum(zk));
    let zcpu1 = zk_cpu_ticks(zk);

    let spread = spread_ceiling(&config, plan, zk).await?;

    progress.phase("ceiling: serial round trips", plan.serial_ops * 2);
    let mut serial = Vec::with_capacity(plan.serial_ops as usize * 2);
    for i in 0..plan.serial_ops {
        let name = format!("/s{i:08}");
        let t = Instant::now();
        client.create(&name, b"x", &options).await?;
        serial.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        client.delete(&name, None).await?;
        serial.push(t.elapsed().as_secs_f64() * 1000.0);
        progress.pb.set_position(serial.len() as u64);
    }
    session.close().await;
    let ops = plan.ceiling_ops as f64;
    Ok(Ceiling {
        ops: plan.ceiling_ops,
        window: plan.window,
        creates_per_s: ops / creates.as_secs_f64(),
        deletes_per_s: ops / deletes.as_secs_f64(),
        writes_per_s: 2.0 * ops / (creates + deletes).as_secs_f64(),
        zxid_per_write: zxid_delta(z0, z1).map_or(0.0, |d| d as f64 / (2.0 * ops)),
        requests_per_write: counter_delta(&m0, &m1, "zk_packets_received") / (2.0 * ops),
        zk_cpu_us_per_write: (zcpu1 - zcpu0) as f64 / USER_HZ * 1e6 / (2.0 * ops),
        serial_ms: Quantiles::of(&serial),
        spread,
    })
}

/// The same writes as the ceiling, sent the way a farm sends them: from many connections with
/// a couple of requests outstanding on each, so the server cannot batch them per socket read.
async fn spread_ceiling(config: &ZkConfig, plan: &Plan, zk: &ZkCluster) -> anyhow::Result<SpreadCeiling> {
    const CONNECTIONS: usize = 16;
    const WINDOW: usize = 2;
    let mut sessions = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        sessions.push(config.connect().await?);
    }
    let per = plan.ceiling_ops / CONNECTIONS as u64;
    let names: Vec<Vec<String>> = (0..CONNECTIONS)
        .map(|c| (0..per).map(|i| format!("/f{c:02}-{i:08}")).collect())
        .collect();
    let zcpu0 = zk_cpu_ticks(zk);
    let t0 = Instant::now();
    let runs = sessions.iter().zip(&names).map(|(session, names)| async move {
        let options = session.persistent();
        pipelined_creates_and_deletes(&session.client, &options, names, WINDOW, &|_| {}).await
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    let elapsed = t0.elapsed();
    let zcpu1 = zk_cpu_ticks(zk);
    for session in sessions {
        session.close().await;
    }
    let writes = (2 * per * CONNECTIONS as u64) as f64;
    Ok(SpreadCeiling {
        connections: CONNECTIONS,
        window: WINDOW,
        writes_per_s: writes / elapsed.as_secs_f64(),
        zk_cpu_us_per_write: (zcpu1 - zcpu0) as f64 / USER_HZ * 1e6 / writes,
    })
}

/// Creates then deletes `names`, keeping `window` requests outstanding (the crate sends a
/// request when its future is created); returns how long each half took.
async fn pipelined_creates_and_deletes(
    client: &zookeeper_client::Client,
    options: &zookeeper_client::CreateOptions<'_>,
    names: &[String],
    window: usize,
    report: &dyn Fn(u64),
) -> anyhow::Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for (i, name) in names.iter().enumerate() {
        if inflight.len() >= window {
            inflight.next().await.expect("non-empty")?;
        }
        inflight.push(client.create(name, b"x", options));
        if i % 1000 == 0 {
            report(i as u64);
        }
    }
    while let Some(r) = inflight.next().await {
        r?;
    }
    let creates = t0.elapsed();
    let t1 = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for (i, name) in names.iter().enumerate() {
        if inflight.len() >= window {
            inflight.next().await.expect("non-empty")?;
        }
        inflight.push(client.delete(name, None));
        if i % 1000 == 0 {
            report((names.len() + i) as u64);
        }
    }
    while let Some(r) = inflight.next().await {
        r?;
    }
    Ok((creates, t1.elapsed()))
}

/// No-op tasks end to end with growing numbers of workers, in one farm.
async fn throughput(
    zk: &ZkCluster,
    plan: &Plan,
    dir: &Path,
    binary: &Path,
    progress: &Progress,
    r: &mut ServersReport,
) -> anyhow::Result<()> {
    let mut farm = LocalFarm::new(zk, "/bench-throughput", dir, binary, plan.session_timeout)?;
    let obs = farm.observer().await?;
    farm.spawn(Role::Master, "m1", &[])?;
    wait_for(Duration::from_secs(30), "a leader", || async {
        leader_id(&obs).await.is_some()
    })
    .await?;
    let mut started = 0usize;
    for (i, &w) in plan.workers.iter().enumerate() {
        while started < w {
            started += 1;
            farm.spawn(Role::Worker, &format!("w{started:02}"), &[])?;
        }
        wait_for(Duration::from_secs(30), "the workers to register", || async {
            children(&obs, paths::WORKERS).await >= started
        })
        .await?;
        if i == 0 {
            // Unmeasured: the servers' JIT compiles the farm's request mix (reads, multis,
            // watches) before the first point is timed, as it has for the ones after it.
            progress.phase("throughput: warming up", 0);
            let tasks = (plan.tasks_per_point / 2).to_string();
            let args = [
                "--tasks".into(),
                tasks,
                "--concurrency".into(),
                "4".into(),
                "--task".into(),
                NOOP_TASK.into(),
            ];
            farm.spawn(Role::Client, "warm-up", &args)?;
            let deadline = Instant::now() + Duration::from_secs(600);
            while farm.is_running("warm-up") {
                if Instant::now() > deadline {
                    bail!("the warm-up client did not finish within 10 minutes");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let p = throughput_point(zk, &mut farm, plan, started, progress, &mut r.footprint).await?;
        progress.note(format!(
            "[{}] {:>2} workers: {:.0} tasks/s, p50 {:.1} ms, p99 {:.1} ms, {:.2} zxid/task, master {:.0} us CPU/task",
            r.servers,
            p.workers,
            p.tasks_per_s,
            p.latency_ms.p50,
            p.latency_ms.p99,
            p.writes_per_task,
            p.master_cpu_us_per_task
        ));
        r.points.push(p);
    }
    obs.close().await;
    farm.stop_all();
    Ok(())
}

async fn throughput_point(
    zk: &ZkCluster,
    farm: &mut LocalFarm,
    plan: &Plan,
    workers: usize,
    progress: &Progress,
    footprint: &mut Footprint,
) -> anyhow::Result<Point> {
    // Two clients, 2 x workers tasks in flight in all: every worker finds a task queued when it frees.
    let clients = 2usize;
    let concurrency = (workers as u64).max(2);
    let per_client = plan.tasks_per_point.div_ceil(clients as u64);
    let names: Vec<String> = (0..clients).map(|j| format!("c{workers:02}-{j}")).collect();
    progress.phase(format!("throughput: {workers} worker(s)"), per_client * clients as u64);
    let z0 = tokio::task::block_in_place(|| zxid(zk));
    let m0 = tokio::task::block_in_place(|| mntr_sum(zk));
    let zcpu0 = zk_cpu_ticks(zk);
    let cpu0 = role_cpu_ticks(farm, Role::Master);
    let workers0 = role_cpu_ticks(farm, Role::Worker);
    // The clients exit at the end of the point: their CPU is sampled while they run.
    let mut client_ticks: HashMap<u32, u64> = HashMap::new();
    for name in &names {
        farm.spawn(
            Role::Client,
            name,
            &[
                "--tasks".into(),
                per_client.to_string(),
                "--concurrency".into(),
                concurrency.to_string(),
                "--task".into(),
                NOOP_TASK.into(),
            ],
        )?;
    }
    let mut counters: Vec<LineCounter> = names.iter().map(|n| LineCounter::new(farm.results_path(n))).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sample_rss(farm, footprint);
        for pid in farm
            .processes()
            .filter(|p| names.contains(&p.name))
            .filter_map(|p| p.pid())
        {
            let ticks = cpu_ticks(pid);
            let last = client_ticks.entry(pid).or_default();
            *last = (*last).max(ticks);
        }
        let done: u64 = counters.iter_mut().map(|c| c.count()).sum();
        progress.pb.set_position(done);
        if names.iter().all(|n| !farm.is_running(n)) {
            break;
        }
        if Instant::now() > deadline {
            bail!("throughput point with {workers} workers did not finish within 10 minutes");
        }
    }
    let z1 = tokio::task::block_in_place(|| zxid(zk));
    let m1 = tokio::task::block_in_place(|| mntr_sum(zk));
    let zcpu1 = zk_cpu_ticks(zk);
    let cpu1 = role_cpu_ticks(farm, Role::Master);
    let workers1 = role_cpu_ticks(farm, Role::Worker);
    let clients_cpu: u64 = client_ticks.values().sum();
    let (mut completed, mut lost, mut elapsed) = (0u64, 0u64, 0f64);
    let mut latencies = Vec::new();
    for name in &names {
        let s = read_summary(&farm.out_path(name)).with_context(|| format!("client {name} printed no summary"))?;
        completed += s["completed"].as_u64().unwrap_or(0) + s["failed"].as_u64().unwrap_or(0);
        lost += s["lost"].as_u64().unwrap_or(0);
        elapsed = elapsed.max(s["elapsed_s"].as_f64().unwrap_or(0.0));
        latencies.extend(read_latencies(&farm.results_path(name)));
    }
    Ok(Point {
        workers,
        clients,
        concurrency_per_client: concurrency,
        tasks: per_client * clients as u64,
        completed,
        lost,
        elapsed_s: elapsed,
        tasks_per_s: stats::ratio(completed as f64, elapsed),
        latency_ms: Quantiles::of(&latencies),
        writes_per_task: zxid_delta(z0, z1).map_or(0.0, |d| stats::ratio(d as f64, completed as f64)),
        zk_requests_per_task: stats::ratio(counter_delta(&m0, &m1, "zk_packets_received"), completed as f64),
        zk_sent_per_task: stats::ratio(counter_delta(&m0, &m1, "zk_packets_sent"), completed as f64),
        zk_cpu_us_per_task: stats::ratio((zcpu1 - zcpu0) as f64 / USER_HZ * 1e6, completed as f64),
        ceiling_ratio: 0.0,
        master_cpu_us_per_task: stats::ratio((cpu1 - cpu0) as f64 / USER_HZ * 1e6, completed as f64),
        workers_cpu_us_per_task: stats::ratio(
            workers1.saturating_sub(workers0) as f64 / USER_HZ * 1e6,
            completed as f64,
        ),
        clients_cpu_us_per_task: stats::ratio(clients_cpu as f64 / USER_HZ * 1e6, completed as f64),
    })
}

/// Failover: leader SIGTERM and SIGKILL to the new leader's first assignment; worker SIGKILL to
/// its task assigned to another worker. A light stream of short tasks (one at a time, two
/// workers) means that whenever a new leader takes over, a task is queued or about to be and
/// a worker is free: the figure is the handover, not a wait for a busy worker.
async fn failover(
    zk: &ZkCluster,
    plan: &Plan,
    dir: &Path,
    binary: &Path,
    progress: &Progress,
) -> anyhow::Result<Failover> {
    let mut farm = LocalFarm::new(zk, "/bench-failover", dir, binary, plan.session_timeout)?;
    let obs = farm.observer().await?;
    farm.spawn(Role::Master, "m1", &[])?;
    wait_for(Duration::from_secs(30), "a leader", || async {
        leader_id(&obs).await.is_some()
    })
    .await?;
    farm.spawn(Role::Master, "m2", &[])?;
    for w in ["fw1", "fw2"] {
        farm.spawn(Role::Worker, w, &[])?;
    }
    wait_for(Duration::from_secs(30), "masters and workers", || async {
        children(&obs, paths::MASTER).await >= 2 && children(&obs, paths::WORKERS).await >= 2
    })
    .await?;
    farm.spawn(
        Role::Client,
        "stream",
        &[
            "--tasks".into(),
            "0".into(),
            "--concurrency".into(),
            "1".into(),
            "--task".into(),
            r#"{"kind":"sleep","ms":5}"#.into(),
        ],
    )?;
    let mut tails: BTreeMap<String, LogTail> = ["m1", "m2"]
        .iter()
        .map(|m| (m.to_string(), LogTail::new(farm.log_path(m))))
        .collect();
    let timeout_ms = plan.session_timeout.as_millis() as u64;
    let mut f = Failover {
        session_timeout_ms: timeout_ms,
        ..Default::default()
    };
    let limit = plan.session_timeout + Duration::from_secs(10);
    let trials = plan.sigterm_trials + plan.sigkill_trials;
    progress.phase("failover: leader kills", u64::from(trials));
    for trial in 0..trials {
        let signal = if trial < plan.sigterm_trials {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        wait_for(Duration::from_secs(30), "two master candidates", || async {
            children(&obs, paths::MASTER).await == 2
        })
        .await?;
        // Let the leader settle into assigning before the kill.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let leader = leader_id(&obs).await.context("no leader")?;
        let Some(other) = ["m1", "m2"].into_iter().find(|m| *m != leader) else {
            bail!("unexpected leader {leader}");
        };
        for t in tails.values_mut() {
            t.lines();
        }
        let t_kill = epoch_ms();
        farm.signal(&leader, signal)?;
        let tail = tails.get_mut(other).expect("tail");
        // When the new leader took over, and when it made its first assignment.
        let mut became: Option<f64> = None;
        let hit = first_line(limit, || {
            tail.lines().into_iter().find_map(|v| {
                let t = log_ms(&v).filter(|&t| t >= t_kill)?;
                let message = v["message"].as_str().unwrap_or_default();
                if message.starts_with("became leader") {
                    became.get_or_insert(t);
                }
                (message == "assigned").then_some(t)
            })
        })
        .await;
        match became {
            Some(b) if signal == Signal::SIGTERM => f.sigterm_leader_samples.push(b - t_kill),
            Some(b) => f.sigkill_leader_samples.push(b - t_kill),
            None => {}
        }
        match hit {
            Some(t) if signal == Signal::SIGTERM => f.sigterm_samples.push(t - t_kill),
            Some(t) => f.sigkill_samples.push(t - t_kill),
            None => f.failed_trials += 1,
        }
        tokio::task::block_in_place(|| farm.wait_exit(&leader, Duration::from_secs(10)));
        farm.restart(&leader)?;
        progress.pb.set_position(u64::from(trial) + 1);
    }

    progress.phase("failover: worker kills", u64::from(plan.worker_kill_trials));
    for trial in 0..plan.worker_kill_trials {
        let client = format!("long{trial}");
        farm.spawn(
            Role::Client,
            &client,
            &[
                "--tasks".into(),
                "1".into(),
                "--task".into(),
                r#"{"kind":"sleep","ms":600000}"#.into(),
            ],
        )?;
        let task = format!("{client}-00000001");
        let is_long = |v: &serde_json::Value| v["message"] == "assigned" && v["task"] == task.as_str();
        let first = first_line(Duration::from_secs(30), || {
            tails
                .values_mut()
                .flat_map(|t| t.lines())
                .find(|v| is_long(v))
                .and_then(|v| v["worker"].as_str().map(str::to_string))
        })
        .await;
        let Some(victim) = first else {
            f.failed_trials += 1;
            continue;
        };
        // Let the worker start it.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t_kill = epoch_ms();
        farm.signal(&victim, Signal::SIGKILL)?;
        let hit = first_line(limit, || {
            tails.values_mut().flat_map(|t| t.lines()).find_map(|v| {
                (is_long(&v) && v["worker"].as_str() != Some(victim.as_str()))
                    .then(|| log_ms(&v))
                    .flatten()
                    .filter(|&t| t >= t_kill)
            })
        })
        .await;
        match hit {
            Some(t) => f.worker_kill_samples.push(t - t_kill),
            None => f.failed_trials += 1,
        }
        farm.signal(&client, Signal::SIGTERM)?;
        farm.restart(&victim)?;
        wait_for(Duration::from_secs(30), "the workers to come back", || async {
            children(&obs, paths::WORKERS).await >= 2
        })
        .await?;
        progress.pb.set_position(u64::from(trial) + 1);
    }
    f.sigterm_leader_ms = Quantiles::of(&f.sigterm_leader_samples);
    f.sigterm_ms = Quantiles::of(&f.sigterm_samples);
    f.sigkill_ms = Quantiles::of(&f.sigkill_samples);
    f.worker_kill_ms = Quantiles::of(&f.worker_kill_samples);
    progress.note(format!(
        "failover: SIGTERM p50 {:.1} ms p99 {:.1} ms; SIGKILL p50 {:.0} ms p99 {:.0} ms; worker SIGKILL p50 {:.0} ms",
        f.sigterm_ms.p50, f.sigterm_ms.p99, f.sigkill_ms.p50, f.sigkill_ms.p99, f.worker_kill_ms.p50
    ));
    obs.close().await;
    farm.stop_all();
    Ok(f)
}

/// Throughput and master CPU per task while `queued` tasks wait: the client keeps `queued`
/// tasks in flight (queued first, with no worker yet), then workers start.
async fn backlog(
    zk: &ZkCluster,
    plan: &Plan,
    queued: u64,
    dir: &Path,
    binary: &Path,
    progress: &Progress,
    footprint: &mut Footprint,
) -> anyhow::Result<Backlog> {
    // A fresh chroot per run (the directory's name): nothing left over from an earlier run.
    let chroot = format!(
        "/bench-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("backlog")
    );
    let mut farm = LocalFarm::new(zk, &chroot, dir, binary, plan.session_timeout)?;
    let obs = farm.observer().await?;
    farm.spawn(Role::Master, "m1", &[])?;
    wait_for(Duration::from_secs(30), "a leader", || async {
        leader_id(&obs).await.is_some()
    })
    .await?;
    let measured = plan.backlog_measured;
    progress.phase(format!("backlog {queued}: queueing"), queued);
    farm.spawn(
        Role::Client,
        "c",
        &[
            "--tasks".into(),
            (queued + measured).to_string(),
            "--concurrency".into(),
            queued.to_string(),
            "--task".into(),
            NOOP_TASK.into(),
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let n = obs
            .client
            .check_stat(paths::TASKS)
            .await
            .ok()
            .flatten()
            .map_or(0, |s| s.num_children as u64);
        progress.pb.set_position(n);
        if n >= queued {
            break;
        }
        if Instant::now() > deadline || !farm.is_running("c") {
            bail!("the backlog of {queued} tasks did not fill ({n} queued)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    progress.phase(format!("backlog {queued}: draining"), measured);
    for i in 1..=plan.backlog_workers {
        farm.spawn(Role::Worker, &format!("bw{i}"), &[])?;
    }
    let mut counter = LineCounter::new(farm.results_path("c"));
    let (lo, hi) = (measured / 20, measured - measured / 20);
    let mut start: Option<(Instant, u64, u64)> = None;
    let end;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = counter.count();
        progress.pb.set_position(n);
        if let Some(pid) = farm.get("c").and_then(|p| p.pid()) {
            footprint.backlog_client_rss_kib = footprint.backlog_client_rss_kib.max(rss_kib(pid));
        }
        if start.is_none() && n >= lo {
            start = Some((Instant::now(), n, role_cpu_ticks(&farm, Role::Master)));
        }
        if n >= hi {
            end = (Instant::now(), n, role_cpu_ticks(&farm, Role::Master));
            break;
        }
        if Instant::now() > deadline || !farm.is_running("c") {
            bail!("backlog {queued}: only {n} of {measured} tasks came back");
        }
    }
    let (t0, n0, cpu0) = start.expect("start precedes end");
    let (t1, n1, cpu1) = end;
    obs.close().await;
    farm.stop_all();
    let tasks = (n1 - n0) as f64;
    Ok(Backlog {
        queued,
        workers: plan.backlog_workers,
        measured_tasks: n1 - n0,
        tasks_per_s: stats::ratio(tasks, (t1 - t0).as_secs_f64()),
        master_cpu_us_per_task: stats::ratio((cpu1 - cpu0) as f64 / USER_HZ * 1e6, tasks),
    })
}

/// Polls `cond` until it holds.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Polls `find` every 2 ms until it finds something, for at most `limit`.
async fn first_line<T>(limit: Duration, mut find: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(x) = find() {
            return Some(x);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn children(obs: &ZkSession, path: &str) -> usize {
    obs.client.list_children(path).await.map_or(0, |c| c.len())
}

/// The id of the master whose candidate znode has the lowest sequence number.
async fn leader_id(obs: &ZkSession) -> Option<String> {
    taskfarm::election::leader_id(obs).await.ok().flatten()
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn log_ms(v: &serde_json::Value) -> Option<f64> {
    stats::parse_utc_timestamp_ms(v["timestamp"].as_str()?)
}

/// New JSON lines of a log file since the last call.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    fn lines(&mut self) -> Vec<serde_json::Value> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = f.metadata().map_or(0, |m| m.len());
        if len < self.offset {
            // Truncated (should not happen: logs are appended to across restarts).
            self.offset = 0;
        }
        let mut buf = String::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_string(&mut buf).is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&buf);
        let Some(cut) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let complete: String = self.partial.drain(..=cut).collect();
        complete.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// Counts the lines of a growing file, reading only what was appended.
struct LineCounter {
    path: PathBuf,
    offset: u64,
    lines: u64,
}

impl LineCounter {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            offset: 0,
            lines: 0,
        }
    }

    fn count(&mut self) -> u64 {
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(self.offset)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                self.offset += buf.len() as u64;
                self.lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
            }
        }
        self.lines
    }
}

fn read_latencies(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["latency_ms"].as_f64())
        .collect()
}

fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stats::parse_proc_stat_cpu_ticks(&s))
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| stats::parse_proc_status_kib(&s, "VmRSS"))
        .unwrap_or(0)
}

fn role_cpu_ticks(farm: &LocalFarm, role: Role) -> u64 {
    farm.processes()
        .filter(|p| p.role == role)
        .filter_map(|p| p.pid())
        .map(cpu_ticks)
        .sum()
}

fn sample_rss(farm: &LocalFarm, fp: &mut Footprint) {
    for p in farm.processes() {
        let Some(pid) = p.pid() else { continue };
        let kib = rss_kib(pid);
        let slot = match p.role {
            Role::Master => &mut fp.master_rss_kib,
            Role::Worker => &mut fp.worker_rss_kib,
            Role::Client => &mut fp.client_rss_kib,
        };
        *slot = (*slot).max(kib);
    }
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|x| x.1.trim().to_string())
            })
            .unwrap_or_default(),
        mem_total_mib: stats::parse_proc_status_kib(&meminfo, "MemTotal").unwrap_or(0) / 1024,
        load_avg_at_start: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        zookeeper: String::new(),
    }
}
