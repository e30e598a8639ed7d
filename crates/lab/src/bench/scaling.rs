//! Scaling with the backlog (issue 15): the same farm with 100 to 100,000 tasks queued. For each
//! size, a fresh farm: the backlog is queued with no master and no worker by clients that keep it
//! in flight (so it stays at that size while the farm drains it), then two masters (m1 leads, m2
//! stands by) and four workers start. Measured, in this order:
//!
//! - a drain window: tasks/s; CPU per task of every process and of the ZooKeeper servers
//!   (`/proc`); packets per task by role (`cons`, matched to the roles by the session id each
//!   logs); the masters', workers' and clients' resident memory; the steps of a task (the
//!   roles' log timestamps); then the watches held (`wchs`, `wchc`);
//! - leader failovers with the queue still deep: SIGTERM, then SIGKILL, each timed to the new
//!   leader's first `assigned`; the killed master is started again and the next trial waits
//!   until it is a settled standby (its candidate listed, its CPU quiet).
//!
//! Only two of the masters' log lines are relied on: `became leader...` and `assigned`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;
use taskfarm::protocol::paths;
use taskfarm::zk::ZkSession;
use taskfarm_harness::ZkCluster;

use super::args::Plan;
use super::failover::{epoch_ms, kill_leader, log_ms, MasterLogs, MASTERS};
use super::progress::Progress;
use super::report::{RoleFigures, Scaling, ScalingRow, Steps};
use super::sampling::{cpu_ticks, rss_kib, ZkSample};
use super::stats::{self, ConnCounters, Quantiles};
use super::tail::{LineCounter, LogTail};
use super::{backlog, noop_client_args, waits};
use crate::farm::{read_results, LocalFarm, Role};

/// Tasks in flight per client at most (the client's own limit).
const PER_CLIENT: u64 = 10_000;
/// The clients' session timeout: they hold the backlog, and a server that stalls for a second
/// under 100,000 queued tasks on a busy machine must not expire them. The masters and workers
/// keep the bench's (`--farm-session-timeout`), against which SIGKILL failover is judged.
const CLIENT_SESSION_TIMEOUT: &str = "10s";
/// A restarted master is a settled standby once it used at most this share of one core over
/// `QUIET_SPAN` (one that still reads the farm uses far more).
const QUIET_SHARE: f64 = 0.2;
const QUIET_SPAN: Duration = Duration::from_millis(500);
const QUIET_GROWTH_KIB: u64 = 512;
/// Bounds that only a broken farm reaches (never measurements).
const DRAIN_LIMIT: Duration = Duration::from_secs(600);
const SETTLE_LIMIT: Duration = Duration::from_secs(180);

pub(super) async fn scaling(
    zk: &ZkCluster,
    plan: &Plan,
    dir: &Path,
    binary: &Path,
    progress: &Progress,
) -> anyhow::Result<Scaling> {
    let mut sc = Scaling {
        session_timeout_ms: plan.session_timeout.as_millis() as u64,
        workers: plan.scaling_workers,
        measured: plan.scaling_measured,
        rows: Vec::new(),
    };
    for (i, &queued) in plan.scaling_backlogs.iter().enumerate() {
        let dir = dir.join(format!("scaling-{queued}"));
        let row = one_size(zk, plan, queued, i == 0, &dir, binary, progress).await?;
        progress.note(format!(
            "scaling {queued}: {:.0} tasks/s; SIGTERM -> assignment p50 {:.1} ms (max {:.1}, n={}); \
             SIGKILL max {:.0} ms; leader {:.1} MiB, standby {:.1} MiB; master {:.0} us/task, ZooKeeper {:.0} us/task",
            row.tasks_per_s,
            row.sigterm_ms.p50,
            row.sigterm_ms.max,
            row.sigterm_ms.n,
            row.sigkill_ms.max,
            row.leader_rss_kib as f64 / 1024.0,
            row.standby_rss_kib as f64 / 1024.0,
            row.cpu_us_per_task.leader,
            row.cpu_us_per_task.zookeeper
        ));
        sc.rows.push(row);
    }
    Ok(sc)
}

/// The clients that keep `queued` tasks in flight: `c1`, `c2`, ... of at most [`PER_CLIENT`] each,
/// submitting for ever (`--tasks 0`).
pub(super) fn backlog_clients(queued: u64) -> Vec<(String, u64)> {
    (0..queued.div_ceil(PER_CLIENT))
        .map(|i| (format!("c{}", i + 1), (queued - i * PER_CLIENT).min(PER_CLIENT)))
        .collect()
}

async fn one_size(
    zk: &ZkCluster,
    plan: &Plan,
    queued: u64,
    first: bool,
    dir: &Path,
    binary: &Path,
    progress: &Progress,
) -> anyhow::Result<ScalingRow> {
    let mut farm = LocalFarm::new(
        zk,
        &format!("/bench-scaling-{queued}"),
        dir,
        binary,
        plan.session_timeout,
    )?;
    let obs = farm.observer().await?;
    let clients: Vec<(String, Vec<String>)> = backlog_clients(queued)
        .into_iter()
        .map(|(name, n)| {
            let mut args = noop_client_args(0, n).to_vec();
            args.extend(["--session-timeout".to_string(), CLIENT_SESSION_TIMEOUT.into()]);
            (name, args)
        })
        .collect();
    let mut row = ScalingRow {
        queued,
        clients: clients.len(),
        ..Default::default()
    };

    progress.phase(format!("scaling {queued}: queueing"), queued);
    let t_fill = Instant::now();
    // A session of its own, closed before anything is measured.
    let watcher = farm.observer().await?;
    // One client after the other: 100,000 submissions at once would swamp the server.
    let mut filled = Ok(());
    let mut target = 0;
    for (c, (_, n)) in clients.iter().zip(backlog_clients(queued)) {
        target += n;
        filled = backlog::fill(&mut farm, &watcher, std::slice::from_ref(c), target, progress).await;
        if filled.is_err() {
            break;
        }
    }
    watcher.close().await;
    filled?;
    row.fill_s = t_fill.elapsed().as_secs_f64();

    progress.phase(format!("scaling {queued}: masters and workers"), 0);
    farm.spawn(Role::Master, MASTERS[0], &[])?;
    waits::leader(&obs).await?;
    farm.spawn(Role::Master, MASTERS[1], &[])?;
    waits::children(&obs, paths::MASTER, "two masters", |n| n >= 2).await?;
    for i in 1..=plan.scaling_workers {
        farm.spawn(Role::Worker, &format!("sw{i}"), &[])?;
    }
    waits::children(&obs, paths::WORKERS, "the workers", |n| n >= plan.scaling_workers).await?;
    let mut logs = MasterLogs::new(&farm)?;
    let names: Vec<String> = clients.iter().map(|c| c.0.clone()).collect();
    let mut counters: Vec<LineCounter> = names.iter().map(|n| LineCounter::new(farm.results_path(n))).collect();
    let (leader, standby) = roles_of_masters(&obs).await?;
    settle(zk, &mut farm, &standby, &mut counters, Instant::now()).await?;

    // Warm ZooKeeper's JIT up to the farm's request mix before measuring: at the first size
    // from cold, and at every later one again, since the failover trials of the size before
    // send the server's compiler back to work (on 2 cores it takes CPU from the farm). With
    // 3,000 and 1,000 results, a size ran at 60-70 % of its rate with 1.5-2 times the CPU per
    // task in every process, and the compiler threads busy in the window; 12,000 and 5,000
    // were enough.
    let warmup = plan.scaling_warmup * if first { 12 } else { 5 };
    progress.phase(format!("scaling {queued}: warming up"), warmup);
    drain(&mut farm, &names, &mut counters, warmup, progress, &mut row, None).await?;

    progress.phase(format!("scaling {queued}: drain window"), plan.scaling_measured);
    let sessions = sessions_by_who(&farm, &leader, &standby);
    let s0 = Snapshot::take(zk, &farm, &mut counters);
    let masters = Some((leader.as_str(), standby.as_str()));
    drain(
        &mut farm,
        &names,
        &mut counters,
        plan.scaling_measured,
        progress,
        &mut row,
        masters,
    )
    .await?;
    let s1 = Snapshot::take(zk, &farm, &mut counters);
    window_figures(&farm, &s0, &s1, &sessions, &leader, &standby, &mut row);
    watches(zk, &sessions, &mut row);
    row.steps = steps(&farm, &names, &s0, &s1);

    let trials = plan.scaling_sigterm_trials + plan.scaling_sigkill_trials;
    progress.phase(format!("scaling {queued}: leader kills"), u64::from(trials));
    let mut ready = Vec::new();
    for trial in 0..trials {
        let signal = if trial < plan.scaling_sigterm_trials {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        let settled_ms = leader_kill(
            zk,
            &mut farm,
            &obs,
            &mut logs,
            &mut counters,
            signal,
            plan.session_timeout,
            &mut row,
        )
        .await?;
        ready.push(settled_ms);
        progress.set_position(u64::from(trial) + 1);
        if let Some(c) = names.iter().find(|c| !farm.is_running(c)) {
            bail!("scaling {queued}: client {c} exited");
        }
    }
    row.sigterm_elected_ms = Quantiles::of(&row.sigterm_elected_samples);
    row.sigterm_ms = Quantiles::of(&row.sigterm_samples);
    row.sigkill_elected_ms = Quantiles::of(&row.sigkill_elected_samples);
    row.sigkill_ms = Quantiles::of(&row.sigkill_samples);
    row.standby_ready_ms = Quantiles::of(&ready);
    obs.close().await;
    farm.stop_all();
    Ok(row)
}

/// The current leader's id and the other master's.
async fn roles_of_masters(obs: &ZkSession) -> anyhow::Result<(String, String)> {
    let leader = taskfarm::election::leader_id(obs)
        .await
        .ok()
        .flatten()
        .context("no leader")?;
    let other = MASTERS
        .into_iter()
        .find(|m| *m != leader)
        .with_context(|| format!("unexpected leader {leader}"))?;
    Ok((leader, other.to_string()))
}

/// Until `n` more results came back. A sampling loop, not a wait: with `masters` (leader,
/// standby) given, the processes' resident memory is read into `row` while they run.
async fn drain(
    farm: &mut LocalFarm,
    clients: &[String],
    counters: &mut [LineCounter],
    n: u64,
    progress: &Progress,
    row: &mut ScalingRow,
    masters: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let start: u64 = counters.iter_mut().map(LineCounter::count).sum();
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        let done = counters.iter_mut().map(LineCounter::count).sum::<u64>() - start;
        progress.set_position(done);
        if let Some((leader, standby)) = masters {
            for p in farm.processes() {
                let Some(pid) = p.pid() else { continue };
                let slot = match p.role {
                    Role::Worker => &mut row.worker_rss_kib,
                    Role::Client => &mut row.client_rss_kib,
                    Role::Master if p.name == leader => &mut row.leader_rss_kib,
                    Role::Master if p.name == standby => &mut row.standby_rss_kib,
                    Role::Master => continue,
                };
                *slot = (*slot).max(rss_kib(pid));
            }
        }
        if done >= n {
            return Ok(());
        }
        if let Some(c) = clients.iter().find(|c| !farm.is_running(c)) {
            bail!("client {c} exited");
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} results came back within {DRAIN_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one moment of the window looks like from outside.
struct Snapshot {
    at: Instant,
    wall_ms: f64,
    /// Results so far, per client.
    results: Vec<u64>,
    /// CPU ticks so far, per process name.
    cpu: BTreeMap<String, u64>,
    zk: ZkSample,
    /// `cons` of every running server, by session.
    cons: BTreeMap<String, ConnCounters>,
}

impl Snapshot {
    fn take(zk: &ZkCluster, farm: &LocalFarm, counters: &mut [LineCounter]) -> Self {
        let cons = tokio::task::block_in_place(|| {
            let mut all = BTreeMap::new();
            for i in (0..zk.len()).filter(|&i| zk.servers()[i].is_running()) {
                all.extend(
                    zk.four_letter(i, "cons")
                        .map(|c| stats::parse_cons(&c))
                        .unwrap_or_default(),
                );
            }
            all
        });
        Self {
            at: Instant::now(),
            wall_ms: epoch_ms(),
            results: counters.iter_mut().map(LineCounter::count).collect(),
            cpu: farm
                .processes()
                .filter_map(|p| Some((p.name.clone(), cpu_ticks(p.pid()?))))
                .collect(),
            zk: ZkSample::take(zk),
            cons,
        }
    }

    fn done(&self) -> u64 {
        self.results.iter().sum()
    }
}

/// Which kind of process a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Leader,
    Standby,
    Workers,
    Clients,
}

fn add(f: &mut RoleFigures, who: Option<Who>, v: f64) {
    match who {
        Some(Who::Leader) => f.leader += v,
        Some(Who::Standby) => f.standby += v,
        Some(Who::Workers) => f.workers += v,
        Some(Who::Clients) => f.clients += v,
        None => f.other += v,
    }
    f.all += v;
}

fn who(farm: &LocalFarm, name: &str, leader: &str, standby: &str) -> Option<Who> {
    match farm.get(name)?.role {
        _ if name == leader => Some(Who::Leader),
        _ if name == standby => Some(Who::Standby),
        Role::Master => None,
        Role::Worker => Some(Who::Workers),
        Role::Client => Some(Who::Clients),
    }
}

/// Each process's ZooKeeper session (the last `session_id` its log names), by session id.
fn sessions_by_who(farm: &LocalFarm, leader: &str, standby: &str) -> HashMap<String, Who> {
    let mut out = HashMap::new();
    for p in farm.processes() {
        let lines = LogTail::new(farm.log_path(&p.name)).lines();
        let sid = lines
            .iter()
            .rev()
            .find_map(|v| v["session_id"].as_str().map(str::to_ascii_lowercase));
        if let (Some(sid), Some(w)) = (sid, who(farm, &p.name, leader, standby)) {
            out.insert(sid, w);
        }
    }
    out
}

/// Throughput, CPU and packets per task between two snapshots.
fn window_figures(
    farm: &LocalFarm,
    s0: &Snapshot,
    s1: &Snapshot,
    sessions: &HashMap<String, Who>,
    leader: &str,
    standby: &str,
    row: &mut ScalingRow,
) {
    let tasks = s1.done().saturating_sub(s0.done());
    let per_task = |x: f64| stats::ratio(x, tasks as f64);
    row.measured_tasks = tasks;
    row.window_s = (s1.at - s0.at).as_secs_f64();
    row.tasks_per_s = stats::ratio(tasks as f64, row.window_s);
    let mut cpu = RoleFigures::default();
    for (name, &t1) in &s1.cpu {
        let t0 = s0.cpu.get(name).copied().unwrap_or(t1);
        add(
            &mut cpu,
            who(farm, name, leader, standby),
            per_task(stats::ticks_us(t1.saturating_sub(t0))),
        );
    }
    cpu.zookeeper = per_task(s1.zk.cpu_us_since(&s0.zk));
    // The bench's own processes are not the farm's cost.
    cpu.all += cpu.zookeeper - cpu.other;
    cpu.other = 0.0;
    row.cpu_us_per_task = cpu;
    row.zxid_per_task = s1.zk.writes_since(&s0.zk).map_or(0.0, |d| per_task(d as f64));
    let (mut rx, mut tx) = (RoleFigures::default(), RoleFigures::default());
    for (sid, c1) in &s1.cons {
        // A connection that is new in the window counts from zero.
        let c0 = s0.cons.get(sid).copied().unwrap_or_default();
        let w = sessions.get(sid).copied();
        add(&mut rx, w, per_task(c1.received.saturating_sub(c0.received) as f64));
        add(&mut tx, w, per_task(c1.sent.saturating_sub(c0.sent) as f64));
    }
    row.received_per_task = rx;
    row.sent_per_task = tx;
}

/// The watches the servers hold now: `wchs` totals and `wchc` by role.
fn watches(zk: &ZkCluster, sessions: &HashMap<String, Who>, row: &mut ScalingRow) {
    let running: Vec<usize> = (0..zk.len()).filter(|&i| zk.servers()[i].is_running()).collect();
    let (wchs, wchc): (Vec<String>, Vec<String>) = tokio::task::block_in_place(|| {
        running
            .iter()
            .map(|&i| {
                (
                    zk.four_letter(i, "wchs").unwrap_or_default(),
                    zk.four_letter(i, "wchc").unwrap_or_default(),
                )
            })
            .unzip()
    });
    for (c, p, _) in wchs.iter().filter_map(|w| stats::parse_wchs(w)) {
        row.watch_connections += c;
        row.watched_paths += p;
    }
    let mut w = RoleFigures::default();
    for (sid, n) in wchc.iter().flat_map(|w| stats::parse_wchc(w)) {
        add(&mut w, sessions.get(&sid).copied(), n as f64);
    }
    row.watches = w;
}

/// The steps of the tasks assigned in the window, from the masters' `assigned` lines, the
/// workers' `task assigned` and `result committed` lines, and the clients' result records.
fn steps(farm: &LocalFarm, clients: &[String], s0: &Snapshot, s1: &Snapshot) -> Steps {
    let in_window = |t: f64| t >= s0.wall_ms && t <= s1.wall_ms;
    let read = |name: &str| LogTail::new(farm.log_path(name)).lines();
    // Task -> (time, worker) of the master's assignment, and each worker's assignment times.
    let mut assigned: HashMap<String, f64> = HashMap::new();
    let mut to_worker: HashMap<String, Vec<f64>> = HashMap::new();
    for m in MASTERS {
        for v in read(m) {
            if v["message"] != "assigned" {
                continue;
            }
            let (Some(t), Some(task), Some(worker)) = (log_ms(&v), v["task"].as_str(), v["worker"].as_str()) else {
                continue;
            };
            to_worker.entry(worker.to_string()).or_default().push(t);
            if in_window(t) {
                assigned.insert(task.to_string(), t);
            }
        }
    }
    let (mut handed, mut ran, mut next) = (Vec::new(), Vec::new(), Vec::new());
    for w in farm.names(Role::Worker) {
        let mut got: HashMap<String, f64> = HashMap::new();
        let mut commits = Vec::new();
        for v in read(&w) {
            let (Some(t), Some(task)) = (log_ms(&v), v["task"].as_str()) else {
                continue;
            };
            match v["message"].as_str() {
                Some("task assigned") => {
                    got.insert(task.to_string(), t);
                }
                Some("result committed") => {
                    if let Some(&a) = assigned.get(task) {
                        if let Some(&g) = got.get(task) {
                            handed.push(g - a);
                            ran.push(t - g);
                        }
                        commits.push(t);
                    }
                }
                _ => {}
            }
        }
        let mut times = to_worker.remove(&w).unwrap_or_default();
        times.sort_by(f64::total_cmp);
        next.extend(stats::gaps_to_next(&commits, &times));
    }
    let mut e2e = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let (from, to) = (s0.results[i] as usize, s1.results[i] as usize);
        e2e.extend(
            read_results(&farm.results_path(c))
                .iter()
                .skip(from)
                .take(to.saturating_sub(from))
                .filter_map(|v| v["latency_ms"].as_f64()),
        );
    }
    Steps {
        assign_to_worker_ms: Quantiles::of(&handed),
        worker_ms: Quantiles::of(&ran),
        commit_to_next_assign_ms: Quantiles::of(&next),
        end_to_end_ms: Quantiles::of(&e2e),
    }
}

/// Kills the leader with `signal`, times the other master's election and first assignment,
/// starts the killed one again and waits until it is a settled standby; returns how long that
/// took (ms).
#[allow(clippy::too_many_arguments)]
async fn leader_kill(
    zk: &ZkCluster,
    farm: &mut LocalFarm,
    obs: &ZkSession,
    logs: &mut MasterLogs,
    counters: &mut [LineCounter],
    signal: Signal,
    session_timeout: Duration,
    row: &mut ScalingRow,
) -> anyhow::Result<f64> {
    // Exactly two: a SIGKILLed leader's candidate stays until its session expires.
    waits::children(obs, paths::MASTER, "two master candidates", |n| n == 2).await?;
    let (leader, other) = roles_of_masters(obs).await?;
    // A new leader may have to read the whole backlog before its first assignment.
    let limit = session_timeout + Duration::from_secs(120);
    let timing = kill_leader(farm, logs, &leader, &other, signal, limit).await?;
    let sigterm = signal == Signal::SIGTERM;
    if let Some(ms) = timing.elected_ms {
        if sigterm {
            row.sigterm_elected_samples.push(ms);
        } else {
            row.sigkill_elected_samples.push(ms);
        }
    }
    match timing.assigned_ms {
        Some(ms) if sigterm => row.sigterm_samples.push(ms),
        Some(ms) => row.sigkill_samples.push(ms),
        None => row.failed_trials += 1,
    }
    let restarted = Instant::now();
    waits::children(obs, paths::MASTER, "the restarted master's candidate", |n| n == 2).await?;
    settle(zk, farm, &leader, counters, restarted).await
}

/// Until the master `name` is a settled standby: over the last [`QUIET_SPAN`] it used at most
/// [`QUIET_SHARE`] of a core, its resident memory grew by at most [`QUIET_GROWTH_KIB`], and it
/// sent ZooKeeper at most two requests per result the clients received (plus a few: pings),
/// where a master still reading the backlog sends thousands (a warm standby follows the farm
/// with about one request per task; a cold one sends only pings). The signals are the
/// process's and ZooKeeper's (`cons`), not its log, so they hold whatever the master logs.
/// Returns when its quiet span began, in ms after `since`.
async fn settle(
    zk: &ZkCluster,
    farm: &mut LocalFarm,
    name: &str,
    counters: &mut [LineCounter],
    since: Instant,
) -> anyhow::Result<f64> {
    let pid = farm
        .get(name)
        .and_then(|p| p.pid())
        .with_context(|| format!("{name} is not running"))?;
    let budget = (QUIET_SHARE * QUIET_SPAN.as_secs_f64() * stats::USER_HZ) as u64;
    let mut log = LogTail::new(farm.log_path(name));
    let mut sid: Option<String> = None;
    // (when, CPU ticks, RSS KiB, its requests to ZooKeeper, results so far)
    let mut samples: VecDeque<(Instant, u64, u64, u64, u64)> = VecDeque::new();
    loop {
        // Its session as it logs it (the newest: a restarted process appends to the same log).
        if let Some(s) = log
            .lines()
            .iter()
            .rev()
            .find_map(|v| v["session_id"].as_str().map(str::to_ascii_lowercase))
        {
            sid = Some(s);
        }
        let requests = sid.as_ref().map_or(0, |sid| {
            tokio::task::block_in_place(|| {
                (0..zk.len())
                    .filter(|&i| zk.servers()[i].is_running())
                    .filter_map(|i| zk.four_letter(i, "cons"))
                    .filter_map(|c| stats::parse_cons(&c).get(sid).map(|c| c.received))
                    .sum()
            })
        });
        let now = Instant::now();
        let results: u64 = counters.iter_mut().map(LineCounter::count).sum();
        samples.push_back((now, cpu_ticks(pid), rss_kib(pid), requests, results));
        while samples.len() > 2 && now - samples[1].0 >= QUIET_SPAN {
            samples.pop_front();
        }
        let (first, last) = (samples[0], samples[samples.len() - 1]);
        let quiet = sid.is_some()
            && now - first.0 >= QUIET_SPAN
            && last.1.saturating_sub(first.1) <= budget
            && last.2.saturating_sub(first.2) <= QUIET_GROWTH_KIB
            // A request count that went back is a new session: not settled yet.
            && last.3 >= first.3
            && last.3 - first.3 <= 2 * last.4.saturating_sub(first.4) + 20;
        if quiet {
            return Ok(first.0.saturating_duration_since(since).as_secs_f64() * 1000.0);
        }
        if !farm.is_running(name) {
            bail!("master {name} exited");
        }
        if now - since > SETTLE_LIMIT {
            bail!("master {name} did not settle as a standby within {SETTLE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlogs_are_split_into_clients_of_at_most_ten_thousand() {
        assert_eq!(backlog_clients(100), vec![("c1".to_string(), 100)]);
        assert_eq!(backlog_clients(10_000), vec![("c1".to_string(), 10_000)]);
        let c = backlog_clients(25_000);
        assert_eq!(c.iter().map(|x| x.1).collect::<Vec<_>>(), vec![10_000, 10_000, 5_000]);
        assert_eq!(backlog_clients(100_000).len(), 10);
        assert!(backlog_clients(0).is_empty());
    }
}
