//! The bench's command line, and the plan it makes of it: how big each part of the run is.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

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
    /// Parts to run (default: ceiling, throughput, failover, backlog). `scaling` (issue 15: the
    /// farm against backlogs of 100 to 100,000 queued tasks) runs only when named here, and on
    /// one server unless --zk-servers says otherwise.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Option<Vec<Part>>,
    /// Backlog sizes of the scaling part (default 100,1000,10000,100000; --quick: 100,1000,10000).
    #[arg(long, value_delimiter = ',')]
    pub backlogs: Option<Vec<u64>>,
    /// Where to draw the scaling chart (SVG; default: the run directory, or beside --replot's JSON).
    #[arg(long)]
    pub scaling_plot: Option<PathBuf>,
    /// Measure nothing: redraw the chart (--plot) and reprint the tables from an earlier --json file.
    #[arg(long, value_name = "JSON")]
    pub replot: Option<PathBuf>,
    /// Run ZooKeeper with forceSync=no (no fsync of its transaction log): not a real deployment.
    #[arg(long)]
    pub no_force_sync: bool,
}

/// The parts of a run, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    Ceiling,
    Throughput,
    Failover,
    Backlog,
    /// Not part of the default run: it takes minutes (6 here; under 2 with --quick).
    Scaling,
}

impl Part {
    /// What a run without `--only` runs.
    pub fn defaults() -> Vec<Part> {
        vec![Part::Ceiling, Part::Throughput, Part::Failover, Part::Backlog]
    }
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
pub(super) struct Plan {
    pub ceiling_ops: u64,
    pub window: usize,
    pub serial_ops: u64,
    pub workers: Vec<usize>,
    pub tasks_per_point: u64,
    pub sigterm_trials: u32,
    pub sigkill_trials: u32,
    pub worker_kill_trials: u32,
    pub backlog_sizes: Vec<u64>,
    pub backlog_measured: u64,
    pub backlog_workers: usize,
    pub session_timeout: Duration,
    pub force_sync: bool,
    /// The scaling part: backlog sizes, smallest first (the base the others are judged against).
    pub scaling_backlogs: Vec<u64>,
    /// Results before the scaling window opens, and results in it.
    pub scaling_warmup: u64,
    pub scaling_measured: u64,
    pub scaling_sigterm_trials: u32,
    pub scaling_sigkill_trials: u32,
    pub scaling_workers: usize,
    parts: Vec<Part>,
}

impl Plan {
    pub fn new(args: &BenchArgs) -> Self {
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
            scaling_backlogs: {
                let mut b = args.backlogs.clone().unwrap_or_else(|| {
                    if q {
                        vec![100, 1_000, 10_000]
                    } else {
                        vec![100, 1_000, 10_000, 100_000]
                    }
                });
                b.retain(|&n| n > 0);
                b.sort_unstable();
                b.dedup();
                b
            },
            scaling_warmup: if q { 200 } else { 1_000 },
            scaling_measured: if q { 1_000 } else { 4_000 },
            scaling_sigterm_trials: if q { 3 } else { 10 },
            scaling_sigkill_trials: if q { 1 } else { 3 },
            scaling_workers: 4,
            parts: args.only.clone().unwrap_or_else(Part::defaults),
        }
    }

    /// Whether `--only` (or its default, everything) includes `part`.
    pub fn runs(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }

    /// Whether scaling is all this run does (it then needs one server only).
    pub fn only_scaling(&self) -> bool {
        self.parts.iter().all(|&p| p == Part::Scaling)
    }
}
