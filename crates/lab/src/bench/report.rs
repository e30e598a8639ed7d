//! What the benchmark measured, the targets of issue 6, and the Markdown it prints.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::stats::{ceiling_ratio, Quantiles};

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
        self.targets = t;
    }
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
    // Sections a run left out (`--only`) are not printed.
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
}
