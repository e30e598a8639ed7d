//! The validate step: one pure function from the raw `TaskFarm` to a [`ValidatedFarm`], the only
//! input of the builders. It checks everything a built Deployment will carry (names, labels,
//! resource names and quantities, the image, the roles' settings), so that a spec the API
//! server would refuse is refused before anything is applied: otherwise the farm is left
//! half-applied (master applied, worker refused) and retried forever without a word in status.
//!
//! The CRD schema holds the ranges, enums and defaults; this holds what a schema cannot say.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource as _, ResourceExt as _};

use super::build::{deployment_name, DEPLOYED_ROLES};
use super::catalogue::{self, Rendered};
use super::crd::{
    AdmissionSpec, ChaosMode, ChaosSpec, ClientProfile, Component, ComputeResources, PullPolicy, RoleCounts, TaskFarm,
    WorkerSpec, ZookeeperSpec, MAX_QUEUED_TASKS_LIMIT,
};
use super::names::{self, NameError};
use super::pod::{self, RolePods};
use super::quantity::{self, Amount, QuantityError};

/// A TaskFarm that can be built: every field below is what the Deployments carry, checked.
// `#[non_exhaustive]` would still let the rest of the crate build one without `validate`.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatedFarm {
    /// A label value (it labels the pods), and `<name>-<role>` a Deployment name.
    pub name: String,
    pub namespace: String,
    /// The TaskFarm as the controlling owner of its Deployments, blocking its deletion.
    pub owner: OwnerReference,
    /// The spec's replicas, none negative (suspend is applied by the builders).
    pub replicas: RoleCounts,
    pub suspend: bool,
    /// Not empty, no whitespace.
    pub image: String,
    pub image_pull_policy: PullPolicy,
    pub resources: RoleQuantities,
    /// Each role's pod settings, `spec.pod` merged with `spec.<role>.pod`: label keys and values,
    /// names, tolerations and affinity terms the API server accepts, no label or annotation the
    /// controller sets itself.
    pub pods: RolePods,
    /// `image` like the role image (`None` when unset or empty), `slots` within 1-256.
    pub worker: WorkerSettings,
    /// `spec.commands` as the workers' catalogue file, which a worker's own parser accepts.
    pub catalogue: Rendered,
    /// `task` is a JSON object, `concurrency` at least 1.
    pub client_profile: ClientProfile,
    /// `connect` parses, the session timeout is positive, `secret_name` is a Secret name or
    /// `None` (never empty).
    pub zookeeper: ZookeeperSpec,
    /// The masters' `TASKFARM_MAX_QUEUED_TASKS`: `None` leaves the farm's bound as it is, `0`
    /// removes it, otherwise at most [`MAX_QUEUED_TASKS_LIMIT`] tasks.
    pub max_queued_tasks: Option<u64>,
    /// When enabled: targets, an interval of at least 5 s, a percentage in percent mode.
    pub chaos: ChaosSpec,
    /// Private, so that a ValidatedFarm only ever comes out of [`validate`].
    _validated: (),
}

impl ValidatedFarm {
    /// The requests and limits of one role's container.
    pub fn resources(&self, role: Component) -> &Quantities {
        match role {
            Component::Master => &self.resources.master,
            Component::Worker => &self.resources.worker,
            Component::Client | Component::Zookeeper => &self.resources.client,
        }
    }
}

/// How the worker pods run (their pod settings are in [`ValidatedFarm::pods`]).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSettings {
    /// The workers' own image, `None` for the role image.
    pub image: Option<String>,
    /// Task slots per worker pod, 1-256.
    pub slots: i32,
}

/// Requests and limits with names a container may ask for and quantities the API server parses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quantities {
    pub requests: BTreeMap<String, Quantity>,
    pub limits: BTreeMap<String, Quantity>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleQuantities {
    pub master: Quantities,
    pub worker: Quantities,
    pub client: Quantities,
}

/// What is wrong with a TaskFarm, worded for its status condition and event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    #[error("metadata.namespace is missing")]
    NoNamespace,
    #[error("metadata.uid is missing: the Deployments could not name their owner")]
    NoUid,
    #[error("metadata.name {name:?} cannot label the farm's pods: a label value {why}")]
    Name { name: String, why: NameError },
    #[error("the Deployment name {name:?} is not a DNS-1123 subdomain: it {why}")]
    DeploymentName { name: String, why: NameError },
    #[error("spec.{field} must not be negative ({value})")]
    NegativeReplicas { field: &'static str, value: i32 },
    #[error("spec.image {0:?} is not an image reference: it is empty or contains whitespace")]
    Image(String),
    #[error("spec.worker.image {0:?} is not an image reference: it contains whitespace")]
    WorkerImage(String),
    #[error("spec.worker.slots must be 1-256 ({0})")]
    Slots(i32),
    #[error("spec.commands is not a catalogue a worker accepts: {0}")]
    Commands(String),
    #[error("spec.zookeeper.connect: {0}")]
    ZookeeperConnect(String),
    #[error("spec.zookeeper.sessionTimeoutSeconds must be positive ({0})")]
    SessionTimeout(i64),
    #[error("spec.zookeeper.secretName {name:?} is not a Secret name: it {why}")]
    SecretName { name: String, why: NameError },
    #[error(
        "spec.admission.maxQueuedTasks must not be negative ({0}): 0 removes the farm's bound, no field leaves it as it is"
    )]
    NegativeMaxQueuedTasks(i64),
    #[error(
        "spec.admission.maxQueuedTasks {0} is above {limit}: at up to 72 KiB a task, no ZooKeeper heap holds that many",
        limit = MAX_QUEUED_TASKS_LIMIT
    )]
    MaxQueuedTasksTooLarge(i64),
    #[error("spec.clientProfile.task must be a JSON object, e.g. {{\"kind\":\"sleep\",\"ms\":100}}")]
    Task,
    #[error("spec.clientProfile.concurrency must be at least 1 ({0})")]
    Concurrency(i32),
    #[error("spec.resources.{at}: {name:?} is not a container resource: {why}")]
    ResourceName { at: String, name: String, why: String },
    #[error("spec.resources.{at}: {value:?} is not a quantity: {why} (quantities look like 500m, 1, 0.5, 2Gi or 1e3)")]
    Quantity {
        at: String,
        value: String,
        why: QuantityError,
    },
    #[error("spec.resources.{at} must not be negative ({value})")]
    NegativeQuantity { at: String, value: String },
    #[error("spec.resources.{at} must be a whole number for an extended resource ({value})")]
    Fractional { at: String, value: String },
    #[error("spec.resources.{role}.requests.{name} ({request}) is above limits.{name} ({limit})")]
    RequestAboveLimit {
        role: &'static str,
        name: String,
        request: String,
        limit: String,
    },
    #[error(
        "spec.resources.{role}.requests.{name} ({request}) needs an equal limits.{name}: it cannot be overcommitted"
    )]
    Overcommitted {
        role: &'static str,
        name: String,
        request: String,
    },
    #[error("spec.{at}: {why}")]
    Pod { at: String, why: String },
    #[error("spec.chaos.targets is empty")]
    NoChaosTargets,
    #[error("spec.chaos.intervalSeconds must be at least 5 ({0})")]
    ChaosInterval(i64),
    #[error("spec.chaos.value is a percentage in percent mode (0-100), not {0}")]
    ChaosPercent(i32),
}

/// Checks a TaskFarm and returns what the builders need, or the first problem found.
pub fn validate(farm: &TaskFarm) -> Result<ValidatedFarm, InvalidSpec> {
    let name = farm.name_any();
    names::label_value(&name).map_err(|why| InvalidSpec::Name {
        name: name.clone(),
        why,
    })?;
    for role in DEPLOYED_ROLES {
        let deployment = deployment_name(&name, role);
        names::dns1123_subdomain(&deployment).map_err(|why| InvalidSpec::DeploymentName { name: deployment, why })?;
    }
    // `<name>-commands` (the ConfigMap) is then a DNS-1123 subdomain too: same characters, and
    // a label value (63) plus 9 is far below 253.
    let namespace = farm.namespace().ok_or(InvalidSpec::NoNamespace)?;
    // Blocking: a foreground deletion of the TaskFarm (`kubectl delete --cascade=foreground`)
    // waits until its Deployments and ConfigMap are gone. Setting it needs `update` on
    // taskfarms/finalizers where the OwnerReferencesPermissionEnforcement admission plugin runs.
    let owner = OwnerReference {
        block_owner_deletion: Some(true),
        ..farm.controller_owner_ref(&()).ok_or(InvalidSpec::NoUid)?
    };
    let spec = &farm.spec;
    for (field, value) in [
        ("masters", spec.masters),
        ("workers", spec.workers),
        ("clients", spec.clients),
    ] {
        if value < 0 {
            return Err(InvalidSpec::NegativeReplicas { field, value });
        }
    }
    if !image_reference(&spec.image) {
        return Err(InvalidSpec::Image(spec.image.clone()));
    }
    Ok(ValidatedFarm {
        name,
        namespace,
        owner,
        replicas: RoleCounts {
            masters: spec.masters,
            workers: spec.workers,
            clients: spec.clients,
        },
        suspend: spec.suspend,
        image: spec.image.clone(),
        image_pull_policy: spec.image_pull_policy,
        resources: RoleQuantities {
            master: quantities("master", &spec.resources.master)?,
            worker: quantities("worker", &spec.resources.worker)?,
            client: quantities("client", &spec.resources.client)?,
        },
        pods: pod::role_pods(spec)?,
        worker: worker(&spec.worker)?,
        catalogue: catalogue::render(&spec.commands).map_err(InvalidSpec::Commands)?,
        client_profile: client_profile(&spec.client_profile)?,
        zookeeper: zookeeper(&spec.zookeeper)?,
        max_queued_tasks: admission(&spec.admission)?,
        chaos: chaos(&spec.chaos)?,
        _validated: (),
    })
}

/// Not empty and without blanks: the only syntax both the API server and the runtime agree on.
fn image_reference(image: &str) -> bool {
    !image.is_empty() && !image.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn worker(worker: &WorkerSpec) -> Result<WorkerSettings, InvalidSpec> {
    // An empty image means none, as an empty secret name does.
    let image = worker.image.clone().filter(|s| !s.is_empty());
    if let Some(image) = image.as_deref().filter(|i| !image_reference(i)) {
        return Err(InvalidSpec::WorkerImage(image.into()));
    }
    if !(1..=256).contains(&worker.slots) {
        return Err(InvalidSpec::Slots(worker.slots));
    }
    Ok(WorkerSettings {
        image,
        slots: worker.slots,
    })
}

fn zookeeper(zk: &ZookeeperSpec) -> Result<ZookeeperSpec, InvalidSpec> {
    taskfarm::zk::parse_connect_string(&zk.connect).map_err(|e| InvalidSpec::ZookeeperConnect(format!("{e:#}")))?;
    if zk.session_timeout_seconds < 1 {
        return Err(InvalidSpec::SessionTimeout(zk.session_timeout_seconds));
    }
    // An empty secret name means none, as it always has.
    let secret_name = zk.secret_name.clone().filter(|s| !s.is_empty());
    if let Some(name) = &secret_name {
        names::dns1123_subdomain(name).map_err(|why| InvalidSpec::SecretName {
            name: name.clone(),
            why,
        })?;
    }
    Ok(ZookeeperSpec {
        secret_name,
        ..zk.clone()
    })
}

fn admission(admission: &AdmissionSpec) -> Result<Option<u64>, InvalidSpec> {
    match admission.max_queued_tasks {
        None => Ok(None),
        Some(n) if n < 0 => Err(InvalidSpec::NegativeMaxQueuedTasks(n)),
        Some(n) if n > MAX_QUEUED_TASKS_LIMIT => Err(InvalidSpec::MaxQueuedTasksTooLarge(n)),
        Some(n) => Ok(Some(n as u64)),
    }
}

fn client_profile(profile: &ClientProfile) -> Result<ClientProfile, InvalidSpec> {
    if !matches!(
        serde_json::from_str::<serde_json::Value>(&profile.task),
        Ok(serde_json::Value::Object(_))
    ) {
        return Err(InvalidSpec::Task);
    }
    if profile.concurrency < 1 {
        return Err(InvalidSpec::Concurrency(profile.concurrency));
    }
    Ok(profile.clone())
}

fn chaos(chaos: &ChaosSpec) -> Result<ChaosSpec, InvalidSpec> {
    if chaos.enabled {
        if chaos.targets.is_empty() {
            return Err(InvalidSpec::NoChaosTargets);
        }
        if chaos.interval_seconds < 5 {
            return Err(InvalidSpec::ChaosInterval(chaos.interval_seconds));
        }
        if chaos.mode == ChaosMode::Percent && !(0..=100).contains(&chaos.value) {
            return Err(InvalidSpec::ChaosPercent(chaos.value));
        }
    }
    Ok(chaos.clone())
}

/// How the API server treats a container resource name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResourceKind {
    /// cpu, memory, ephemeral-storage (and `*kubernetes.io/` names): a request may be below its
    /// limit.
    Native,
    /// hugepages-<size>: never overcommitted.
    HugePages,
    /// `<domain>/<name>` (GPUs and the like): whole units, never overcommitted.
    Extended,
}

fn resource_kind(name: &str) -> Result<ResourceKind, String> {
    if !name.contains('/') {
        if matches!(name, "cpu" | "memory" | "ephemeral-storage") {
            return Ok(ResourceKind::Native);
        }
        return match name.strip_prefix("hugepages-") {
            Some(size) => quantity::parse(size)
                .map(|_| ResourceKind::HugePages)
                .map_err(|e| format!("its page size is not a quantity: {e}")),
            None => Err("use cpu, memory, ephemeral-storage, hugepages-<size> or <domain>/<name>".into()),
        };
    }
    names::qualified_name(name).map_err(|e| format!("not a qualified name: it {e}"))?;
    if name.contains("kubernetes.io/") {
        return Ok(ResourceKind::Native);
    }
    // The API server also checks the name quota would give it.
    names::qualified_name(&format!("requests.{name}"))
        .map(|()| ResourceKind::Extended)
        .map_err(|e| format!("not an extended resource name: it {e}"))
}

/// One role's requests and limits, checked name by name and request against limit.
fn quantities(role: &'static str, r: &ComputeResources) -> Result<Quantities, InvalidSpec> {
    let requests = amounts(role, "requests", &r.requests)?;
    let limits = amounts(role, "limits", &r.limits)?;
    for (name, (kind, request)) in &requests {
        let limit = limits.get(name).map(|(_, limit)| *limit);
        let text = |m: &BTreeMap<String, String>| m[*name].clone();
        match (*kind, limit) {
            (ResourceKind::Native, Some(limit)) if *request > limit => {
                return Err(InvalidSpec::RequestAboveLimit {
                    role,
                    name: name.to_string(),
                    request: text(&r.requests),
                    limit: text(&r.limits),
                })
            }
            (ResourceKind::Native, _) => {}
            (_, limit) if limit != Some(*request) => {
                return Err(InvalidSpec::Overcommitted {
                    role,
                    name: name.to_string(),
                    request: text(&r.requests),
                })
            }
            _ => {}
        }
    }
    let verbatim = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| (k.clone(), Quantity(v.clone()))).collect();
    Ok(Quantities {
        requests: verbatim(&r.requests),
        limits: verbatim(&r.limits),
    })
}

fn amounts<'a>(
    role: &str,
    field: &str,
    values: &'a BTreeMap<String, String>,
) -> Result<BTreeMap<&'a str, (ResourceKind, Amount)>, InvalidSpec> {
    values
        .iter()
        .map(|(name, value)| {
            let at = || format!("{role}.{field}.{name}");
            let kind = resource_kind(name).map_err(|why| InvalidSpec::ResourceName {
                at: format!("{role}.{field}"),
                name: name.clone(),
                why,
            })?;
            let amount = quantity::parse(value).map_err(|why| InvalidSpec::Quantity {
                at: at(),
                value: value.clone(),
                why,
            })?;
            if amount.is_negative() {
                return Err(InvalidSpec::NegativeQuantity {
                    at: at(),
                    value: value.clone(),
                });
            }
            if kind == ResourceKind::Extended && !amount.is_whole() {
                return Err(InvalidSpec::Fractional {
                    at: at(),
                    value: value.clone(),
                });
            }
            Ok((name.as_str(), (kind, amount)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CommandSpec, TaskFarmSpec};
    use crate::fixtures::farm;

    fn refusal(edit: impl FnOnce(&mut TaskFarmSpec)) -> InvalidSpec {
        validate(&farm("demo", edit)).expect_err("refused")
    }

    fn set(map: &mut BTreeMap<String, String>, name: &str, value: &str) {
        map.insert(name.into(), value.into());
    }

    #[test]
    fn a_default_farm_is_valid_and_carries_its_spec() {
        let f = farm("demo", |s| s.zookeeper.secret_name = Some(String::new()));
        let v = validate(&f).unwrap();
        assert_eq!((v.name.as_str(), v.namespace.as_str()), ("demo", "testns"));
        assert_eq!((v.owner.uid.as_str(), v.owner.controller), ("uid-demo", Some(true)));
        assert_eq!(
            v.replicas,
            RoleCounts {
                masters: 2,
                workers: 3,
                clients: 0
            }
        );
        assert_eq!(v.zookeeper.secret_name, None, "an empty secret name is none");
        assert_eq!(
            v.resources(Component::Worker).limits["memory"],
            Quantity("256Mi".into())
        );
        assert_eq!(v.resources(Component::Client).requests["cpu"], Quantity("20m".into()));
    }

    #[test]
    fn the_examples_are_valid_taskfarms() {
        for (file, text) in [
            ("basic.yaml", include_str!("../../../crds/examples/basic.yaml")),
            ("chaos.yaml", include_str!("../../../crds/examples/chaos.yaml")),
            ("exec.yaml", include_str!("../../../crds/examples/exec.yaml")),
            // The chart's rendering of spec.commands, through the worker's parser.
            (
                "taskfarm-exec-debian.yaml",
                include_str!("../../../manifests/examples/taskfarm-exec-debian.yaml"),
            ),
            (
                "taskfarm-pod-settings.yaml",
                include_str!("../../../manifests/examples/taskfarm-pod-settings.yaml"),
            ),
            (
                "chaos-zookeeper-dry-run.yaml",
                include_str!("../../../crds/examples/chaos-zookeeper-dry-run.yaml"),
            ),
        ] {
            let mut farm: TaskFarm = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            // What the API server adds on create.
            farm.metadata.namespace = Some("default".into());
            farm.metadata.uid = Some("uid".into());
            assert_eq!(validate(&farm).err(), None, "{file}");
        }
    }

    #[test]
    fn quantities_the_api_server_refuses_are_refused() {
        let cases: [(&str, &str, QuantityError); 5] = [
            ("cpu", "lots", QuantityError::NoNumber),
            ("cpu", "1.2.3", QuantityError::Suffix(".3".into())),
            ("memory", "", QuantityError::Empty),
            ("memory", "5 Gi", QuantityError::Suffix(" Gi".into())),
            ("memory", "2GB", QuantityError::Suffix("GB".into())),
        ];
        for (name, value, why) in cases {
            let got = refusal(|s| set(&mut s.resources.worker.limits, name, value));
            let want = InvalidSpec::Quantity {
                at: format!("worker.limits.{name}"),
                value: value.into(),
                why,
            };
            assert_eq!(got, want, "{value:?}");
        }
        let message = refusal(|s| set(&mut s.resources.worker.limits, "cpu", "lots")).to_string();
        assert_eq!(
            message,
            "spec.resources.worker.limits.cpu: \"lots\" is not a quantity: it does not start with a number \
             (quantities look like 500m, 1, 0.5, 2Gi or 1e3)"
        );
    }

    #[test]
    fn quantities_the_api_server_accepts_are_kept_verbatim() {
        let v = validate(&farm("demo", |s| {
            let r = &mut s.resources.master;
            for (name, value) in [("cpu", "500m"), ("memory", "2Gi"), ("ephemeral-storage", "1e3")] {
                set(&mut r.requests, name, value);
            }
            for (name, value) in [("cpu", "1"), ("memory", "2Gi"), ("ephemeral-storage", "1.5Ki")] {
                set(&mut r.limits, name, value);
            }
        }))
        .unwrap();
        let master = v.resources(Component::Master);
        assert_eq!(master.requests["ephemeral-storage"], Quantity("1e3".into()));
        assert_eq!(master.limits["cpu"], Quantity("1".into()));
    }

    #[test]
    fn resource_rules_are_the_api_servers() {
        let negative = refusal(|s| set(&mut s.resources.client.requests, "cpu", "-1"));
        assert_eq!(
            negative,
            InvalidSpec::NegativeQuantity {
                at: "client.requests.cpu".into(),
                value: "-1".into()
            }
        );
        let above = refusal(|s| {
            set(&mut s.resources.master.requests, "memory", "1Gi");
            set(&mut s.resources.master.limits, "memory", "1000Mi");
        });
        assert_eq!(
            above,
            InvalidSpec::RequestAboveLimit {
                role: "master",
                name: "memory".into(),
                request: "1Gi".into(),
                limit: "1000Mi".into()
            }
        );
        // Equal values in other units are not above.
        let equal = farm("demo", |s| {
            set(&mut s.resources.master.requests, "cpu", "1000m");
            set(&mut s.resources.master.limits, "cpu", "1");
        });
        assert!(validate(&equal).is_ok());
        let unknown = refusal(|s| set(&mut s.resources.worker.requests, "gpu", "1"));
        assert!(
            matches!(&unknown, InvalidSpec::ResourceName { at, name, .. } if at == "worker.requests" && name == "gpu")
        );
        let unqualified = refusal(|s| set(&mut s.resources.worker.limits, "example.com/a/b", "1"));
        assert!(
            unqualified.to_string().contains("not a qualified name"),
            "{unqualified}"
        );
        let bad_page = refusal(|s| set(&mut s.resources.worker.limits, "hugepages-big", "1Gi"));
        assert!(bad_page.to_string().contains("page size"), "{bad_page}");
        let fraction = refusal(|s| set(&mut s.resources.worker.limits, "example.com/gpu", "0.5"));
        assert_eq!(
            fraction,
            InvalidSpec::Fractional {
                at: "worker.limits.example.com/gpu".into(),
                value: "0.5".into()
            }
        );
        // Extended resources and huge pages: a request needs the very same limit.
        for (name, limit) in [
            ("example.com/gpu", None),
            ("example.com/gpu", Some("2")),
            ("hugepages-2Mi", Some("4Mi")),
        ] {
            let got = refusal(|s| {
                set(&mut s.resources.worker.requests, name, "1");
                if let Some(limit) = limit {
                    set(&mut s.resources.worker.limits, name, limit);
                }
            });
            let want = InvalidSpec::Overcommitted {
                role: "worker",
                name: name.into(),
                request: "1".into(),
            };
            assert_eq!(got, want, "{name} {limit:?}");
        }
        let exact = farm("demo", |s| {
            set(&mut s.resources.worker.requests, "example.com/gpu", "1");
            set(&mut s.resources.worker.limits, "example.com/gpu", "1");
            set(&mut s.resources.worker.limits, "hugepages-2Mi", "4Mi");
        });
        assert!(validate(&exact).is_ok());
    }

    #[test]
    fn a_catalogue_is_refused_with_the_message_a_worker_would_give() {
        let slow = CommandSpec {
            argv: vec!["sleep".into()],
            timeout: Some("soon".into()),
            ..CommandSpec::default()
        };
        let refused = refusal(|s| {
            s.commands.insert("slow".into(), slow);
        });
        let InvalidSpec::Commands(message) = &refused else {
            panic!("{refused:?}")
        };
        // The worker's parser, on the file the worker would read.
        let file = "commands:\n  slow:\n    argv: [sleep]\n    timeout: soon\n";
        assert_eq!(Some(message), taskfarm::exec::Catalogue::parse(file).err().as_ref());
        assert!(
            refused
                .to_string()
                .starts_with("spec.commands is not a catalogue a worker accepts: commands.slow: timeout: \"soon\""),
            "{refused}"
        );
        let unnamed = refusal(|s| {
            s.commands.insert(
                "a/b".into(),
                CommandSpec {
                    argv: vec!["true".into()],
                    ..CommandSpec::default()
                },
            );
        });
        assert!(unnamed.to_string().contains("invalid command name"), "{unnamed}");
    }

    #[test]
    fn worker_settings_and_the_catalogue_are_carried() {
        let v = validate(&farm("demo", |s| {
            s.worker.image = Some(String::new());
            s.worker.slots = 4;
            s.commands.insert(
                "checksum".into(),
                CommandSpec {
                    argv: vec!["sha256sum".into()],
                    ..CommandSpec::default()
                },
            );
        }))
        .unwrap();
        assert_eq!(v.worker.image, None, "an empty image is none");
        assert_eq!(v.worker.slots, 4);
        assert!(v.catalogue.has_commands);
        assert!(v.catalogue.yaml.contains("sha256sum"), "{}", v.catalogue.yaml);
    }

    #[test]
    fn the_admission_bound_is_carried_and_refused_with_its_reason() {
        let bound = |n: Option<i64>| validate(&farm("demo", |s| s.admission.max_queued_tasks = n));
        assert_eq!(bound(None).unwrap().max_queued_tasks, None, "no field: no bound set");
        assert_eq!(bound(Some(0)).unwrap().max_queued_tasks, Some(0), "0: no bound");
        assert_eq!(bound(Some(900)).unwrap().max_queued_tasks, Some(900));
        assert_eq!(
            bound(Some(MAX_QUEUED_TASKS_LIMIT)).unwrap().max_queued_tasks,
            Some(MAX_QUEUED_TASKS_LIMIT as u64)
        );
        assert_eq!(
            bound(Some(-5)).unwrap_err().to_string(),
            "spec.admission.maxQueuedTasks must not be negative (-5): 0 removes the farm's bound, no field \
             leaves it as it is"
        );
        assert_eq!(
            bound(Some(20_000_000)).unwrap_err().to_string(),
            "spec.admission.maxQueuedTasks 20000000 is above 10000000: at up to 72 KiB a task, no ZooKeeper \
             heap holds that many"
        );
        // The limit's arithmetic, with the product's own size of a task.
        assert!(MAX_QUEUED_TASKS_LIMIT as u64 * taskfarm::admission::TASK_BYTES > 512 << 30);
    }

    #[test]
    fn names_and_labels_the_api_server_refuses_are_refused() {
        let long = "a".repeat(64);
        assert_eq!(
            validate(&farm(&long, |_| {})),
            Err(InvalidSpec::Name {
                name: long,
                why: NameError::TooLong(63)
            })
        );
        assert_eq!(
            validate(&farm("Demo_x", |_| {})),
            Err(InvalidSpec::DeploymentName {
                name: "Demo_x-master".into(),
                why: NameError::NotDns1123Subdomain
            })
        );
        let mut no_namespace = farm("demo", |_| {});
        no_namespace.metadata.namespace = None;
        assert_eq!(validate(&no_namespace), Err(InvalidSpec::NoNamespace));
        let mut no_uid = farm("demo", |_| {});
        no_uid.metadata.uid = None;
        assert_eq!(validate(&no_uid), Err(InvalidSpec::NoUid));
        assert_eq!(
            refusal(|s| s.zookeeper.secret_name = Some("ZK_auth".into())),
            InvalidSpec::SecretName {
                name: "ZK_auth".into(),
                why: NameError::NotDns1123Subdomain
            }
        );
    }

    #[test]
    fn each_spec_field_is_refused_with_its_reason() {
        type Edit = Box<dyn FnOnce(&mut TaskFarmSpec)>;
        let cases: Vec<(Edit, InvalidSpec)> = vec![
            (
                Box::new(|s| s.workers = -1),
                InvalidSpec::NegativeReplicas {
                    field: "workers",
                    value: -1,
                },
            ),
            (Box::new(|s| s.image = String::new()), InvalidSpec::Image(String::new())),
            (
                Box::new(|s| s.image = "taskfarm :1".into()),
                InvalidSpec::Image("taskfarm :1".into()),
            ),
            (
                Box::new(|s| s.zookeeper.session_timeout_seconds = 0),
                InvalidSpec::SessionTimeout(0),
            ),
            (
                Box::new(|s| s.worker.image = Some("debian :12".into())),
                InvalidSpec::WorkerImage("debian :12".into()),
            ),
            (Box::new(|s| s.worker.slots = 0), InvalidSpec::Slots(0)),
            (Box::new(|s| s.worker.slots = 257), InvalidSpec::Slots(257)),
            (
                Box::new(|s| s.admission.max_queued_tasks = Some(-1)),
                InvalidSpec::NegativeMaxQueuedTasks(-1),
            ),
            (
                Box::new(|s| s.admission.max_queued_tasks = Some(MAX_QUEUED_TASKS_LIMIT + 1)),
                InvalidSpec::MaxQueuedTasksTooLarge(MAX_QUEUED_TASKS_LIMIT + 1),
            ),
            (
                Box::new(|s| s.client_profile.task = "not json".into()),
                InvalidSpec::Task,
            ),
            (Box::new(|s| s.client_profile.task = "[1]".into()), InvalidSpec::Task),
            (
                Box::new(|s| s.client_profile.concurrency = 0),
                InvalidSpec::Concurrency(0),
            ),
            (
                Box::new(|s| {
                    s.chaos.enabled = true;
                    s.chaos.targets.clear();
                }),
                InvalidSpec::NoChaosTargets,
            ),
            (
                Box::new(|s| {
                    s.chaos.enabled = true;
                    s.chaos.interval_seconds = 1;
                }),
                InvalidSpec::ChaosInterval(1),
            ),
            (
                Box::new(|s| {
                    s.chaos.enabled = true;
                    s.chaos.mode = ChaosMode::Percent;
                    s.chaos.value = 150;
                }),
                InvalidSpec::ChaosPercent(150),
            ),
        ];
        for (edit, want) in cases {
            assert_eq!(refusal(edit), want);
        }
        let connect = refusal(|s| s.zookeeper.connect = "nohostport".into());
        assert!(connect.to_string().starts_with("spec.zookeeper.connect: "), "{connect}");
        // Chaos settings only matter while chaos is on.
        assert!(validate(&farm("demo", |s| s.chaos.targets.clear())).is_ok());
    }
}
