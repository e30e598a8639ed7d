//! The controller's metrics, registered with prometheus-client and served as OpenMetrics text at
//! `/metrics` ([`super::http`]).
//!
//! Names follow Prometheus conventions, as the roles' do (`taskfarm::metrics`): the
//! `taskfarm_controller_` prefix, `_total` on counters, seconds as the unit of time. The
//! per-farm gauges carry `namespace` and `taskfarm` labels and go when their farm goes
//! ([`Metrics::forget_farm`]). docs/METRICS.md lists them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// What one farm looked like at its last reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FarmGauges {
    pub ready_masters: i64,
    pub ready_workers: i64,
    pub ready_clients: i64,
    pub live_workers: i64,
    pub pending: i64,
    pub running: i64,
    pub completed: i64,
    pub epoch: i64,
    pub degraded: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FarmLabels {
    namespace: String,
    taskfarm: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    namespace: String,
    taskfarm: String,
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    namespace: String,
    taskfarm: String,
    state: &'static str,
}

const ROLES: [&str; 3] = ["master", "worker", "client"];
const TASK_STATES: [&str; 2] = ["pending", "running"];

/// Name and help of each per-farm gauge family, in [`FarmFamilies`]' order.
const FARM_GAUGES: [(&str, &str); 6] = [
    ("farm_ready_pods", "Ready pods of a farm's role Deployment"),
    ("farm_tasks", "The farm's tasks pending and running, from ZooKeeper"),
    ("farm_live_workers", "Workers registered in the farm's ZooKeeper"),
    (
        "farm_completed",
        "Tasks completed in the farm's life (its /status completed_total)",
    ),
    ("farm_epoch", "Election epoch of the farm's current (or last) leader"),
    ("farm_degraded", "Whether the farm is Degraded (1) or not (0)"),
];

/// The per-farm gauge families.
#[derive(Default)]
struct FarmFamilies {
    ready_pods: Family<RoleLabels, Gauge>,
    live_workers: Family<FarmLabels, Gauge>,
    tasks: Family<StateLabels, Gauge>,
    completed: Family<FarmLabels, Gauge>,
    epoch: Family<FarmLabels, Gauge>,
    degraded: Family<FarmLabels, Gauge>,
}

/// The controller's metric handles (cheap clones of the registered ones).
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub reconcile_duration: Histogram,
    pub zookeeper_errors: Counter,
    pub chaos_runs: Counter,
    pub chaos_kills: Counter,
    pub chaos_dry_runs: Counter,
    pub chaos_guarded: Counter,
    /// 1 while this replica holds the Lease (always, without leader election).
    pub leading: Gauge,
    farm: FarmFamilies,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            reconciles: Counter::default(),
            reconcile_errors: Counter::default(),
            // 5 ms to about 20 s: a reconcile is a few API calls and one ZooKeeper read.
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            zookeeper_errors: Counter::default(),
            chaos_runs: Counter::default(),
            chaos_kills: Counter::default(),
            chaos_dry_runs: Counter::default(),
            chaos_guarded: Counter::default(),
            leading: Gauge::default(),
            farm: FarmFamilies::default(),
            registry: Registry::with_prefix("taskfarm_controller"),
        };
        m.register()
    }
}

impl Metrics {
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        let counters = [
            ("reconciles", "Reconciles run", &self.reconciles),
            ("reconcile_errors", "Reconciles that failed", &self.reconcile_errors),
            (
                "zookeeper_errors",
                "Failed reads of a farm's ZooKeeper state",
                &self.zookeeper_errors,
            ),
            ("chaos_runs", "Chaos runs", &self.chaos_runs),
            ("chaos_kills", "Pods deleted by chaos", &self.chaos_kills),
            (
                "chaos_dry_run_actions",
                "Deletions chaos would have made in dry-run mode",
                &self.chaos_dry_runs,
            ),
            (
                "chaos_guarded_runs",
                "Chaos runs that deleted fewer pods than asked because of a guard or a pause",
                &self.chaos_guarded,
            ),
        ];
        for (name, help, counter) in counters {
            r.register(name, help, counter.clone());
        }
        r.register_with_unit(
            "reconcile_duration",
            "Time one reconcile took",
            Unit::Seconds,
            self.reconcile_duration.clone(),
        );
        r.register(
            "leading",
            "Whether this replica holds the leader Lease (1) or not (0)",
            self.leading.clone(),
        );
        let f = &self.farm;
        let [ready, tasks, live, completed, epoch, degraded] = FARM_GAUGES;
        r.register(ready.0, ready.1, f.ready_pods.clone());
        r.register(tasks.0, tasks.1, f.tasks.clone());
        r.register(live.0, live.1, f.live_workers.clone());
        r.register(completed.0, completed.1, f.completed.clone());
        r.register(epoch.0, epoch.1, f.epoch.clone());
        r.register(degraded.0, degraded.1, f.degraded.clone());
        self
    }

    pub fn set_farm(&self, namespace: &str, name: &str, g: FarmGauges) {
        let farm = farm_labels(namespace, name);
        let f = &self.farm;
        for (role, ready) in ROLES
            .into_iter()
            .zip([g.ready_masters, g.ready_workers, g.ready_clients])
        {
            f.ready_pods.get_or_create(&role_labels(&farm, role)).set(ready);
        }
        for (state, n) in TASK_STATES.into_iter().zip([g.pending, g.running]) {
            f.tasks.get_or_create(&state_labels(&farm, state)).set(n);
        }
        f.live_workers.get_or_create(&farm).set(g.live_workers);
        f.completed.get_or_create(&farm).set(g.completed);
        f.epoch.get_or_create(&farm).set(g.epoch);
        f.degraded.get_or_create(&farm).set(i64::from(g.degraded));
    }

    pub fn forget_farm(&self, namespace: &str, name: &str) {
        let farm = farm_labels(namespace, name);
        let f = &self.farm;
        for role in ROLES {
            f.ready_pods.remove(&role_labels(&farm, role));
        }
        for state in TASK_STATES {
            f.tasks.remove(&state_labels(&farm, state));
        }
        for family in [&f.live_workers, &f.completed, &f.epoch, &f.degraded] {
            family.remove(&farm);
        }
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

fn farm_labels(namespace: &str, name: &str) -> FarmLabels {
    FarmLabels {
        namespace: namespace.into(),
        taskfarm: name.into(),
    }
}

fn role_labels(farm: &FarmLabels, role: &'static str) -> RoleLabels {
    RoleLabels {
        namespace: farm.namespace.clone(),
        taskfarm: farm.taskfarm.clone(),
        role,
    }
}

fn state_labels(farm: &FarmLabels, state: &'static str) -> StateLabels {
    StateLabels {
        namespace: farm.namespace.clone(),
        taskfarm: farm.taskfarm.clone(),
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskfarm::metrics::exposed_names;

    #[test]
    fn names_follow_prometheus_conventions_and_farms_come_and_go() {
        let m = Metrics::default();
        m.reconciles.inc();
        m.chaos_kills.inc();
        m.reconcile_duration.observe(0.02);
        m.leading.set(1);
        m.set_farm(
            "ns",
            "demo",
            FarmGauges {
                ready_workers: 3,
                pending: 4,
                degraded: true,
                ..FarmGauges::default()
            },
        );
        let text = m.encode();
        for expected in [
            "# TYPE taskfarm_controller_reconciles counter\n",
            "taskfarm_controller_reconciles_total 1\n",
            "taskfarm_controller_chaos_kills_total 1\n",
            "taskfarm_controller_chaos_dry_run_actions_total 0\n",
            "# TYPE taskfarm_controller_reconcile_duration_seconds histogram\n",
            "taskfarm_controller_reconcile_duration_seconds_count 1\n",
            "taskfarm_controller_leading 1\n",
            "taskfarm_controller_farm_ready_pods{namespace=\"ns\",taskfarm=\"demo\",role=\"worker\"} 3\n",
            "taskfarm_controller_farm_tasks{namespace=\"ns\",taskfarm=\"demo\",state=\"pending\"} 4\n",
            "taskfarm_controller_farm_degraded{namespace=\"ns\",taskfarm=\"demo\"} 1\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Every sample line is `name[{labels}] value`, and every name is the controller's.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("taskfarm_controller_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        m.forget_farm("ns", "demo");
        assert!(!m.encode().contains("taskfarm=\"demo\""), "{}", m.encode());
    }

    /// Every `taskfarm_controller_...` name the chart's Grafana dashboard mentions is one the
    /// controller exposes (the roles' names are checked against running roles by
    /// crates/taskfarm/tests/dashboard.rs).
    #[test]
    fn the_dashboard_queries_only_metrics_the_controller_exposes() {
        let text = include_str!("../../../charts/taskfarm/dashboards/taskfarm.json");
        let dashboard: serde_json::Value = serde_json::from_str(text).expect("the dashboard is JSON");
        assert!(dashboard["panels"].as_array().is_some_and(|p| !p.is_empty()));
        let prefix = "taskfarm_controller_";
        let queried: std::collections::BTreeSet<&str> = text
            .match_indices(prefix)
            .map(|(at, _)| {
                let rest = &text[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(queried.len() >= 10, "the dashboard shows the controller: {queried:?}");
        let m = Metrics::default();
        m.set_farm("ns", "demo", FarmGauges::default());
        let exposed = exposed_names(&m.encode());
        let missing: Vec<_> = queried.iter().filter(|name| !exposed.contains(**name)).collect();
        assert!(
            missing.is_empty(),
            "queried but not exposed: {missing:?}\nexposed: {exposed:?}"
        );
    }

    #[test]
    fn exposed_names_are_the_sample_names() {
        let m = Metrics::default();
        m.set_farm("ns", "demo", FarmGauges::default());
        let names = exposed_names(&m.encode());
        for name in [
            "taskfarm_controller_reconciles_total",
            "taskfarm_controller_reconcile_duration_seconds_bucket",
            "taskfarm_controller_leading",
            "taskfarm_controller_farm_tasks",
        ] {
            assert!(names.contains(name), "{name} not in {names:?}");
        }
        assert!(!names.contains("taskfarm_controller_reconciles"), "{names:?}");
        assert!(!names.contains("taskfarm_controller_reconcile_duration_seconds"));
    }
}
