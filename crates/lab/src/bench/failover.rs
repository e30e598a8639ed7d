//! Failover latency: leader SIGTERM and SIGKILL to the new leader's first assignment; worker
//! SIGKILL to its task assigned to another worker. Times come from the roles' JSON logs (the
//! timestamps of `became leader` and `assigned`), against the time of the kill.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;
use taskfarm::protocol::paths;
use taskfarm::zk::ZkSession;
use taskfarm_harness::ZkCluster;

use super::args::Plan;
use super::progress::Progress;
use super::report::Failover;
use super::stats::{self, Quantiles};
use super::tail::LogTail;
use super::waits;
use crate::farm::{LocalFarm, Role};
use taskfarm_harness::Appends;

pub(super) const MASTERS: [&str; 2] = ["m1", "m2"];

/// A light stream of short tasks (one at a time, two workers) means that whenever a new leader
/// takes over, a task is queued or about to be and a worker is free: the figure is the
/// handover, not a wait for a busy worker.
pub(super) async fn failover(
    zk: &ZkCluster,
    plan: &Plan,
    dir: &Path,
    binary: &Path,
    progress: &Progress,
) -> anyhow::Result<Failover> {
    let mut farm = LocalFarm::new(zk, "/bench-failover", dir, binary, plan.session_timeout)?;
    let obs = farm.observer().await?;
    farm.spawn(Role::Master, MASTERS[0], &[])?;
    waits::leader(&obs).await?;
    farm.spawn(Role::Master, MASTERS[1], &[])?;
    for w in ["fw1", "fw2"] {
        farm.spawn(Role::Worker, w, &[])?;
    }
    waits::children(&obs, paths::MASTER, "masters", |n| n >= 2).await?;
    waits::children(&obs, paths::WORKERS, "workers", |n| n >= 2).await?;
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
    let mut logs = MasterLogs::new(&farm)?;
    let mut f = Failover {
        session_timeout_ms: plan.session_timeout.as_millis() as u64,
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
        leader_kill(&mut farm, &obs, &mut logs, signal, limit, &mut f).await?;
        progress.set_position(u64::from(trial) + 1);
    }

    progress.phase("failover: worker kills", u64::from(plan.worker_kill_trials));
    for trial in 0..plan.worker_kill_trials {
        worker_kill(&mut farm, &obs, &mut logs, trial, limit, &mut f).await?;
        progress.set_position(u64::from(trial) + 1);
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

/// The masters' logs, read as they grow.
pub(super) struct MasterLogs {
    pub tails: BTreeMap<String, LogTail>,
    pub appends: Appends,
}

impl MasterLogs {
    pub fn new(farm: &LocalFarm) -> anyhow::Result<Self> {
        let tails: BTreeMap<String, LogTail> = MASTERS
            .iter()
            .map(|m| (m.to_string(), LogTail::new(farm.log_path(m))))
            .collect();
        let appends = Appends::watch(tails.values().map(LogTail::path))?;
        Ok(Self { tails, appends })
    }

    /// Skips what the logs hold so far.
    pub fn skip(&mut self) {
        for t in self.tails.values_mut() {
            t.lines();
        }
    }

    /// When `master` logged, from `t_kill` on, that it became leader and its first `assigned`
    /// (ms since the Unix epoch), waiting up to `limit` for the assignment.
    pub async fn take_over(&mut self, master: &str, t_kill: f64, limit: Duration) -> (Option<f64>, Option<f64>) {
        let Some(tail) = self.tails.get_mut(master) else {
            return (None, None);
        };
        let mut became: Option<f64> = None;
        let assigned = self
            .appends
            .first(limit, || {
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
        (became, assigned)
    }
}

/// Kills the leader with `signal` and times the other master's take-over and first assignment.
async fn leader_kill(
    farm: &mut LocalFarm,
    obs: &ZkSession,
    logs: &mut MasterLogs,
    signal: Signal,
    limit: Duration,
    f: &mut Failover,
) -> anyhow::Result<()> {
    // Exactly two: a SIGKILLed leader's candidate stays until its session expires.
    waits::children(obs, paths::MASTER, "two master candidates", |n| n == 2).await?;
    // Let the leader settle into assigning before the kill.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leader = taskfarm::election::leader_id(obs)
        .await
        .ok()
        .flatten()
        .context("no leader")?;
    let Some(other) = MASTERS.into_iter().find(|m| *m != leader) else {
        bail!("unexpected leader {leader}");
    };
    let timing = kill_leader(farm, logs, &leader, other, signal, limit).await?;
    let sigterm = signal == Signal::SIGTERM;
    if let Some(ms) = timing.elected_ms {
        if sigterm {
            f.sigterm_leader_samples.push(ms);
        } else {
            f.sigkill_leader_samples.push(ms);
        }
    }
    match timing.assigned_ms {
        Some(ms) if sigterm => f.sigterm_samples.push(ms),
        Some(ms) => f.sigkill_samples.push(ms),
        None => f.failed_trials += 1,
    }
    Ok(())
}

/// One leader kill, timed from the signal (ms): the other master's election and its first
/// assignment, `None` where its log did not show them within `limit`.
pub(super) struct KillTiming {
    pub elected_ms: Option<f64>,
    pub assigned_ms: Option<f64>,
}

/// Sends `leader` the signal, times `other`'s take-over from their logs, and starts the killed
/// master again once it has exited.
pub(super) async fn kill_leader(
    farm: &mut LocalFarm,
    logs: &mut MasterLogs,
    leader: &str,
    other: &str,
    signal: Signal,
    limit: Duration,
) -> anyhow::Result<KillTiming> {
    logs.skip();
    let t_kill = epoch_ms();
    farm.signal(leader, signal)?;
    let (became, hit) = logs.take_over(other, t_kill, limit).await;
    tokio::task::block_in_place(|| farm.wait_exit(leader, Duration::from_secs(10)));
    farm.restart(leader)?;
    Ok(KillTiming {
        elected_ms: became.map(|b| b - t_kill),
        assigned_ms: hit.map(|t| t - t_kill),
    })
}

/// SIGKILLs the worker running a long task and times its assignment to the other worker.
async fn worker_kill(
    farm: &mut LocalFarm,
    obs: &ZkSession,
    logs: &mut MasterLogs,
    trial: u32,
    limit: Duration,
    f: &mut Failover,
) -> anyhow::Result<()> {
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
    let MasterLogs { tails, appends } = logs;
    let first = appends
        .first(Duration::from_secs(30), || {
            tails
                .values_mut()
                .flat_map(|t| t.lines())
                .find(|v| is_long(v))
                .and_then(|v| v["worker"].as_str().map(str::to_string))
        })
        .await;
    let Some(victim) = first else {
        f.failed_trials += 1;
        return Ok(());
    };
    // Let the worker start it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t_kill = epoch_ms();
    farm.signal(&victim, Signal::SIGKILL)?;
    let hit = appends
        .first(limit, || {
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
    waits::children(obs, paths::WORKERS, "the workers to come back", |n| n >= 2).await
}

pub(super) fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub(super) fn log_ms(v: &serde_json::Value) -> Option<f64> {
    stats::parse_utc_timestamp_ms(v["timestamp"].as_str()?)
}
