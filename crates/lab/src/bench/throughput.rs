//! No-op tasks end to end with growing numbers of workers, in one farm: tasks per second,
//! latency, and what each task costs ZooKeeper, the master, the workers and the clients.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use taskfarm::protocol::paths;
use taskfarm_harness::ZkCluster;

use super::args::Plan;
use super::progress::Progress;
use super::report::{Footprint, Point, ServersReport};
use super::sampling::{cpu_ticks, role_cpu_ticks, sample_rss, ZkSample};
use super::stats::{self, Quantiles};
use super::tail::LineCounter;
use super::{noop_client_args, waits};
use crate::farm::{read_summary, LocalFarm, Role};

/// How long one point (or the warm-up) may take: reaching it means the farm is stuck.
const POINT_LIMIT: Duration = Duration::from_secs(600);

pub(super) async fn throughput(
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
    waits::leader(&obs).await?;
    let mut started = 0usize;
    for (i, &w) in plan.workers.iter().enumerate() {
        while started < w {
            started += 1;
            farm.spawn(Role::Worker, &format!("w{started:02}"), &[])?;
        }
        waits::children(&obs, paths::WORKERS, "the workers to register", |n| n >= started).await?;
        if i == 0 {
            // Unmeasured: the servers' JIT compiles the farm's request mix (reads, multis,
            // watches) before the first point is timed, as it has for the ones after it.
            progress.phase("throughput: warming up", 0);
            farm.spawn(Role::Client, "warm-up", &noop_client_args(plan.tasks_per_point / 2, 4))?;
            if tokio::task::block_in_place(|| farm.wait_exit("warm-up", POINT_LIMIT)).is_none() {
                bail!("the warm-up client did not finish within 10 minutes");
            }
        }
        let p = point(zk, &mut farm, plan, started, progress, &mut r.footprint).await?;
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

/// One point of the sweep: two clients against `workers` workers, until both are done.
async fn point(
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
    let zk0 = ZkSample::take(zk);
    let cpu0 = role_cpu_ticks(farm, Role::Master);
    let workers0 = role_cpu_ticks(farm, Role::Worker);
    // The clients exit at the end of the point: their CPU is sampled while they run.
    let mut client_ticks: HashMap<u32, u64> = HashMap::new();
    for name in &names {
        farm.spawn(Role::Client, name, &noop_client_args(per_client, concurrency))?;
    }
    let mut counters: Vec<LineCounter> = names.iter().map(|n| LineCounter::new(farm.results_path(n))).collect();
    let deadline = Instant::now() + POINT_LIMIT;
    // A sampling loop, not a wait: CPU and RSS must be read while the clients still run.
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
        progress.set_position(done);
        if names.iter().all(|n| !farm.is_running(n)) {
            break;
        }
        if Instant::now() > deadline {
            bail!("throughput point with {workers} workers did not finish within 10 minutes");
        }
    }
    let zk1 = ZkSample::take(zk);
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
    let per_task = |x: f64| stats::ratio(x, completed as f64);
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
        writes_per_task: zk1.writes_since(&zk0).map_or(0.0, |d| per_task(d as f64)),
        zk_requests_per_task: per_task(zk1.counter_since(&zk0, "zk_packets_received")),
        zk_sent_per_task: per_task(zk1.counter_since(&zk0, "zk_packets_sent")),
        zk_cpu_us_per_task: per_task(zk1.cpu_us_since(&zk0)),
        ceiling_ratio: 0.0,
        master_cpu_us_per_task: per_task(stats::ticks_us(cpu1.saturating_sub(cpu0))),
        workers_cpu_us_per_task: per_task(stats::ticks_us(workers1.saturating_sub(workers0))),
        clients_cpu_us_per_task: per_task(stats::ticks_us(clients_cpu)),
    })
}

/// The latencies a client recorded with its results.
fn read_latencies(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["latency_ms"].as_f64())
        .collect()
}
