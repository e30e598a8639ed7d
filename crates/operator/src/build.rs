//! Pure builders: from a validated TaskFarm ([`ValidatedFarm`]) to the objects the controller
//! applies. They take nothing unvalidated, so whatever they build the API server accepts; no API
//! calls here, so every field of every object is unit-tested directly.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::crd::{Component, RoleCounts};
use super::validate::{Quantities, ValidatedFarm};
use super::worker;

pub const FIELD_MANAGER: &str = "taskfarm-controller";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_FARM: &str = "taskfarm.dev/farm";
pub const HTTP_PORT: i32 = 8080;
/// The UID the image runs as (distroless "nonroot").
pub const RUN_AS_USER: i64 = 65532;

/// The roles the controller runs as Deployments (ZooKeeper belongs to the chart).
pub const DEPLOYED_ROLES: [Component; 3] = [Component::Master, Component::Worker, Component::Client];

/// `<farm>-<role>`.
pub fn deployment_name(farm: &str, role: Component) -> String {
    format!("{farm}-{}", role.as_str())
}

/// The selector of one role's pods: stable for the life of the Deployment (selectors are immutable).
pub fn selector_labels(farm: &str, role: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_FARM.to_string(), farm.to_string()),
        (LABEL_COMPONENT.to_string(), role.as_str().to_string()),
    ])
}

/// The labels on a role's Deployment and pods.
pub fn labels(farm: &str, role: Component) -> BTreeMap<String, String> {
    let mut labels = selector_labels(farm, role);
    labels.insert(LABEL_NAME.into(), "taskfarm".into());
    labels.insert(LABEL_INSTANCE.into(), farm.into());
    labels.insert(LABEL_MANAGED_BY.into(), FIELD_MANAGER.into());
    labels
}

/// `taskfarm.dev/farm=<farm>,app.kubernetes.io/component=<role>`, as a label-selector string.
pub fn selector_string(farm: &str, role: Component) -> String {
    selector_labels(farm, role)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The replicas a role should run: the spec's number, or 0 while the farm is suspended.
pub fn desired_replicas(farm: &ValidatedFarm, role: Component) -> i32 {
    if farm.suspend {
        return 0;
    }
    match role {
        Component::Master => farm.replicas.masters,
        Component::Worker => farm.replicas.workers,
        Component::Client => farm.replicas.clients,
        Component::Zookeeper => 0,
    }
}

/// The replicas of every deployed role.
pub fn desired(farm: &ValidatedFarm) -> RoleCounts {
    RoleCounts {
        masters: desired_replicas(farm, Component::Master),
        workers: desired_replicas(farm, Component::Worker),
        clients: desired_replicas(farm, Component::Client),
    }
}

/// The Deployment of one role, complete, ready for server-side apply.
pub fn deployment(farm: &ValidatedFarm, role: Component) -> Deployment {
    let name = &farm.name;
    let labels = labels(name, role);
    Deployment {
        metadata: ObjectMeta {
            name: Some(deployment_name(name, role)),
            namespace: Some(farm.namespace.clone()),
            labels: Some(labels.clone()),
            // Deleting the TaskFarm deletes its Deployments (garbage collection).
            owner_references: Some(vec![farm.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(desired_replicas(farm, role)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(name, role)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(pod_metadata(farm, role, labels)),
                spec: Some(pod_spec(farm, role)),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The role's labels and the user's (validated not to touch ours); the user's annotations and,
/// for workers, the catalogue's digest.
fn pod_metadata(farm: &ValidatedFarm, role: Component, own: BTreeMap<String, String>) -> ObjectMeta {
    let settings = farm.pods.get(role);
    let mut labels = settings.labels.clone();
    labels.extend(own);
    let mut annotations = settings.annotations.clone();
    if role == Component::Worker {
        annotations.extend(worker::pod_annotations(farm).unwrap_or_default());
    }
    ObjectMeta {
        labels: Some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    }
}

fn pod_spec(farm: &ValidatedFarm, role: Component) -> PodSpec {
    let settings = farm.pods.get(role);
    let mut pod = PodSpec {
        containers: vec![container(farm, role)],
        image_pull_secrets: (!settings.image_pull_secrets.is_empty()).then(|| settings.image_pull_secrets.clone()),
        node_selector: (!settings.node_selector.is_empty()).then(|| settings.node_selector.clone()),
        tolerations: (!settings.tolerations.is_empty()).then(|| settings.tolerations.clone()),
        affinity: settings.affinity.clone(),
        priority_class_name: settings.priority_class_name.clone(),
        termination_grace_period_seconds: Some(30),
        automount_service_account_token: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    };
    if role == Component::Worker {
        worker::adapt(farm, &mut pod);
    }
    pod
}

fn container(farm: &ValidatedFarm, role: Component) -> Container {
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    Container {
        name: role.as_str().into(),
        image: Some(farm.image.clone()),
        image_pull_policy: Some(farm.image_pull_policy.as_str().into()),
        args: Some(args(farm, role)),
        env: Some(env(farm, role)),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: HTTP_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        resources: Some(resource_requirements(farm.resources(role))),
        security_context: Some(container_security_context()),
        ..Container::default()
    }
}

/// Every container of the farm's pods: the "restricted" Pod Security Standard and a read-only
/// root filesystem.
pub(crate) fn container_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS_USER),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

/// The role's command line (the image's entrypoint is `/taskfarm`).
pub fn args(farm: &ValidatedFarm, role: Component) -> Vec<String> {
    match role {
        Component::Client => vec![
            "client".into(),
            "--tasks".into(),
            "0".into(),
            "--concurrency".into(),
            farm.client_profile.concurrency.to_string(),
            "--task".into(),
            farm.client_profile.task.clone(),
        ],
        other => vec![other.as_str().into()],
    }
}

fn env(farm: &ValidatedFarm, role: Component) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    let zk = &farm.zookeeper;
    let mut env = vec![
        value("TASKFARM_ZK", zk.connect.clone()),
        value("TASKFARM_SESSION_TIMEOUT", format!("{}s", zk.session_timeout_seconds)),
        value("TASKFARM_LOG_FORMAT", "json".into()),
        value("TASKFARM_HEALTH_ADDR", format!("0.0.0.0:{HTTP_PORT}")),
        // Wait for ZooKeeper for as long as it takes (logging each attempt) instead of exiting
        // after 30 s: a fresh farm shows no restarts while its ZooKeeper comes up.
        value("TASKFARM_CONNECT_TIMEOUT", "0".into()),
        EnvVar {
            name: "TASKFARM_ID".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
        },
    ];
    if let Some(secret) = &zk.secret_name {
        env.push(EnvVar {
            name: "TASKFARM_ZK_SECRET".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: "secret".into(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    // The admission bound: each new leader sets it (a ZooKeeper quota), so only masters need it.
    if let (Component::Master, Some(tasks)) = (role, farm.max_queued_tasks) {
        env.push(value("TASKFARM_MAX_QUEUED_TASKS", tasks.to_string()));
    }
    env
}

fn resource_requirements(r: &Quantities) -> ResourceRequirements {
    let quantities = |m: &BTreeMap<String, _>| (!m.is_empty()).then(|| m.clone());
    ResourceRequirements {
        requests: quantities(&r.requests),
        limits: quantities(&r.limits),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{farm, valid_farm};
    use crate::validate::{validate, InvalidSpec};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn container_of(d: &Deployment) -> &Container {
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.containers.len(), 1);
        &pod.containers[0]
    }

    fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.as_ref().unwrap().iter().find(|e| e.name == name)
    }

    #[test]
    fn deployments_carry_the_contract_labels_and_selector() {
        let f = valid_farm("demo", |_| {});
        for role in DEPLOYED_ROLES {
            let d = deployment(&f, role);
            assert_eq!(d.metadata.name.as_deref(), Some(&*format!("demo-{}", role.as_str())));
            assert_eq!(d.metadata.namespace.as_deref(), Some("testns"));
            let labels = d.metadata.labels.as_ref().unwrap();
            assert_eq!(labels[LABEL_NAME], "taskfarm");
            assert_eq!(labels[LABEL_INSTANCE], "demo");
            assert_eq!(labels[LABEL_COMPONENT], role.as_str());
            assert_eq!(labels[LABEL_MANAGED_BY], "taskfarm-controller");
            assert_eq!(labels[LABEL_FARM], "demo");
            let spec = d.spec.as_ref().unwrap();
            let pod_labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            assert_eq!(pod_labels, labels);
            let selector = spec.selector.match_labels.as_ref().unwrap();
            assert_eq!(selector.len(), 2);
            assert_eq!(selector[LABEL_FARM], "demo");
            assert_eq!(selector[LABEL_COMPONENT], role.as_str());
        }
        assert_eq!(
            selector_string("demo", Component::Worker),
            "app.kubernetes.io/component=worker,taskfarm.dev/farm=demo"
        );
    }

    #[test]
    fn deployments_are_owned_by_their_taskfarm() {
        let f = valid_farm("demo", |_| {});
        let owners = deployment(&f, Component::Worker).metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        let o = &owners[0];
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("TaskFarm", "demo"));
        assert_eq!(o.api_version, "taskfarm.dev/v1alpha1");
        assert_eq!(o.uid, "uid-demo");
        assert_eq!(o.controller, Some(true));
        assert_eq!(o.block_owner_deletion, Some(true), "foreground deletion waits for it");
    }

    #[test]
    fn replicas_follow_the_spec_and_suspend_scales_everything_to_zero() {
        let f = valid_farm("demo", |s| {
            s.masters = 2;
            s.workers = 5;
            s.clients = 0;
        });
        let replicas = |f: &ValidatedFarm, r| deployment(f, r).spec.unwrap().replicas.unwrap();
        assert_eq!(replicas(&f, Component::Master), 2);
        assert_eq!(replicas(&f, Component::Worker), 5);
        assert_eq!(replicas(&f, Component::Client), 0);
        let suspended = valid_farm("demo", |s| {
            s.workers = 5;
            s.clients = 2;
            s.suspend = true;
        });
        for role in DEPLOYED_ROLES {
            assert_eq!(replicas(&suspended, role), 0, "{role:?}");
        }
    }

    #[test]
    fn args_start_the_right_role() {
        let f = valid_farm("demo", |s| {
            s.client_profile.concurrency = 8;
            s.client_profile.task = r#"{"kind":"echo"}"#.into();
        });
        assert_eq!(
            container_of(&deployment(&f, Component::Master)).args.as_ref().unwrap(),
            &["master"]
        );
        assert_eq!(
            container_of(&deployment(&f, Component::Worker)).args.as_ref().unwrap(),
            &["worker"]
        );
        assert_eq!(
            container_of(&deployment(&f, Component::Client)).args.as_ref().unwrap(),
            &[
                "client",
                "--tasks",
                "0",
                "--concurrency",
                "8",
                "--task",
                r#"{"kind":"echo"}"#
            ]
        );
        let d = deployment(&f, Component::Worker);
        let c = container_of(&d);
        assert_eq!(c.name, "worker");
        assert_eq!(c.image.as_deref(), Some("taskfarm:0.1.0"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn every_role_waits_for_zookeeper_instead_of_crash_looping() {
        let plain = valid_farm("demo", |_| {});
        let own_image = valid_farm("demo", |s| s.worker.image = Some("debian:bookworm-slim".into()));
        for (farm, role) in DEPLOYED_ROLES
            .into_iter()
            .map(|r| (&plain, r))
            .chain([(&own_image, Component::Worker)])
        {
            let d = deployment(farm, role);
            let c = container_of(&d);
            let timeout = env_value(c, "TASKFARM_CONNECT_TIMEOUT").map(|e| e.value.as_deref());
            assert_eq!(timeout, Some(Some("0")), "{}", role.as_str());
        }
    }

    #[test]
    fn env_points_the_roles_at_zookeeper() {
        let f = valid_farm("demo", |s| {
            s.zookeeper.connect = "zk-0.zk:2181/farm".into();
            s.zookeeper.session_timeout_seconds = 8;
        });
        let c = container_of(&deployment(&f, Component::Master)).clone();
        let value = |n| env_value(&c, n).and_then(|e| e.value.clone());
        assert_eq!(value("TASKFARM_ZK").as_deref(), Some("zk-0.zk:2181/farm"));
        assert_eq!(value("TASKFARM_SESSION_TIMEOUT").as_deref(), Some("8s"));
        assert_eq!(value("TASKFARM_LOG_FORMAT").as_deref(), Some("json"));
        assert_eq!(value("TASKFARM_HEALTH_ADDR").as_deref(), Some("0.0.0.0:8080"));
        let id = env_value(&c, "TASKFARM_ID").unwrap().value_from.clone().unwrap();
        assert_eq!(id.field_ref.unwrap().field_path, "metadata.name");
        assert!(env_value(&c, "TASKFARM_ZK_SECRET").is_none());

        let with_secret = valid_farm("demo", |s| s.zookeeper.secret_name = Some("zk-auth".into()));
        let c = container_of(&deployment(&with_secret, Component::Worker)).clone();
        let secret = env_value(&c, "TASKFARM_ZK_SECRET").unwrap();
        let key = secret.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((key.name.as_str(), key.key.as_str()), ("zk-auth", "secret"));
        assert!(secret.value.is_none(), "the secret never appears in the Deployment");
    }

    #[test]
    fn only_the_masters_get_the_admission_bound() {
        let bound = |f: &ValidatedFarm, role| {
            let d = deployment(f, role);
            env_value(container_of(&d), "TASKFARM_MAX_QUEUED_TASKS").cloned()
        };
        let f = valid_farm("demo", |s| {
            s.admission.max_queued_tasks = Some(900);
            s.worker.image = Some("debian:bookworm-slim".into());
        });
        let master = bound(&f, Component::Master).expect("the masters get it");
        assert_eq!(master.value.as_deref(), Some("900"));
        assert!(master.value_from.is_none());
        assert_eq!(bound(&f, Component::Worker), None, "workers never submit");
        assert_eq!(bound(&f, Component::Client), None, "clients never set it");
        // 0 is passed on: it removes the farm's bound.
        let none = valid_farm("demo", |s| s.admission.max_queued_tasks = Some(0));
        let zero = bound(&none, Component::Master).unwrap();
        assert_eq!(zero.value.as_deref(), Some("0"));
        // No field, no variable: the farm keeps whatever bound it has.
        let unset = valid_farm("demo", |_| {});
        for role in DEPLOYED_ROLES {
            assert_eq!(bound(&unset, role), None, "{}", role.as_str());
        }
        // The rest of the masters' environment is unchanged, the bound last.
        let with = deployment(&f, Component::Master);
        let without = deployment(&valid_farm("demo", |_| {}), Component::Master);
        let names =
            |d: &Deployment| -> Vec<String> { container_of(d).env.iter().flatten().map(|e| e.name.clone()).collect() };
        let mut expected = names(&without);
        expected.push("TASKFARM_MAX_QUEUED_TASKS".into());
        assert_eq!(names(&with), expected);
    }

    #[test]
    fn probes_port_and_security_context_are_hardened() {
        let f = valid_farm("demo", |_| {});
        let d = deployment(&f, Component::Worker);
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.termination_grace_period_seconds, Some(30));
        let c = &pod.containers[0];
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.container_port), (Some("http"), 8080));
        let http_get = |p: &Option<Probe>| p.as_ref().unwrap().http_get.clone().unwrap();
        let ready = http_get(&c.readiness_probe);
        assert_eq!(ready.path.as_deref(), Some("/readyz"));
        assert_eq!(ready.port, IntOrString::String("http".into()));
        let live = http_get(&c.liveness_probe);
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        assert_eq!(live.port, IntOrString::String("http".into()));
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(65532));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    }

    #[test]
    fn resources_come_from_the_spec_per_role() {
        let f = valid_farm("demo", |s| {
            s.resources.worker.requests = BTreeMap::from([("cpu".to_string(), "250m".to_string())]);
            s.resources.worker.limits.clear();
        });
        let worker = container_of(&deployment(&f, Component::Worker))
            .resources
            .clone()
            .unwrap();
        assert_eq!(worker.requests.unwrap()["cpu"], Quantity("250m".into()));
        assert!(worker.limits.is_none());
        let master = container_of(&deployment(&f, Component::Master))
            .resources
            .clone()
            .unwrap();
        assert_eq!(master.requests.unwrap()["memory"], Quantity("32Mi".into()));
        assert_eq!(master.limits.unwrap()["memory"], Quantity("128Mi".into()));
    }

    #[test]
    fn pod_settings_reach_every_role_pod_and_the_roles_own_only_theirs() {
        use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, PodAntiAffinity, Toleration};
        let secret = |name: &str| LocalObjectReference { name: name.into() };
        let f = valid_farm("demo", |s| {
            s.pod.image_pull_secrets = vec![secret("registry")];
            s.pod.annotations.insert("example.com/team".into(), "compute".into());
            s.pod.priority_class_name = Some("farm".into());
            s.worker.pod.image_pull_secrets = vec![secret("user-image")];
            s.worker.pod.node_selector.insert("pool".into(), "big".into());
            s.worker.pod.tolerations = vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Equal".into()),
                value: Some("farm".into()),
                effect: Some("NoSchedule".into()),
                toleration_seconds: None,
            }];
            s.worker.pod.labels.insert("tier".into(), "batch".into());
            s.master.pod.affinity = Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity::default()),
                ..Affinity::default()
            });
            s.client.pod.priority_class_name = Some("low".into());
            s.commands.insert(
                "checksum".into(),
                crate::crd::CommandSpec {
                    argv: vec!["sha256sum".into()],
                    ..Default::default()
                },
            );
        });
        let pod = |role| {
            let template = deployment(&f, role).spec.unwrap().template;
            (template.metadata.unwrap(), template.spec.unwrap())
        };
        let names =
            |p: &PodSpec| -> Vec<String> { p.image_pull_secrets.iter().flatten().map(|s| s.name.clone()).collect() };
        let (master_meta, master) = pod(Component::Master);
        let (worker_meta, worker) = pod(Component::Worker);
        let (client_meta, client) = pod(Component::Client);
        // Every role pulls with the pull secrets; the workers also with their own.
        assert_eq!(names(&master), ["registry"]);
        assert_eq!(names(&client), ["registry"]);
        assert_eq!(names(&worker), ["registry", "user-image"]);
        assert_eq!(worker.node_selector.as_ref().unwrap()["pool"], "big");
        assert!(master.node_selector.is_none() && client.tolerations.is_none());
        assert_eq!(
            worker.tolerations.as_ref().unwrap()[0].key.as_deref(),
            Some("dedicated")
        );
        assert!(master.affinity.as_ref().unwrap().pod_anti_affinity.is_some());
        assert!(worker.affinity.is_none());
        assert_eq!(master.priority_class_name.as_deref(), Some("farm"));
        assert_eq!(client.priority_class_name.as_deref(), Some("low"));
        // The user's labels and annotations beside the controller's own.
        let worker_labels = worker_meta.labels.unwrap();
        assert_eq!(worker_labels["tier"], "batch");
        assert_eq!(worker_labels[LABEL_FARM], "demo");
        assert_eq!(worker_labels[LABEL_COMPONENT], "worker");
        assert!(!master_meta.labels.unwrap().contains_key("tier"));
        let worker_annotations = worker_meta.annotations.unwrap();
        assert_eq!(worker_annotations["example.com/team"], "compute");
        assert!(worker_annotations.contains_key(worker::COMMANDS_DIGEST));
        assert_eq!(client_meta.annotations.unwrap()["example.com/team"], "compute");
        // Without settings, nothing is set.
        let plain = valid_farm("demo", |_| {});
        let template = deployment(&plain, Component::Master).spec.unwrap().template;
        let spec = template.spec.unwrap();
        assert!(spec.image_pull_secrets.is_none() && spec.affinity.is_none() && spec.priority_class_name.is_none());
        assert!(template.metadata.unwrap().annotations.is_none());
    }

    #[test]
    fn the_charts_plain_mode_gives_the_role_pods_the_same_settings_and_env() {
        // One values file, both modes (scripts/render-manifests.sh; CI keeps them current): the
        // TaskFarm the chart renders in operator mode, and the Deployments of plain mode.
        let mut farm: crate::crd::TaskFarm =
            serde_yaml::from_str(include_str!("../../../manifests/examples/taskfarm-pod-settings.yaml")).unwrap();
        farm.metadata.uid = Some("uid".into());
        let valid = validate(&farm).unwrap();
        let plain: Vec<Deployment> =
            serde_yaml::Deserializer::from_str(include_str!("../../../manifests/examples/plain-pod-settings.yaml"))
                .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
                .collect();
        let user_labels = |labels: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            let own = labels_for_comparison();
            labels
                .iter()
                .filter(|(k, _)| !own.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for role in DEPLOYED_ROLES {
            let name = deployment_name("taskfarm", role);
            let chart = plain
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(&*name))
                .expect(&name);
            let ours = deployment(&valid, role);
            let (chart, ours) = (&chart.spec.as_ref().unwrap().template, &ours.spec.unwrap().template);
            let (c, o) = (chart.spec.as_ref().unwrap(), ours.spec.as_ref().unwrap());
            assert_eq!(c.image_pull_secrets, o.image_pull_secrets, "{name}");
            assert!(
                o.image_pull_secrets.is_some(),
                "the chart's imagePullSecrets reach the TaskFarm"
            );
            assert_eq!(c.node_selector, o.node_selector, "{name}");
            assert_eq!(c.tolerations, o.tolerations, "{name}");
            assert_eq!(c.affinity, o.affinity, "{name}");
            assert_eq!(c.priority_class_name, o.priority_class_name, "{name}");
            // The same environment (TASKFARM_CONNECT_TIMEOUT=0 among it), in the same order.
            assert_eq!(c.containers[0].env, o.containers[0].env, "{name}");
            let (cm, om) = (chart.metadata.as_ref().unwrap(), ours.metadata.as_ref().unwrap());
            assert_eq!(cm.annotations, om.annotations, "{name}");
            assert_eq!(
                user_labels(cm.labels.as_ref().unwrap()),
                user_labels(om.labels.as_ref().unwrap()),
                "{name}"
            );
        }
        // The chart's default bound reaches the masters in both modes (compared above).
        let master = deployment(&valid, Component::Master);
        assert_eq!(
            env_value(container_of(&master), "TASKFARM_MAX_QUEUED_TASKS").and_then(|e| e.value.as_deref()),
            Some("900")
        );
        assert!(deployment(&valid, Component::Worker)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .node_selector
            .is_some());
    }

    /// The labels the chart and the controller set themselves (their values differ by design).
    fn labels_for_comparison() -> [&'static str; 5] {
        [
            LABEL_NAME,
            LABEL_INSTANCE,
            LABEL_COMPONENT,
            LABEL_MANAGED_BY,
            LABEL_FARM,
        ]
    }

    #[test]
    fn builders_take_the_validated_farm_and_build_nothing_from_a_refused_one() {
        // The builders' only input is a ValidatedFarm, and only `validate` makes one: a spec
        // the API server would refuse never reaches them.
        let lots = farm("demo", |s| {
            s.resources.worker.limits.insert("cpu".into(), "lots".into());
        });
        assert!(matches!(validate(&lots), Err(InvalidSpec::Quantity { .. })));
        let ok = farm("demo", |s| {
            s.resources.worker.limits.insert("cpu".into(), "1.5".into());
            s.zookeeper.secret_name = Some(String::new());
        });
        let valid: ValidatedFarm = validate(&ok).unwrap();
        let d = deployment(&valid, Component::Worker);
        let c = container_of(&d);
        let limits = c.resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["cpu"], Quantity("1.5".into()));
        assert!(
            env_value(c, "TASKFARM_ZK_SECRET").is_none(),
            "validated: an empty secret name is none"
        );
        assert_eq!(d.metadata.owner_references, Some(vec![valid.owner.clone()]));
        assert_eq!(d.metadata.namespace.as_deref(), Some(valid.namespace.as_str()));
    }
}
