//! The worker role: registers `/workers/<id>` (ephemeral, `{}` = free), watches it, runs the
//! task its data names, and commits the result in one multi that also frees it.
//!
//! The commit checks the version of `/tasks/<task>` that the master recorded in the assignment
//! and the version of our own znode that carried it, so a result computed for an assignment
//! that was withdrawn (client gone, task reassigned after our session expired) never lands.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use zookeeper_client::{Error as ZkError, EventType, MultiWriteError, SessionState, WatchedEvent};

use crate::election::random_id;
use crate::exec::Catalogue;
use crate::metrics::{Outcome, OutcomeLabel};
use crate::protocol::{paths, validate_id, Assignment, TaskResult, WorkerRecord};
use crate::task::TaskSpec;
use crate::zk::{is_connection_loss, is_terminal, timed, PersistentWatch, ZkConfig, ZkSession};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// This worker's name (default: a random one; in Kubernetes, the pod name).
    #[arg(long, env = "TASKFARM_ID")]
    pub id: Option<String>,
    /// Serve /healthz and /readyz on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "TASKFARM_HEALTH_ADDR")]
    pub health_addr: Option<std::net::SocketAddr>,
    /// The operator's catalogue of commands `exec` tasks may run (YAML; see README). Without
    /// one, every `exec` task gets an error result.
    #[arg(long, env = "TASKFARM_COMMANDS")]
    pub commands: Option<std::path::PathBuf>,
    /// Tasks run at once. Each slot registers as a worker of its own, `<id>-1` ... `<id>-N`
    /// (plain `<id>` when 1), so the protocol is the same for one slot or many.
    #[arg(long, env = "TASKFARM_SLOTS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub slots: u16,
}

/// The worker ids of a process with `slots` slots.
pub fn slot_ids(id: &str, slots: u16) -> Vec<String> {
    if slots == 1 {
        vec![id.to_string()]
    } else {
        (1..=slots).map(|k| format!("{id}-{k}")).collect()
    }
}

/// Runs a worker until `shutdown` resolves (the binary passes SIGTERM/SIGINT; a test, anything).
pub async fn run(
    config: &ZkConfig,
    args: WorkerArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let id = args.id.unwrap_or_else(|| random_id("worker"));
    let slots = slot_ids(&id, args.slots);
    for slot in &slots {
        validate_id(slot).context("worker id")?;
    }
    let catalogue = Arc::new(match &args.commands {
        Some(path) => Catalogue::load(path)?,
        None => Catalogue::default(),
    });
    let span = tracing::info_span!("worker", worker = %id);
    let ready = Arc::new(
        crate::health::maybe_serve(args.health_addr, crate::role::Role::Worker)
            .instrument(span.clone())
            .await?,
    );
    span.in_scope(|| {
        let commands: Vec<&str> = catalogue.names().collect();
        tracing::info!(slots = slots.len(), ?commands, "worker starting")
    });
    crate::role::run_sessions(config, shutdown, |session| {
        let (slots, ready, catalogue) = (slots.clone(), ready.clone(), catalogue.clone());
        async move {
            // One session for all slots; each slot is a worker znode with its own loop.
            let loops = slots.into_iter().map(|slot| {
                let span = tracing::info_span!("slot", slot = %slot);
                Worker::new(session.clone(), slot, catalogue.clone())
                    .run(&ready)
                    .instrument(span)
            });
            let r = futures::future::try_join_all(loops).await.map(|_| ());
            ready.send_replace(false);
            r
        }
    })
    .instrument(span)
    .await
}

/// What the running task hands back.
enum TaskOutcome {
    /// The task ran (or its payload was rejected): commit this result.
    Finished(TaskResult),
    /// `/data/<task>` is gone (its client went, or someone deleted it): nobody to tell; the
    /// commit just retires the task.
    PayloadGone,
}

/// A task in progress: its assignment, the version of our znode that carried it, and the
/// execution itself.
struct Running {
    assignment: Assignment,
    /// The `task` span: everything logged about this task, wherever it is logged.
    span: tracing::Span,
    own_version: i32,
    handle: JoinHandle<Option<TaskOutcome>>,
}

struct Worker {
    session: ZkSession,
    id: String,
    catalogue: Arc<Catalogue>,
    path: String,
    states: zookeeper_client::StateWatcher,
}

impl Drop for Running {
    /// A task that is abandoned (withdrawn, session ended, worker stopping) stops running: an
    /// `exec` task's process group is killed with it.
    fn drop(&mut self) {
        self.handle.abort();
        crate::metrics::get().worker.busy_slots.dec();
    }
}

/// Counts and logs a committed result.
fn log_committed(r: &TaskResult, how: &str) {
    count_task(outcome_of(r));
    crate::metrics::get()
        .worker
        .task_duration
        .observe(r.run_ms as f64 / 1000.0);
    tracing::info!(ok = r.ok, run_ms = r.run_ms, "result committed{how}");
}

/// Counts a task's end by outcome.
fn count_task(outcome: Outcome) {
    crate::metrics::get()
        .worker
        .tasks
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
}

/// The outcome of a committed result.
fn outcome_of(result: &TaskResult) -> Outcome {
    let timed_out = result
        .value
        .as_ref()
        .is_some_and(|v| v.get("timed_out") == Some(&serde_json::Value::Bool(true)));
    let error = result.error.as_deref().unwrap_or("");
    match (result.ok, timed_out) {
        (true, _) => Outcome::Ok,
        (false, true) => Outcome::TimedOut,
        _ if error.starts_with("refused:") || error.starts_with("rejected:") => Outcome::Refused,
        _ => Outcome::Failed,
    }
}

/// Why the watch loop woke up.
enum Wake {
    Event(WatchedEvent),
    Finished(Option<Box<TaskOutcome>>),
    /// Nothing happened for a while: the loop beats to show it is alive.
    Heartbeat,
}

/// How a commit ended.
enum Commit {
    /// Result and release landed in one multi.
    Landed,
    /// The assignment was no longer ours: result dropped (`cleared`: we freed our znode).
    NotOurs { cleared: bool },
    /// The session ended before the commit could land.
    SessionEnded,
}

impl Worker {
    fn new(session: ZkSession, id: String, catalogue: Arc<Catalogue>) -> Self {
        let states = session.client.state_watcher();
        let path = paths::worker(&id);
        Self {
            session,
            id,
            catalogue,
            path,
            states,
        }
    }

    async fn run(mut self, ready: &watch::Sender<bool>) -> anyhow::Result<()> {
        self.session.ensure_layout().await?;
        if !self.register().await? {
            return Ok(());
        }
        // One persistent watch for the session: every change to our znode is one event, so we
        // never re-arm a watch and can tell our own writes' events from the master's.
        let Some(mut events) = self.watch_own_znode().await? else {
            return Ok(());
        };
        ready.send_replace(true);
        tracing::info!(path = self.path, "registered; waiting for assignments");
        let mut running: Option<Running> = None;
        // Events still to come for our own writes that landed: skipped, not read back (we know
        // what we wrote). Reset by a reconnection, when events may have been lost.
        let mut own_events: u32 = 0;
        let mut read_needed = true;
        let mut disconnected = false;
        let mut heartbeat = tokio::time::interval(crate::health::BEAT_INTERVAL);
        loop {
            if read_needed {
                read_needed = false;
                let limit = self.session.request_timeout();
                let (data, stat) = match timed(limit, self.session.client.get_data(&self.path)).await {
                    Ok(x) => x,
                    Err(ZkError::NoNode) => {
                        tracing::error!("our worker znode was deleted by someone else; registering again");
                        if let Some(r) = running.take() {
                            r.handle.abort();
                        }
                        if !self.register().await? {
                            return Ok(());
                        }
                        (own_events, read_needed) = (0, true);
                        continue;
                    }
                    Err(e) => {
                        if self.wait_connected(e).await {
                            read_needed = true;
                            continue;
                        }
                        return Ok(());
                    }
                };
                // Decide what our znode now asks of us.
                let wanted = match WorkerRecord::parse(&data).map(|r| r.assignment()) {
                    Ok(Ok(a)) => a,
                    Ok(Err(e)) | Err(e) => {
                        tracing::warn!(error = %e, "bogus data in our worker znode; clearing it");
                        own_events += u32::from(self.clear(stat.version).await);
                        continue;
                    }
                };
                running = match (running.take(), wanted) {
                    (Some(r), Some(a)) if r.assignment == a => Some(r),
                    (current, wanted) => {
                        if let Some(r) = current {
                            r.span
                                .in_scope(|| tracing::warn!("assignment withdrawn; abandoning the task"));
                            count_task(Outcome::Abandoned);
                            r.handle.abort();
                        }
                        wanted.map(|a| self.start(a, stat.version))
                    }
                };
            }
            let wake = {
                let finished = async {
                    match running.as_mut() {
                        Some(r) => Wake::Finished((&mut r.handle).await.ok().flatten().map(Box::new)),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    event = events.next() => Wake::Event(event),
                    w = finished => w,
                    _ = heartbeat.tick() => Wake::Heartbeat,
                }
            };
            crate::health::beat();
            match wake {
                Wake::Heartbeat => {}
                Wake::Event(event) => match (event.event_type, event.session_state) {
                    (EventType::NodeDataChanged, _) if own_events > 0 => own_events -= 1,
                    (EventType::NodeDataChanged | EventType::NodeDeleted | EventType::NodeCreated, _) => {
                        read_needed = true
                    }
                    (EventType::Session, SessionState::Disconnected) => disconnected = true,
                    (EventType::Session, SessionState::SyncConnected) if disconnected => {
                        disconnected = false;
                        (own_events, read_needed) = (0, true);
                    }
                    (EventType::Session, s) if is_terminal(s) => {
                        if let Some(r) = running.take() {
                            r.span.in_scope(|| tracing::warn!("session ended: abandoning the task"));
                            count_task(Outcome::Abandoned);
                            r.handle.abort();
                        }
                        return Ok(());
                    }
                    _ => {}
                },
                Wake::Finished(outcome) => {
                    let r = running.take().expect("a finished task was running");
                    // No outcome: the session ended while reading the payload; the next
                    // event says so and ends the loop.
                    if let Some(o) = outcome {
                        match self.commit(&r, *o).instrument(r.span.clone()).await {
                            Commit::Landed => own_events += 1,
                            Commit::NotOurs { cleared } => own_events += u32::from(cleared),
                            Commit::SessionEnded => return Ok(()),
                        }
                    }
                }
            }
        }
    }

    /// Adds the persistent watch on our znode. `None` when the session ended meanwhile.
    async fn watch_own_znode(&mut self) -> anyhow::Result<Option<PersistentWatch>> {
        loop {
            match PersistentWatch::node(&self.session.client, &self.path).await {
                Ok(w) => return Ok(Some(w)),
                Err(e) if is_connection_loss(&e) || matches!(e, ZkError::SessionExpired | ZkError::ClientClosed) => {
                    if !self.wait_connected(e).await {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("watching {}", self.path)),
            }
        }
    }

    /// Creates our ephemeral znode. Returns false when the session ended meanwhile.
    async fn register(&mut self) -> anyhow::Result<bool> {
        let free = WorkerRecord::free().to_bytes();
        loop {
            let limit = self.session.request_timeout();
            let options = self.session.ephemeral();
            match timed(limit, self.session.client.create(&self.path, &free, &options)).await {
                Ok(_) => return Ok(true),
                Err(ZkError::NodeExists) => {
                    // Ours (a retried create after ConnectionLoss), or another live process with
                    // our id, or our own previous session's znode not yet expired.
                    match timed(limit, self.session.client.check_and_watch_stat(&self.path)).await {
                        Ok((Some(stat), _)) if stat.ephemeral_owner == self.session.session_id() => return Ok(true),
                        Ok((Some(stat), watcher)) => {
                            tracing::warn!(
                                owner = format!("{:#x}", stat.ephemeral_owner),
                                "another session holds our worker id; waiting for it to go"
                            );
                            tokio::select! {
                                _ = watcher.changed() => {}
                                s = self.states.changed() => if is_terminal(s) { return Ok(false) },
                            }
                        }
                        Ok((None, _)) => {}
                        Err(e) => {
                            if !self.wait_connected(e).await {
                                return Ok(false);
                            }
                        }
                    }
                }
                Err(e) if is_connection_loss(&e) || matches!(e, ZkError::SessionExpired | ZkError::ClientClosed) => {
                    if !self.wait_connected(e).await {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("registering {}", self.path)),
            }
        }
    }

    /// After a failed request: waits until connected again (true) or the session ended (false).
    async fn wait_connected(&mut self, error: ZkError) -> bool {
        tracing::debug!(%error, "request failed; waiting for the session");
        let mut state = self.session.client.state();
        loop {
            if is_terminal(state) {
                return false;
            }
            if state == SessionState::SyncConnected {
                return true;
            }
            state = self.states.changed().await;
        }
    }

    /// Starts executing an assignment in the background.
    fn start(&self, assignment: Assignment, own_version: i32) -> Running {
        crate::metrics::get().worker.busy_slots.inc();
        let span = tracing::info_span!(
            "task",
            task = %assignment.task,
            attempt = assignment.attempt,
            epoch = assignment.epoch
        );
        span.in_scope(|| tracing::info!("task assigned"));
        let client = self.session.client.clone();
        let limit = self.session.request_timeout();
        let (task, worker) = (assignment.task.clone(), self.id.clone());
        let catalogue = self.catalogue.clone();
        let attempt = assignment.attempt;
        let handle = tokio::spawn(
            async move {
                // A worker never gives a live task back (the master takes a worker freeing itself
                // while holding a task for that task's commit), so a lost connection means reading
                // again; if the session ends, our znode goes and the master re-assigns the task.
                let read = loop {
                    match timed(limit, client.get_data(&paths::data(&task))).await {
                        Err(e) if is_connection_loss(&e) => tokio::time::sleep(limit / 10).await,
                        other => break other,
                    }
                };
                let started = Instant::now();
                let result = match read {
                    // Version 0 is the payload; anything later is already a result (someone else's
                    // commit landed: ours will fail its version check).
                    Ok((bytes, stat)) if stat.version == 0 => match TaskSpec::parse(&bytes) {
                        Ok(spec) => match spec.run(&catalogue).await {
                            Ok(value) => TaskResult::success(value, &worker, attempt, elapsed_ms(started)),
                            Err(f) => TaskResult::failure(f.error, Some(&worker), attempt, elapsed_ms(started))
                                .failure_with(f.value),
                        },
                        Err(e) => TaskResult::failure(format!("rejected: {e}"), Some(&worker), attempt, 0),
                    },
                    Ok(_) | Err(ZkError::NoNode) => return Some(TaskOutcome::PayloadGone),
                    // The session ended: nothing can be committed any more.
                    Err(ZkError::SessionExpired | ZkError::ClientClosed | ZkError::AuthFailed) => return None,
                    Err(e) => TaskResult::failure(format!("cannot read the payload: {e}"), Some(&worker), attempt, 0),
                };
                Some(TaskOutcome::Finished(result))
            }
            .instrument(span.clone()),
        );
        Running {
            assignment,
            span,
            own_version,
            handle,
        }
    }

    /// Commits a result, frees us and retires the task, atomically:
    /// `multi{set /data/<t> result, set /workers/<us> {} @own, delete /tasks/<t> @task_version}`.
    /// Deleting the task record at the version the master assigned is what makes a result
    /// land once: a second commit (ours retried, a late one of an expired session, the
    /// master failing the task) finds the record gone.
    async fn commit(&mut self, running: &Running, mut outcome: TaskOutcome) -> Commit {
        let a = &running.assignment;
        let mut result = match &outcome {
            TaskOutcome::Finished(r) => Some(r.to_bytes()),
            TaskOutcome::PayloadGone => None,
        };
        // Free again, saying which commit freed us (see the lost-reply case below).
        let free = WorkerRecord::free_after(a).to_bytes();
        loop {
            // Where our own znode's op sits, to read a failure's index.
            let own_op = usize::from(result.is_some());
            let mut multi = self.session.client.new_multi_writer();
            let built = result
                .as_ref()
                .map_or(Ok(()), |r| multi.add_set_data(&paths::data(&a.task), r, None))
                .and_then(|_| multi.add_set_data(&self.path, &free, Some(running.own_version)))
                .and_then(|_| multi.add_delete(&paths::task(&a.task), Some(a.task_version)));
            if let Err(e) = built {
                tracing::error!(error = %e, "cannot build the commit");
                return Commit::NotOurs { cleared: false };
            }
            let limit = self.session.request_timeout();
            let committed = match tokio::time::timeout(limit, multi.commit()).await {
                Ok(r) => r,
                Err(_) => Err(MultiWriteError::RequestFailed {
                    source: ZkError::ConnectionLoss,
                }),
            };
            match committed {
                Ok(_) => {
                    match &outcome {
                        TaskOutcome::Finished(r) => log_committed(r, ""),
                        TaskOutcome::PayloadGone => tracing::warn!(
                            "task payload {} is missing: task retired without a result",
                            paths::data(&a.task)
                        ),
                    }
                    return Commit::Landed;
                }
                Err(MultiWriteError::OperationFailed {
                    index: 0,
                    source: ZkError::NoNode,
                }) if result.is_some() => {
                    // The payload znode vanished while the task ran: nobody to report to, but
                    // the task is still ours to retire (a worker gives no live task back).
                    (outcome, result) = (TaskOutcome::PayloadGone, None);
                    continue;
                }
                Err(MultiWriteError::OperationFailed { index, source }) => {
                    // Our znode changed: the master withdrew the assignment. Otherwise the task
                    // (or its payload) changed or vanished: the assignment is void, free us.
                    tracing::warn!(index, error = %source, "result discarded: the assignment is no longer ours");
                    let cleared = index != own_op && self.clear(running.own_version).await;
                    return Commit::NotOurs { cleared };
                }
                Err(MultiWriteError::RequestFailed { source }) => {
                    if !self.wait_connected(source).await {
                        tracing::warn!("session ended before the commit: result dropped");
                        return Commit::SessionEnded;
                    }
                    // Outcome unknown: if our znode still carries this assignment, nothing was
                    // committed and we try again; otherwise the commit (or the master) won. The
                    // reconnection makes the watch loop re-read our znode anyway.
                    // Our znode moved on: our commit landed with its reply lost, or the master
                    // withdrew the assignment. Our commit leaves its mark in our record's `last`
                    // (the master frees a worker with a plain `{}`).
                    let ours = a.committed_marker();
                    match timed(limit, self.session.client.get_data(&self.path)).await {
                        Ok((_, stat)) if stat.version == running.own_version => continue,
                        Ok((data, _))
                            if WorkerRecord::parse(&data).is_ok_and(|w| w.last.as_deref() == Some(ours.as_str())) =>
                        {
                            if let TaskOutcome::Finished(r) = &outcome {
                                log_committed(r, " (its reply was lost; our worker record shows the commit)");
                            }
                            return Commit::Landed;
                        }
                        _ => return Commit::NotOurs { cleared: false },
                    }
                }
            }
        }
    }

    /// Frees our znode if it is still at `version` (someone else may have changed it).
    /// Returns whether our write landed.
    async fn clear(&mut self, version: i32) -> bool {
        let free = WorkerRecord::free().to_bytes();
        let limit = self.session.request_timeout();
        match timed(limit, self.session.client.set_data(&self.path, &free, Some(version))).await {
            Ok(_) => {
                tracing::info!("assignment cleared");
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "assignment not cleared (changed meanwhile)");
                false
            }
        }
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}
