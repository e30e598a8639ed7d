//! The master role: every master campaigns; the leader keeps an index of tasks and workers
//! fed by persistent recursive watches on `/tasks` and `/workers`, and turns its decisions
//! into fenced multi-operations.
//!
//! Nothing the leader knows survives leadership: on becoming leader (and after any reconnection,
//! since persistent-watch events can be lost across one, ZOOKEEPER-4698) it scans both trees once
//! and rebuilds the index from what ZooKeeper says. Every write is a multi whose first op checks
//! that our candidate znode still exists: a master that lost its session or its leadership
//! cannot change anything.

pub mod index;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use futures::stream::{FuturesOrdered, FuturesUnordered, StreamExt as _};
use tokio::sync::watch;
use tracing::Instrument as _;
use zookeeper_client::{Client, Error as ZkError, EventType, MultiWriteError, SessionState, WatchedEvent};

use self::index::{Action, Deadlines, Index, TaskObs, WorkerObs};
use crate::election::{campaign, candidate_info, random_id, Leadership};
use crate::metrics::{Revocation, RevocationLabel, TaskState, TaskStateLabel, WorkerState, WorkerStateLabel};
use crate::protocol::{now_ms, paths, validate_id, FarmStatus, TaskRecord, WorkerRecord};
use crate::zk::{timed, PersistentWatch, ZkConfig, ZkSession};

#[derive(Debug, Args)]
pub struct MasterArgs {
    /// This master's name (default: a random one; in Kubernetes, the pod name).
    #[arg(long, env = "TASKFARM_ID")]
    pub id: Option<String>,
    /// Assignments to workers that vanished before a task is failed as poison.
    #[arg(long, default_value_t = crate::protocol::DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Deadline of an assignment whose task states no time limit: past it (plus the grace
    /// below) without a commit, the leader takes the task back. Keep it above the longest
    /// `timeout` in the workers' command catalogues.
    #[arg(long, env = "TASKFARM_ASSIGNMENT_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub assignment_timeout: Duration,
    /// Added to every assignment's time limit before it is taken back (the worker's own
    /// SIGTERM grace, its commit, clock differences between hosts).
    #[arg(long, env = "TASKFARM_ASSIGNMENT_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub assignment_grace: Duration,
    /// How often the leader rewrites /status.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub status_interval: Duration,
    /// Serve /healthz and /readyz on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "TASKFARM_HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
}

/// Runs a master until `shutdown` resolves (the binary passes SIGTERM/SIGINT; a test, anything).
pub async fn run(
    config: &ZkConfig,
    args: MasterArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let id = args.id.clone().unwrap_or_else(|| random_id("master"));
    validate_id(&id).context("master id")?;
    let span = tracing::info_span!("master", master = %id);
    let ready = Arc::new(
        crate::health::maybe_serve(args.health_addr, crate::role::Role::Master)
            .instrument(span.clone())
            .await?,
    );
    let args = Arc::new(args);
    span.in_scope(|| tracing::info!("master starting"));
    crate::role::run_sessions(config, shutdown, |session| {
        let (id, args, ready) = (id.clone(), args.clone(), ready.clone());
        async move {
            session.ensure_layout().await?;
            ready.send_replace(true);
            let r = master_session(&session, &id, &args).await;
            ready.send_replace(false);
            r
        }
    })
    .instrument(span)
    .await
}

/// Campaigns and, whenever we lead, leads, for the life of one session.
///
/// The persistent watches live as long as the session (re-adding a watch on a path whose
/// previous watcher is being removed can lose the new one): a backup master consumes and
/// discards their events, so that it is ready the moment it leads.
async fn master_session(session: &ZkSession, id: &str, args: &MasterArgs) -> anyhow::Result<()> {
    let (tx, mut rx) = watch::channel(Leadership::Follower);
    let info = candidate_info(id);
    let mut events = Events {
        tasks: PersistentWatch::recursive(&session.client, paths::TASKS).await?,
        workers: PersistentWatch::recursive(&session.client, paths::WORKERS).await?,
        tasks_lost: false,
        workers_lost: false,
    };
    let leading = async {
        // A backup's loop is idle between events: it beats on a timer (the leader's beats come
        // with its status writes).
        let mut heartbeat = tokio::time::interval(crate::health::BEAT_INTERVAL);
        loop {
            let (epoch, candidate) = loop {
                if let Leadership::Leader { epoch, candidate } = rx.borrow_and_update().clone() {
                    break (epoch, candidate);
                }
                let event = tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return } else { continue },
                    _ = heartbeat.tick() => { crate::health::beat(); continue }
                    e = events.tasks.next() => { reconnected_after_loss(&mut events.tasks_lost, &e); e }
                    e = events.workers.next() => { reconnected_after_loss(&mut events.workers_lost, &e); e }
                };
                if is_session_end(&event) {
                    return;
                }
            };
            let span = tracing::info_span!("leading", epoch);
            span.in_scope(|| tracing::info!(candidate, "became leader: rebuilding state from ZooKeeper"));
            let metrics = &crate::metrics::get().master;
            metrics.leading.set(1);
            metrics.epoch.set(epoch);
            metrics.leaderships.inc();
            let mut leader = Leader::new(session, id, epoch, candidate, args);
            let led = leader.lead(&mut rx, &mut events).instrument(span.clone()).await;
            metrics.leading.set(0);
            span.in_scope(|| match led {
                Ok(reason) => tracing::warn!(reason, "no longer leading"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "leadership ended by an error"),
            });
            if leader.session_ended || crate::zk::is_terminal(session.client.state()) {
                return;
            }
            // The election may not have seen yet why we failed (on a current-thread runtime it
            // cannot run until we yield): back off instead of spinning on a stale "leader".
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        r = campaign(session, &info, &tx) => r,
        _ = leading => Ok(()),
    }
}

/// The session's persistent recursive watches on `/tasks` and `/workers`.
struct Events {
    tasks: PersistentWatch,
    workers: PersistentWatch,
    /// Each watch's Disconnected not yet followed by its own reconnection. A watch hands out
    /// its reconnection only once it is registered again, and events between the two may be
    /// lost (ZOOKEEPER-4698): a leader rescans at each watch's reconnection. Kept per watch and
    /// also while following, so that a reconnection seen by one loop is not missed by the next.
    tasks_lost: bool,
    workers_lost: bool,
}

/// Tracks a watch's session events: whether this event is its reconnection after a loss.
fn reconnected_after_loss(lost: &mut bool, event: &WatchedEvent) -> bool {
    match (event.event_type, event.session_state) {
        (EventType::Session, SessionState::Disconnected) => {
            *lost = true;
            false
        }
        (EventType::Session, SessionState::SyncConnected) => std::mem::take(lost),
        _ => false,
    }
}

/// A terminal session event: the watcher must not be polled again after it.
fn is_session_end(e: &WatchedEvent) -> bool {
    e.event_type == EventType::Session && crate::zk::is_terminal(e.session_state)
}

/// Which tree an event or read concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Task,
    Worker,
}

/// The result of reading one node after an event.
enum Observation {
    Task(String, Option<TaskObs>),
    Worker(String, Option<WorkerObs>),
    /// The read failed (connection loss): the index may be stale, scan again.
    Failed(ZkError),
    /// Nothing to apply (an own write failed; the failure handler re-reads its nodes).
    Nothing,
}

type Reads = FuturesOrdered<futures::future::BoxFuture<'static, Observation>>;

/// A write of ours to one node whose watch event has not been seen yet. When the event comes,
/// the master takes the node's new state from what it wrote instead of reading it back (two
/// reads per task fewer). The event arrives before the write's reply, so the observation waits
/// for the outcome: landed → what we wrote, at the version after the one checked; failed →
/// nothing (the failure handler re-reads the node, after the event).
struct OwnWrite {
    outcome: watch::Receiver<Option<bool>>,
    /// The version the write produces.
    version: i32,
    observation: Observation,
}

/// Own writes by node, each until its event is seen (or it fails, or a scan starts afresh).
type OwnWrites = HashMap<(Kind, String), OwnWrite>;

struct Leader<'a> {
    session: &'a ZkSession,
    id: &'a str,
    epoch: i64,
    candidate: Arc<str>,
    args: &'a MasterArgs,
    status: FarmStatus,
    /// Set once a watcher reported the end of the session (it must not be polled again).
    session_ended: bool,
}

impl<'a> Leader<'a> {
    fn new(session: &'a ZkSession, id: &'a str, epoch: i64, candidate: String, args: &'a MasterArgs) -> Self {
        Self {
            session,
            id,
            epoch,
            candidate: candidate.into(),
            args,
            status: FarmStatus::default(),
            session_ended: false,
        }
    }

    fn client(&self) -> &Client {
        &self.session.client
    }

    fn deadlines(&self) -> Deadlines {
        Deadlines {
            default_limit_ms: self.args.assignment_timeout.as_millis() as u64,
            grace_ms: self.args.assignment_grace.as_millis() as u64,
        }
    }

    /// Leads until leadership is lost; returns why.
    async fn lead(
        &mut self,
        leadership: &mut watch::Receiver<Leadership>,
        events: &mut Events,
    ) -> anyhow::Result<&'static str> {
        // The watches exist before the scan: no change can fall between the two.
        self.status = self.initial_status().await;
        let mut index = self.scan().await?;
        let mut reads: Reads = FuturesOrdered::new();
        let mut writes = FuturesUnordered::new();
        let mut own_writes = OwnWrites::new();
        let mut status_tick = tokio::time::interval(self.args.status_interval);
        let mut rescan = false;
        loop {
            if rescan && writes.is_empty() {
                // Watch events may have been lost (ZOOKEEPER-4698): trust only a fresh scan. The
                // watches themselves were renewed by PersistentWatch on reconnection.
                reads = FuturesOrdered::new();
                own_writes.clear();
                let completed = index.completed();
                index = self.scan().await?;
                self.status.completed_total += completed;
                rescan = false;
            }
            if !rescan {
                index.set_clock(now_ms());
                for report in index.take_reports() {
                    tracing::warn!("{report}");
                }
                for action in index.decide() {
                    let (outcome_tx, outcome) = watch::channel(None);
                    let (task_id, worker_id) = action.nodes();
                    let (task_obs, worker_obs) = index.written(&action);
                    if let (Some(id), Some(obs)) = (task_id, task_obs) {
                        let own = OwnWrite {
                            outcome: outcome.clone(),
                            version: obs.version,
                            observation: Observation::Task(id.to_string(), Some(obs)),
                        };
                        own_writes.insert((Kind::Task, id.to_string()), own);
                    }
                    if let (Some(id), Some(obs)) = (worker_id, worker_obs) {
                        let own = OwnWrite {
                            outcome,
                            version: obs.version,
                            observation: Observation::Worker(id.to_string(), Some(obs)),
                        };
                        own_writes.insert((Kind::Worker, id.to_string()), own);
                    }
                    writes.push(self.write(action, outcome_tx));
                }
            }
            tokio::select! {
                biased;
                changed = leadership.changed() => {
                    if changed.is_err() || !leadership.borrow().is_leader() {
                        return Ok("the election says we no longer lead");
                    }
                }
                event = events.tasks.next() => {
                    if self.on_event(event, Kind::Task, &mut reads, &mut own_writes, &mut events.tasks_lost, &mut rescan) {
                        return Ok("session ended");
                    }
                }
                event = events.workers.next() => {
                    if self.on_event(event, Kind::Worker, &mut reads, &mut own_writes, &mut events.workers_lost, &mut rescan) {
                        return Ok("session ended");
                    }
                }
                Some(observation) = reads.next() => match observation {
                    Observation::Task(id, obs) => index.observe_task(&id, obs),
                    Observation::Worker(id, obs) => index.observe_worker(&id, obs),
                    Observation::Failed(e) => {
                        tracing::debug!(error = %e, "read failed; will rescan");
                        rescan = true;
                    }
                    Observation::Nothing => {}
                },
                Some((action, result)) = writes.next() => {
                    if let Some(reason) = self.on_write_result(&mut index, action, result, &mut reads, &mut own_writes) {
                        return Ok(reason);
                    }
                }
                _ = status_tick.tick() => {
                    for worker in index.tick() {
                        reads.push_back(self.read(Kind::Worker, worker));
                    }
                    index.set_clock(now_ms());
                    index.expire(self.deadlines());
                    if let Some(reason) = self.write_status(&index).await {
                        return Ok(reason);
                    }
                }
            }
        }
    }

    /// Turns a watch event into a read (or an immediate deletion); returns true when the
    /// session has ended.
    fn on_event(
        &mut self,
        event: WatchedEvent,
        kind: Kind,
        reads: &mut Reads,
        own_writes: &mut OwnWrites,
        lost: &mut bool,
        rescan: &mut bool,
    ) -> bool {
        if event.event_type == EventType::Session {
            *rescan |= reconnected_after_loss(lost, &event);
            match event.session_state {
                s if crate::zk::is_terminal(s) => {
                    self.session_ended = true;
                    return true;
                }
                _ => {}
            }
            return false;
        }
        let root = match kind {
            Kind::Task => paths::TASKS,
            Kind::Worker => paths::WORKERS,
        };
        // Only direct children matter (grandchildren can only hang under foreign znodes).
        let Some(id) = event.path.strip_prefix(root).and_then(|r| r.strip_prefix('/')) else {
            return false;
        };
        if id.is_empty() || id.contains('/') {
            return false;
        }
        let id = id.to_string();
        match event.event_type {
            EventType::NodeDeleted => {
                own_writes.remove(&(kind, id.clone()));
                reads.push_back(Box::pin(std::future::ready(match kind {
                    Kind::Task => Observation::Task(id, None),
                    Kind::Worker => Observation::Worker(id, None),
                })))
            }
            EventType::NodeDataChanged => match own_writes.remove(&(kind, id.clone())) {
                Some(mut own) => reads.push_back(Box::pin(async move {
                    match own.outcome.wait_for(Option::is_some).await.map(|o| *o) {
                        Ok(Some(true)) => own.observation,
                        _ => Observation::Nothing,
                    }
                })),
                None => reads.push_back(self.read(kind, id)),
            },
            EventType::NodeCreated => reads.push_back(self.read(kind, id)),
            _ => {}
        }
        false
    }

    /// Reads one node; the request is sent now, so reads complete in event order.
    fn read(&self, kind: Kind, id: String) -> futures::future::BoxFuture<'static, Observation> {
        let path = match kind {
            Kind::Task => paths::task(&id),
            Kind::Worker => paths::worker(&id),
        };
        let request = self.client().get_data(&path);
        let limit = self.session.request_timeout();
        Box::pin(async move {
            match timed(limit, request).await {
                Ok((data, stat)) => match kind {
                    Kind::Task => Observation::Task(id, Some(task_obs(&data, &stat))),
                    Kind::Worker => Observation::Worker(id, Some(worker_obs(&data, &stat))),
                },
                Err(ZkError::NoNode) => match kind {
                    Kind::Task => Observation::Task(id, None),
                    Kind::Worker => Observation::Worker(id, None),
                },
                Err(e) => Observation::Failed(e),
            }
        })
    }

    /// Lists and reads both trees (reads pipelined) and builds a fresh index.
    async fn scan(&self) -> anyhow::Result<Index> {
        let limit = self.session.request_timeout() * 4;
        let started = std::time::Instant::now();
        let workers = self.read_all(paths::WORKERS, limit).await?;
        let tasks = self.read_all(paths::TASKS, limit).await?;
        let workers: Vec<_> = workers
            .into_iter()
            .map(|(id, data, stat)| (id, worker_obs(&data, &stat)))
            .collect();
        let tasks: Vec<_> = tasks
            .into_iter()
            .map(|(id, data, stat)| (id, task_obs(&data, &stat)))
            .collect();
        tracing::info!(
            workers = workers.len(),
            tasks = tasks.len(),
            scan_ms = started.elapsed().as_millis() as u64,
            "scanned ZooKeeper"
        );
        crate::metrics::get()
            .master
            .scan_duration
            .observe(started.elapsed().as_secs_f64());
        crate::health::beat();
        Ok(Index::from_scan(self.epoch, self.args.max_attempts, workers, tasks))
    }

    async fn read_all(
        &self,
        parent: &str,
        limit: Duration,
    ) -> anyhow::Result<Vec<(String, Vec<u8>, zookeeper_client::Stat)>> {
        let children = timed(limit, self.client().list_children(parent))
            .await
            .with_context(|| format!("listing {parent}"))?;
        // Send every read before awaiting any: one round trip's latency for the whole tree.
        let requests: Vec<_> = children
            .iter()
            .map(|c| self.client().get_data(&format!("{parent}/{c}")))
            .collect();
        let mut out = Vec::with_capacity(children.len());
        for (child, request) in children.into_iter().zip(requests) {
            match timed(limit, request).await {
                Ok((data, stat)) => out.push((child, data, stat)),
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(e).with_context(|| format!("reading {parent}/{child}")),
            }
        }
        Ok(out)
    }

    /// One fenced multi for an action: first op checks our candidate znode exists.
    fn write(
        &self,
        action: Action,
        outcome: watch::Sender<Option<bool>>,
    ) -> impl std::future::Future<Output = (Action, Result<(), MultiWriteError>)> + 'static {
        let client = self.client().clone();
        let candidate = self.candidate.clone();
        let limit = self.session.request_timeout();
        async move {
            let mut result = fenced_commit(&client, &candidate, &action, true, limit).await;
            // A poison task whose payload znode is gone (deleted by someone else) has nobody to
            // report to: retire it without a result rather than retry forever.
            if let (
                Action::FailTask { .. },
                Err(MultiWriteError::OperationFailed {
                    index: 1,
                    source: ZkError::NoNode,
                }),
            ) = (&action, &result)
            {
                result = fenced_commit(&client, &candidate, &action, false, limit).await;
            }
            if let (
                Ok(()),
                Action::Assign {
                    task, worker, record, ..
                },
            ) = (&result, &action)
            {
                tracing::info!(task, worker, attempt = record.attempt, "assigned");
            }
            outcome.send_replace(Some(result.is_ok()));
            (action, result)
        }
    }

    /// Returns a reason when leadership is lost.
    fn on_write_result(
        &self,
        index: &mut Index,
        action: Action,
        result: Result<(), MultiWriteError>,
        reads: &mut Reads,
        own_writes: &mut OwnWrites,
    ) -> Option<&'static str> {
        match result {
            Ok(()) => {
                match &action {
                    Action::FailTask { task, result, .. } => {
                        tracing::warn!(task, attempts = result.attempt, error = result.error, "task failed")
                    }
                    Action::TakeBack {
                        task, worker, reason, ..
                    } => {
                        revoked(Revocation::TakenBack);
                        tracing::warn!(task, worker, reason, "took the task back from its worker")
                    }
                    Action::ClearWorker { worker, reason, .. } => {
                        revoked(Revocation::Cleared);
                        tracing::info!(worker, reason, "withdrew a worker's assignment")
                    }
                    Action::Assign { .. } => {
                        crate::metrics::get().master.assignments.inc();
                    }
                }
                None
            }
            Err(MultiWriteError::OperationFailed { index: 0, source }) => {
                tracing::error!(error = %source, "fenced: our candidate znode is gone");
                Some("fenced: our candidate znode is gone")
            }
            Err(e) => {
                if matches!(
                    e,
                    MultiWriteError::RequestFailed {
                        source: ZkError::SessionExpired
                    }
                ) {
                    return Some("session expired");
                }
                tracing::debug!(error = %e, ?action, "write failed; re-reading its nodes");
                index.action_failed(&action);
                // Its observations will never come; a later write's entry must stay.
                let (task_obs, worker_obs) = index.written(&action);
                let (task, worker) = action.nodes();
                for (key, version) in [
                    task.zip(task_obs)
                        .map(|(t, o)| ((Kind::Task, t.to_string()), o.version)),
                    worker
                        .zip(worker_obs)
                        .map(|(w, o)| ((Kind::Worker, w.to_string()), o.version)),
                ]
                .into_iter()
                .flatten()
                {
                    if own_writes.get(&key).is_some_and(|own| own.version == version) {
                        own_writes.remove(&key);
                    }
                }
                if let Some(t) = task {
                    reads.push_back(self.read(Kind::Task, t.to_string()));
                }
                if let Some(w) = worker {
                    reads.push_back(self.read(Kind::Worker, w.to_string()));
                }
                None
            }
        }
    }

    /// What the previous leader left in `/status` (totals carry over).
    async fn initial_status(&self) -> FarmStatus {
        let limit = self.session.request_timeout();
        let previous = match timed(limit, self.client().get_data(paths::STATUS)).await {
            Ok((data, _)) if !data.is_empty() => FarmStatus::parse(&data).unwrap_or_default(),
            _ => FarmStatus::default(),
        };
        let failover = !previous.leader.is_empty() && previous.epoch != self.epoch;
        FarmStatus {
            leader: self.id.to_string(),
            epoch: self.epoch,
            leader_since_ms: now_ms(),
            completed_total: previous.completed_total,
            failovers: previous.failovers + u64::from(failover),
            ..FarmStatus::default()
        }
    }

    /// Rewrites `/status` (fenced). Returns a reason when leadership is lost.
    async fn write_status(&mut self, index: &Index) -> Option<&'static str> {
        crate::health::beat();
        let counts = index.counts();
        let status = FarmStatus {
            updated_ms: now_ms(),
            workers: counts.workers,
            free_workers: counts.free_workers,
            pending: counts.pending,
            running: counts.running,
            completed_total: self.status.completed_total + index.completed(),
            ..self.status.clone()
        };
        publish_counts(&status);
        let data = serde_json::to_vec(&status).expect("status serializes");
        let mut multi = self.client().new_multi_writer();
        if multi
            .add_check_version(&self.candidate, -1)
            .and_then(|_| multi.add_set_data(paths::STATUS, &data, None))
            .is_err()
        {
            return None;
        }
        match tokio::time::timeout(self.session.request_timeout(), multi.commit()).await {
            Ok(Err(MultiWriteError::OperationFailed { index: 0, .. })) => Some("fenced: our candidate znode is gone"),
            Ok(Err(MultiWriteError::RequestFailed {
                source: ZkError::SessionExpired,
            })) => Some("session expired"),
            _ => None,
        }
    }
}

fn revoked(reason: Revocation) {
    crate::metrics::get()
        .master
        .revocations
        .get_or_create(&RevocationLabel { reason })
        .inc();
}

/// The leader's view of the farm, as gauges (refreshed with each /status write).
fn publish_counts(status: &FarmStatus) {
    let m = &crate::metrics::get().master;
    let task = |state| m.tasks.get_or_create(&TaskStateLabel { state }).clone();
    task(TaskState::Pending).set(i64::from(status.pending));
    task(TaskState::Running).set(i64::from(status.running));
    let worker = |state| m.workers.get_or_create(&WorkerStateLabel { state }).clone();
    worker(WorkerState::Free).set(i64::from(status.free_workers));
    worker(WorkerState::Busy).set(i64::from(status.workers.saturating_sub(status.free_workers)));
    m.completed.set(status.completed_total as i64);
    m.failovers.set(status.failovers as i64);
}

fn task_obs(data: &[u8], stat: &zookeeper_client::Stat) -> TaskObs {
    TaskObs {
        record: TaskRecord::parse(data).map_err(|e| e.to_string()),
        version: stat.version,
        created: stat.czxid,
    }
}

fn worker_obs(data: &[u8], stat: &zookeeper_client::Stat) -> WorkerObs {
    let assignment = WorkerRecord::parse(data)
        .map_err(|e| e.to_string())
        .and_then(|r| r.assignment().map_err(|e| e.to_string()));
    WorkerObs {
        assignment,
        version: stat.version,
        ephemeral: stat.ephemeral_owner != 0,
    }
}

/// One fenced multi for `action`: the first op checks that our candidate znode exists. A
/// `FailTask` writes the error result into the payload znode (unless `with_result` is false)
/// and deletes the task's record, as a worker's commit does.
async fn fenced_commit(
    client: &Client,
    candidate: &str,
    action: &Action,
    with_result: bool,
    limit: Duration,
) -> Result<(), MultiWriteError> {
    let mut multi = client.new_multi_writer();
    let built = (|| -> Result<(), ZkError> {
        multi.add_check_version(candidate, -1)?;
        match action {
            Action::Assign {
                task,
                task_version,
                record,
                worker,
                worker_version,
                assignment,
            } => {
                multi.add_set_data(&paths::task(task), &record.to_bytes(), Some(*task_version))?;
                let data = WorkerRecord::assigned(assignment).to_bytes();
                multi.add_set_data(&paths::worker(worker), &data, Some(*worker_version))?;
            }
            Action::FailTask {
                task,
                task_version,
                result,
            } => {
                if with_result {
                    multi.add_set_data(&paths::data(task), &result.to_bytes(), None)?;
                }
                multi.add_delete(&paths::task(task), Some(*task_version))?;
            }
            Action::ClearWorker {
                worker, worker_version, ..
            } => {
                multi.add_set_data(
                    &paths::worker(worker),
                    &WorkerRecord::free().to_bytes(),
                    Some(*worker_version),
                )?;
            }
            Action::TakeBack {
                task,
                task_version,
                record,
                worker,
                worker_version,
                ..
            } => {
                multi.add_set_data(&paths::task(task), &record.to_bytes(), Some(*task_version))?;
                multi.add_set_data(
                    &paths::worker(worker),
                    &WorkerRecord::free().to_bytes(),
                    Some(*worker_version),
                )?;
            }
        }
        Ok(())
    })();
    if let Err(e) = built {
        return Err(MultiWriteError::RequestFailed { source: e });
    }
    match tokio::time::timeout(limit, multi.commit()).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(MultiWriteError::RequestFailed {
            source: ZkError::ConnectionLoss,
        }),
    }
}
