//! Backlog scaling: throughput and the master's CPU per task while a large backlog waits. The
//! client keeps `queued` tasks in flight (queued first, with no worker yet), then workers
//! start and drain it; the middle of the drain is measured.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::FutureExt as _;
use taskfarm::protocol::paths;
use taskfarm::zk::{is_terminal, PersistentWatch, ZkSession};
use taskfarm_harness::ZkCluster;
use zookeeper_client::{EventType, WatchedEvent};

use super::args::Plan;
use super::progress::Progress;
use super::report::{Backlog, Footprint};
use super::sampling::{role_cpu_ticks, rss_kib};
use super::stats;
use super::tail::LineCounter;
use super::{noop_client_args, waits};
use crate::farm::{LocalFarm, Role};

pub(super) async fn backlog(
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
    waits::leader(&obs).await?;
    let measured = plan.backlog_measured;
    progress.phase(format!("backlog {queued}: queueing"), queued);
    // A session of its own, closed before the drain: its watch must not cost ZooKeeper
    // anything while the drain is measured.
    let watcher = farm.observer().await?;
    let client = [("c".to_string(), noop_client_args(queued + measured, queued).to_vec())];
    let filled = fill(&mut farm, &watcher, &client, queued, progress).await;
    watcher.close().await;
    filled?;

    progress.phase(format!("backlog {queued}: draining"), measured);
    for i in 1..=plan.backlog_workers {
        farm.spawn(Role::Worker, &format!("bw{i}"), &[])?;
    }
    let mut counter = LineCounter::new(farm.results_path("c"));
    let (lo, hi) = (measured / 20, measured - measured / 20);
    let mut start: Option<(Instant, u64, u64)> = None;
    let end;
    let deadline = Instant::now() + Duration::from_secs(600);
    // A sampling loop, not a wait: the rate is timed from when the count crosses its bounds,
    // and the client's RSS is read while it runs.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = counter.count();
        progress.set_position(n);
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
        master_cpu_us_per_task: stats::ratio(stats::ticks_us(cpu1.saturating_sub(cpu0)), tasks),
    })
}

/// Starts the clients (name, arguments) and waits until `queued` tasks wait in `/tasks`, reading
/// its child count (a stat, not a listing of thousands of names) after each change a watch on
/// it reports.
pub(super) async fn fill(
    farm: &mut LocalFarm,
    watcher: &ZkSession,
    clients: &[(String, Vec<String>)],
    queued: u64,
    progress: &Progress,
) -> anyhow::Result<()> {
    // Watching before the clients start: no change can come unseen.
    let mut tasks = PersistentWatch::node(&watcher.client, paths::TASKS).await?;
    for (name, args) in clients {
        farm.spawn(Role::Client, name, args)?;
    }
    let limit = Duration::from_secs(300);
    let mut n = 0;
    let filled = taskfarm::waits::within(limit, "the backlog to fill", async {
        loop {
            n = watcher
                .client
                .check_stat(paths::TASKS)
                .await?
                .map_or(0, |s| s.num_children as u64);
            progress.set_position(n);
            if n >= queued {
                return Ok(());
            }
            // A dead client's tasks go with its session: that change comes as an event too.
            if let Some((name, _)) = clients.iter().find(|(name, _)| !farm.is_running(name)) {
                bail!("client {name} exited");
            }
            let ended = |e: WatchedEvent| e.event_type == EventType::Session && is_terminal(e.session_state);
            let mut end = ended(tasks.next().await);
            // One stat answers for every change that came meanwhile (`next` is cancel-safe).
            while let Some(e) = tasks.next().now_or_never() {
                end |= ended(e);
            }
            if end {
                bail!("the watching session ended");
            }
        }
    })
    .await;
    filled.map_err(|e| anyhow::anyhow!("the backlog of {queued} tasks did not fill ({n} queued): {e:#}"))
}
