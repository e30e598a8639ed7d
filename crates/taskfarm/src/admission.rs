//! Admission control: the farm's bound on the tasks it holds, enforced by ZooKeeper itself.
//!
//! Every task has exactly one `/data/<id>` znode from its submission until its client collects
//! the result, so the znodes under `/data` (and their bytes) are what the farm holds in every
//! ZooKeeper server's heap. The bound is a ZooKeeper *hard quota* (ZooKeeper 3.7+,
//! ZOOKEEPER-3301) on the farm's `/data`: the servers refuse a create beyond it with
//! `QuotaExceeded` (-125), whoever the client is, provided they run with
//! `zookeeper.enforceQuota=true` (`enforceQuota=true` in zoo.cfg). A client's submission is one
//! multi, so a refused one leaves nothing behind.
//!
//! The quota counts znodes (creates only) and bytes (creates *and* setData). A byte limit that
//! payloads alone could reach would also refuse a worker's commit, which writes the result
//! (usually larger than the payload) into the same znode: the task would then be stuck. So the
//! byte limit is always `tasks × MAX_RESULT_RECORD_BYTES` (72 KiB, the largest znode a role
//! writes under `/data`): it never refuses a role following PROTOCOL.md, and still bounds the
//! heap against a client that writes oversize payloads. The bound is therefore a number of
//! tasks; `--max-queued-bytes` is the same bound said in bytes.
//!
//! The quota lives at an absolute path (`/zookeeper/quota/<chroot>/data/zookeeper_limits`,
//! outside any chroot): it is written by a session without the chroot.

use std::time::Duration;

use anyhow::{bail, Context as _};
use zookeeper_client::Error as ZkError;

use crate::protocol::{paths, MAX_RESULT_RECORD_BYTES};
use crate::zk::{timed, ZkConfig, ZkSession};

/// Bytes a task may occupy under `/data` at most (its payload, then its result).
pub const TASK_BYTES: u64 = MAX_RESULT_RECORD_BYTES as u64;

/// Default bound: fits the Helm chart's ZooKeeper servers (256 MiB heap): 900 tasks are at most
/// 900 × 72 KiB = 63.3 MiB of znode data (docs/KUBERNETES.md has the arithmetic).
pub const DEFAULT_MAX_QUEUED_TASKS: u64 = 900;

/// ZooKeeper's quota root.
const QUOTA_ROOT: &str = "/zookeeper/quota";

/// A farm's bound, as ZooKeeper enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Tasks the farm holds at most (queued, running, or with a result not yet collected).
    pub tasks: u64,
}

impl Bound {
    /// The bound from either or both of the two ways to say it (the smaller wins); `None`
    /// when neither is given. A bound of 0 tasks removes the farm's bound.
    pub fn from_flags(tasks: Option<u64>, bytes: Option<u64>) -> anyhow::Result<Option<Self>> {
        let from_bytes = bytes.map(|b| b / TASK_BYTES);
        if let (Some(b), Some(0)) = (bytes, from_bytes) {
            if b > 0 {
                bail!(
                    "--max-queued-bytes {b} is less than one task ({TASK_BYTES} bytes, the largest \
                     znode a task occupies): use 0 to remove the bound"
                );
            }
        }
        Ok(match (tasks, from_bytes) {
            (None, None) => None,
            (Some(t), None) | (None, Some(t)) => Some(Self { tasks: t }),
            (Some(a), Some(b)) => Some(Self { tasks: a.min(b) }),
        })
    }

    /// The byte limit that goes with it: the most its tasks can occupy.
    pub fn bytes(&self) -> u64 {
        self.tasks * TASK_BYTES
    }

    /// The quota's limits node data. ZooKeeper counts the quota'd node itself (`/data`, empty).
    fn limits(&self) -> String {
        format!(
            "count=-1,bytes=-1,countHardLimit={},byteHardLimit={}",
            self.tasks + 1,
            self.bytes()
        )
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} tasks ({} bytes of znode data at most)", self.tasks, self.bytes())
    }
}

/// Parses `--max-queued-bytes`: `67108864`, `64MiB`, `1GiB`...
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    if let Some(g) = s.trim().strip_suffix("GiB") {
        let n: u64 = g.trim().parse().map_err(|_| format!("{s:?} is not a size"))?;
        return n.checked_mul(1 << 30).ok_or_else(|| format!("{s:?} is too large"));
    }
    crate::exec::catalogue::parse_size(s).map(|n| n as u64)
}

/// The options that set a farm's bound (`taskfarm zk init`, and the master when it leads).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdmissionArgs {
    /// Bound the tasks the farm holds (queued, running, or with a result not yet collected):
    /// ZooKeeper refuses submissions beyond it (a hard quota on /data; the servers need
    /// enforceQuota=true). 0 removes the bound; unset leaves the farm's bound as it is.
    /// The chart's servers (256 MiB heap) take 900.
    #[arg(long, env = "TASKFARM_MAX_QUEUED_TASKS")]
    pub max_queued_tasks: Option<u64>,
    /// The same bound in bytes of znode data: max-queued-tasks = SIZE / 72 KiB (the most a task
    /// occupies: its payload, then its result). With both, the smaller bound wins.
    #[arg(long, env = "TASKFARM_MAX_QUEUED_BYTES", value_parser = parse_bytes)]
    pub max_queued_bytes: Option<u64>,
}

impl AdmissionArgs {
    pub fn bound(&self) -> anyhow::Result<Option<Bound>> {
        Bound::from_flags(self.max_queued_tasks, self.max_queued_bytes)
    }
}

/// Absolute path of the farm's `/data` (outside the chroot).
pub fn data_path(config: &ZkConfig) -> String {
    if config.chroot == "/" {
        paths::DATA.to_string()
    } else {
        format!("{}{}", config.chroot, paths::DATA)
    }
}

fn limits_path(config: &ZkConfig) -> String {
    format!("{QUOTA_ROOT}{}/zookeeper_limits", data_path(config))
}

fn stats_path(config: &ZkConfig) -> String {
    format!("{QUOTA_ROOT}{}/zookeeper_stats", data_path(config))
}

/// What ZooKeeper holds about a farm's bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The bound in force (`None`: no hard count limit on `/data`).
    pub bound: Option<Bound>,
    /// Tasks held now and their bytes, as the server counts them (the `/data` znode excluded).
    pub held: Option<(u64, u64)>,
}

fn field(data: &str, key: &str) -> Option<i64> {
    data.split([',', ';'])
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Connects without the chroot (the quota path is absolute), with the farm's credentials.
async fn root_session(config: &ZkConfig) -> anyhow::Result<ZkSession> {
    config
        .with_chroot("/")?
        .with_session_timeout(config.session_timeout)
        .connect()
        .await
}

/// Reads the farm's bound and what it holds now.
pub async fn status(config: &ZkConfig) -> anyhow::Result<Status> {
    let session = root_session(config).await?;
    let r = read_status(&session, config).await;
    session.close().await;
    r
}

async fn read_status(session: &ZkSession, config: &ZkConfig) -> anyhow::Result<Status> {
    let limit = session.request_timeout();
    let read = |path: String| async move {
        match timed(limit, session.client.get_data(&path)).await {
            Ok((data, _)) => Ok(Some(String::from_utf8_lossy(&data).into_owned())),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("reading {path}"))),
        }
    };
    let limits = read(limits_path(config)).await?;
    let stats = read(stats_path(config)).await?;
    let bound = limits
        .as_deref()
        .and_then(|d| field(d, "countHardLimit"))
        .filter(|&n| n > 0)
        .map(|n| Bound { tasks: n as u64 - 1 });
    let held = stats.as_deref().and_then(|d| {
        let count = field(d, "count")?;
        let bytes = field(d, "bytes")?;
        Some(((count - 1).max(0) as u64, bytes.max(0) as u64))
    });
    Ok(Status { bound, held })
}

/// Sets (or with 0 tasks removes) the farm's bound; idempotent, safe to race. Returns what
/// was in force before.
pub async fn apply(config: &ZkConfig, bound: Bound) -> anyhow::Result<Option<Bound>> {
    let session = root_session(config).await?;
    let r = apply_in(&session, config, bound).await;
    session.close().await;
    r
}

async fn apply_in(session: &ZkSession, config: &ZkConfig, bound: Bound) -> anyhow::Result<Option<Bound>> {
    let limit = session.request_timeout() * 2;
    let before = read_status(session, config).await?.bound;
    let (limits, stats) = (limits_path(config), stats_path(config));
    if bound.tasks == 0 {
        for path in [&stats, &limits] {
            match timed(limit, session.client.delete(path, None)).await {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(e) => return Err(e).with_context(|| format!("deleting {path}")),
            }
        }
        return Ok(before);
    }
    // The farm's /data must exist for ZooKeeper to count it.
    let data = data_path(config);
    session.ensure_path(&data).await?;
    let parent = limits.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default();
    session.ensure_path(&parent).await?;
    let options = session.persistent();
    let wanted = bound.limits();
    // The limits first, then the stats node: creating the stats node makes the server count
    // what `/data` holds now (and it enforces nothing while either is missing).
    match timed(limit, session.client.create(&limits, wanted.as_bytes(), &options)).await {
        Ok(_) => {}
        Err(ZkError::NodeExists) => {
            let (current, stat) = timed(limit, session.client.get_data(&limits))
                .await
                .with_context(|| format!("reading {limits}"))?;
            if current != wanted.as_bytes() {
                match timed(
                    limit,
                    session.client.set_data(&limits, wanted.as_bytes(), Some(stat.version)),
                )
                .await
                {
                    // Another process set it at the same moment: the last writer wins either way.
                    Ok(_) | Err(ZkError::BadVersion) => {}
                    Err(e) => return Err(e).with_context(|| format!("setting {limits}")),
                }
            }
        }
        Err(e) => return Err(e).with_context(|| format!("creating {limits}")),
    }
    match timed(limit, session.client.create(&stats, b"count=0,bytes=0", &options)).await {
        Ok(_) | Err(ZkError::NodeExists) => {}
        Err(e) => return Err(e).with_context(|| format!("creating {stats}")),
    }
    if before != Some(bound) {
        tracing::info!(bound = %bound, path = data, "the farm's admission bound is set");
    }
    Ok(before)
}

/// For the leading master: applies the configured bound (if any), retrying a few times; a
/// failure is logged, never fatal (the farm runs on, with the bound it had).
pub async fn apply_as_leader(config: &ZkConfig, args: &AdmissionArgs) {
    let bound = match args.bound() {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "admission bound not applied");
            return;
        }
    };
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=5 {
        match tokio::time::timeout(Duration::from_secs(30), apply(config, bound)).await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => tracing::warn!(attempt, error = %format!("{e:#}"), "could not apply the admission bound"),
            Err(_) => tracing::warn!(attempt, "applying the admission bound timed out"),
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    tracing::error!(bound = %bound, "admission bound not applied: the farm keeps its previous bound");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_is_a_number_of_tasks_however_it_is_said() {
        assert_eq!(Bound::from_flags(None, None).unwrap(), None);
        assert_eq!(Bound::from_flags(Some(900), None).unwrap(), Some(Bound { tasks: 900 }));
        assert_eq!(
            Bound::from_flags(None, Some(64 << 20)).unwrap(),
            Some(Bound {
                tasks: (64 << 20) / TASK_BYTES
            })
        );
        assert_eq!(
            Bound::from_flags(Some(10), Some(64 << 20)).unwrap(),
            Some(Bound { tasks: 10 })
        );
        assert_eq!(Bound::from_flags(None, Some(0)).unwrap(), Some(Bound { tasks: 0 }));
        assert!(Bound::from_flags(None, Some(1000)).is_err());
        assert_eq!(
            Bound { tasks: 900 }.limits(),
            "count=-1,bytes=-1,countHardLimit=901,byteHardLimit=66355200"
        );
        // The default fits a quarter of the chart's 256 MiB heap.
        assert!(
            Bound {
                tasks: DEFAULT_MAX_QUEUED_TASKS
            }
            .bytes()
                <= 64 << 20
        );
    }

    #[test]
    fn zookeepers_stats_formats_are_read() {
        // 3.8's own writer joins hard limits with ';' after a stray '='.
        let d = "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5";
        assert_eq!(field(d, "countHardLimit"), Some(5));
        assert_eq!(field("count=5,bytes=40", "bytes"), Some(40));
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
    }
}
