//! Pure builders of what the worker pods have beyond the other roles: their task slots, the
//! command catalogue (a ConfigMap, mounted), and the user's image with the taskfarm binary
//! copied in by an init container (the Tekton/Argo pattern: the image needs no shell, no cp,
//! nothing of ours).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, PodSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::build::{container_security_context, labels};
use super::catalogue;
use super::crd::Component;
use super::validate::ValidatedFarm;

/// Where the init container puts the binary in a user-image worker pod.
pub const BIN_DIR: &str = "/taskfarm-bin";
pub const BIN_PATH: &str = "/taskfarm-bin/taskfarm";
/// The pod annotation holding the catalogue's SHA-256: a new catalogue rolls the workers.
pub const COMMANDS_DIGEST: &str = "taskfarm.dev/commands-sha256";
const INIT_CONTAINER: &str = "copy-taskfarm";
const BIN_VOLUME: &str = "taskfarm-bin";
const COMMANDS_VOLUME: &str = "commands";
const TMP_VOLUME: &str = "tmp";

/// `<farm>-commands`.
pub fn configmap_name(farm: &str) -> String {
    format!("{farm}-commands")
}

/// The catalogue's ConfigMap, owned by the TaskFarm, ready for server-side apply. It always
/// exists (`commands: {}` without commands), so that it never holds a catalogue the spec no
/// longer has and the controller never needs to delete it.
pub fn commands_configmap(farm: &ValidatedFarm) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(configmap_name(&farm.name)),
            namespace: Some(farm.namespace.clone()),
            labels: Some(labels(&farm.name, Component::Worker)),
            owner_references: Some(vec![farm.owner.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            catalogue::FILE.to_string(),
            farm.catalogue.yaml.clone(),
        )])),
        ..ConfigMap::default()
    }
}

/// The worker pod template's annotations: the catalogue's digest when it has commands.
pub fn pod_annotations(farm: &ValidatedFarm) -> Option<BTreeMap<String, String>> {
    farm.catalogue
        .has_commands
        .then(|| BTreeMap::from([(COMMANDS_DIGEST.to_string(), farm.catalogue.digest())]))
}

/// Turns a role pod (one container, the role image) into a worker pod: slots, the catalogue
/// when there is one, the user's image when there is one.
pub fn adapt(farm: &ValidatedFarm, pod: &mut PodSpec) {
    let mut volumes = Vec::new();
    let worker = &mut pod.containers[0];
    let env = worker.env.get_or_insert_with(Vec::new);
    env.push(value("TASKFARM_SLOTS", farm.worker.slots.to_string()));
    let mut mounts = Vec::new();
    if farm.catalogue.has_commands {
        env.push(value(
            "TASKFARM_COMMANDS",
            format!("{}/{}", catalogue::MOUNT_DIR, catalogue::FILE),
        ));
        mounts.push(mount(COMMANDS_VOLUME, catalogue::MOUNT_DIR, true));
        volumes.push(Volume {
            name: COMMANDS_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: configmap_name(&farm.name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    if let Some(image) = &farm.worker.image {
        pod.init_containers = Some(vec![copy_binary(farm, worker)]);
        worker.image = Some(image.clone());
        // The user's entrypoint is not ours: run the copied binary with the role's args.
        worker.command = Some(vec![BIN_PATH.into()]);
        // Read-only for the worker: it runs the binary, never changes it.
        mounts.push(mount(BIN_VOLUME, BIN_DIR, true));
        // Programs expect a writable /tmp; the root filesystem stays read-only.
        mounts.push(mount(TMP_VOLUME, "/tmp", false));
        volumes.push(empty_dir(BIN_VOLUME, Some("64Mi")));
        volumes.push(empty_dir(TMP_VOLUME, None));
    }
    if !mounts.is_empty() {
        worker.volume_mounts = Some(mounts);
        pod.volumes = Some(volumes);
    }
}

/// The init container: the role image's `taskfarm copy-self` into the shared volume, as hardened
/// as the worker and within its resources (a pod's request is the larger of its init
/// containers' and the sum of its containers', so this adds nothing).
fn copy_binary(farm: &ValidatedFarm, worker: &Container) -> Container {
    Container {
        name: INIT_CONTAINER.into(),
        image: Some(farm.image.clone()),
        image_pull_policy: Some(farm.image_pull_policy.as_str().into()),
        args: Some(vec!["copy-self".into(), BIN_PATH.into()]),
        volume_mounts: Some(vec![mount(BIN_VOLUME, BIN_DIR, false)]),
        resources: worker.resources.clone(),
        security_context: Some(container_security_context()),
        ..Container::default()
    }
}

fn value(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str, size_limit: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: size_limit.map(|s| Quantity(s.into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{deployment, LABEL_COMPONENT, LABEL_FARM, LABEL_MANAGED_BY};
    use crate::crd::{CommandSpec, TaskFarmSpec};
    use crate::fixtures::valid_farm;
    use k8s_openapi::api::apps::v1::Deployment;

    fn with_checksum(s: &mut TaskFarmSpec) {
        let checksum = CommandSpec {
            argv: vec!["sha256sum".into()],
            timeout: Some("10s".into()),
            ..CommandSpec::default()
        };
        s.commands.insert("checksum".into(), checksum);
    }

    fn pod(d: &Deployment) -> &PodSpec {
        d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    fn env<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
        let var = c.env.as_ref().unwrap().iter().find(|e| e.name == name)?;
        var.value.as_deref()
    }

    #[test]
    fn a_plain_worker_gets_its_slots_and_nothing_else() {
        let f = valid_farm("demo", |s| s.worker.slots = 8);
        let d = deployment(&f, Component::Worker);
        let p = pod(&d);
        assert_eq!(env(&p.containers[0], "TASKFARM_SLOTS"), Some("8"));
        assert_eq!(env(&p.containers[0], "TASKFARM_COMMANDS"), None);
        assert!(p.volumes.is_none() && p.init_containers.is_none());
        assert!(p.containers[0].volume_mounts.is_none() && p.containers[0].command.is_none());
        assert!(d.spec.unwrap().template.metadata.unwrap().annotations.is_none());
        // Slots are the workers' alone.
        let master = deployment(&f, Component::Master);
        assert_eq!(env(&pod(&master).containers[0], "TASKFARM_SLOTS"), None);
    }

    #[test]
    fn the_catalogue_is_a_configmap_owned_by_the_farm() {
        let f = valid_farm("demo", with_checksum);
        let cm = commands_configmap(&f);
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-commands"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("testns"));
        let labels = cm.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_FARM], "demo");
        assert_eq!(labels[LABEL_COMPONENT], "worker");
        assert_eq!(labels[LABEL_MANAGED_BY], "taskfarm-controller");
        assert_eq!(cm.metadata.owner_references, Some(vec![f.owner.clone()]));
        let file = &cm.data.as_ref().unwrap()["commands.yaml"];
        assert_eq!(file, &f.catalogue.yaml);
        assert!(taskfarm::exec::Catalogue::parse(file).unwrap().names().eq(["checksum"]));
        // Without commands it still exists, empty, rather than holding an old catalogue.
        let none = commands_configmap(&valid_farm("demo", |_| {}));
        assert_eq!(none.data.unwrap()["commands.yaml"], "commands: {}\n");
    }

    #[test]
    fn workers_mount_the_catalogue_read_only_and_roll_when_it_changes() {
        let f = valid_farm("demo", with_checksum);
        let d = deployment(&f, Component::Worker);
        let p = pod(&d);
        let worker = &p.containers[0];
        assert_eq!(env(worker, "TASKFARM_COMMANDS"), Some("/etc/taskfarm/commands.yaml"));
        let mounts = worker.volume_mounts.as_ref().unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(
            (
                mounts[0].name.as_str(),
                mounts[0].mount_path.as_str(),
                mounts[0].read_only
            ),
            ("commands", "/etc/taskfarm", Some(true))
        );
        let volumes = p.volumes.as_ref().unwrap();
        assert_eq!(volumes[0].config_map.as_ref().unwrap().name, "demo-commands");
        // Still the role image: the catalogue alone needs no init container.
        assert!(p.init_containers.is_none());
        assert_eq!(worker.image.as_deref(), Some("taskfarm:0.1.0"));
        let annotations = |f: &ValidatedFarm| {
            let d = deployment(f, Component::Worker);
            d.spec.unwrap().template.metadata.unwrap().annotations.unwrap()[COMMANDS_DIGEST].clone()
        };
        let other = valid_farm("demo", |s| {
            with_checksum(s);
            s.commands.get_mut("checksum").unwrap().timeout = Some("20s".into());
        });
        assert_eq!(annotations(&f), f.catalogue.digest());
        assert_ne!(annotations(&f), annotations(&other));
    }

    #[test]
    fn a_user_image_runs_the_binary_an_init_container_copied() {
        let f = valid_farm("demo", |s| {
            with_checksum(s);
            s.worker.image = Some("debian:bookworm-slim".into());
            s.image_pull_policy = crate::crd::PullPolicy::Always;
        });
        let plain = deployment(&valid_farm("demo", with_checksum), Component::Worker);
        let d = deployment(&f, Component::Worker);
        let p = pod(&d);
        let worker = &p.containers[0];
        assert_eq!(worker.image.as_deref(), Some("debian:bookworm-slim"));
        assert_eq!(
            worker.command.as_deref(),
            Some(&["/taskfarm-bin/taskfarm".to_string()][..])
        );
        // The same role, env, probes and hardening as in the role image.
        let before = &pod(&plain).containers[0];
        assert_eq!(worker.args, before.args);
        assert_eq!(worker.env, before.env);
        assert_eq!(worker.readiness_probe, before.readiness_probe);
        assert_eq!(worker.liveness_probe, before.liveness_probe);
        assert_eq!(worker.security_context, before.security_context);
        let mounts: Vec<(&str, &str, Option<bool>)> = worker
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("commands", "/etc/taskfarm", Some(true)),
                ("taskfarm-bin", "/taskfarm-bin", Some(true)),
                ("tmp", "/tmp", Some(false))
            ]
        );
        let init = &p.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "copy-taskfarm");
        assert_eq!(init.image.as_deref(), Some("taskfarm:0.1.0"));
        assert_eq!(init.image_pull_policy.as_deref(), Some("Always"));
        assert!(init.command.is_none(), "the role image's entrypoint is /taskfarm");
        assert_eq!(
            init.args.as_deref(),
            Some(&["copy-self".to_string(), "/taskfarm-bin/taskfarm".to_string()][..])
        );
        let init_mounts = init.volume_mounts.as_ref().unwrap();
        assert_eq!(
            (
                init_mounts[0].name.as_str(),
                init_mounts[0].mount_path.as_str(),
                init_mounts[0].read_only
            ),
            ("taskfarm-bin", "/taskfarm-bin", Some(false))
        );
        assert_eq!(init.security_context, worker.security_context);
        let sc = init.security_context.as_ref().unwrap();
        assert_eq!(
            (
                sc.run_as_non_root,
                sc.read_only_root_filesystem,
                sc.allow_privilege_escalation
            ),
            (Some(true), Some(true), Some(false))
        );
        assert_eq!(init.resources, worker.resources);
        let volumes = p.volumes.as_ref().unwrap();
        let bin = volumes.iter().find(|v| v.name == "taskfarm-bin").unwrap();
        assert_eq!(
            bin.empty_dir.as_ref().unwrap().size_limit,
            Some(Quantity("64Mi".into()))
        );
        assert!(volumes.iter().any(|v| v.name == "tmp" && v.empty_dir.is_some()));
        // The other roles keep the role image.
        let master = deployment(&f, Component::Master);
        assert!(pod(&master).init_containers.is_none());
        assert_eq!(pod(&master).containers[0].image.as_deref(), Some("taskfarm:0.1.0"));
    }
}
