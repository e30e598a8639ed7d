//! The `TaskFarm` custom resource (`taskfarm.dev/v1alpha1`): spec, status and the generated CRD.
//!
//! Plain structs and unit enums only: data-carrying enums have produced non-structural schemas
//! in kube. Every default lives in a `serde(default = ..)` function so that the API server
//! (through the schema) and the controller (through serde) agree on it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "taskfarm.dev";
pub const VERSION: &str = "v1alpha1";

/// A farm of masters, workers and (optionally) load-generating clients around one ZooKeeper
/// ensemble, with an optional chaos experiment that deletes the farm's own pods.
// clippy reads the repeated `type_ = "integer"` of the printcolumns as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "taskfarm.dev",
    version = "v1alpha1",
    kind = "TaskFarm",
    plural = "taskfarms",
    shortname = "tf",
    namespaced,
    status = "TaskFarmStatus",
    scale(
        spec_replicas_path = ".spec.workers",
        status_replicas_path = ".status.readyWorkers",
        label_selector_path = ".status.workerSelector"
    ),
    printcolumn(name = "Masters", type_ = "integer", json_path = ".status.readyMasters"),
    printcolumn(name = "Workers", type_ = "integer", json_path = ".status.readyWorkers"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader"),
    printcolumn(name = "Epoch", type_ = "integer", json_path = ".status.epoch"),
    printcolumn(name = "Pending", type_ = "integer", json_path = ".status.pending"),
    printcolumn(name = "Done", type_ = "integer", json_path = ".status.completed"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TaskFarmSpec {
    /// How the farm's roles (and the controller) reach ZooKeeper.
    #[serde(default)]
    pub zookeeper: ZookeeperSpec,
    /// How many tasks the farm holds at most (its admission bound, PROTOCOL.md §2.1).
    #[serde(default)]
    pub admission: AdmissionSpec,
    /// Master replicas (one leads, the others stand by).
    #[serde(default = "default_masters")]
    #[schemars(range(min = 0, max = 100))]
    pub masters: i32,
    /// Worker replicas.
    #[serde(default = "default_workers")]
    #[schemars(range(min = 0, max = 10000))]
    pub workers: i32,
    /// Load-generating client replicas (0 = none; the client Deployment is kept at 0 replicas).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub clients: i32,
    /// Container image of every role (its entrypoint is /taskfarm).
    #[serde(default = "default_image")]
    pub image: String,
    #[serde(default = "default_pull_policy")]
    pub image_pull_policy: PullPolicy,
    /// Compute resources per role.
    #[serde(default)]
    pub resources: RoleResources,
    /// Scheduling and metadata of every role pod (master, worker, client); `master.pod`,
    /// `worker.pod` and `client.pod` add to it per role.
    #[serde(default)]
    pub pod: PodSettings,
    /// The master pods.
    #[serde(default)]
    pub master: RoleSpec,
    /// How the worker pods run: in which image, with how many task slots.
    #[serde(default)]
    pub worker: WorkerSpec,
    /// The client pods.
    #[serde(default)]
    pub client: RoleSpec,
    /// The commands `exec` tasks may run, by name: the workers' catalogue (docs/KUBERNETES.md,
    /// "Running your own programs"). The controller writes it into the ConfigMap
    /// `<farm>-commands`, which the worker pods mount; none = every `exec` task gets an error
    /// result.
    #[serde(default)]
    pub commands: BTreeMap<String, CommandSpec>,
    /// What the clients submit.
    #[serde(default)]
    pub client_profile: ClientProfile,
    /// The chaos experiment (off unless enabled).
    #[serde(default)]
    pub chaos: ChaosSpec,
    /// Scale every role to 0 and stop chaos, keeping the resource.
    #[serde(default)]
    pub suspend: bool,
}

impl Default for TaskFarmSpec {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every spec field has a default")
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZookeeperSpec {
    /// Connect string `host:port[,host:port...][/chroot]`. Hosts without a dot are resolved in
    /// the TaskFarm's namespace (by the controller, which may run elsewhere).
    #[serde(default = "default_zk_connect")]
    pub connect: String,
    /// ZooKeeper session timeout of the roles, in seconds.
    #[serde(default = "default_session_timeout")]
    #[schemars(range(min = 2, max = 120))]
    pub session_timeout_seconds: i64,
    /// Secret whose key `secret` holds the farm's ZooKeeper digest secret (ACLs); none = open ACLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Size of the ensemble, used by the chaos quorum guard to count missing ZooKeeper pods.
    #[serde(default = "default_zk_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
}

impl Default for ZookeeperSpec {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

/// The largest `admission.maxQueuedTasks`: 10,000,000 tasks of at most 72 KiB each are 687 GiB
/// of znode data in every ZooKeeper server's heap, far beyond any heap: a larger bound bounds
/// nothing (the schema's maximum says the same).
pub const MAX_QUEUED_TASKS_LIMIT: i64 = 10_000_000;

/// The farm's admission bound: ZooKeeper refuses submissions beyond it (a hard quota on the
/// farm's `/data`, which the leading master sets; docs/KUBERNETES.md, "Admission").
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionSpec {
    /// Tasks the farm holds at most (queued, running, or with a result not yet collected),
    /// passed to the masters as `TASKFARM_MAX_QUEUED_TASKS`; each new leader sets it as a
    /// ZooKeeper hard quota on the farm's /data (the servers need enforceQuota=true). A task
    /// occupies up to 72 KiB of every server's heap: 900 fits the chart's 256 MiB heap (about
    /// heap MiB x 3.5). 0 removes the bound; none leaves the farm's bound as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10_000_000))]
    pub max_queued_tasks: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Requests and limits in Kubernetes quantity syntax (`cpu: 100m`, `memory: 64Mi`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ComputeResources {
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

impl ComputeResources {
    fn new(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Self {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self {
            requests: map(requests),
            limits: map(limits),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct RoleResources {
    #[serde(default = "default_master_resources")]
    pub master: ComputeResources,
    #[serde(default = "default_worker_resources")]
    pub worker: ComputeResources,
    #[serde(default = "default_client_resources")]
    pub client: ComputeResources,
}

impl Default for RoleResources {
    fn default() -> Self {
        Self {
            master: default_master_resources(),
            worker: default_worker_resources(),
            client: default_client_resources(),
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// The workers' own image (e.g. one with the programs `commands` name); none = `image`. An
    /// init container copies the taskfarm binary from `image` into it (the image needs glibc
    /// 2.34 or later, and nothing else: no shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Tasks each worker pod runs at once (`TASKFARM_SLOTS`; each slot registers as a worker).
    #[serde(default = "default_slots")]
    #[schemars(range(min = 1, max = 256))]
    pub slots: i32,
    /// The worker pods' own settings, merged over `spec.pod`.
    #[serde(default)]
    pub pod: PodSettings,
}

/// A role without settings of its own beyond its pods'.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RoleSpec {
    /// This role's pod settings, merged over `spec.pod`.
    #[serde(default)]
    pub pod: PodSettings,
}

// Resources are not here: `spec.resources.<role>` is their one place.
/// Where role pods may run and what they carry besides the controller's own settings. Merged
/// per role over `spec.pod`: lists (pull secrets, tolerations) are joined, maps (node selector,
/// annotations, labels) merged with the role's value winning, `affinity` and
/// `priorityClassName` replaced.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// Secrets for pulling the images (the role image, `worker.image`) from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = brief)]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Node labels a pod's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate (core/v1 Toleration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = brief)]
    pub tolerations: Vec<Toleration>,
    /// Node and pod (anti-)affinity (core/v1 Affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = brief)]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Annotations added to the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels added to the pods (never one the controller sets itself).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

// The catalogue's fields in camelCase, as everywhere in the spec (the worker's file spells
// `max_args` and `max_output` with underscores). Absent fields take the worker's defaults, so
// there is one place for them: the product's catalogue parser.
/// One command of the catalogue; a task names it and may only vary what it allows.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandSpec {
    /// The program and its fixed arguments; a task's arguments are appended.
    #[schemars(length(min = 1))]
    pub argv: Vec<String>,
    /// The pattern (regular expression) every argument of a task must match whole; none = the
    /// command takes no arguments from tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
    /// Most arguments a task may give (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1024))]
    pub max_args: Option<i32>,
    /// Whether a task may send stdin (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<bool>,
    /// Default and upper bound of a task's time limit, e.g. `10s`, `2m` (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Time between SIGTERM and SIGKILL when the time limit passes (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<String>,
    /// Bound on the captured output, e.g. `256KiB`, `1MiB` (default 32KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<String>,
    /// The command's whole environment besides PATH (the worker's own is not passed on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the command (default: the worker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientProfile {
    /// The task each client submits, as a JSON string.
    #[serde(default = "default_task")]
    pub task: String,
    /// Tasks in flight per client.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 10000))]
    pub concurrency: i32,
}

impl Default for ClientProfile {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

// The components of a farm on Kubernetes: its three roles' Deployments and its ZooKeeper
// StatefulSet. The farm roles alone are `taskfarm::role::Role`; this adds ZooKeeper, and its
// serialised names and the doc line below are part of the CRD.
/// Roles chaos may target.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Master,
    Worker,
    Client,
    Zookeeper,
}

impl From<taskfarm::role::Role> for Component {
    fn from(role: taskfarm::role::Role) -> Self {
        match role {
            taskfarm::role::Role::Master => Component::Master,
            taskfarm::role::Role::Worker => Component::Worker,
            taskfarm::role::Role::Client => Component::Client,
        }
    }
}

impl Component {
    /// The `app.kubernetes.io/component` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Master => "master",
            Component::Worker => "worker",
            Component::Client => "client",
            Component::Zookeeper => "zookeeper",
        }
    }

    pub fn from_label(s: &str) -> Option<Component> {
        [
            Component::Master,
            Component::Worker,
            Component::Client,
            Component::Zookeeper,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// How many pods one chaos run deletes.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChaosMode {
    /// One pod.
    One,
    /// `value` pods.
    Fixed,
    /// `value` percent of the targeted pods (rounded up).
    Percent,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChaosSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Roles whose pods may be deleted.
    #[serde(default = "default_targets")]
    #[schemars(length(min = 1))]
    pub targets: Vec<Component>,
    #[serde(default = "default_mode")]
    pub mode: ChaosMode,
    /// Pods (fixed) or percent (percent) per run; ignored for `one`.
    #[serde(default = "default_value")]
    #[schemars(range(min = 0, max = 100))]
    pub value: i32,
    /// Seconds between runs.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 5, max = 86400))]
    pub interval_seconds: i64,
    /// Grace period of each deletion; 0 = hard kill.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub grace_period_seconds: i64,
    /// Choose and report victims without deleting them.
    #[serde(default)]
    pub dry_run: bool,
    /// Upper bound of deletions per run, whatever the mode asks.
    #[serde(default = "default_max_kills")]
    #[schemars(range(min = 1, max = 100))]
    pub max_kills: i32,
    /// Pods younger than this are never deleted.
    #[serde(default = "default_min_pod_age")]
    #[schemars(range(min = 0, max = 86400))]
    pub min_pod_age_seconds: i64,
    /// After a kill, tasks must complete again within this many seconds (while some are pending).
    #[serde(default = "default_progress_timeout")]
    #[schemars(range(min = 5, max = 3600))]
    pub progress_timeout_seconds: i64,
    /// After a kill, a leader must be in place within this many seconds.
    #[serde(default = "default_failover_timeout")]
    #[schemars(range(min = 5, max = 3600))]
    pub failover_timeout_seconds: i64,
    #[serde(default)]
    pub guards: ChaosGuards,
}

impl Default for ChaosSpec {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

/// Safety guards, all on by default.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChaosGuards {
    /// Never take ZooKeeper below quorum: delete a ZooKeeper pod only when all of them are ready.
    #[serde(default = "yes")]
    pub zookeeper_quorum: bool,
    /// Never delete a pod that is not ready (or already terminating).
    #[serde(default = "yes")]
    pub ready_only: bool,
    /// Pause chaos while the farm is Degraded or its ZooKeeper state cannot be read.
    #[serde(default = "yes")]
    pub pause_when_degraded: bool,
}

impl Default for ChaosGuards {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every field has a default")
    }
}

/// Drops the descriptions inside an embedded Kubernetes type, keeping the field's own: the
/// Kubernetes API reference documents them, and four copies of Affinity's would bring the CRD
/// near the 256 KiB a client-side `kubectl apply` can store.
fn brief(schema: &mut schemars::Schema) {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("description");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if let Some(map) = schema.as_object_mut() {
        map.iter_mut()
            .filter(|(k, _)| *k != "description")
            .for_each(|(_, v)| strip(v));
    }
}

fn yes() -> bool {
    true
}
fn default_masters() -> i32 {
    2
}
fn default_workers() -> i32 {
    3
}
fn default_image() -> String {
    "taskfarm:0.1.0".into()
}
fn default_pull_policy() -> PullPolicy {
    PullPolicy::IfNotPresent
}
fn default_zk_connect() -> String {
    "taskfarm-zookeeper:2181".into()
}
fn default_session_timeout() -> i64 {
    10
}
fn default_zk_replicas() -> i32 {
    3
}
fn default_master_resources() -> ComputeResources {
    ComputeResources::new(&[("cpu", "50m"), ("memory", "32Mi")], &[("memory", "128Mi")])
}
fn default_worker_resources() -> ComputeResources {
    ComputeResources::new(&[("cpu", "50m"), ("memory", "32Mi")], &[("memory", "256Mi")])
}
fn default_client_resources() -> ComputeResources {
    ComputeResources::new(&[("cpu", "20m"), ("memory", "32Mi")], &[("memory", "128Mi")])
}
fn default_slots() -> i32 {
    1
}
fn default_task() -> String {
    r#"{"kind":"sleep","ms":100}"#.into()
}
fn default_concurrency() -> i32 {
    4
}
fn default_targets() -> Vec<Component> {
    vec![Component::Worker]
}
fn default_mode() -> ChaosMode {
    ChaosMode::One
}
fn default_value() -> i32 {
    1
}
fn default_interval() -> i64 {
    60
}
fn default_max_kills() -> i32 {
    1
}
fn default_min_pod_age() -> i64 {
    60
}
fn default_progress_timeout() -> i64 {
    120
}
fn default_failover_timeout() -> i64 {
    60
}

/// What the controller observed, from Kubernetes and from ZooKeeper.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskFarmStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub ready_masters: i32,
    #[serde(default)]
    pub ready_workers: i32,
    #[serde(default)]
    pub ready_clients: i32,
    /// The replicas last applied to the role Deployments (0 while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<RoleCounts>,
    /// Label selector of the worker pods (for the scale subresource).
    #[serde(default)]
    pub worker_selector: String,
    /// The leading master's id, as it registered in ZooKeeper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The leader's election epoch (its candidate sequence number); kept at the last leader's
    /// while there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    #[serde(default)]
    pub live_workers: i64,
    #[serde(default)]
    pub pending: i64,
    #[serde(default)]
    pub running: i64,
    /// Tasks completed since the farm began.
    #[serde(default)]
    pub completed: i64,
    /// Leadership changes since the farm began (as counted by the masters).
    #[serde(default)]
    pub failovers: i64,
    /// When the current leader took over after a failover (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover_time: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub chaos: ChaosStatus,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct RoleCounts {
    pub masters: i32,
    pub workers: i32,
    pub clients: i32,
}

/// A status condition, shaped like metav1.Condition.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    /// RFC 3339; changes only when `status` changes.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChaosStatus {
    /// Pods deleted so far (dry runs excluded).
    #[serde(default)]
    pub kills: i64,
    /// When the last run happened (RFC 3339), whether or not it deleted anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<String>,
    /// Why the last run deleted nothing, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skip_reason: Option<String>,
    /// When the last real deletion happened (RFC 3339): the steady-state check runs from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_kill_time: Option<String>,
    /// `status.completed` at the last real deletion.
    #[serde(default)]
    pub completed_at_last_kill: i64,
    /// The most recent actions, newest last (at most 10).
    #[serde(default)]
    pub last_actions: Vec<ChaosAction>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChaosAction {
    /// RFC 3339.
    pub time: String,
    pub pod: String,
    pub role: String,
    /// `delete` (the only action so far).
    pub action: String,
    pub dry_run: bool,
}

/// The CRD as YAML, as `taskfarm crd` prints it and `crds/taskfarm.yaml` holds it.
pub fn crd_yaml() -> anyhow::Result<String> {
    use kube::CustomResourceExt as _;
    Ok(serde_yaml::to_string(&TaskFarm::crd())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_spec_gets_the_documented_defaults() {
        let spec: TaskFarmSpec = serde_json::from_str("{}").unwrap();
        assert_eq!((spec.masters, spec.workers, spec.clients), (2, 3, 0));
        assert_eq!(spec.image, "taskfarm:0.1.0");
        assert_eq!(spec.image_pull_policy, PullPolicy::IfNotPresent);
        assert_eq!(spec.zookeeper.connect, "taskfarm-zookeeper:2181");
        assert_eq!(spec.zookeeper.session_timeout_seconds, 10);
        assert_eq!(spec.client_profile.task, r#"{"kind":"sleep","ms":100}"#);
        let chaos = &spec.chaos;
        assert!(!chaos.enabled && !chaos.dry_run);
        assert!(chaos.guards.zookeeper_quorum && chaos.guards.ready_only && chaos.guards.pause_when_degraded);
        assert_eq!(
            (chaos.interval_seconds, chaos.max_kills, chaos.min_pod_age_seconds),
            (60, 1, 60)
        );
        assert!(!spec.suspend);
        assert_eq!((spec.worker.image.as_deref(), spec.worker.slots), (None, 1));
        assert!(spec.commands.is_empty());
        assert_eq!(spec.admission.max_queued_tasks, None, "no bound unless asked");
        assert_eq!(spec, TaskFarmSpec::default());
    }

    #[test]
    fn committed_crd_matches_the_generated_one() {
        let committed = include_str!("../../../crds/taskfarm.yaml");
        let generated = crd_yaml().unwrap();
        assert!(
            committed == generated,
            "crds/taskfarm.yaml is stale: regenerate it with `cargo run -q -- crd > crds/taskfarm.yaml`"
        );
    }

    #[test]
    fn crd_names_scale_and_columns_follow_the_contract() {
        use kube::CustomResourceExt as _;
        let crd = serde_json::to_value(TaskFarm::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "taskfarms.taskfarm.dev");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "tf");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["subresources"]["scale"]["specReplicasPath"], ".spec.workers");
        assert_eq!(
            version["subresources"]["scale"]["statusReplicasPath"],
            ".status.readyWorkers"
        );
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            ["Masters", "Workers", "Ready", "Leader", "Epoch", "Pending", "Done", "Age"]
        );
        let ready = &version["additionalPrinterColumns"][2];
        assert_eq!(ready["jsonPath"], ".status.conditions[?(@.type==\"Ready\")].status");
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(spec["workers"]["minimum"].as_f64(), Some(0.0));
        assert_eq!(
            spec["chaos"]["properties"]["intervalSeconds"]["minimum"].as_f64(),
            Some(5.0)
        );
        let slots = &spec["worker"]["properties"]["slots"];
        assert_eq!(
            (slots["minimum"].as_f64(), slots["maximum"].as_f64()),
            (Some(1.0), Some(256.0))
        );
        let command = &spec["commands"]["additionalProperties"];
        assert_eq!(command["required"], serde_json::json!(["argv"]));
        assert_eq!(command["properties"]["argv"]["minItems"].as_f64(), Some(1.0));
        // An empty target list is refused by the API server, not only by the controller.
        assert_eq!(spec["chaos"]["properties"]["targets"]["minItems"].as_f64(), Some(1.0));
        // The pod settings, for every role and per role.
        for pod in [
            &spec["pod"],
            &spec["master"]["properties"]["pod"],
            &spec["worker"]["properties"]["pod"],
            &spec["client"]["properties"]["pod"],
        ] {
            let fields = pod["properties"].as_object().unwrap();
            for field in [
                "imagePullSecrets",
                "nodeSelector",
                "tolerations",
                "affinity",
                "priorityClassName",
                "annotations",
                "labels",
            ] {
                assert!(fields.contains_key(field), "{field} in {pod}");
            }
        }
        assert!(command["properties"]["maxOutput"].is_object(), "camelCase names");
        // The admission bound: optional, never negative, the controller's own upper limit.
        let tasks = &spec["admission"]["properties"]["maxQueuedTasks"];
        assert_eq!(
            (tasks["minimum"].as_f64(), tasks["maximum"].as_f64()),
            (Some(0.0), Some(MAX_QUEUED_TASKS_LIMIT as f64))
        );
        assert_eq!(tasks["type"], "integer");
        assert_eq!(spec["admission"]["required"], serde_json::Value::Null);
    }
}
