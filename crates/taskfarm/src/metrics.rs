//! The roles' metrics, in the OpenMetrics text format, served at `/metrics` on the same
//! listener as the probes (`--health-addr`: one port per pod).
//!
//! Names follow Prometheus conventions: the `taskfarm_` prefix, `_total` on counters, seconds
//! as the unit of time. Each process registers the families of its own role (and the session
//! ones every role has); the handles live in one process-wide value, so the code that counts
//! needs no plumbing. Counting is a relaxed atomic add: nothing on a hot path waits for it.

use std::sync::OnceLock;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::role::Role;

/// How a worker's task ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// A success result was committed.
    Ok,
    /// An error result was committed (the task's own failure, or an `exec` exiting non-zero).
    Failed,
    /// An `exec` command ran past its time limit.
    TimedOut,
    /// Refused at once: an undeclared command, arguments against the catalogue, a bad payload.
    Refused,
    /// Given up: its assignment was withdrawn or the session ended before a commit.
    Abandoned,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Running,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskStateLabel {
    pub state: TaskState,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum WorkerState {
    Free,
    Busy,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerStateLabel {
    pub state: WorkerState,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Revocation {
    /// A worker's assignment whose task is gone or no longer its own (cleared).
    Cleared,
    /// A task held past its deadline (taken back).
    TakenBack,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevocationLabel {
    pub reason: Revocation,
}

/// Label values in snake_case, as Prometheus labels are written.
macro_rules! label_values {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(match self { $(Self::$variant => $name),* })
            }
        }
    };
}

label_values!(Outcome { Ok => "ok", Failed => "failed", TimedOut => "timed_out", Refused => "refused", Abandoned => "abandoned" });
label_values!(TaskState { Pending => "pending", Running => "running" });
label_values!(WorkerState { Free => "free", Busy => "busy" });
label_values!(Revocation { Cleared => "cleared", TakenBack => "taken_back" });

/// Every role's ZooKeeper session.
#[derive(Debug, Default)]
pub struct SessionMetrics {
    pub connected: Gauge,
    pub sessions: Counter,
    pub reconnects: Counter,
}

#[derive(Debug)]
pub struct MasterMetrics {
    pub leading: Gauge,
    pub epoch: Gauge,
    pub leaderships: Counter,
    pub assignments: Counter,
    pub revocations: Family<RevocationLabel, Counter>,
    pub tasks: Family<TaskStateLabel, Gauge>,
    pub workers: Family<WorkerStateLabel, Gauge>,
    pub completed: Gauge,
    pub failovers: Gauge,
    pub scan_duration: Histogram,
}

#[derive(Debug)]
pub struct WorkerMetrics {
    pub tasks: Family<OutcomeLabel, Counter>,
    pub task_duration: Histogram,
    pub busy_slots: Gauge,
}

#[derive(Debug)]
pub struct ClientMetrics {
    pub submitted: Counter,
    pub results: Family<OutcomeLabel, Counter>,
    pub lost: Counter,
    pub latency: Histogram,
    pub farm_full: Counter,
}

/// All handles; only the installed role's are registered (and so exposed).
#[derive(Debug)]
pub struct Metrics {
    pub session: SessionMetrics,
    pub master: MasterMetrics,
    pub worker: WorkerMetrics,
    pub client: ClientMetrics,
    registry: Registry,
}

/// 1 ms to about 9 hours: task durations and latencies.
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 13))
}

impl Metrics {
    fn new(role: Option<Role>) -> Self {
        let master = MasterMetrics {
            leading: Gauge::default(),
            epoch: Gauge::default(),
            leaderships: Counter::default(),
            assignments: Counter::default(),
            revocations: Family::default(),
            tasks: Family::default(),
            workers: Family::default(),
            completed: Gauge::default(),
            failovers: Gauge::default(),
            scan_duration: Histogram::new(exponential_buckets(0.001, 4.0, 10)),
        };
        let worker = WorkerMetrics {
            tasks: Family::default(),
            task_duration: seconds_buckets(),
            busy_slots: Gauge::default(),
        };
        let client = ClientMetrics {
            submitted: Counter::default(),
            results: Family::default(),
            lost: Counter::default(),
            latency: seconds_buckets(),
            farm_full: Counter::default(),
        };
        let session = SessionMetrics::default();
        let mut registry = Registry::with_prefix("taskfarm");
        if let Some(role) = role {
            let r = &mut registry;
            r.register(
                "zookeeper_session_connected",
                "Whether the ZooKeeper session is connected (1) or not (0)",
                session.connected.clone(),
            );
            r.register(
                "zookeeper_sessions",
                "ZooKeeper sessions started (a new one after each expiry)",
                session.sessions.clone(),
            );
            r.register(
                "zookeeper_reconnects",
                "Reconnections within a session (after a server loss)",
                session.reconnects.clone(),
            );
            match role {
                Role::Master => {
                    r.register(
                        "master_leading",
                        "Whether this master leads (1) or not (0)",
                        master.leading.clone(),
                    );
                    r.register(
                        "master_epoch",
                        "Election epoch of this master's leadership (while leading)",
                        master.epoch.clone(),
                    );
                    r.register(
                        "master_leaderships",
                        "Times this master became leader",
                        master.leaderships.clone(),
                    );
                    r.register(
                        "master_assignments",
                        "Assignments written while leading",
                        master.assignments.clone(),
                    );
                    r.register(
                        "master_revocations",
                        "Assignments withdrawn while leading, by reason",
                        master.revocations.clone(),
                    );
                    r.register(
                        "master_tasks",
                        "Tasks pending and running (leader's view)",
                        master.tasks.clone(),
                    );
                    r.register(
                        "master_workers",
                        "Live workers, free and busy (leader's view)",
                        master.workers.clone(),
                    );
                    r.register(
                        "farm_completed",
                        "Tasks completed in the farm (the leader's /status completed_total)",
                        master.completed.clone(),
                    );
                    r.register(
                        "farm_failovers",
                        "Leader changes in the farm (the leader's /status failovers)",
                        master.failovers.clone(),
                    );
                    r.register_with_unit(
                        "master_scan_duration",
                        "Time of the full scan a new leader (or a reconnected one) makes",
                        Unit::Seconds,
                        master.scan_duration.clone(),
                    );
                }
                Role::Worker => {
                    r.register("worker_tasks", "Tasks run, by outcome", worker.tasks.clone());
                    r.register_with_unit(
                        "worker_task_duration",
                        "Run time of the tasks this worker committed",
                        Unit::Seconds,
                        worker.task_duration.clone(),
                    );
                    r.register(
                        "worker_busy_slots",
                        "Slots running a task now",
                        worker.busy_slots.clone(),
                    );
                }
                Role::Client => {
                    r.register(
                        "client_submitted",
                        "Tasks submitted (each once, resubmissions not counted)",
                        client.submitted.clone(),
                    );
                    r.register(
                        "client_results",
                        "Results delivered, by outcome (ok or failed)",
                        client.results.clone(),
                    );
                    r.register(
                        "client_lost",
                        "Tasks lost (their znodes deleted by someone else)",
                        client.lost.clone(),
                    );
                    r.register_with_unit(
                        "client_latency",
                        "Submission to delivered result",
                        Unit::Seconds,
                        client.latency.clone(),
                    );
                    r.register(
                        "client_farm_full",
                        "Submissions ZooKeeper refused because the farm was full (its admission bound); each refused retry counts",
                        client.farm_full.clone(),
                    );
                }
            }
        }
        Self {
            session,
            master,
            worker,
            client,
            registry,
        }
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// The sample names of an exposition (`name` of each `name[{labels}] value` line): a
/// counter's carry `_total`, a histogram's `_bucket`, `_sum` and `_count`. For checks that a
/// dashboard queries only what is exposed.
pub fn exposed_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Registers the metrics of `role`; the first call wins (a process runs one role).
pub fn install(role: Role) -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(Some(role)))
}

/// The process's metrics (nothing registered when no role installed any: counting still works).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_and_only_the_role_s_own_are_exposed() {
        let m = Metrics::new(Some(Role::Worker));
        m.worker
            .tasks
            .get_or_create(&OutcomeLabel {
                outcome: Outcome::TimedOut,
            })
            .inc();
        m.worker.task_duration.observe(0.25);
        m.session.connected.set(1);
        let text = m.encode();
        assert!(
            text.contains("taskfarm_worker_tasks_total{outcome=\"timed_out\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE taskfarm_worker_task_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.contains("taskfarm_zookeeper_session_connected 1"), "{text}");
        assert!(!text.contains("taskfarm_master_"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
