//! The farm's own state, read from ZooKeeper the way PROTOCOL.md documents it.
//!
//! The reading sits behind [`FarmReader`] so that the reconcile flow is tested against a fake
//! (no ZooKeeper); the parts that interpret znodes are pure functions tested directly.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Mutex;

use taskfarm::protocol::{self, leading_candidate, paths, CandidateInfo, FarmStatus, TaskRecord, TaskState};
use taskfarm::zk::{timed, ZkConfig, ZkSession};

/// The leader's `/status` is rewritten about once a second; older than this, it is not trusted
/// for the live counts (the leader may be gone) and the tasks are counted instead.
pub const STATUS_STALE_MS: u64 = 15_000;

/// Counting tasks one by one is O(n): past this many, the counts come from `/status` only.
pub const MAX_COUNTED_TASKS: usize = 2_000;

/// What the controller reports about a farm from ZooKeeper.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FarmState {
    /// The leading master's id and election epoch (lowest candidate sequence).
    pub leader: Option<String>,
    pub epoch: Option<i64>,
    pub live_workers: i64,
    pub pending: i64,
    pub running: i64,
    pub completed: i64,
    pub failovers: i64,
    /// When the current leader took over (ms since the Unix epoch), from its `/status`.
    pub leader_since_ms: Option<u64>,
}

/// Where one farm's ZooKeeper is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZkTarget {
    /// Connect string, hosts qualified with the farm's namespace.
    pub connect: String,
    pub session_timeout: Duration,
}

/// Reads a farm's state; the real one talks to ZooKeeper, tests use a fake.
pub trait FarmReader: Send + Sync {
    fn read<'a>(&'a self, target: &'a ZkTarget) -> BoxFuture<'a, anyhow::Result<FarmState>>;
}

/// Qualifies single-label hosts with the farm's namespace: the controller may run in another
/// namespace than the farm, and its DNS search path only covers its own.
pub fn qualify_connect(connect: &str, namespace: &str) -> String {
    let connect = connect.trim();
    let (hosts, chroot) = match connect.find('/') {
        Some(i) => (&connect[..i], &connect[i..]),
        None => (connect, ""),
    };
    let hosts: Vec<String> = hosts
        .split(',')
        .map(|h| match h.rsplit_once(':') {
            Some((host, port)) if !host.contains('.') && host != "localhost" && !host.is_empty() => {
                format!("{host}.{namespace}.svc:{port}")
            }
            _ => h.to_string(),
        })
        .collect();
    format!("{}{chroot}", hosts.join(","))
}

/// Task counts by state, for when `/status` is missing or stale. (Finished tasks have no
/// record: only `/status` counts them.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub pending: i64,
    pub running: i64,
}

impl TaskCounts {
    pub fn add(&mut self, record: &TaskRecord) {
        match record.state {
            TaskState::Queued => self.pending += 1,
            TaskState::Assigned => self.running += 1,
        }
    }
}

/// Whether the leader's `/status` describes the current leader and is recent.
pub fn status_is_fresh(status: &FarmStatus, epoch: Option<i64>, now_ms: u64) -> bool {
    epoch == Some(status.epoch) && now_ms.saturating_sub(status.updated_ms) <= STATUS_STALE_MS
}

/// Combines what was read into one report. `counted` is used for the live counts when the
/// status is not fresh; `completed` comes from the status alone (it carries the total across
/// failovers).
pub fn combine(
    leader: Option<(CandidateInfo, i64)>,
    live_workers: usize,
    status: Option<&FarmStatus>,
    counted: Option<TaskCounts>,
    now_ms: u64,
) -> FarmState {
    let epoch = leader.as_ref().map(|(_, e)| *e);
    let mut state = FarmState {
        leader: leader.map(|(info, _)| info.id),
        epoch,
        live_workers: live_workers as i64,
        ..FarmState::default()
    };
    if let Some(s) = status {
        state.completed = s.completed_total as i64;
        state.failovers = s.failovers as i64;
        if status_is_fresh(s, epoch, now_ms) {
            state.pending = s.pending as i64;
            state.running = s.running as i64;
            state.leader_since_ms = Some(s.leader_since_ms);
        }
    }
    if let Some(c) = counted {
        state.pending = c.pending;
        state.running = c.running;
    }
    state
}

/// Reads farms from ZooKeeper, keeping one session per connect string.
pub struct ZkFarmReader {
    sessions: Mutex<HashMap<ZkTarget, ZkSession>>,
    connect_timeout: Duration,
}

impl ZkFarmReader {
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            connect_timeout,
        }
    }

    async fn session(&self, target: &ZkTarget) -> anyhow::Result<ZkSession> {
        let mut sessions = self.sessions.lock().await;
        if let Some(s) = sessions.get(target) {
            if !taskfarm::zk::is_terminal(s.client.state()) {
                return Ok(s.clone());
            }
            sessions.remove(target);
        }
        // No secret: the farm's ACLs let anyone read, and the controller only reads.
        let config = ZkConfig::new(&target.connect, target.session_timeout, self.connect_timeout, "")?;
        let session = config.connect().await?;
        sessions.insert(target.clone(), session.clone());
        Ok(session)
    }

    async fn read_with(session: &ZkSession) -> anyhow::Result<FarmState> {
        use anyhow::Context as _;
        let client = &session.client;
        let limit = session.request_timeout();
        let masters = match timed(limit, client.list_children(paths::MASTER)).await {
            Ok(c) => c,
            Err(zookeeper_client::Error::NoNode) => Vec::new(),
            Err(e) => return Err(e).context("listing /master"),
        };
        let leader = match leading_candidate(&masters) {
            Some((name, epoch)) => {
                match timed(limit, client.get_data(&format!("{}/{name}", paths::MASTER))).await {
                    Ok((data, _)) => protocol::parse_json::<CandidateInfo>("candidate", &data, 4096)
                        .ok()
                        .map(|info| (info, epoch)),
                    // The leader left between the list and the read: report no leader this time.
                    Err(zookeeper_client::Error::NoNode) => None,
                    Err(e) => return Err(e).context("reading the leading candidate"),
                }
            }
            None => None,
        };
        let workers = match timed(limit, client.list_children(paths::WORKERS)).await {
            Ok(c) => c.len(),
            Err(zookeeper_client::Error::NoNode) => 0,
            Err(e) => return Err(e).context("listing /workers"),
        };
        let status = match timed(limit, client.get_data(paths::STATUS)).await {
            Ok((data, _)) if !data.is_empty() => FarmStatus::parse(&data).ok(),
            Ok(_) | Err(zookeeper_client::Error::NoNode) => None,
            Err(e) => return Err(e).context("reading /status"),
        };
        let now = protocol::now_ms();
        let epoch = leader.as_ref().map(|(_, e)| *e);
        let counted = match &status {
            Some(s) if status_is_fresh(s, epoch, now) => None,
            _ => Self::count_tasks(session, limit).await?,
        };
        Ok(combine(leader, workers, status.as_ref(), counted, now))
    }

    async fn count_tasks(session: &ZkSession, limit: Duration) -> anyhow::Result<Option<TaskCounts>> {
        let client = &session.client;
        let tasks = match timed(limit, client.list_children(paths::TASKS)).await {
            Ok(t) => t,
            Err(zookeeper_client::Error::NoNode) => return Ok(Some(TaskCounts::default())),
            Err(e) => return Err(anyhow::Error::new(e).context("listing /tasks")),
        };
        if tasks.len() > MAX_COUNTED_TASKS {
            return Ok(None);
        }
        let mut counts = TaskCounts::default();
        for task in tasks {
            match timed(limit, client.get_data(&paths::task(&task))).await {
                Ok((data, _)) => {
                    if let Ok(record) = TaskRecord::parse(&data) {
                        counts.add(&record);
                    }
                }
                // Tasks vanish when their client collects them or leaves.
                Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => return Err(anyhow::Error::new(e).context("reading a task")),
            }
        }
        Ok(Some(counts))
    }
}

impl FarmReader for ZkFarmReader {
    fn read<'a>(&'a self, target: &'a ZkTarget) -> BoxFuture<'a, anyhow::Result<FarmState>> {
        Box::pin(async move {
            // One bound for the whole read, so that a dead ZooKeeper cannot hold a reconcile
            // for longer than a connection attempt plus a session's worth of requests.
            let bound = self.connect_timeout + target.session_timeout + Duration::from_secs(5);
            let read = async {
                let session = self.session(target).await?;
                Self::read_with(&session).await
            };
            let result = match tokio::time::timeout(bound, read).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("no answer from ZooKeeper within {bound:?}")),
            };
            if result.is_err() {
                // Start afresh next time rather than reuse a session in an unknown state.
                self.sessions.lock().await.remove(target);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_label_hosts_are_qualified_with_the_farm_namespace() {
        assert_eq!(
            qualify_connect("taskfarm-zookeeper:2181", "farms"),
            "taskfarm-zookeeper.farms.svc:2181"
        );
        assert_eq!(
            qualify_connect("a:2181,b.other.svc:2181/chroot", "ns"),
            "a.ns.svc:2181,b.other.svc:2181/chroot"
        );
        assert_eq!(qualify_connect("10.0.0.1:2181", "ns"), "10.0.0.1:2181");
        assert_eq!(qualify_connect("localhost:2181", "ns"), "localhost:2181");
    }

    #[test]
    fn the_lowest_sequence_leads() {
        let children = vec![
            "_c_b-latch-0000000007".to_string(),
            "junk".to_string(),
            "_c_a-latch-0000000003".to_string(),
        ];
        assert_eq!(leading_candidate(&children), Some(("_c_a-latch-0000000003", 3)));
        assert_eq!(leading_candidate(&[]), None);
    }

    fn status(epoch: i64, updated_ms: u64) -> FarmStatus {
        FarmStatus {
            leader: "m-1".into(),
            epoch,
            leader_since_ms: 500,
            updated_ms,
            workers: 3,
            free_workers: 1,
            pending: 7,
            running: 2,
            completed_total: 40,
            failovers: 2,
        }
    }

    fn candidate(id: &str) -> CandidateInfo {
        CandidateInfo {
            id: id.into(),
            pid: 1,
            host: "h".into(),
        }
    }

    #[test]
    fn a_fresh_status_of_the_current_leader_gives_the_counts() {
        let s = status(3, 10_000);
        let state = combine(Some((candidate("m-1"), 3)), 3, Some(&s), None, 10_500);
        assert_eq!(state.leader.as_deref(), Some("m-1"));
        assert_eq!((state.epoch, state.live_workers), (Some(3), 3));
        assert_eq!((state.pending, state.running, state.completed), (7, 2, 40));
        assert_eq!((state.failovers, state.leader_since_ms), (2, Some(500)));
    }

    #[test]
    fn a_stale_or_foreign_status_gives_way_to_counting() {
        let counted = TaskCounts { pending: 4, running: 1 };
        // Written by an older leader: its totals stand, its live counts do not.
        let s = status(2, 10_000);
        assert!(!status_is_fresh(&s, Some(3), 10_500));
        let state = combine(Some((candidate("m-2"), 3)), 2, Some(&s), Some(counted), 10_500);
        assert_eq!((state.pending, state.running, state.completed), (4, 1, 40));
        assert_eq!(state.leader_since_ms, None);
        // Too old.
        assert!(!status_is_fresh(&status(3, 0), Some(3), STATUS_STALE_MS + 1));
        // No status at all, no leader.
        let state = combine(None, 0, None, Some(counted), 0);
        assert_eq!((state.leader, state.completed), (None, 0));
    }

    #[test]
    fn task_records_are_counted_by_state() {
        let mut c = TaskCounts::default();
        let queued = TaskRecord::queued("c", 1);
        c.add(&queued);
        c.add(&queued.assigned("w", 1));
        c.add(&queued.assigned("w", 1).assigned("w2", 2));
        assert_eq!(c, TaskCounts { pending: 1, running: 2 });
    }

    /// The real reader against a real (standalone) ZooKeeper: the protocol's znodes in, the
    /// report out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_zookeeper_reader_follows_the_protocol() {
        use zookeeper_client::{Acls, CreateMode};
        let zk = taskfarm_harness::ZkCluster::standalone(taskfarm_harness::ZkOptions {
            force_sync: false,
            ..Default::default()
        })
        .expect("a ZooKeeper server");
        let config = ZkConfig::new(
            &zk.connect_string(),
            Duration::from_secs(4),
            Duration::from_secs(10),
            "",
        )
        .unwrap();
        let session = config.connect().await.unwrap();
        session.ensure_layout().await.unwrap();
        let client = &session.client;
        let ephemeral_seq = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
        let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        let info = |id: &str| serde_json::to_vec(&candidate(id)).unwrap();
        let (_, first) = client
            .create("/master/_c_aaaa-latch-", &info("m-1"), &ephemeral_seq)
            .await
            .unwrap();
        client
            .create("/master/_c_bbbb-latch-", &info("m-2"), &ephemeral_seq)
            .await
            .unwrap();
        client.create("/workers/w-1", b"{}", &ephemeral).await.unwrap();
        client.create("/workers/w-2", b"{}", &ephemeral).await.unwrap();
        let queued = TaskRecord::queued("c", 1);
        client
            .create("/tasks/t1", &queued.to_bytes(), &ephemeral)
            .await
            .unwrap();
        client
            .create("/tasks/t2", &queued.assigned("w-1", 1).to_bytes(), &ephemeral)
            .await
            .unwrap();

        let reader = ZkFarmReader::new(Duration::from_secs(5));
        let target = ZkTarget {
            connect: zk.connect_string(),
            session_timeout: Duration::from_secs(4),
        };
        // No /status data yet: counted from the tasks.
        let state = reader.read(&target).await.unwrap();
        let epoch = first.into_i64();
        assert_eq!((state.leader.as_deref(), state.epoch), (Some("m-1"), Some(epoch)));
        assert_eq!((state.live_workers, state.pending, state.running), (2, 1, 1));
        // A fresh /status of this leader wins.
        let mut status = status(epoch, protocol::now_ms());
        status.completed_total = 77;
        client
            .set_data("/status", &serde_json::to_vec(&status).unwrap(), None)
            .await
            .unwrap();
        let state = reader.read(&target).await.unwrap();
        assert_eq!((state.pending, state.running, state.completed), (7, 2, 77));
        session.close().await;
    }
}
