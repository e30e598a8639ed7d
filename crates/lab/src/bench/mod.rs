//! Benchmarks (issue 6): ZooKeeper's own write ceiling on the very servers the farm uses, no-op
//! throughput end to end against it, failover latency, backlog scaling and footprint.
//!
//! Everything runs as real processes (ZooKeeper servers from [`taskfarm_harness`], roles from
//! [`crate::farm`]); figures come from the clients' own summaries and result logs, the roles'
//! JSON logs (timestamps of `assigned`), ZooKeeper's `srvr` zxid and `/proc`.
//!
//! This module runs the parts in turn on 1 and/or 3 servers and writes the report. Each part is
//! a module of its own (`ceiling`, `throughput`, `failover`, `backlog`, and `scaling`, which runs
//! only when asked for with `--only`), as is what they share:
//! the command line (`args`), the progress line (`progress`), the waits for a farm to be ready
//! (`waits`), the roles' files read as they grow (`tail`) and the processes sampled from
//! outside (`sampling`); the figures' pure helpers are in [`stats`], the report in [`report`].

mod args;
mod backlog;
mod ceiling;
mod failover;
mod plot;
mod progress;
pub mod report;
mod sampling;
mod scaling;
pub mod stats;
mod tail;
mod throughput;
mod waits;

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use tracing::Instrument as _;

use taskfarm_harness::{ZkCluster, ZkOptions};

use self::args::Plan;
pub use self::args::{BenchArgs, Part};
use self::progress::Progress;
use self::report::{Machine, Report, ServersReport};
use self::stats::PROTOCOL_WRITES_PER_TASK;

/// The task of every measured client: it costs the worker nothing, so the farm is what is timed.
const NOOP_TASK: &str = r#"{"kind":"sleep","ms":0}"#;

/// A client's arguments: `tasks` no-op tasks, `concurrency` of them in flight.
fn noop_client_args(tasks: u64, concurrency: u64) -> [String; 6] {
    [
        "--tasks".into(),
        tasks.to_string(),
        "--concurrency".into(),
        concurrency.to_string(),
        "--task".into(),
        NOOP_TASK.into(),
    ]
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(json) = &args.replot {
        return replot(json, &args);
    }
    let plan = Plan::new(&args);
    let run_dir = crate::farm::new_run_dir("bench")?;
    let binary = taskfarm_harness::role_binary()?;
    let progress = Progress::start();
    progress.note(format!("bench: run directory {}", run_dir.display()));
    let mut report = Report {
        quick: args.quick,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_utc: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        machine: sampling::machine(),
        runs: Vec::new(),
    };
    let server_counts = match args.zk_servers {
        Some(n) => vec![n],
        // The scaling part alone runs on one server unless told otherwise.
        None if plan.only_scaling() => vec![1],
        None => vec![1, 3],
    };
    for n in server_counts {
        let dir = run_dir.join(format!("zk{n}"));
        let r = bench_servers(n, &plan, &dir, &binary, &progress, &mut report.machine)
            .instrument(tracing::info_span!("bench", zk_servers = n))
            .await?;
        report.runs.push(r);
    }
    progress.finish();
    let plot = args.plot.clone().unwrap_or_else(|| run_dir.join("throughput.svg"));
    let scaling_plot = args.scaling_plot.clone().unwrap_or_else(|| run_dir.join("scaling.svg"));
    let charts = draw_charts(&report, &plot, &scaling_plot)?;
    let md = report::render_markdown(&report);
    print!("{md}");
    for c in charts {
        println!("Chart: {}", c.display());
    }
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

/// `--replot`: the chart and the tables again from an earlier run's JSON, measuring nothing.
fn replot(json: &Path, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let report: Report = serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
    let plot = args.plot.clone().unwrap_or_else(|| json.with_extension("svg"));
    let scaling_plot = args
        .scaling_plot
        .clone()
        .unwrap_or_else(|| json.with_extension("scaling.svg"));
    let charts = draw_charts(&report, &plot, &scaling_plot)?;
    print!("{}", report::render_markdown(&report));
    for c in charts {
        println!("Chart: {}", c.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws the charts the report has figures for; returns where.
fn draw_charts(report: &Report, throughput: &Path, scaling: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut drawn = Vec::new();
    let has_points = report.runs.iter().any(|r| !r.points.is_empty());
    let has_scaling = report.runs.iter().any(|r| !r.scaling.rows.is_empty());
    for (path, wanted, is_scaling) in [
        (throughput, has_points || !has_scaling, false),
        (scaling, has_scaling, true),
    ] {
        if !wanted {
            continue;
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        if is_scaling {
            plot::scaling_svg(&report.runs, path)?;
        } else {
            plot::throughput_svg(&report.runs, path)?;
        }
        drawn.push(path.to_path_buf());
    }
    Ok(drawn)
}

/// Every part of the plan on `n` ZooKeeper servers of their own.
async fn bench_servers(
    n: usize,
    plan: &Plan,
    dir: &Path,
    binary: &Path,
    progress: &Progress,
    machine: &mut Machine,
) -> anyhow::Result<ServersReport> {
    progress.phase(format!("starting {n} ZooKeeper server(s)"), 0);
    let zk = start_servers(n, plan, dir)?;
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

    if plan.runs(Part::Ceiling) {
        progress.phase(
            format!("[{n} server(s)] ceiling: pipelined writes"),
            plan.ceiling_ops * 2,
        );
        r.ceiling = ceiling::ceiling(&zk, plan, progress).await?;
        progress.note(format!(
            "[{n}] ceiling {:.0} writes/s ({:.2} zxid/write), serial p50 {:.2} ms p99 {:.2} ms",
            r.ceiling.writes_per_s, r.ceiling.zxid_per_write, r.ceiling.serial_ms.p50, r.ceiling.serial_ms.p99
        ));
    }
    if plan.runs(Part::Throughput) {
        throughput::throughput(&zk, plan, &dir.join("throughput"), binary, progress, &mut r).await?;
    }
    if plan.runs(Part::Failover) {
        r.failover = failover::failover(&zk, plan, &dir.join("failover"), binary, progress).await?;
    }
    let backlog_sizes = if plan.runs(Part::Backlog) {
        plan.backlog_sizes.clone()
    } else {
        Vec::new()
    };
    for &queued in &backlog_sizes {
        let dir = dir.join(format!("backlog-{queued}-{}", r.backlog.len()));
        let b = backlog::backlog(&zk, plan, queued, &dir, binary, progress, &mut r.footprint).await?;
        progress.note(format!(
            "[{n}] backlog {queued}: {:.0} tasks/s, master {:.0} us CPU/task",
            b.tasks_per_s, b.master_cpu_us_per_task
        ));
        r.backlog.push(b);
    }
    if plan.runs(Part::Scaling) {
        r.scaling = scaling::scaling(&zk, plan, &dir.join("scaling"), binary, progress).await?;
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

/// `n` ZooKeeper servers configured as the bench measures them.
fn start_servers(n: usize, plan: &Plan, dir: &Path) -> anyhow::Result<ZkCluster> {
    let options = ZkOptions {
        tick_ms: 200,
        max_session_ticks: 200,
        force_sync: plan.force_sync,
        base_dir: Some(dir.join("zookeeper")),
        // 100,000 queued tasks are 200,000 znodes and 100,000 watches: room to hold them
        // without the collector running all the time.
        heap_mb: if plan.runs(Part::Scaling) { 2048 } else { 512 },
        // Measure ZooKeeper as it runs in production, not as the tests start it.
        full_jit: true,
        // No per-host limit: every client of the bench connects from this one host.
        max_client_connections: 0,
        // Anything the harness adds later (e.g. `enforce_quota`) as the harness sets it.
        ..ZkOptions::default()
    };
    tokio::task::block_in_place(|| {
        if n == 1 {
            ZkCluster::standalone(options)
        } else {
            ZkCluster::ensemble(n, options)
        }
    })
}
