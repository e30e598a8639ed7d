//! The leading master: turns the index's decisions into fenced multi-operations and keeps
//! the index current from the watch events and its own writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt as _};
use tokio::sync::watch;
use zookeeper_client::{Client, Error as ZkError, EventType, MultiWriteError, WatchedEvent};

use super::index::{Action, Deadlines, Index};
use super::observe::{self, child_id, Kind, Observation, Reads};
use super::standby::Warm;
use super::{reconnected_after_loss, Events, MasterArgs};
use crate::election::Leadership;
use crate::metrics::{Revocation, RevocationLabel, TaskState, TaskStateLabel, WorkerState, WorkerStateLabel};
use crate::protocol::{now_ms, paths, FarmStatus, WorkerRecord};
use crate::zk::{timed, ZkSession};

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

pub(super) struct Leader<'a> {
    session: &'a ZkSession,
    id: &'a str,
    epoch: i64,
    candidate: Arc<str>,
    args: &'a MasterArgs,
    status: FarmStatus,
    /// Set once a watcher reported the end of the session (it must not be polled again).
    pub(super) session_ended: bool,
}

impl<'a> Leader<'a> {
    pub(super) fn new(
        session: &'a ZkSession,
        id: &'a str,
        epoch: i64,
        candidate: String,
        args: &'a MasterArgs,
    ) -> Self {
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

    /// Leads until leadership is lost; returns why. With a standby's warm index it assigns at
    /// once and checks the index against a listing of ZooKeeper behind the first decisions;
    /// without one it scans first.
    pub(super) async fn lead(
        &mut self,
        leadership: &mut watch::Receiver<Leadership>,
        events: &mut Events,
        warm: Option<Warm>,
    ) -> anyhow::Result<&'static str> {
        // The watches exist before the scan (or the standby's): no change can fall between.
        // The previous status and the warm index's catch-up reads go out together.
        let (status, warm) = tokio::join!(self.initial_status(), self.warm_index(warm));
        self.status = status;
        let (mut index, mut reads, mut ticks_to_check) = match warm {
            Some((index, reads)) => (index, reads, 2),
            None => (self.scan().await?, Reads::new(), 0),
        };
        // The check of a warm index lists both trees: with a deep queue, a reply of megabytes
        // that would hold up the first assignments behind it. It starts at the second status
        // tick (the first is at once), one interval after the take-over.
        let mut check = None;
        let mut status_write = None;
        let mut writes = FuturesUnordered::new();
        let mut own_writes = OwnWrites::new();
        let mut status_tick = tokio::time::interval(self.args.status_interval);
        let mut rescan = false;
        loop {
            if rescan && writes.is_empty() {
                // Watch events may have been lost (ZOOKEEPER-4698): trust only a fresh scan. The
                // watches themselves were renewed by PersistentWatch on reconnection.
                reads = Reads::new();
                own_writes.clear();
                (check, ticks_to_check) = (None, 0);
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
                Some(observation) = reads.next() => {
                    if let Err(e) = observation.apply(&mut index) {
                        tracing::debug!(error = %e, "read failed; will rescan");
                        rescan = true;
                    }
                }
                listing = async { check.as_mut().expect("guarded").await }, if check.is_some() => {
                    check = None;
                    match listing {
                        Ok((tasks, workers)) => self.check_warm_index(&index, tasks, workers, &mut reads),
                        Err(e) => {
                            tracing::debug!(error = %e, "listing failed; will rescan");
                            rescan = true;
                        }
                    }
                }
                Some((action, result)) = writes.next() => {
                    if let Some(reason) = self.on_write_result(&mut index, action, result, &mut reads, &mut own_writes) {
                        return Ok(reason);
                    }
                }
                _ = status_tick.tick() => {
                    if ticks_to_check > 0 {
                        ticks_to_check -= 1;
                        if ticks_to_check == 0 {
                            check = Some(Box::pin(observe::list(self.session)));
                        }
                    }
                    for worker in index.tick() {
                        reads.push_back(observe::read(self.session, Kind::Worker, worker));
                    }
                    index.set_clock(now_ms());
                    index.expire(self.deadlines());
                    // One status write at a time (a slow one makes the next tick skip its own).
                    if status_write.is_none() {
                        status_write = Some(Box::pin(self.status_write(&index)));
                    }
                }
                lost = async { status_write.as_mut().expect("guarded").await }, if status_write.is_some() => {
                    status_write = None;
                    if let Some(reason) = lost {
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
        let Some(id) = child_id(&event, kind) else {
            return false;
        };
        match event.event_type {
            EventType::NodeDeleted => {
                own_writes.remove(&(kind, id.clone()));
                reads.push_back(Box::pin(std::future::ready(kind.gone(id))))
            }
            EventType::NodeDataChanged => match own_writes.remove(&(kind, id.clone())) {
                Some(mut own) => reads.push_back(Box::pin(async move {
                    match own.outcome.wait_for(Option::is_some).await.map(|o| *o) {
                        Ok(Some(true)) => own.observation,
                        _ => Observation::Nothing,
                    }
                })),
                None => reads.push_back(observe::read(self.session, kind, id)),
            },
            EventType::NodeCreated => reads.push_back(observe::read(self.session, kind, id)),
            _ => {}
        }
        false
    }

    async fn scan(&self) -> anyhow::Result<Index> {
        let mut index = observe::scan(self.session, self.args.max_attempts).await?;
        index.take_over(self.epoch);
        Ok(index)
    }

    /// Makes a standby's index ours: reads what changed since it was last read (the tasks
    /// running and their workers, whose changes a standby only marks), applies every read in
    /// flight, and takes over. `None` when there is no warm index or a read failed.
    async fn warm_index(&self, warm: Option<Warm>) -> Option<(Index, Reads)> {
        let Warm {
            mut index,
            mut reads,
            dirty,
        } = warm?;
        let started = std::time::Instant::now();
        let dirty_nodes = dirty.len();
        for (kind, id) in dirty {
            reads.push_back(observe::read(self.session, kind, id));
        }
        while let Some(observation) = reads.next().await {
            if let Err(e) = observation.apply(&mut index) {
                tracing::info!(error = %e, "a read of the warm index failed: scanning instead");
                return None;
            }
        }
        index.take_over(self.epoch);
        let (tasks, workers) = index.sizes();
        tracing::info!(
            tasks,
            workers,
            dirty_nodes,
            catch_up_ms = started.elapsed().as_millis() as u64,
            "leading from the warm index"
        );
        Some((index, reads))
    }

    /// Compares the warm index with a listing of both trees, taken after the take-over, and
    /// reads every node where they differ. A difference is either a change whose event is still
    /// on its way (the read is then redundant, and harmless) or a lost one (the read repairs it).
    fn check_warm_index(&self, index: &Index, tasks: Vec<String>, workers: Vec<String>, reads: &mut Reads) {
        let (indexed_tasks, indexed_workers) = index.ids();
        let mut differences = 0;
        for (kind, listed, indexed) in [
            (Kind::Task, tasks, indexed_tasks),
            (Kind::Worker, workers, indexed_workers),
        ] {
            let listed: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
            for id in listed.symmetric_difference(&indexed) {
                differences += 1;
                reads.push_back(observe::read(self.session, kind, id.to_string()));
            }
        }
        tracing::info!(differences, "checked the warm index against ZooKeeper's listing");
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
                    reads.push_back(observe::read(self.session, Kind::Task, t.to_string()));
                }
                if let Some(w) = worker {
                    reads.push_back(observe::read(self.session, Kind::Worker, w.to_string()));
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

    /// Rewrites `/status` (fenced): the data is taken now, the write runs beside the loop (it
    /// must not hold up the assignments around it). Resolves to a reason when leadership is lost.
    fn status_write(&self, index: &Index) -> impl std::future::Future<Output = Option<&'static str>> + 'static {
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
        let (client, candidate, limit) = (
            self.client().clone(),
            self.candidate.clone(),
            self.session.request_timeout(),
        );
        async move {
            let mut multi = client.new_multi_writer();
            if multi
                .add_check_version(&candidate, -1)
                .and_then(|_| multi.add_set_data(paths::STATUS, &data, None))
                .is_err()
            {
                return None;
            }
            match tokio::time::timeout(limit, multi.commit()).await {
                Ok(Err(MultiWriteError::OperationFailed { index: 0, .. })) => {
                    Some("fenced: our candidate znode is gone")
                }
                Ok(Err(MultiWriteError::RequestFailed {
                    source: ZkError::SessionExpired,
                })) => Some("session expired"),
                _ => None,
            }
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
