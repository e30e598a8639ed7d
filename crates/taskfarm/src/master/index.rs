//! The leading master's view of the farm and its decisions: pure, no I/O.
//!
//! The index holds the latest *observation* (data + version, read from ZooKeeper) of every
//! task and worker. Observations arrive one node at a time, in the order ZooKeeper's watch
//! events were delivered. Each observation touches only the entries it concerns, and
//! [`Index::decide`] looks only at touched entries, so the work per event stays constant
//! however long the backlog (issue: the master scales with the backlog).
//!
//! A write in flight *claims* its nodes until an observation shows the version the write
//! produces (or the write failed), so no decision is taken on a node whose change we have
//! not seen yet.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::protocol::{validate_id, Assignment, TaskRecord, TaskResult, TaskState};

/// One observation of `/tasks/<id>`.
#[derive(Debug, Clone)]
pub struct TaskObs {
    pub record: Result<TaskRecord, String>,
    pub version: i32,
    /// Creation zxid: the backlog is served in submission order.
    pub created: i64,
}

/// One observation of `/workers/<id>`.
#[derive(Debug, Clone)]
pub struct WorkerObs {
    pub assignment: Result<Option<Assignment>, String>,
    pub version: i32,
    pub ephemeral: bool,
}

/// A state change the master wants; each becomes one fenced multi.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Hand `task` to `worker`: set both znodes, each at its observed version.
    Assign {
        task: String,
        task_version: i32,
        record: TaskRecord,
        worker: String,
        worker_version: i32,
        assignment: Assignment,
    },
    /// Complete `task` with an error result (poison task): write the result into its
    /// payload znode and delete its record, as a worker's commit does.
    FailTask {
        task: String,
        task_version: i32,
        result: TaskResult,
    },
    /// Withdraw a worker's assignment (its task is gone or no longer its own).
    ClearWorker {
        worker: String,
        worker_version: i32,
        reason: String,
    },
    /// Take a task back from a worker that held it past its deadline: queue the task again
    /// (`record`) and free the worker, both at their observed versions, so the old holder's
    /// commit can no longer land.
    TakeBack {
        task: String,
        task_version: i32,
        record: TaskRecord,
        worker: String,
        worker_version: i32,
        reason: String,
    },
}

impl Action {
    /// The task and worker znodes the action writes.
    pub fn nodes(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Action::Assign { task, worker, .. } | Action::TakeBack { task, worker, .. } => (Some(task), Some(worker)),
            Action::FailTask { task, .. } => (Some(task), None),
            Action::ClearWorker { worker, .. } => (None, Some(worker)),
        }
    }
}

/// Counts for `/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub workers: u32,
    pub free_workers: u32,
    pub pending: u32,
    pub running: u32,
}

#[derive(Debug)]
pub struct Index {
    epoch: i64,
    max_attempts: u32,
    /// Task ids are shared by this map and the queue of pending tasks (one allocation each).
    tasks: HashMap<Arc<str>, TaskObs>,
    workers: HashMap<String, WorkerObs>,
    task_claims: HashMap<String, i32>,
    worker_claims: HashMap<String, i32>,
    /// Candidates for assignment; may hold stale ids, re-checked when popped.
    pending: VecDeque<Arc<str>>,
    free: VecDeque<String>,
    touched_tasks: Vec<String>,
    touched_workers: Vec<String>,
    /// Tasks seen completing while we lead: a worker's commit, or a failure the master wrote.
    /// (A task whose client died while it ran is not one: nothing was committed.)
    completed: u64,
    /// Tasks with a failure of ours in flight: their record's deletion completes them.
    failing: HashSet<String>,
    /// Tasks whose worker freed itself while still holding them: its commit, whose deletion of
    /// the task record we will observe next (same multi). Never re-assigned meanwhile.
    retiring: HashSet<String>,
    /// Workers whose task vanished while they still showed it, with the tick it happened in.
    /// Usually their commit (its worker event comes through another watcher, so it may be
    /// applied after the task's deletion); if no observation of them follows within a tick,
    /// their client died: the master reads them again (see [`Index::tick`]).
    task_vanished: HashMap<String, u64>,
    ticks: u64,
    /// Foreign or garbled znodes already reported (reported once).
    reported: HashSet<String>,
    new_reports: Vec<String>,
    /// Tasks whose fate waits on a worker's next observation (its write was in flight).
    waiting_on_worker: HashMap<String, Vec<String>>,
    /// Workers whose check waits on a task's next observation.
    waiting_on_task: HashMap<String, Vec<String>>,
    /// The caller's clock (ms since the Unix epoch), stamped on assignments.
    now_ms: u64,
    /// When we first saw an assignment that carries no `assigned_ms` (made by an older
    /// master): its deadline counts from then.
    first_seen_assigned: HashMap<String, u64>,
    /// Decisions taken outside [`Index::decide`] (deadlines), handed out by its next call.
    queued_actions: Vec<Action>,
    /// Workers that held a task past its deadline: wedged, given nothing more until their
    /// znode goes (a restarted worker registers afresh).
    quarantined: HashSet<String>,
    /// A standby's tasks that were not plainly queued when last observed (assigned, garbled,
    /// invalid ids): judged when it takes over (see [`Index::settle`]).
    review: HashSet<String>,
    /// One copy of each client id the records name (a deep backlog comes from few clients),
    /// pruned of ids no record holds once it has doubled since the last pruning.
    clients: HashSet<Arc<str>>,
    clients_pruned_at: usize,
}

/// How long an assignment may go without a commit before the master takes it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// For tasks whose record states no `timeout_ms`.
    pub default_limit_ms: u64,
    /// Added to every limit: the worker's own SIGTERM grace, its commit, clock skew.
    pub grace_ms: u64,
}

impl Index {
    pub fn new(epoch: i64, max_attempts: u32) -> Self {
        Self {
            epoch,
            max_attempts,
            tasks: HashMap::new(),
            workers: HashMap::new(),
            task_claims: HashMap::new(),
            worker_claims: HashMap::new(),
            pending: VecDeque::new(),
            free: VecDeque::new(),
            touched_tasks: Vec::new(),
            touched_workers: Vec::new(),
            completed: 0,
            failing: HashSet::new(),
            retiring: HashSet::new(),
            task_vanished: HashMap::new(),
            ticks: 0,
            reported: HashSet::new(),
            new_reports: Vec::new(),
            waiting_on_worker: HashMap::new(),
            waiting_on_task: HashMap::new(),
            now_ms: 0,
            first_seen_assigned: HashMap::new(),
            queued_actions: Vec::new(),
            quarantined: HashSet::new(),
            review: HashSet::new(),
            clients: HashSet::new(),
            clients_pruned_at: 0,
        }
    }

    /// Sets the clock that stamps assignments (`assigned_ms`) and judges deadlines.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Finds assignments past their deadline (assigned + the task's limit + grace, with no
    /// commit): each is taken back, or failed once it has used up its attempts. The actions
    /// come out of the next [`Index::decide`]. O(tasks): called about once a second.
    pub fn expire(&mut self, deadlines: Deadlines) {
        let now = self.now_ms;
        let mut due = Vec::new();
        let mut unstamped = Vec::new();
        for (t, obs) in &self.tasks {
            let t: &str = t;
            let Ok(record) = &obs.record else { continue };
            if record.state != TaskState::Assigned || self.task_claims.contains_key(t) || self.retiring.contains(t) {
                continue;
            }
            let Some(w) = record.worker.as_deref() else { continue };
            let held = matches!(self.workers.get(w).map(|o| &o.assignment), Some(Ok(Some(a))) if a.task == t);
            if !held || self.worker_claims.contains_key(w) {
                continue; // orphaned or in flux: the usual decisions handle it
            }
            let assigned_at = match (record.assigned_ms, self.first_seen_assigned.get(t)) {
                (Some(at), _) => at,
                (None, Some(&seen)) => seen,
                (None, None) => {
                    unstamped.push(t.to_string());
                    continue;
                }
            };
            let limit = record.timeout_ms.unwrap_or(deadlines.default_limit_ms) + deadlines.grace_ms;
            if now > assigned_at.saturating_add(limit) {
                due.push((t.to_string(), w.to_string(), limit));
            }
        }
        for t in unstamped {
            self.first_seen_assigned.insert(t, now);
        }
        for (t, w, limit) in due {
            let obs = &self.tasks[t.as_str()];
            let record = obs.record.as_ref().expect("checked above");
            let task_version = obs.version;
            self.task_claims.insert(t.clone(), task_version + 1);
            if record.attempt >= self.max_attempts {
                let result = TaskResult::failure(
                    format!(
                        "abandoned: no result within its deadline ({limit} ms) on each of {} attempts",
                        record.attempt
                    ),
                    None,
                    record.attempt,
                    0,
                );
                self.failing.insert(t.clone());
                self.queued_actions.push(Action::FailTask {
                    task: t,
                    task_version,
                    result,
                });
            } else {
                let worker_version = self.workers[&w].version;
                self.worker_claims.insert(w.clone(), worker_version + 1);
                self.quarantined.insert(w.clone());
                self.new_reports.push(format!(
                    "worker {w} held task {t} past its deadline: it gets no more tasks until it registers again"
                ));
                self.queued_actions.push(Action::TakeBack {
                    record: record.taken_back(),
                    reason: format!("no result within its deadline ({limit} ms after the assignment)"),
                    task: t,
                    task_version,
                    worker: w,
                    worker_version,
                });
            }
        }
    }

    /// Builds the index from a full scan (done once on becoming leader without a warm index,
    /// or after a reconnection, when watch events may have been lost).
    pub fn from_scan(
        epoch: i64,
        max_attempts: u32,
        workers: Vec<(String, WorkerObs)>,
        tasks: Vec<(String, TaskObs)>,
    ) -> Self {
        let mut index = Self::new(epoch, max_attempts);
        for (id, obs) in workers {
            index.scanned_worker(id, obs);
        }
        for (id, obs) in tasks {
            index.scanned_task(&id, obs);
        }
        index.scan_done();
        index.take_over(epoch);
        index
    }

    /// One worker read by a scan (see [`Index::scan_done`]).
    pub fn scanned_worker(&mut self, id: String, obs: WorkerObs) {
        self.workers.insert(id, obs);
    }

    /// One task read by a scan, entered as read: a scan's reads are not observations in
    /// any order, so nothing is judged until [`Index::scan_done`].
    pub fn scanned_task(&mut self, id: &str, mut obs: TaskObs) {
        self.share_client(&mut obs);
        self.tasks.insert(Arc::from(id), obs);
    }

    /// Ends a scan: queues the plainly queued tasks in submission order (creation zxid) and
    /// puts the others under review, as [`Index::settle`] does, without a copy of any id.
    pub fn scan_done(&mut self) {
        let mut order: Vec<(i64, Arc<str>)> = self.tasks.iter().map(|(id, t)| (t.created, id.clone())).collect();
        order.sort_unstable();
        for (_, id) in order {
            if plainly_queued(&id, &self.tasks[&id]) {
                self.pending.push_back(id);
            } else {
                self.review.insert(id.to_string());
            }
        }
    }

    /// A standby's bookkeeping after its observations (it never decides): a task observed
    /// plainly queued joins the FIFO queue of pending tasks at once, in observation order
    /// (which is creation order: watch events come in zxid order); any other task waits in
    /// `review` to be judged when the standby takes over. So taking over costs no pass over
    /// the backlog.
    pub fn settle(&mut self) {
        for t in std::mem::take(&mut self.touched_tasks) {
            let plainly_queued = match self.tasks.get(t.as_str()) {
                None => {
                    self.review.remove(&t);
                    continue;
                }
                Some(obs) => plainly_queued(&t, obs),
            };
            if plainly_queued {
                self.review.remove(&t);
                self.queue_back(&t);
            } else {
                self.review.insert(t);
            }
        }
        // Workers are few: all are judged at the take-over.
        self.touched_workers.clear();
        self.waiting_on_task.clear();
        self.waiting_on_worker.clear();
        // Tasks leave the queue roughly in order: drop the gone ones at its front as they go,
        // and the rest (behind a long-running task) once they are half of it.
        while self.pending.front().is_some_and(|t| !self.tasks.contains_key(t)) {
            self.pending.pop_front();
        }
        if self.pending.len() > 2 * self.tasks.len() + 1024 {
            let tasks = &self.tasks;
            self.pending.retain(|t| tasks.contains_key(t));
        }
    }

    /// Makes a settled index (a scan's, or a standby's kept current by its observations) the
    /// leader's for `epoch`. The queue of pending tasks stands (each is checked again when
    /// popped); every worker, every task under review and every task observed since the last
    /// settling is judged by the next [`Index::decide`]. Nothing decided before survives (a
    /// standby decides nothing), and commits seen while following were the leader's to count.
    pub fn take_over(&mut self, epoch: i64) {
        self.epoch = epoch;
        self.completed = 0;
        self.free.clear();
        self.task_vanished.clear();
        self.waiting_on_task.clear();
        self.waiting_on_worker.clear();
        self.touched_workers = self.workers.keys().cloned().collect();
        self.touched_workers.sort_unstable();
        let mut review: Vec<String> = self.review.drain().collect();
        review.sort_by_key(|t| self.tasks.get(t.as_str()).map(|o| o.created));
        self.touched_tasks.extend(review);
    }

    /// Room for `n` more children of `parent` (`/tasks` or `/workers`), before a scan.
    pub fn reserve(&mut self, parent: &str, n: usize) {
        if parent == crate::protocol::paths::TASKS {
            self.tasks.reserve(n);
            self.pending.reserve(n);
        } else {
            self.workers.reserve(n);
        }
    }

    /// How many tasks and workers are indexed.
    pub fn sizes(&self) -> (usize, usize) {
        (self.tasks.len(), self.workers.len())
    }

    /// The ids of the tasks and of the workers indexed (for the check of a warm index against a
    /// listing of ZooKeeper).
    pub fn ids(&self) -> (HashSet<&str>, HashSet<&str>) {
        (
            self.tasks.keys().map(|id| &**id).collect(),
            self.workers.keys().map(String::as_str).collect(),
        )
    }

    pub fn completed(&self) -> u64 {
        self.completed
    }

    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// A fresh observation of `/tasks/<id>` (`None`: it is gone).
    pub fn observe_task(&mut self, id: &str, obs: Option<TaskObs>) {
        let previous = match obs {
            Some(mut obs) => {
                self.share_client(&mut obs);
                if self.task_claims.get(id).is_some_and(|&v| obs.version >= v) {
                    self.task_claims.remove(id);
                }
                // Still there after its worker's commit? Then that was no commit: decide afresh.
                self.retiring.remove(id);
                match self.tasks.get_mut(id) {
                    Some(entry) => Some(std::mem::replace(entry, obs)),
                    None => self.tasks.insert(Arc::from(id), obs),
                }
            }
            None => {
                self.task_claims.remove(id);
                let committed = self.retiring.remove(id) | self.failing.remove(id);
                self.first_seen_assigned.remove(id);
                self.reported.remove(&format!("/tasks/{id}"));
                let gone = self.tasks.remove(id);
                // Its worker freed itself first (the commit's other half), or we failed it. A
                // commit observed task-first is counted when its worker shows up free
                // (`observe_worker`); a client that died leaves nothing to count.
                if committed && gone.as_ref().is_some_and(|t| is_state(t, TaskState::Assigned)) {
                    self.completed += 1;
                }
                gone
            }
        };
        // A vanished task frees the worker that ran it; a live one may need (re)scheduling.
        if !self.tasks.contains_key(id) {
            if let Some(w) = previous.as_ref().and_then(assigned_worker) {
                let still_shown =
                    matches!(self.workers.get(&w).map(|o| &o.assignment), Some(Ok(Some(a))) if a.task == id);
                if still_shown {
                    self.task_vanished.insert(w.clone(), self.ticks);
                }
                self.touched_workers.push(w);
            }
        }
        self.touched_tasks.push(id.to_string());
        if let Some(workers) = self.waiting_on_task.remove(id) {
            self.touched_workers.extend(workers);
        }
    }

    /// A fresh observation of `/workers/<id>` (`None`: it is gone).
    pub fn observe_worker(&mut self, id: &str, obs: Option<WorkerObs>) {
        // Its task vanished while it still showed it: free now means that was its commit.
        if self.task_vanished.remove(id).is_some() && matches!(&obs, Some(o) if matches!(o.assignment, Ok(None))) {
            self.completed += 1;
        }
        let previous = match obs {
            Some(obs) => {
                if self.worker_claims.get(id).is_some_and(|&v| obs.version >= v) {
                    self.worker_claims.remove(id);
                }
                // A worker frees itself while holding a live task only in the commit that also
                // deletes the task's record (a worker gives no task back otherwise).
                if let (Ok(None), Some(Ok(Some(a)))) = (&obs.assignment, self.workers.get(id).map(|w| &w.assignment)) {
                    if self.holds(id, a) {
                        self.retiring.insert(a.task.clone());
                    }
                }
                self.workers.insert(id.to_string(), obs)
            }
            None => {
                self.worker_claims.remove(id);
                self.quarantined.remove(id);
                self.reported.remove(&format!("/workers/{id}"));
                self.workers.remove(id)
            }
        };
        // The task this worker held may now be orphaned.
        if let Some(Ok(Some(a))) = previous.map(|p| p.assignment) {
            self.touched_tasks.push(a.task);
        }
        self.touched_workers.push(id.to_string());
        if let Some(tasks) = self.waiting_on_worker.remove(id) {
            self.touched_tasks.extend(tasks);
        }
    }

    /// What `action`'s nodes hold once it has landed: the data it writes, at the version after
    /// the one it checks. With these the master needs no read to learn of its own writes.
    pub fn written(&self, action: &Action) -> (Option<TaskObs>, Option<WorkerObs>) {
        let task_obs = |task: &str, version: i32, record: &TaskRecord| {
            self.tasks.get(task).map(|t| TaskObs {
                record: Ok(record.clone()),
                version: version + 1,
                created: t.created,
            })
        };
        let worker_obs = |worker: &str, version: i32, assignment: Option<&Assignment>| {
            self.workers.get(worker).map(|w| WorkerObs {
                assignment: Ok(assignment.cloned()),
                version: version + 1,
                ephemeral: w.ephemeral,
            })
        };
        match action {
            Action::Assign {
                task,
                task_version,
                record,
                worker,
                worker_version,
                assignment,
            } => (
                task_obs(task, *task_version, record),
                worker_obs(worker, *worker_version, Some(assignment)),
            ),
            Action::TakeBack {
                task,
                task_version,
                record,
                worker,
                worker_version,
                ..
            } => (
                task_obs(task, *task_version, record),
                worker_obs(worker, *worker_version, None),
            ),
            // The task's record is deleted: its observation is the deletion event itself.
            Action::FailTask { .. } => (None, None),
            Action::ClearWorker {
                worker, worker_version, ..
            } => (None, worker_obs(worker, *worker_version, None)),
        }
    }

    /// A write failed: forget its claims (the caller re-reads the nodes it touched).
    pub fn action_failed(&mut self, action: &Action) {
        // Release only the claims this action set: a later action may have claimed the same
        // node since (e.g. an assignment after a failed repair), and its claim must stand.
        let (task_version, worker_version) = match action {
            Action::Assign {
                task_version,
                worker_version,
                ..
            }
            | Action::TakeBack {
                task_version,
                worker_version,
                ..
            } => (Some(*task_version), Some(*worker_version)),
            Action::FailTask { task_version, .. } => (Some(*task_version), None),
            Action::ClearWorker { worker_version, .. } => (None, Some(*worker_version)),
        };
        let (task, worker) = action.nodes();
        if let Action::FailTask { task, .. } = action {
            self.failing.remove(task);
        }
        if let (Some(t), Some(v)) = (task, task_version) {
            if self.task_claims.get(t) == Some(&(v + 1)) {
                self.task_claims.remove(t);
            }
        }
        if let (Some(w), Some(v)) = (worker, worker_version) {
            if self.worker_claims.get(w) == Some(&(v + 1)) {
                self.worker_claims.remove(w);
            }
        }
    }

    /// Called about once a second: returns the workers to read again because their task
    /// vanished at least one tick ago and nothing of them was observed since (their client
    /// died rather than their commit landing: the read leads to clearing them).
    pub fn tick(&mut self) -> Vec<String> {
        self.ticks += 1;
        let due: Vec<String> = self
            .task_vanished
            .iter()
            .filter(|(_, &at)| at + 1 < self.ticks)
            .map(|(w, _)| w.clone())
            .collect();
        for w in &due {
            self.task_vanished.remove(w);
        }
        due
    }

    /// Problems found while deciding, for the caller to log (once per znode).
    pub fn take_reports(&mut self) -> Vec<String> {
        std::mem::take(&mut self.new_reports)
    }

    /// The writes to make now, given everything observed so far.
    pub fn decide(&mut self) -> Vec<Action> {
        let mut actions = std::mem::take(&mut self.queued_actions);
        for w in std::mem::take(&mut self.touched_workers) {
            self.evaluate_worker(&w, &mut actions);
        }
        for t in std::mem::take(&mut self.touched_tasks) {
            self.evaluate_task(&t, &mut actions);
        }
        while let Some(w) = self.free.pop_front() {
            if !self.is_free(&w) {
                continue;
            }
            let Some(t) = self.next_pending() else {
                self.free.push_front(w);
                break;
            };
            actions.push(self.assign(&t, &w));
        }
        actions
    }

    fn next_pending(&mut self) -> Option<Arc<str>> {
        while let Some(t) = self.pending.pop_front() {
            if self.is_assignable(&t) {
                return Some(t);
            }
            // An orphan whose last worker's id has a newer write in flight (a restarted worker
            // with the same id, just given another task): decide again once that write shows,
            // instead of forgetting the task until its deadline.
            if let Some(Ok(r)) = self.tasks.get(&t).map(|o| &o.record) {
                if r.state == TaskState::Assigned && matches!(self.orphaned(&t), Orphan::Unknown) {
                    if let Some(w) = r.worker.clone() {
                        self.waiting_on_worker.entry(w).or_default().push(t.to_string());
                    }
                }
            }
        }
        None
    }

    fn assign(&mut self, task: &str, worker: &str) -> Action {
        let obs = &self.tasks[task];
        let record = obs
            .record
            .as_ref()
            .expect("assignable tasks have a valid record")
            .assigned(worker, self.epoch);
        let record = TaskRecord {
            assigned_ms: Some(self.now_ms),
            ..record
        };
        let task_version = obs.version;
        let worker_version = self.workers[worker].version;
        let assignment = Assignment {
            task: task.to_string(),
            epoch: self.epoch,
            attempt: record.attempt,
            task_version: task_version + 1,
        };
        self.task_claims.insert(task.to_string(), task_version + 1);
        self.worker_claims.insert(worker.to_string(), worker_version + 1);
        Action::Assign {
            task: task.to_string(),
            task_version,
            record,
            worker: worker.to_string(),
            worker_version,
            assignment,
        }
    }

    fn evaluate_worker(&mut self, w: &str, actions: &mut Vec<Action>) {
        if self.worker_claims.contains_key(w) || self.task_vanished.contains_key(w) {
            return;
        }
        let Some(obs) = self.workers.get(w) else { return };
        if let Err(e) = validate_id(w) {
            self.report(
                &format!("/workers/{w}"),
                format!("/workers/{w} ignored, not a worker: {e}"),
            );
            return;
        }
        if !obs.ephemeral {
            self.report(
                &format!("/workers/{w}"),
                format!("/workers/{w} is not ephemeral: not a live worker, ignored"),
            );
            return;
        }
        match &obs.assignment {
            Err(e) => self.report(&format!("/workers/{w}"), format!("/workers/{w} ignored: {e}")),
            Ok(None) if self.quarantined.contains(w) => {}
            Ok(None) => self.free.push_back(w.to_string()),
            Ok(Some(a)) => {
                if self.task_claims.contains_key(&a.task) {
                    self.waiting_on_task
                        .entry(a.task.clone())
                        .or_default()
                        .push(w.to_string());
                    return;
                }
                if !self.holds(w, a) {
                    let reason = match self.tasks.get(a.task.as_str()) {
                        None => format!("task {} is gone", a.task),
                        Some(_) => format!("task {} is no longer assigned to it", a.task),
                    };
                    let worker_version = obs.version;
                    self.worker_claims.insert(w.to_string(), worker_version + 1);
                    actions.push(Action::ClearWorker {
                        worker: w.to_string(),
                        worker_version,
                        reason,
                    });
                }
            }
        }
    }

    fn evaluate_task(&mut self, t: &str, actions: &mut Vec<Action>) {
        if self.task_claims.contains_key(t) {
            return;
        }
        let Some(obs) = self.tasks.get(t) else { return };
        // The worker refuses an invalid id (it could not name the task's znodes safely); the
        // master must not hand one out either.
        if let Err(e) = validate_id(t) {
            self.report(
                &format!("/tasks/{t}"),
                format!("/tasks/{t} quarantined, never assigned: {e}"),
            );
            return;
        }
        let record = match &obs.record {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("/tasks/{t} skipped: {e}");
                self.report(&format!("/tasks/{t}"), msg);
                return;
            }
        };
        match record.state {
            TaskState::Queued => self.queue_back(t),
            // Committed: its record's deletion is the next thing we observe of it.
            TaskState::Assigned if self.retiring.contains(t) => {}
            TaskState::Assigned => match self.orphaned(t) {
                Orphan::No => {}
                Orphan::Unknown => {
                    // Decide again when that worker's write shows (or it vanishes).
                    if let Some(w) = record.worker.clone() {
                        self.waiting_on_worker.entry(w).or_default().push(t.to_string());
                    }
                }
                Orphan::Yes if record.attempt >= self.max_attempts => {
                    let result = TaskResult::failure(
                        format!(
                            "abandoned: its worker vanished on each of {} attempts (poison task?)",
                            record.attempt
                        ),
                        None,
                        record.attempt,
                        0,
                    );
                    let task_version = obs.version;
                    self.task_claims.insert(t.to_string(), task_version + 1);
                    self.failing.insert(t.to_string());
                    actions.push(Action::FailTask {
                        task: t.to_string(),
                        task_version,
                        result,
                    });
                }
                // Retries go first: they have waited longest.
                Orphan::Yes => {
                    if let Some(id) = self.task_key(t) {
                        self.pending.push_front(id);
                    }
                }
            },
        }
    }

    /// Whether `a` is the live assignment of task `a.task` to worker `w`.
    fn holds(&self, w: &str, a: &Assignment) -> bool {
        self.tasks.get(a.task.as_str()).is_some_and(|t| {
            t.version == a.task_version
                && matches!(&t.record, Ok(r) if r.state == TaskState::Assigned && r.worker.as_deref() == Some(w))
        })
    }

    /// Whether an `assigned` task has lost its worker.
    fn orphaned(&self, t: &str) -> Orphan {
        let Some(Ok(record)) = self.tasks.get(t).map(|o| &o.record) else {
            return Orphan::Unknown;
        };
        let Some(w) = record.worker.as_deref() else {
            return Orphan::Yes;
        };
        if self.worker_claims.contains_key(w) {
            return Orphan::Unknown;
        }
        match self.workers.get(w).map(|o| &o.assignment) {
            Some(Ok(Some(a))) if a.task == t => Orphan::No,
            _ => Orphan::Yes,
        }
    }

    /// Makes the record name its client through the index's one copy of that id.
    fn share_client(&mut self, obs: &mut TaskObs) {
        let Ok(record) = &mut obs.record else { return };
        match self.clients.get(&*record.client) {
            Some(shared) => record.client = shared.clone(),
            None => {
                if self.clients.len() >= 2 * self.clients_pruned_at + 64 {
                    self.clients.retain(|c| Arc::strong_count(c) > 1);
                    self.clients_pruned_at = self.clients.len();
                }
                self.clients.insert(record.client.clone());
            }
        }
    }

    /// The map's own handle on a task id (shared, not copied, by the queue).
    fn task_key(&self, t: &str) -> Option<Arc<str>> {
        self.tasks.get_key_value(t).map(|(id, _)| id.clone())
    }

    fn queue_back(&mut self, t: &str) {
        if let Some(id) = self.task_key(t) {
            self.pending.push_back(id);
        }
    }

    fn is_free(&self, w: &str) -> bool {
        !self.worker_claims.contains_key(w)
            && !self.quarantined.contains(w)
            && self
                .workers
                .get(w)
                .is_some_and(|o| o.ephemeral && matches!(o.assignment, Ok(None)))
    }

    fn is_assignable(&self, t: &str) -> bool {
        if self.task_claims.contains_key(t) {
            return false;
        }
        match self.tasks.get(t).map(|o| &o.record) {
            Some(Ok(r)) if r.state == TaskState::Queued => true,
            Some(Ok(r)) if r.state == TaskState::Assigned => {
                r.attempt < self.max_attempts && !self.retiring.contains(t) && matches!(self.orphaned(t), Orphan::Yes)
            }
            _ => false,
        }
    }

    /// Records a problem with the znode at `path`, once until that znode changes or goes.
    fn report(&mut self, path: &str, message: String) {
        if self.reported.insert(path.to_string()) {
            self.new_reports.push(message);
        }
    }

    /// Counts for `/status` (O(n): called about once a second, not per event). A task or a worker
    /// with an assignment in flight already counts as running or busy.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for (id, w) in self.workers.iter().filter(|(_, w)| w.ephemeral) {
            c.workers += 1;
            if matches!(w.assignment, Ok(None))
                && !self.worker_claims.contains_key(id)
                && !self.quarantined.contains(id)
            {
                c.free_workers += 1;
            }
        }
        for (id, t) in &self.tasks {
            match &t.record {
                Ok(r) if r.state == TaskState::Queued && !self.task_claims.contains_key(&**id) => c.pending += 1,
                Ok(_) if !self.retiring.contains(&**id) => c.running += 1,
                _ => {}
            }
        }
        c
    }
}

/// A leader shutting down closes its session only once its state is dropped (the client closes
/// with its last handle), and its successor waits for that close: freeing a deep backlog's
/// entries (tens of milliseconds at 100,000) is left to a thread of its own.
impl Drop for Index {
    fn drop(&mut self) {
        if self.tasks.len() >= 10_000 {
            let entries = (std::mem::take(&mut self.tasks), std::mem::take(&mut self.pending));
            std::thread::spawn(move || drop(entries));
        }
    }
}

enum Orphan {
    Yes,
    No,
    /// Its worker has a write in flight: wait for the observation.
    Unknown,
}

/// Queued, with a valid id and record: it can wait in the FIFO queue without being judged
/// (anything else is judged when a standby takes over).
fn plainly_queued(id: &str, obs: &TaskObs) -> bool {
    matches!(&obs.record, Ok(r) if r.state == TaskState::Queued) && validate_id(id).is_ok()
}

fn is_state(obs: &TaskObs, state: TaskState) -> bool {
    matches!(&obs.record, Ok(r) if r.state == state)
}

fn assigned_worker(obs: &TaskObs) -> Option<String> {
    match &obs.record {
        Ok(r) if r.state == TaskState::Assigned => r.worker.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(created: i64) -> TaskObs {
        TaskObs {
            record: Ok(TaskRecord::queued("c1", 0)),
            version: 0,
            created,
        }
    }

    fn free(version: i32) -> WorkerObs {
        WorkerObs {
            assignment: Ok(None),
            version,
            ephemeral: true,
        }
    }

    fn busy(a: &Assignment, version: i32) -> WorkerObs {
        WorkerObs {
            assignment: Ok(Some(a.clone())),
            version,
            ephemeral: true,
        }
    }

    /// Applies what a successful Assign does to ZooKeeper, as the master would observe it.
    /// Observes both nodes of an assignment as they are once it has landed.
    fn observe_assign(index: &mut Index, action: &Action) -> Assignment {
        let Action::Assign {
            task,
            worker,
            assignment,
            ..
        } = action
        else {
            panic!("not an assign: {action:?}")
        };
        let (task_obs, worker_obs) = index.written(action);
        index.observe_task(task, task_obs);
        index.observe_worker(worker, worker_obs);
        assignment.clone()
    }

    fn assigned_pairs(actions: &[Action]) -> Vec<(String, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Assign { task, worker, .. } => Some((task.clone(), worker.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn free_workers_get_the_oldest_tasks_first() {
        let mut index = Index::from_scan(
            5,
            3,
            vec![("w1".into(), free(0)), ("w2".into(), free(0))],
            vec![
                ("t3".into(), queued(30)),
                ("t1".into(), queued(10)),
                ("t2".into(), queued(20)),
            ],
        );
        let actions = index.decide();
        assert_eq!(
            assigned_pairs(&actions),
            vec![("t1".into(), "w1".into()), ("t2".into(), "w2".into())]
        );
        let Action::Assign { record, assignment, .. } = &actions[0] else {
            unreachable!()
        };
        assert_eq!((record.attempt, record.epoch, assignment.task_version), (1, Some(5), 1));
        // Nothing more to do until something changes.
        assert!(index.decide().is_empty());
    }

    /// A standby's index, fed observation by observation (as its watch events come) and never
    /// deciding, leads like a scan's: oldest task first, stamped with the new epoch.
    #[test]
    fn a_standby_index_taken_over_decides_like_a_fresh_scan() {
        let mut standby = Index::new(0, 3);
        standby.observe_worker("w2", Some(free(0)));
        for (id, created) in [("t1", 10), ("t2", 20), ("t3", 30), ("t4", 40)] {
            standby.observe_task(id, Some(queued(created)));
            standby.settle();
        }
        // The old leader assigns t1 to w1 and w1 commits it, all seen by the standby.
        standby.observe_worker("w1", Some(free(0)));
        let mut old_leader = Index::from_scan(4, 3, vec![("w1".into(), free(0))], vec![("t1".into(), queued(10))]);
        let assign = old_leader.decide().remove(0);
        let (t1, w1) = standby.written(&assign);
        standby.observe_task("t1", t1);
        standby.observe_worker("w1", w1);
        standby.observe_worker("w1", Some(free(2)));
        standby.observe_task("t1", None);
        standby.settle();
        assert!(standby.touched_tasks.is_empty());
        assert_eq!(
            standby.pending.iter().map(|t| &**t).collect::<Vec<_>>(),
            ["t2", "t3", "t4"],
            "gone tasks leave the queue's front"
        );

        standby.take_over(7);
        // The commit was the old leader's to count.
        assert_eq!(standby.completed(), 0);
        let actions = standby.decide();
        assert_eq!(
            assigned_pairs(&actions),
            vec![("t2".into(), "w1".into()), ("t3".into(), "w2".into())]
        );
        let Action::Assign {
            record, worker_version, ..
        } = &actions[0]
        else {
            unreachable!()
        };
        assert_eq!((record.attempt, record.epoch, *worker_version), (1, Some(7), 2));
        assert!(standby.decide().is_empty());
    }

    #[test]
    fn a_worker_that_commits_gets_the_next_task() {
        let mut index = Index::from_scan(
            1,
            3,
            vec![("w1".into(), free(0))],
            vec![("t1".into(), queued(1)), ("t2".into(), queued(2))],
        );
        let first = index.decide();
        let a = observe_assign(&mut index, &first[0]);
        assert!(index.decide().is_empty(), "t2 must wait: the only worker is busy");
        // The worker's commit, one multi: result into /data, worker free, task record deleted;
        // the master observes the worker first (its events come in the multi's order).
        let _ = a;
        index.observe_worker("w1", Some(free(2)));
        assert_eq!(
            assigned_pairs(&index.decide()),
            vec![("t2".into(), "w1".into())],
            "t1 is not re-assigned: it is retiring"
        );
        assert_eq!(index.counts().running, 1, "t2 runs; t1 no longer counts");
        index.observe_task("t1", None);
        assert!(index.decide().is_empty());
        assert_eq!(index.completed(), 1);
    }

    #[test]
    fn a_vanished_worker_s_task_goes_to_another_worker_as_a_new_attempt() {
        let mut index = Index::from_scan(1, 3, vec![("w1".into(), free(0))], vec![("t1".into(), queued(1))]);
        let first = index.decide();
        observe_assign(&mut index, &first[0]);
        index.observe_worker("w2", Some(free(0)));
        assert!(index.decide().is_empty());
        index.observe_worker("w1", None);
        let again = index.decide();
        assert_eq!(assigned_pairs(&again), vec![("t1".into(), "w2".into())]);
        let Action::Assign { record, .. } = &again[0] else {
            unreachable!()
        };
        assert_eq!(record.attempt, 2);
    }

    #[test]
    fn a_task_that_kills_every_worker_is_failed_after_max_attempts() {
        let mut index = Index::from_scan(1, 2, vec![("w1".into(), free(0))], vec![("t1".into(), queued(1))]);
        for (n, worker) in ["w1", "w2"].into_iter().enumerate() {
            if n > 0 {
                index.observe_worker(worker, Some(free(0)));
            }
            let actions = index.decide();
            assert_eq!(assigned_pairs(&actions), vec![("t1".into(), worker.into())]);
            observe_assign(&mut index, &actions[0]);
            index.observe_worker(worker, None);
        }
        let actions = index.decide();
        assert_eq!(actions.len(), 1);
        let Action::FailTask { task, result, .. } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(task, "t1");
        assert!(!result.ok);
        assert!(result.error.as_ref().unwrap().contains("abandoned"));
    }

    #[test]
    fn a_running_task_whose_client_vanished_frees_its_worker() {
        let mut index = Index::from_scan(1, 3, vec![("w1".into(), free(0))], vec![("t1".into(), queued(1))]);
        let first = index.decide();
        let a = observe_assign(&mut index, &first[0]);
        index.observe_task("t1", None);
        // Maybe its commit, whose worker event is on its way: wait for it, up to a full tick.
        assert!(index.decide().is_empty());
        assert!(index.tick().is_empty(), "not a full tick yet");
        assert_eq!(
            index.tick(),
            vec!["w1".to_string()],
            "no worker event came: read w1 again"
        );
        // The read shows w1 still running the vanished task: its client died.
        index.observe_worker("w1", Some(busy(&a, 1)));
        let actions = index.decide();
        assert!(
            matches!(&actions[..], [Action::ClearWorker { worker, worker_version: 1, .. }] if worker == "w1"),
            "{actions:?}"
        );
    }

    #[test]
    fn a_commit_observed_task_first_clears_nothing() {
        let mut index = Index::from_scan(
            1,
            3,
            vec![("w1".into(), free(0))],
            vec![("t1".into(), queued(1)), ("t2".into(), queued(2))],
        );
        let first = index.decide();
        observe_assign(&mut index, &first[0]);
        // The two watchers deliver the commit's events in either order.
        index.observe_task("t1", None);
        assert!(index.decide().is_empty(), "no repair while w1's event is on its way");
        index.observe_worker("w1", Some(free(2)));
        assert_eq!(assigned_pairs(&index.decide()), vec![("t2".into(), "w1".into())]);
        assert!(index.tick().is_empty() && index.tick().is_empty());
        assert_eq!(index.completed(), 1);
    }

    #[test]
    fn a_scan_repairs_what_the_old_leader_left_half_done() {
        let stale = Assignment {
            task: "gone".into(),
            epoch: 1,
            attempt: 1,
            task_version: 1,
        };
        // t1 says it runs on w9, which no longer exists.
        let orphan = TaskRecord::queued("c", 0).assigned("w9", 1);
        let mut index = Index::from_scan(
            2,
            3,
            vec![("w1".into(), busy(&stale, 3)), ("w2".into(), free(0))],
            vec![(
                "t1".into(),
                TaskObs {
                    record: Ok(orphan),
                    version: 1,
                    created: 1,
                },
            )],
        );
        let actions = index.decide();
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::ClearWorker { worker, .. } if worker == "w1")),
            "{actions:?}"
        );
        let assigned = assigned_pairs(&actions);
        assert_eq!(assigned, vec![("t1".into(), "w2".into())]);
    }

    #[test]
    fn garbage_is_reported_once_and_never_scheduled() {
        let mut index = Index::from_scan(
            1,
            3,
            vec![
                (
                    "junk".into(),
                    WorkerObs {
                        assignment: Err("worker record is empty".into()),
                        version: 0,
                        ephemeral: true,
                    },
                ),
                ("persistent".into(), free(0)),
            ],
            vec![(
                "bad".into(),
                TaskObs {
                    record: Err("task record is not UTF-8 JSON".into()),
                    version: 0,
                    created: 1,
                },
            )],
        );
        index.workers.get_mut("persistent").unwrap().ephemeral = false;
        assert!(index.decide().is_empty());
        assert_eq!(index.take_reports().len(), 3);
        index.observe_task(
            "bad",
            Some(TaskObs {
                record: Err("still bad".into()),
                version: 1,
                created: 1,
            }),
        );
        assert!(index.decide().is_empty());
        assert!(index.take_reports().is_empty(), "reported once");
        // A valid task still gets nowhere without a real worker, and one real worker takes it.
        index.observe_task("ok", Some(queued(2)));
        assert!(index.decide().is_empty());
        index.observe_worker("w1", Some(free(0)));
        assert_eq!(assigned_pairs(&index.decide()), vec![("ok".into(), "w1".into())]);
    }

    #[test]
    fn a_failed_write_releases_its_claims_for_a_fresh_decision() {
        let mut index = Index::from_scan(1, 3, vec![("w1".into(), free(0))], vec![("t1".into(), queued(1))]);
        let first = index.decide();
        // A stale observation (older version) changes nothing while the claim holds.
        index.observe_worker("w1", Some(free(0)));
        assert!(index.decide().is_empty());
        index.action_failed(&first[0]);
        // The master re-reads both nodes after a failure.
        index.observe_task("t1", Some(queued(1)));
        index.observe_worker("w1", Some(free(0)));
        assert_eq!(assigned_pairs(&index.decide()), vec![("t1".into(), "w1".into())]);
    }

    #[test]
    fn written_observations_release_the_claims_like_a_read_would() {
        let mut index = Index::from_scan(1, 3, vec![("w1".into(), free(4))], vec![("t1".into(), queued(7))]);
        let first = index.decide();
        let (task, worker) = index.written(&first[0]);
        let (task, worker) = (task.expect("task observed"), worker.expect("worker observed"));
        assert_eq!((task.version, worker.version), (1, 5));
        assert_eq!(task.created, 7, "the creation zxid is kept for FIFO order");
        assert!(matches!(&task.record, Ok(r) if r.state == TaskState::Assigned && r.worker.as_deref() == Some("w1")));
        assert!(matches!(&worker.assignment, Ok(Some(a)) if a.task == "t1" && a.task_version == 1));
        index.observe_task("t1", Some(task));
        index.observe_worker("w1", Some(worker));
        assert!(index.task_claims.is_empty() && index.worker_claims.is_empty());
        assert_eq!(index.counts().running, 1);
    }

    #[test]
    fn counts_summarise_the_farm() {
        let mut index = Index::from_scan(
            1,
            3,
            vec![("w1".into(), free(0))],
            vec![("t1".into(), queued(1)), ("t2".into(), queued(2))],
        );
        let first = index.decide();
        observe_assign(&mut index, &first[0]);
        assert_eq!(
            index.counts(),
            Counts {
                workers: 1,
                free_workers: 0,
                pending: 1,
                running: 1
            }
        );
    }

    #[test]
    fn a_failed_repair_does_not_release_a_later_assignment_s_claim() {
        // w1 is seen still holding t0 (its free observation lags), and t0 is gone: a repair.
        let old = Assignment {
            task: "t0".into(),
            epoch: 1,
            attempt: 1,
            task_version: 1,
        };
        let mut index = Index::from_scan(1, 3, vec![("w1".into(), busy(&old, 4))], vec![("t1".into(), queued(1))]);
        let repair = index.decide();
        assert!(
            matches!(&repair[..], [Action::ClearWorker { worker_version: 4, .. }]),
            "{repair:?}"
        );
        // The worker's own free observation arrives, and t1 goes to it.
        index.observe_worker("w1", Some(free(5)));
        let assign = index.decide();
        assert_eq!(assigned_pairs(&assign), vec![("t1".into(), "w1".into())]);
        // The stale repair now fails (BadVersion); the assignment's claim must survive it.
        index.action_failed(&repair[0]);
        let (task_obs, _) = index.written(&assign[0]);
        index.observe_task("t1", task_obs);
        index.observe_worker("w2", Some(free(0)));
        assert!(index.decide().is_empty(), "t1 runs on w1: nothing to re-assign");
    }

    #[test]
    fn a_worker_that_frees_itself_while_holding_its_task_retires_the_task() {
        // As the scan finds it: w1 running t1.
        let a = Assignment {
            task: "t1".into(),
            epoch: 1,
            attempt: 1,
            task_version: 1,
        };
        let running = TaskObs {
            record: Ok(TaskRecord::queued("c", 0).assigned("w1", 1)),
            version: 1,
            created: 1,
        };
        let mut index = Index::from_scan(
            1,
            3,
            vec![("w1".into(), busy(&a, 1)), ("w2".into(), free(0))],
            vec![("t1".into(), running.clone())],
        );
        assert!(index.decide().is_empty());
        index.observe_worker("w1", Some(free(2)));
        assert!(index.decide().is_empty(), "committed: t1 must not run again");
        // Had the task still been there after that, it would be an orphan as usual.
        index.observe_task("t1", Some(running));
        assert_eq!(assigned_pairs(&index.decide()).len(), 1);
    }

    #[test]
    fn a_worker_that_vanishes_before_its_assignment_shows_gives_its_task_to_another() {
        let mut index = Index::from_scan(1, 3, vec![("w1".into(), free(0))], vec![("t1".into(), queued(1))]);
        let first = index.decide();
        // The task's new record shows first; the worker is gone before its read (SIGTERM).
        let (task_obs, _) = index.written(&first[0]);
        index.observe_task("t1", task_obs);
        assert!(index.decide().is_empty());
        index.observe_worker("w1", None);
        index.observe_worker("w2", Some(free(0)));
        let again = index.decide();
        assert_eq!(assigned_pairs(&again), vec![("t1".into(), "w2".into())]);
    }

    const DEADLINES: Deadlines = Deadlines {
        default_limit_ms: 60_000,
        grace_ms: 500,
    };

    /// One worker, one task stating a 1 s limit, assigned at t = 10 s.
    fn assigned_at_ten_seconds(max_attempts: u32) -> (Index, Assignment) {
        let task = TaskObs {
            record: Ok(TaskRecord::queued("c1", 0).with_timeout(Some(1000))),
            version: 0,
            created: 1,
        };
        let mut index = Index::from_scan(5, max_attempts, vec![("w1".into(), free(0))], vec![("t1".into(), task)]);
        index.set_clock(10_000);
        let actions = index.decide();
        let Action::Assign { record, .. } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(record.assigned_ms, Some(10_000));
        let a = observe_assign(&mut index, &actions[0]);
        (index, a)
    }

    #[test]
    fn an_assignment_past_its_deadline_is_taken_back_and_assigned_again() {
        let (mut index, _) = assigned_at_ten_seconds(3);
        // Limit 1 s + grace 0.5 s: not yet at 11.5 s.
        index.set_clock(11_500);
        index.expire(DEADLINES);
        assert!(index.decide().is_empty());
        index.set_clock(11_501);
        index.expire(DEADLINES);
        let actions = index.decide();
        let [Action::TakeBack {
            task,
            record,
            worker,
            worker_version,
            ..
        }] = &actions[..]
        else {
            panic!("{actions:?}")
        };
        assert_eq!((task.as_str(), worker.as_str(), *worker_version), ("t1", "w1", 1));
        assert_eq!(
            (record.state, record.attempt, record.worker.as_deref()),
            (TaskState::Queued, 1, None)
        );
        // Nothing more while the take-back is in flight.
        index.expire(DEADLINES);
        assert!(index.decide().is_empty());
        let (task_obs, worker_obs) = index.written(&actions[0]);
        index.observe_task("t1", task_obs);
        index.observe_worker("w1", worker_obs);
        assert!(index
            .take_reports()
            .iter()
            .any(|r| r.contains("worker w1 held task t1")));
        // Queued again, but not for the wedged worker: it is quarantined.
        assert!(index.decide().is_empty());
        assert_eq!(index.counts().free_workers, 0);
        // Another worker gets it as the next attempt, freshly stamped.
        index.observe_worker("w2", Some(free(0)));
        let again = index.decide();
        let [Action::Assign { record, worker, .. }] = &again[..] else {
            panic!("{again:?}")
        };
        assert_eq!(
            (worker.as_str(), record.attempt, record.assigned_ms),
            ("w2", 2, Some(11_501))
        );
        // The wedged worker, restarted, registers afresh and is trusted again.
        index.observe_worker("w1", None);
        index.observe_worker("w1", Some(free(0)));
        assert_eq!(index.counts().free_workers, 1);
    }

    #[test]
    fn a_task_past_its_deadline_on_its_last_attempt_is_failed() {
        let (mut index, _) = assigned_at_ten_seconds(1);
        index.set_clock(20_000);
        index.expire(DEADLINES);
        let actions = index.decide();
        let [Action::FailTask { task, result, .. }] = &actions[..] else {
            panic!("{actions:?}")
        };
        assert_eq!(task, "t1");
        assert!(result.error.as_deref().unwrap().contains("deadline"), "{result:?}");
    }

    #[test]
    fn an_unstamped_assignment_counts_from_when_it_was_first_seen_and_a_stated_limit_wins() {
        // Assigned by a master that wrote no assigned_ms; no limit stated: the default applies.
        let a = Assignment {
            task: "t1".into(),
            epoch: 4,
            attempt: 1,
            task_version: 1,
        };
        let task = TaskObs {
            record: Ok(TaskRecord::queued("c1", 0).assigned("w1", 4)),
            version: 1,
            created: 1,
        };
        let mut index = Index::from_scan(5, 3, vec![("w1".into(), busy(&a, 1))], vec![("t1".into(), task)]);
        assert!(index.decide().is_empty());
        index.set_clock(1_000_000);
        index.expire(DEADLINES); // first seen now
        index.set_clock(1_000_000 + 60_500);
        index.expire(DEADLINES);
        assert!(index.decide().is_empty(), "not past 60 s + 0.5 s yet");
        index.set_clock(1_000_000 + 60_501);
        index.expire(DEADLINES);
        assert!(matches!(&index.decide()[..], [Action::TakeBack { .. }]));
    }

    #[test]
    fn an_orphaned_task_is_left_to_the_usual_repair_not_taken_back() {
        let (mut index, _) = assigned_at_ten_seconds(3);
        index.observe_worker("w1", None);
        index.set_clock(99_000);
        index.expire(DEADLINES);
        assert!(index.decide().iter().all(|a| !matches!(a, Action::TakeBack { .. })));
    }

    #[test]
    fn a_task_or_worker_with_an_invalid_id_is_reported_and_never_scheduled() {
        let mut index = Index::from_scan(
            5,
            3,
            vec![("w1".into(), free(0)), ("bad worker".into(), free(0))],
            vec![("bad id with spaces".into(), queued(1)), ("t2".into(), queued(2))],
        );
        let actions = index.decide();
        assert_eq!(assigned_pairs(&actions), vec![("t2".into(), "w1".into())]);
        let reports = index.take_reports();
        assert!(
            reports
                .iter()
                .any(|r| r.contains("/tasks/bad id with spaces quarantined")),
            "{reports:?}"
        );
        assert!(
            reports.iter().any(|r| r.contains("/workers/bad worker ignored")),
            "{reports:?}"
        );
        // Reported once.
        index.observe_task("bad id with spaces", Some(queued(1)));
        index.decide();
        assert!(index.take_reports().is_empty());
    }

    #[test]
    fn completed_counts_commits_and_failures_not_tasks_whose_client_died() {
        let mut index = Index::from_scan(1, 1, vec![("w1".into(), free(0))], vec![("t1".into(), queued(1))]);
        let first = index.decide();
        observe_assign(&mut index, &first[0]);
        // The client dies while t1 runs: its record vanishes, w1 still shows it.
        index.observe_task("t1", None);
        assert!(index.decide().is_empty());
        index.tick();
        let due = index.tick();
        assert_eq!(due, ["w1"], "read w1 again: its task vanished without a commit");
        // The re-read finds it still busy with the vanished task: the master clears it.
        let busy_again = index.workers["w1"].clone();
        index.observe_worker("w1", Some(busy_again));
        let clear = index.decide();
        assert!(matches!(&clear[..], [Action::ClearWorker { .. }]), "{clear:?}");
        let (_, freed) = index.written(&clear[0]);
        index.observe_worker("w1", freed);
        assert_eq!(index.completed(), 0, "nothing was committed");

        // A poison failure written by the master counts.
        index.observe_task("t2", Some(queued(2)));
        let a = index.decide();
        observe_assign(&mut index, &a[0]);
        index.observe_worker("w1", None); // the worker vanished: t2 is orphaned on its last attempt
        let fail = index.decide();
        assert!(matches!(&fail[..], [Action::FailTask { .. }]), "{fail:?}");
        index.observe_task("t2", None);
        assert_eq!(index.completed(), 1);
    }

    /// Found by the exec-kill scenario: a worker killed while holding two tasks restarts under
    /// the same id; the master gives it one of them and must not forget the other.
    #[test]
    fn an_orphan_popped_while_its_restarted_worker_has_a_write_in_flight_is_not_forgotten() {
        let old_assignment = |created| TaskObs {
            record: Ok(TaskRecord::queued("c1", 0).assigned("w2", 4)),
            version: 1,
            created,
        };
        let mut index = Index::from_scan(
            5,
            3,
            // Workers are judged in id order: the restarted w2 first, then w3.
            vec![("w2".into(), free(0)), ("w3".into(), free(0))],
            vec![("t1".into(), old_assignment(1)), ("t3".into(), old_assignment(3))],
        );
        let first = index.decide();
        assert_eq!(assigned_pairs(&first), vec![("t3".into(), "w2".into())]);
        observe_assign(&mut index, &first[0]);
        let second = index.decide();
        assert_eq!(
            assigned_pairs(&second),
            vec![("t1".into(), "w3".into())],
            "t1 was forgotten"
        );
    }
}
