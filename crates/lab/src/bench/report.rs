//! What the benchmark measured, the targets of issue 6, and the Markdown it prints.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::stats::{bytes_per_queued_task, ceiling_ratio, Quantiles};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_mib: u64,
    pub load_avg_at_start: String,
    pub zookeeper: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Ceiling {
    /// Pipelined single-op writes (creates, then deletes) from one connection.
    pub ops: u64,
    pub window: usize,
    pub creates_per_s: f64,
    pub deletes_per_s: f64,
    /// All pipelined writes over their total time: the ceiling used for the ratios.
    pub writes_per_s: f64,
    /// Transactions the server counted per write (zxid delta / writes): checks the method.
    pub zxid_per_write: f64,
    /// Client packets the servers received per write (`mntr` zk_packets_received).
    pub requests_per_write: f64,
    /// CPU the ZooKeeper servers spent per pipelined write (all servers, /proc).
    pub zk_cpu_us_per_write: f64,
    /// One write at a time (create and delete alternately).
    pub serial_ms: Quantiles,
    /// The same writes from many connections with few outstanding each (the farm's pattern).
    pub spread: SpreadCeiling,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SpreadCeiling {
    pub connections: usize,
    /// Requests outstanding per connection.
    pub window: usize,
    pub writes_per_s: f64,
    pub zk_cpu_us_per_write: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Point {
    pub workers: usize,
    pub clients: usize,
    pub concurrency_per_client: u64,
    pub tasks: u64,
    pub completed: u64,
    pub lost: u64,
    pub elapsed_s: f64,
    pub tasks_per_s: f64,
    pub latency_ms: Quantiles,
    /// Transactions ZooKeeper counted per task (zxid delta / tasks), sessions and /status included.
    pub writes_per_task: f64,
    /// throughput / (ceiling / protocol writes per task).
    pub ceiling_ratio: f64,
    pub master_cpu_us_per_task: f64,
    /// CPU all workers together, and both clients together, spent per task (/proc).
    pub workers_cpu_us_per_task: f64,
    pub clients_cpu_us_per_task: f64,
    /// Client packets (requests and pings) ZooKeeper received per task (`mntr` zk_packets_received).
    pub zk_requests_per_task: f64,
    /// Packets ZooKeeper sent per task: responses and watch notifications (`mntr` zk_packets_sent).
    pub zk_sent_per_task: f64,
    /// CPU the ZooKeeper servers spent per task (all servers, /proc).
    pub zk_cpu_us_per_task: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Failover {
    pub session_timeout_ms: u64,
    /// Leader SIGTERM to the new leader's first assignment.
    pub sigterm_ms: Quantiles,
    pub sigterm_samples: Vec<f64>,
    /// Leader SIGTERM to the new leader's "became leader" log line (the election alone).
    pub sigterm_leader_ms: Quantiles,
    /// SIGTERM to "became leader", per trial.
    pub sigterm_leader_samples: Vec<f64>,
    /// SIGKILL to "became leader", per trial.
    pub sigkill_leader_samples: Vec<f64>,
    /// Leader SIGKILL to the new leader's first assignment.
    pub sigkill_ms: Quantiles,
    pub sigkill_samples: Vec<f64>,
    /// Worker SIGKILL to its task assigned to another worker.
    pub worker_kill_ms: Quantiles,
    pub worker_kill_samples: Vec<f64>,
    pub failed_trials: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Backlog {
    pub queued: u64,
    pub workers: usize,
    pub measured_tasks: u64,
    pub tasks_per_s: f64,
    pub master_cpu_us_per_task: f64,
}

/// The scaling part (issue 15): the same farm against backlogs of growing size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Scaling {
    pub session_timeout_ms: u64,
    pub workers: usize,
    /// Results in each drain window.
    pub measured: u64,
    /// One per backlog size, smallest (the base) first.
    pub rows: Vec<ScalingRow>,
}

/// One backlog size: a fresh farm with `queued` tasks kept in flight by its clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScalingRow {
    pub queued: u64,
    /// Client processes keeping the backlog (at most 10,000 in flight each).
    pub clients: usize,
    /// Time to queue the backlog (no master, no worker).
    pub fill_s: f64,
    pub measured_tasks: u64,
    pub window_s: f64,
    pub tasks_per_s: f64,
    /// `tasks_per_s` over the smallest backlog's (filled by `evaluate`).
    pub throughput_vs_base: f64,
    /// Leader SIGTERM to the other master's `became leader` log line.
    pub sigterm_elected_ms: Quantiles,
    pub sigterm_elected_samples: Vec<f64>,
    /// Leader SIGTERM to the new leader's first `assigned`.
    pub sigterm_ms: Quantiles,
    pub sigterm_samples: Vec<f64>,
    pub sigkill_elected_ms: Quantiles,
    pub sigkill_elected_samples: Vec<f64>,
    /// Leader SIGKILL to the new leader's first `assigned`.
    pub sigkill_ms: Quantiles,
    pub sigkill_samples: Vec<f64>,
    pub failed_trials: u32,
    /// A restarted master: start to a settled standby (candidate listed, CPU quiet).
    pub standby_ready_ms: Quantiles,
    /// VmRSS with the queue at `queued` (peak over the window) of the leader and the standby.
    pub leader_rss_kib: u64,
    pub standby_rss_kib: u64,
    /// Above the smallest backlog's, per extra queued task (filled by `evaluate`).
    pub leader_bytes_per_task: f64,
    pub standby_bytes_per_task: f64,
    /// Peak VmRSS of any worker and of any client over the window.
    pub worker_rss_kib: u64,
    pub client_rss_kib: u64,
    /// CPU per task over the window (/proc utime + stime), microseconds.
    pub cpu_us_per_task: RoleFigures,
    /// Write transactions per task (`srvr` zxid delta).
    pub zxid_per_task: f64,
    /// ZooKeeper packets received and sent per task by role (`cons`, matched by session id).
    pub received_per_task: RoleFigures,
    pub sent_per_task: RoleFigures,
    /// Watches held after the window: `wchs` totals and `wchc` by role.
    pub watch_connections: u64,
    pub watched_paths: u64,
    pub watches: RoleFigures,
    /// Steps of a task in the window, from the roles' logs.
    pub steps: Steps,
}

/// A figure for each kind of process; `all` sums them (for packets: with the bench's own
/// observer sessions, for CPU: without the bench, with ZooKeeper).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleFigures {
    pub zookeeper: f64,
    pub leader: f64,
    pub standby: f64,
    pub workers: f64,
    pub clients: f64,
    pub other: f64,
    pub all: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Steps {
    /// The master's `assigned` to the worker's `task assigned` (it read its assignment).
    pub assign_to_worker_ms: Quantiles,
    /// The worker's `task assigned` to its `result committed` (payload read, run, commit).
    pub worker_ms: Quantiles,
    /// A worker's `result committed` to the master's next `assigned` to it (the master learns
    /// the worker is free, picks the oldest queued task, writes the assignment).
    pub commit_to_next_assign_ms: Quantiles,
    /// Submission to delivered result, as the clients record it (includes the wait in the queue).
    pub end_to_end_ms: Quantiles,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Footprint {
    pub master_rss_kib: u64,
    pub worker_rss_kib: u64,
    pub client_rss_kib: u64,
    /// The client holding the largest backlog (thousands of tasks in flight).
    pub backlog_client_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub value: String,
    pub pass: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServersReport {
    pub servers: usize,
    pub force_sync: bool,
    pub ceiling: Ceiling,
    pub protocol_writes_per_task: u32,
    pub points: Vec<Point>,
    pub failover: Failover,
    pub backlog: Vec<Backlog>,
    pub footprint: Footprint,
    pub scaling: Scaling,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    pub quick: bool,
    pub command: String,
    pub started_utc: String,
    pub machine: Machine,
    pub runs: Vec<ServersReport>,
}

impl ServersReport {
    /// The best throughput over the worker counts, and its ratio to the ceiling bound.
    pub fn best_point(&self) -> Option<&Point> {
        self.points
            .iter()
            .max_by(|a, b| a.tasks_per_s.total_cmp(&b.tasks_per_s))
    }

    /// Mean throughput per backlog size (runs are repeated in A-B-B-A order against drift), by size.
    pub fn backlog_means(&self) -> Vec<(u64, f64)> {
        let mut by_size: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for b in &self.backlog {
            by_size.entry(b.queued).or_default().push(b.tasks_per_s);
        }
        by_size
            .into_iter()
            .map(|(q, v)| (q, v.iter().sum::<f64>() / v.len() as f64))
            .collect()
    }

    /// Fills `ceiling_ratio` of every point and evaluates issue 6's targets.
    pub fn evaluate(&mut self) {
        let per_task = f64::from(self.protocol_writes_per_task);
        for p in &mut self.points {
            p.ceiling_ratio = ceiling_ratio(p.tasks_per_s, self.ceiling.writes_per_s, per_task);
        }
        let mut t = Vec::new();
        if let Some(best) = self.best_point() {
            t.push(Target {
                name: "no-op throughput vs ceiling / writes per task".into(),
                goal: ">= 60 %".into(),
                value: format!(
                    "{:.0} % ({:.0} tasks/s with {} workers; bound {:.0} tasks/s)",
                    best.ceiling_ratio * 100.0,
                    best.tasks_per_s,
                    best.workers,
                    self.ceiling.writes_per_s / per_task
                ),
                pass: best.ceiling_ratio >= 0.60,
            });
        }
        let means = self.backlog_means();
        if let (Some(small), Some(large)) = (means.first(), means.last()) {
            if means.len() >= 2 {
                let r = super::stats::ratio(large.1, small.1);
                t.push(Target {
                    name: format!("throughput with {} queued vs {} queued", large.0, small.0),
                    goal: ">= 90 %".into(),
                    value: format!("{:.0} % ({:.0} vs {:.0} tasks/s)", r * 100.0, large.1, small.1),
                    pass: r >= 0.90,
                });
            }
        }
        let f = &self.failover;
        if f.sigterm_ms.n > 0 {
            t.push(Target {
                name: "leader SIGTERM -> next assignment, p50".into(),
                goal: "< 50 ms".into(),
                value: format!(
                    "{:.1} ms (p99 {:.1} ms, n={})",
                    f.sigterm_ms.p50, f.sigterm_ms.p99, f.sigterm_ms.n
                ),
                pass: f.sigterm_ms.p50 < 50.0,
            });
        }
        if f.sigkill_ms.n > 0 {
            let limit = f.session_timeout_ms as f64 + 500.0;
            t.push(Target {
                name: "leader SIGKILL -> next assignment, p99".into(),
                goal: format!("<= session timeout + 0.5 s = {limit:.0} ms"),
                value: format!(
                    "{:.0} ms (p50 {:.0} ms, n={})",
                    f.sigkill_ms.p99, f.sigkill_ms.p50, f.sigkill_ms.n
                ),
                pass: f.sigkill_ms.p99 <= limit,
            });
        }
        let mib = |k: u64| k as f64 / 1024.0;
        for (role, kib) in [
            ("worker", self.footprint.worker_rss_kib),
            ("client", self.footprint.client_rss_kib),
        ] {
            if kib > 0 {
                t.push(Target {
                    name: format!("{role} resident memory under load"),
                    goal: "< 20 MiB".into(),
                    value: format!("{:.1} MiB", mib(kib)),
                    pass: mib(kib) < 20.0,
                });
            }
        }
        t.extend(self.scaling.evaluate());
        self.targets = t;
    }
}

/// Memory per queued task allowed above a fixed base (issue 15).
pub const SCALING_BYTES_PER_TASK: f64 = 300.0;
/// Trials the SIGTERM target asks for.
pub const SCALING_SIGTERM_TRIALS: usize = 10;

impl Scaling {
    /// Fills the figures relative to the smallest backlog and judges issue 15's targets at the
    /// largest one.
    pub fn evaluate(&mut self) -> Vec<Target> {
        let Some(base) = self.rows.first().cloned() else {
            return Vec::new();
        };
        for r in &mut self.rows {
            r.throughput_vs_base = super::stats::ratio(r.tasks_per_s, base.tasks_per_s);
            r.leader_bytes_per_task =
                bytes_per_queued_task(base.queued, base.leader_rss_kib, r.queued, r.leader_rss_kib);
            r.standby_bytes_per_task =
                bytes_per_queued_task(base.queued, base.standby_rss_kib, r.queued, r.standby_rss_kib);
        }
        let top = self.rows.last().expect("rows").clone();
        let b = top.queued;
        let mut t = Vec::new();
        let q = &top.sigterm_ms;
        if q.n > 0 {
            let few = if q.n < SCALING_SIGTERM_TRIALS {
                format!("; fewer than the {SCALING_SIGTERM_TRIALS} trials the target asks for")
            } else {
                String::new()
            };
            t.push(Target {
                name: format!("{b} queued: leader SIGTERM -> next assignment, p50"),
                goal: format!("< 50 ms (at least {SCALING_SIGTERM_TRIALS} trials)"),
                value: format!(
                    "{:.1} ms{} (p90 {:.1}, max {:.1}, n={}; elected after {:.1} ms{few})",
                    q.p50,
                    over_by(q.p50, 50.0, "ms"),
                    q.p90,
                    q.max,
                    q.n,
                    top.sigterm_elected_ms.p50
                ),
                pass: q.p50 < 50.0 && q.n >= SCALING_SIGTERM_TRIALS,
            });
        }
        let k = &top.sigkill_ms;
        if k.n > 0 {
            let limit = self.session_timeout_ms as f64 + 500.0;
            t.push(Target {
                name: format!("{b} queued: leader SIGKILL -> next assignment, max"),
                goal: format!("<= session timeout + 0.5 s = {limit:.0} ms"),
                value: format!(
                    "{:.0} ms{} (p50 {:.0}, n={}; elected after {:.0} ms)",
                    k.max,
                    over_by(k.max, limit, "ms"),
                    k.p50,
                    k.n,
                    top.sigkill_elected_ms.p50
                ),
                pass: k.max <= limit,
            });
        }
        if self.rows.len() >= 2 {
            let r = top.throughput_vs_base;
            t.push(Target {
                name: format!("throughput with {b} queued vs {} queued (scaling)", base.queued),
                goal: ">= 90 %".into(),
                value: format!(
                    "{:.0} % ({:.0} vs {:.0} tasks/s){}",
                    r * 100.0,
                    top.tasks_per_s,
                    base.tasks_per_s,
                    if r < 0.9 {
                        format!(", {:.0} points short", (0.9 - r) * 100.0)
                    } else {
                        String::new()
                    }
                ),
                pass: r >= 0.9,
            });
            for (who, kib, base_kib, per) in [
                (
                    "leader",
                    top.leader_rss_kib,
                    base.leader_rss_kib,
                    top.leader_bytes_per_task,
                ),
                (
                    "standby",
                    top.standby_rss_kib,
                    base.standby_rss_kib,
                    top.standby_bytes_per_task,
                ),
            ] {
                t.push(Target {
                    name: format!(
                        "{who} master memory per queued task above the {} queued base",
                        base.queued
                    ),
                    goal: format!("<= {SCALING_BYTES_PER_TASK:.0} bytes"),
                    value: format!(
                        "{per:.0} bytes{} ({} MiB at {b} queued, {} MiB at {})",
                        over_by(per, SCALING_BYTES_PER_TASK, "bytes"),
                        mib(kib),
                        mib(base_kib),
                        base.queued
                    ),
                    pass: per <= SCALING_BYTES_PER_TASK,
                });
            }
        }
        for (role, kib) in [("worker", top.worker_rss_kib), ("client", top.client_rss_kib)] {
            if kib > 0 {
                let m = kib as f64 / 1024.0;
                let held = if role == "client" {
                    format!(
                        " (each holding up to {} tasks in flight)",
                        b.div_ceil(top.clients.max(1) as u64)
                    )
                } else {
                    String::new()
                };
                t.push(Target {
                    name: format!("{b} queued: {role} resident memory"),
                    goal: "< 20 MiB".into(),
                    value: format!("{m:.1} MiB{}{held}", over_by(m, 20.0, "MiB")),
                    pass: m < 20.0,
                });
            }
        }
        t
    }
}

/// `", over by X unit (Y x)"` when `value` exceeds `limit`; empty otherwise.
fn over_by(value: f64, limit: f64, unit: &str) -> String {
    if value <= limit || limit <= 0.0 {
        return String::new();
    }
    format!(
        ", over by {:.0} {unit} ({:.1} x the goal)",
        value - limit,
        value / limit
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The whole report as Markdown.
pub fn render_markdown(report: &Report) -> String {
    let mut s = String::new();
    let m = &report.machine;
    let _ = writeln!(
        s,
        "Machine: {} CPUs ({}), {} MiB RAM, load average at start {}; {}{}\n",
        m.cpus,
        m.cpu_model,
        m.mem_total_mib,
        m.load_avg_at_start,
        m.zookeeper,
        if report.quick {
            "; **--quick run (CI check, not figures)**"
        } else {
            ""
        }
    );
    for r in &report.runs {
        render_servers(&mut s, r);
    }
    s
}

fn render_servers(s: &mut String, r: &ServersReport) {
    let c = &r.ceiling;
    let _ = writeln!(
        s,
        "### {} ZooKeeper server{} (forceSync={})\n",
        r.servers,
        if r.servers == 1 { "" } else { "s" },
        if r.force_sync { "yes" } else { "no" }
    );
    // Sections a run left out (`--only`) are not printed.
    if c.ops > 0 {
        let _ = writeln!(
            s,
            "**Ceiling** (one connection, {} pipelined writes, window {}): {:.0} writes/s \
             (creates {:.0}/s, deletes {:.0}/s; {:.2} zxid, {:.2} requests and {:.0} us of server CPU per write); serial round trip p50 {:.2} ms, \
             p99 {:.2} ms (n={}).\n",
            c.ops * 2,
            c.window,
            c.writes_per_s,
            c.creates_per_s,
            c.deletes_per_s,
            c.zxid_per_write,
            c.requests_per_write,
            c.zk_cpu_us_per_write,
            c.serial_ms.p50,
            c.serial_ms.p99,
            c.serial_ms.n
        );
        if c.spread.writes_per_s > 0.0 {
            let _ = writeln!(
                s,
                "The same writes from {} connections with {} outstanding on each (the way a farm sends them): \
                 {:.0} writes/s ({:.0} us of server CPU per write).\n",
                c.spread.connections, c.spread.window, c.spread.writes_per_s, c.spread.zk_cpu_us_per_write
            );
        }
        let _ = writeln!(
            s,
            "**Writes per task**: {} by the protocol (submit, assign, commit, clean-up: one multi each); \
             bound = ceiling / {} = {:.0} tasks/s.\n",
            r.protocol_writes_per_task,
            r.protocol_writes_per_task,
            c.writes_per_s / f64::from(r.protocol_writes_per_task)
        );
    }
    if !r.points.is_empty() {
        render_points(s, r);
    }
    let f = &r.failover;
    let failover_ran = f.failed_trials > 0
        || [&f.sigterm_leader_ms, &f.sigterm_ms, &f.sigkill_ms, &f.worker_kill_ms]
            .iter()
            .any(|q| q.n > 0);
    if failover_ran {
        render_failover(s, f);
    }
    if !r.backlog.is_empty() {
        let _ = writeln!(
            s,
            "\n**Backlog**:\n\n| queued | workers | measured tasks | tasks/s | master CPU us/task |\n|---:|---:|---:|---:|---:|"
        );
        for b in &r.backlog {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.0} |",
                b.queued, b.workers, b.measured_tasks, b.tasks_per_s, b.master_cpu_us_per_task
            );
        }
    }
    if !r.scaling.rows.is_empty() {
        render_scaling(s, &r.scaling);
    }
    let fp = &r.footprint;
    if fp.master_rss_kib > 0 {
        let backlog_client = if fp.backlog_client_rss_kib > 0 {
            format!(
                " (client holding the largest backlog: {} MiB)",
                mib(fp.backlog_client_rss_kib)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "\n**Footprint** (peak VmRSS under load): master {} MiB, worker {} MiB, client {} MiB{backlog_client}.",
            mib(fp.master_rss_kib),
            mib(fp.worker_rss_kib),
            mib(fp.client_rss_kib),
        );
    }
    let _ = writeln!(s, "\n| target | goal | measured | |\n|---|---|---|---|");
    for t in &r.targets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.name,
            t.goal,
            t.value,
            if t.pass { "PASS" } else { "MISS" }
        );
    }
    let _ = writeln!(s);
}

fn render_points(s: &mut String, r: &ServersReport) {
    let _ = writeln!(
        s,
        "| workers | clients x conc. | tasks | tasks/s | p50 ms | p99 ms | % of bound | zxid/task | ZK requests/task | ZK packets sent/task | ZK CPU us/task | master CPU us/task | workers CPU us/task | clients CPU us/task |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for p in &r.points {
        let _ = writeln!(
            s,
            "| {} | {} x {} | {}{} | {:.0} | {:.1} | {:.1} | {:.0} % | {:.2} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
            p.workers,
            p.clients,
            p.concurrency_per_client,
            p.completed,
            if p.lost > 0 {
                format!(" ({} lost)", p.lost)
            } else {
                String::new()
            },
            p.tasks_per_s,
            p.latency_ms.p50,
            p.latency_ms.p99,
            p.ceiling_ratio * 100.0,
            p.writes_per_task,
            p.zk_requests_per_task,
            p.zk_sent_per_task,
            p.zk_cpu_us_per_task,
            p.master_cpu_us_per_task,
            p.workers_cpu_us_per_task,
            p.clients_cpu_us_per_task
        );
    }
}

/// The scaling part: three tables, one row per backlog size each.
pub fn render_scaling(s: &mut String, sc: &Scaling) {
    let _ = writeln!(
        s,
        "\n**Scaling with the backlog** (a fresh farm per size: the backlog queued with no master \
         and no worker, by clients that keep it in flight; then masters m1 (leader) and m2 (standby) \
         and {} workers; drain window of {} results; session timeout {} ms):\n",
        sc.workers, sc.measured, sc.session_timeout_ms
    );
    let _ = writeln!(
        s,
        "| queued | tasks/s | vs base | SIGTERM -> elected p50 ms | SIGTERM -> first assignment p50 / p90 / max ms (n) | \
         SIGKILL -> first assignment p50 / max ms (n) | leader MiB | standby MiB | leader bytes/task above base | \
         standby bytes/task above base | worker MiB | client MiB |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &sc.rows {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} % | {:.1} | {:.1} / {:.1} / {:.1} ({}) | {:.0} / {:.0} ({}) | {} | {} | {:.0} | {:.0} | {} | {} |",
            r.queued,
            r.tasks_per_s,
            r.throughput_vs_base * 100.0,
            r.sigterm_elected_ms.p50,
            r.sigterm_ms.p50,
            r.sigterm_ms.p90,
            r.sigterm_ms.max,
            r.sigterm_ms.n,
            r.sigkill_ms.p50,
            r.sigkill_ms.max,
            r.sigkill_ms.n,
            mib(r.leader_rss_kib),
            mib(r.standby_rss_kib),
            r.leader_bytes_per_task,
            r.standby_bytes_per_task,
            mib(r.worker_rss_kib),
            mib(r.client_rss_kib),
        );
    }
    let failed: u32 = sc.rows.iter().map(|r| r.failed_trials).sum();
    if failed > 0 {
        let _ = writeln!(
            s,
            "\n{failed} failover trial(s) saw no assignment in time (not counted)."
        );
    }
    let _ = writeln!(
        s,
        "\n**Where the cost goes, per task** (over the drain window; CPU from /proc in us; packets \
         received / sent by ZooKeeper from `cons`, by the session each role logs; watches from \
         `wchs` and `wchc` after the window):\n"
    );
    let _ = writeln!(
        s,
        "| queued | ZooKeeper CPU | leader CPU | standby CPU | workers CPU | clients CPU | zxid | \
         leader pkts | standby pkts | workers pkts | clients pkts | all pkts | watches (paths) | \
         watches leader / standby / workers / clients |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &sc.rows {
        let (c, rx, tx, w) = (&r.cpu_us_per_task, &r.received_per_task, &r.sent_per_task, &r.watches);
        let pk = |a: f64, b: f64| format!("{a:.2} / {b:.2}");
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} ({}) | {} / {} / {} / {} |",
            r.queued,
            c.zookeeper,
            c.leader,
            c.standby,
            c.workers,
            c.clients,
            r.zxid_per_task,
            pk(rx.leader, tx.leader),
            pk(rx.standby, tx.standby),
            pk(rx.workers, tx.workers),
            pk(rx.clients, tx.clients),
            pk(rx.all, tx.all),
            w.all,
            r.watched_paths,
            w.leader,
            w.standby,
            w.workers,
            w.clients,
        );
    }
    let _ = writeln!(
        s,
        "\n**Steps of a task** (p50 / p99 ms, from the roles' logs over the window; the end to end \
         time includes the wait in the queue; a restarted master is a settled standby once its CPU, memory and requests to ZooKeeper are quiet):\n"
    );
    let _ = writeln!(
        s,
        "| queued | master assigned -> worker has it | worker has it -> committed | committed -> its next assignment | \
         submitted -> result (client) | restarted master -> settled standby (p50 / max) |\n\
         |---:|---:|---:|---:|---:|---:|"
    );
    let q = |q: &Quantiles| format!("{:.1} / {:.1}", q.p50, q.p99);
    for r in &sc.rows {
        let st = &r.steps;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} / {:.0} | {:.0} / {:.0} |",
            r.queued,
            q(&st.assign_to_worker_ms),
            q(&st.worker_ms),
            q(&st.commit_to_next_assign_ms),
            st.end_to_end_ms.p50,
            st.end_to_end_ms.p99,
            r.standby_ready_ms.p50,
            r.standby_ready_ms.max,
        );
    }
}

fn render_failover(s: &mut String, f: &Failover) {
    let _ = writeln!(
        s,
        "\n**Failover** (session timeout {} ms):\n\n| event | trials | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|",
        f.session_timeout_ms
    );
    for (name, q) in [
        ("leader SIGTERM -> new leader elected (log line)", &f.sigterm_leader_ms),
        ("leader SIGTERM -> new leader's first assignment", &f.sigterm_ms),
        ("leader SIGKILL -> new leader's first assignment", &f.sigkill_ms),
        ("worker SIGKILL -> its task assigned elsewhere", &f.worker_kill_ms),
    ] {
        if q.n > 0 {
            let _ = writeln!(s, "| {name} | {} | {:.1} | {:.1} | {:.1} |", q.n, q.p50, q.p99, q.max);
        }
    }
    if f.failed_trials > 0 {
        let _ = writeln!(
            s,
            "\n{} trial(s) saw no assignment in time (not counted).",
            f.failed_trials
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::PROTOCOL_WRITES_PER_TASK;
    use super::*;

    fn report() -> ServersReport {
        ServersReport {
            servers: 1,
            force_sync: true,
            protocol_writes_per_task: PROTOCOL_WRITES_PER_TASK,
            ceiling: Ceiling {
                writes_per_s: 8_000.0,
                ..Default::default()
            },
            points: vec![
                Point {
                    workers: 1,
                    tasks_per_s: 400.0,
                    ..Default::default()
                },
                Point {
                    workers: 2,
                    tasks_per_s: 1_300.0,
                    ..Default::default()
                },
            ],
            backlog: vec![
                Backlog {
                    queued: 100,
                    tasks_per_s: 900.0,
                    ..Default::default()
                },
                Backlog {
                    queued: 10_000,
                    tasks_per_s: 850.0,
                    ..Default::default()
                },
                Backlog {
                    queued: 100,
                    tasks_per_s: 1_100.0,
                    ..Default::default()
                },
                Backlog {
                    queued: 10_000,
                    tasks_per_s: 850.0,
                    ..Default::default()
                },
            ],
            failover: Failover {
                session_timeout_ms: 2_000,
                sigterm_ms: Quantiles::of(&[20.0, 30.0, 40.0]),
                sigkill_ms: Quantiles::of(&[2_100.0, 2_600.0]),
                ..Default::default()
            },
            footprint: Footprint {
                worker_rss_kib: 10_000,
                client_rss_kib: 30_000,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn targets_are_judged_from_the_figures() {
        let mut r = report();
        r.evaluate();
        assert!((r.points[1].ceiling_ratio - 0.65).abs() < 1e-12);
        let verdicts: Vec<bool> = r.targets.iter().map(|t| t.pass).collect();
        // throughput 65 % PASS, backlog 85 % MISS, SIGTERM 30 ms PASS, SIGKILL 2.6 s MISS,
        // worker 9.8 MiB PASS, client 29 MiB MISS.
        assert_eq!(verdicts, [true, false, true, false, true, false]);
        let md = render_markdown(&Report {
            runs: vec![r],
            ..Default::default()
        });
        assert!(md.contains("| 2 | 0 x 0 | 0 | 1300 |"), "{md}");
        assert!(md.contains("ZK requests/task"));
        assert!(md.contains("MISS") && md.contains("PASS"));
    }

    fn scaling_row(queued: u64, tasks_per_s: f64, leader_mib: f64, sigterm: &[f64]) -> ScalingRow {
        ScalingRow {
            queued,
            clients: queued.div_ceil(10_000) as usize,
            tasks_per_s,
            leader_rss_kib: (leader_mib * 1024.0) as u64,
            standby_rss_kib: 6 * 1024,
            sigterm_ms: Quantiles::of(sigterm),
            sigkill_ms: Quantiles::of(&[2_100.0, 2_300.0]),
            worker_rss_kib: 7 * 1024,
            client_rss_kib: 42 * 1024,
            ..Default::default()
        }
    }

    #[test]
    fn scaling_is_judged_at_the_largest_backlog_against_the_smallest() {
        let fast: Vec<f64> = (1..=10).map(f64::from).collect();
        let mut sc = Scaling {
            session_timeout_ms: 2_000,
            workers: 4,
            measured: 4_000,
            rows: vec![
                scaling_row(100, 1_000.0, 7.0, &fast),
                // 100,000 queued: 3.7 s failovers, 74 MiB (about 700 bytes a task), 95 % throughput.
                scaling_row(100_000, 950.0, 74.0, &[3_700.0; 10]),
            ],
        };
        let t = sc.evaluate();
        let top = &sc.rows[1];
        assert!((top.throughput_vs_base - 0.95).abs() < 1e-12);
        let expected = (67.0 * 1024.0 * 1024.0) / 99_900.0;
        assert!(
            (top.leader_bytes_per_task - expected).abs() < 1.0,
            "{}",
            top.leader_bytes_per_task
        );
        assert_eq!(top.standby_bytes_per_task, 0.0);
        let verdicts: Vec<(&str, bool)> = t.iter().map(|t| (t.name.as_str(), t.pass)).collect();
        // SIGTERM MISS, SIGKILL PASS, throughput PASS, leader memory MISS, standby memory PASS,
        // worker PASS, client MISS.
        assert_eq!(
            verdicts.iter().map(|v| v.1).collect::<Vec<_>>(),
            [false, true, true, false, true, true, false],
            "{verdicts:?}"
        );
        assert!(t[0].value.contains("over by 3650 ms"), "{}", t[0].value);
        assert!(t[3].value.contains("over by"), "{}", t[3].value);
        let mut md = String::new();
        render_scaling(&mut md, &sc);
        assert!(md.contains("| 100000 | 950 | 95 % |"), "{md}");
        assert!(md.contains("Where the cost goes"));
        assert!(md.contains("Steps of a task"));
        // A base alone judges only what needs no base.
        let mut one = Scaling {
            rows: vec![scaling_row(100, 1_000.0, 7.0, &[5.0, 6.0, 7.0])],
            ..Default::default()
        };
        let t = one.evaluate();
        assert!(t[0].value.contains("fewer than the 10 trials"), "{}", t[0].value);
        assert!(!t[0].pass);
        assert!(t.iter().all(|t| !t.name.contains("memory per queued task")));
    }
}
