//! Mock-API tests of the reconcile flow: each test runs one reconcile against the fake API
//! server of [`super::fixtures`] and checks the requests it made.

use std::sync::Arc;

use serde_json::Value;

use super::controller::reconcile_at;
use super::crd::{ChaosMode, Component, TaskFarm, TaskFarmStatus};
use super::farmstate::FarmState;
use super::fixtures::*;
use super::metrics::Metrics;

async fn reconcile_once(farm: &TaskFarm, world: World, zk: Result<FarmState, String>) -> (Calls, Arc<Metrics>) {
    let world = World {
        farm: Some(farm.clone()),
        ..world
    };
    let (ctx, server, _) = context(world, zk);
    reconcile_at(farm, &ctx, at(NOW)).await.expect("reconcile succeeds");
    let metrics = ctx.metrics.clone();
    // Dropping the context drops the client: the fake server then stops and hands back its calls.
    drop(ctx);
    (server.finish().await, metrics)
}

fn condition(status: &Value, type_: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

/// A farm already reconciled once (status as the controller would have written it).
fn reconciled(mut farm: TaskFarm, status: Value) -> TaskFarm {
    farm.status = Some(serde_json::from_value::<TaskFarmStatus>(status).unwrap());
    farm
}

async fn first_status(farm: &TaskFarm, world: World, zk: Result<FarmState, String>) -> Value {
    reconcile_once(farm, world, zk).await.0.status()
}

#[tokio::test]
async fn create_applies_three_owned_deployments_and_writes_status() {
    let farm = farm("demo", |s| s.clients = 1);
    let world = World {
        ready: [2, 3, 1],
        ..World::default()
    };
    let (calls, metrics) = reconcile_once(&farm, world, Ok(healthy_state())).await;
    for (role, replicas) in [("master", 2), ("worker", 3), ("client", 1)] {
        let call = calls.one("PATCH", &deployment_path(&format!("demo-{role}")));
        assert!(
            call.query.contains("fieldManager=taskfarm-controller"),
            "{}",
            call.query
        );
        assert!(call.query.contains("force=true"), "{}", call.query);
        assert_eq!(call.body["kind"], "Deployment");
        assert_eq!(call.body["spec"]["replicas"], replicas);
        assert_eq!(call.body["metadata"]["ownerReferences"][0]["kind"], "TaskFarm");
        assert_eq!(call.body["metadata"]["ownerReferences"][0]["uid"], "uid-demo");
        assert_eq!(call.body["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], true);
    }
    let status = calls.status();
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        (status["readyMasters"].clone(), status["readyWorkers"].clone()),
        (2.into(), 3.into())
    );
    assert_eq!(status["readyClients"], 1);
    assert_eq!(status["leader"], "demo-master-abc");
    assert_eq!(status["epoch"], 4);
    assert_eq!(
        (status["liveWorkers"].clone(), status["pending"].clone()),
        (3.into(), 2.into())
    );
    assert_eq!(
        (status["running"].clone(), status["completed"].clone()),
        (3.into(), 100.into())
    );
    assert_eq!(
        status["workerSelector"],
        "app.kubernetes.io/component=worker,taskfarm.dev/farm=demo"
    );
    assert_eq!(condition(&status, "Ready"), ("True".into(), "FarmReady".into()));
    assert_eq!(condition(&status, "Degraded"), ("False".into(), "SteadyState".into()));
    assert_eq!(condition(&status, "ChaosRunning"), ("False".into(), "Disabled".into()));
    assert_eq!(calls.event_reasons(), ["Created"]);
    let catalogue = calls.one("PATCH", &configmap_path("demo-commands"));
    assert_eq!(catalogue.body["data"]["commands.yaml"], "commands: {}\n");
    calls.none("GET", PODS);
    assert!(calls.deletes().is_empty());
    let metrics = metrics.encode();
    assert!(metrics.contains("taskfarm_controller_farm_completed{namespace=\"testns\",taskfarm=\"demo\"} 100"));
}

#[tokio::test]
async fn the_zookeeper_host_is_qualified_with_the_farm_namespace() {
    let farm = farm("demo", |_| {});
    let world = World {
        farm: Some(farm.clone()),
        ..World::default()
    };
    let (ctx, server, farms) = context(world, Ok(healthy_state()));
    reconcile_at(&farm, &ctx, at(NOW)).await.unwrap();
    drop(ctx);
    server.finish().await;
    let targets = farms.targets.lock().unwrap().clone();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].connect, "taskfarm-zookeeper.testns.svc:2181");
}

#[tokio::test]
async fn scaling_the_spec_changes_replicas_and_says_so() {
    let before = farm("demo", |_| {});
    let status = first_status(&before, World::default(), Ok(healthy_state())).await;
    let mut after = reconciled(farm("demo", |s| s.workers = 5), status);
    after.metadata.generation = Some(2);
    let (calls, _) = reconcile_once(&after, World::default(), Ok(healthy_state())).await;
    assert_eq!(
        calls.one("PATCH", &deployment_path("demo-worker")).body["spec"]["replicas"],
        5
    );
    assert_eq!(
        calls.one("PATCH", &deployment_path("demo-master")).body["spec"]["replicas"],
        2
    );
    assert_eq!(calls.event_reasons(), ["Scaled"]);
    assert!(calls.event("Scaled").body["note"]
        .as_str()
        .unwrap()
        .contains("workers 3→5"));
    let status = calls.status();
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(status["desired"]["workers"], 5);
}

#[tokio::test]
async fn suspend_scales_every_role_to_zero_and_stops_chaos() {
    let before = farm("demo", |s| s.clients = 2);
    let status = first_status(&before, World::default(), Ok(healthy_state())).await;
    let suspended = reconciled(
        farm("demo", |s| {
            s.clients = 2;
            s.suspend = true;
            s.chaos.enabled = true;
        }),
        status,
    );
    let world = World {
        pods: vec![pod("demo", "demo-worker-1", Component::Worker)],
        ..World::default()
    };
    let (calls, _) = reconcile_once(&suspended, world, Ok(FarmState::default())).await;
    for role in ["master", "worker", "client"] {
        assert_eq!(
            calls.one("PATCH", &deployment_path(&format!("demo-{role}"))).body["spec"]["replicas"],
            0
        );
    }
    calls.none("GET", PODS);
    assert!(calls.deletes().is_empty());
    let status = calls.status();
    assert_eq!(condition(&status, "Ready"), ("False".into(), "Suspended".into()));
    assert_eq!(condition(&status, "ChaosRunning"), ("False".into(), "Suspended".into()));
    assert!(calls.event("Scaled").body["note"]
        .as_str()
        .unwrap()
        .contains("suspended"));
}

#[tokio::test]
async fn a_deleted_farm_is_left_to_the_garbage_collector() {
    let mut gone = farm("demo", |_| {});
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(NOW)));
    let (calls, _) = reconcile_once(&gone, World::default(), Ok(healthy_state())).await;
    assert!(
        calls.0.is_empty(),
        "no request for a deleted farm: {:?}",
        calls.summary()
    );
}

#[tokio::test]
async fn status_is_written_only_when_it_changed() {
    let f = farm("demo", |_| {});
    let status = first_status(&f, World::default(), Ok(healthy_state())).await;
    let steady = reconciled(f.clone(), status.clone());
    let (calls, _) = reconcile_once(&steady, World::default(), Ok(healthy_state())).await;
    calls.none("PATCH", &status_path("demo"));
    assert!(calls.event_reasons().is_empty(), "{:?}", calls.event_reasons());
    // The farm moves on: the status follows.
    let mut progressed = healthy_state();
    progressed.completed = 150;
    let (calls, _) = reconcile_once(&steady, World::default(), Ok(progressed)).await;
    assert_eq!(calls.status()["completed"], 150);
}

#[tokio::test]
async fn a_new_leader_is_reported_with_an_event_and_a_failover_time() {
    let f = farm("demo", |_| {});
    let status = first_status(&f, World::default(), Ok(healthy_state())).await;
    let mut next = healthy_state();
    next.leader = Some("demo-master-xyz".into());
    next.epoch = Some(9);
    next.failovers = 1;
    next.leader_since_ms = Some((NOW as u64 - 5) * 1000);
    let (calls, _) = reconcile_once(&reconciled(f, status), World::default(), Ok(next)).await;
    let note = calls.event("LeaderChanged").body["note"].as_str().unwrap().to_string();
    assert!(note.contains("demo-master-xyz") && note.contains("epoch 9"), "{note}");
    let status = calls.status();
    assert_eq!(
        (status["leader"].clone(), status["epoch"].clone()),
        ("demo-master-xyz".into(), 9.into())
    );
    assert_eq!(status["lastFailoverTime"], "2027-01-15T07:59:55Z");
}

#[tokio::test]
async fn zookeeper_unreachable_keeps_the_last_view_and_is_not_ready() {
    let f = farm("demo", |_| {});
    let status = first_status(&f, World::default(), Ok(healthy_state())).await;
    let (calls, metrics) = reconcile_once(
        &reconciled(f, status),
        World::default(),
        Err("connection refused".into()),
    )
    .await;
    let status = calls.status();
    assert_eq!(
        condition(&status, "Ready"),
        ("False".into(), "ZooKeeperUnreachable".into())
    );
    assert_eq!(status["leader"], "demo-master-abc", "last known view kept");
    assert!(metrics
        .encode()
        .contains("taskfarm_controller_zookeeper_errors_total 1"));
}

#[tokio::test]
async fn an_invalid_spec_applies_nothing_and_says_why() {
    let f = farm("demo", |s| s.client_profile.task = "not json".into());
    let (calls, _) = reconcile_once(&f, World::default(), Ok(healthy_state())).await;
    assert!(calls.find("PATCH", &deployment_path("demo-master")).is_empty());
    let status = calls.status();
    assert_eq!(condition(&status, "Ready"), ("False".into(), "InvalidSpec".into()));
    assert_eq!(calls.event_reasons(), ["InvalidSpec"]);
}

#[tokio::test]
async fn a_quantity_the_api_server_would_refuse_applies_nothing_and_says_why() {
    // `cpu: lots` passes the CRD schema; the API server would refuse the worker Deployment
    // after the master's was applied, leaving the farm half-applied.
    let f = farm("demo", |s| {
        s.resources.worker.limits.insert("cpu".into(), "lots".into());
    });
    // reconcile_once also checks that the reconcile ends normally (no retry with backoff).
    let (calls, _) = reconcile_once(&f, World::default(), Ok(healthy_state())).await;
    for role in ["master", "worker", "client"] {
        calls.none("PATCH", &deployment_path(&format!("demo-{role}")));
    }
    let status = calls.status();
    assert_eq!(condition(&status, "Ready"), ("False".into(), "InvalidSpec".into()));
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready");
    let message = ready.unwrap()["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("spec.resources.worker.limits.cpu: \"lots\" is not a quantity"),
        "{message}"
    );
    let event = calls.event("InvalidSpec");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["note"], message.as_str());
    assert_eq!(calls.event_reasons(), ["InvalidSpec"]);
}

fn with_commands(s: &mut super::crd::TaskFarmSpec, timeout: &str) {
    let checksum = super::crd::CommandSpec {
        argv: vec!["sha256sum".into()],
        timeout: Some(timeout.into()),
        ..Default::default()
    };
    s.commands.insert("checksum".into(), checksum);
    s.worker.image = Some("debian:bookworm-slim".into());
}

#[tokio::test]
async fn commands_are_applied_as_a_configmap_the_workers_mount() {
    let f = farm("demo", |s| with_commands(s, "10s"));
    let world = World {
        ready: [2, 3, 0],
        ..World::default()
    };
    let (calls, _) = reconcile_once(&f, world, Ok(healthy_state())).await;
    let cm = calls.one("PATCH", &configmap_path("demo-commands"));
    assert!(cm.query.contains("fieldManager=taskfarm-controller"), "{}", cm.query);
    assert!(cm.query.contains("force=true"), "{}", cm.query);
    assert_eq!(cm.body["kind"], "ConfigMap");
    assert_eq!(cm.body["metadata"]["ownerReferences"][0]["uid"], "uid-demo");
    assert_eq!(cm.body["metadata"]["labels"]["taskfarm.dev/farm"], "demo");
    let file = cm.body["data"]["commands.yaml"].as_str().unwrap();
    assert!(taskfarm::exec::Catalogue::parse(file).unwrap().names().eq(["checksum"]));
    // Applied before the workers that mount it.
    let order = calls.summary();
    let at = |path: String| order.iter().position(|c| *c == format!("PATCH {path}")).unwrap();
    assert!(
        at(configmap_path("demo-commands")) < at(deployment_path("demo-worker")),
        "{order:?}"
    );
    let pod = &calls.one("PATCH", &deployment_path("demo-worker")).body["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"][0]["configMap"]["name"], "demo-commands");
    let worker = &pod["containers"][0];
    assert_eq!(worker["image"], "debian:bookworm-slim");
    assert_eq!(worker["command"][0], "/taskfarm-bin/taskfarm");
    assert_eq!(worker["volumeMounts"][0]["mountPath"], "/etc/taskfarm");
    assert_eq!(worker["volumeMounts"][0]["readOnly"], true);
    let env = worker["env"].as_array().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "TASKFARM_COMMANDS" && e["value"] == "/etc/taskfarm/commands.yaml"));
    assert_eq!(pod["initContainers"][0]["args"][0], "copy-self");
    // The masters know nothing of it.
    let master = &calls.one("PATCH", &deployment_path("demo-master")).body["spec"]["template"]["spec"];
    assert!(master.get("volumes").is_none() && master.get("initContainers").is_none());
    let status = calls.status();
    assert_eq!(condition(&status, "Ready"), ("True".into(), "FarmReady".into()));
}

#[tokio::test]
async fn a_bad_catalogue_applies_nothing_and_says_why() {
    let f = farm("demo", |s| with_commands(s, "soon"));
    let (calls, _) = reconcile_once(&f, World::default(), Ok(healthy_state())).await;
    calls.none("PATCH", &configmap_path("demo-commands"));
    for role in ["master", "worker", "client"] {
        calls.none("PATCH", &deployment_path(&format!("demo-{role}")));
    }
    let status = calls.status();
    assert_eq!(condition(&status, "Ready"), ("False".into(), "InvalidSpec".into()));
    let note = calls.event("InvalidSpec").body["note"].as_str().unwrap().to_string();
    assert!(
        note.starts_with("spec.commands is not a catalogue a worker accepts: commands.checksum: timeout: \"soon\""),
        "{note}"
    );
}

fn chaos_farm(edit: impl FnOnce(&mut super::crd::ChaosSpec)) -> TaskFarm {
    farm("demo", |s| {
        s.chaos.enabled = true;
        s.chaos.targets = vec![Component::Worker];
        edit(&mut s.chaos);
    })
}

fn chaos_world(pods: Vec<k8s_openapi::api::core::v1::Pod>) -> World {
    World {
        ready: [2, 3, 0],
        pods,
        ..World::default()
    }
}

#[tokio::test]
async fn chaos_kills_a_ready_old_pod_of_its_own_farm() {
    let f = chaos_farm(|c| c.grace_period_seconds = 0);
    let (calls, metrics) = reconcile_once(
        &f,
        chaos_world(vec![pod("demo", "demo-worker-1", Component::Worker)]),
        Ok(healthy_state()),
    )
    .await;
    let list = calls.one("GET", PODS);
    assert!(
        list.query.contains("labelSelector=taskfarm.dev%2Ffarm%3Ddemo"),
        "{}",
        list.query
    );
    let delete = calls.one("DELETE", &format!("{PODS}/demo-worker-1"));
    assert_eq!(delete.body["gracePeriodSeconds"], 0);
    assert_eq!(delete.body["preconditions"]["uid"], "uid-demo-worker-1");
    let status = calls.status();
    assert_eq!(status["chaos"]["kills"], 1);
    assert_eq!(status["chaos"]["completedAtLastKill"], 100);
    assert_eq!(status["chaos"]["lastKillTime"], "2027-01-15T08:00:00Z");
    let action = &status["chaos"]["lastActions"][0];
    assert_eq!(
        (
            action["pod"].clone(),
            action["role"].clone(),
            action["action"].clone(),
            action["dryRun"].clone()
        ),
        ("demo-worker-1".into(), "worker".into(), "delete".into(), false.into())
    );
    assert_eq!(condition(&status, "ChaosRunning"), ("True".into(), "Enabled".into()));
    assert!(calls.event("ChaosKill").body["note"]
        .as_str()
        .unwrap()
        .contains("demo-worker-1"));
    assert!(metrics.encode().contains("taskfarm_controller_chaos_kills_total 1"));
}

#[tokio::test]
async fn chaos_never_touches_another_farms_pods() {
    // The fake server ignores the label selector: the code must still refuse foreign pods.
    let f = chaos_farm(|_| {});
    let world = chaos_world(vec![pod("other", "other-worker-1", Component::Worker)]);
    let (calls, _) = reconcile_once(&f, world, Ok(healthy_state())).await;
    assert!(calls.deletes().is_empty(), "{:?}", calls.summary());
    assert_eq!(
        calls.status()["chaos"]["lastSkipReason"],
        "no pod of the targeted roles"
    );
}

#[tokio::test]
async fn chaos_spares_pods_that_are_not_ready_or_too_young() {
    let f = chaos_farm(|c| {
        c.mode = ChaosMode::Percent;
        c.value = 100;
        c.max_kills = 5;
    });
    let world = chaos_world(vec![
        not_ready(pod("demo", "demo-worker-1", Component::Worker)),
        created_seconds_ago(pod("demo", "demo-worker-2", Component::Worker), 10),
    ]);
    let (calls, _) = reconcile_once(&f, world, Ok(healthy_state())).await;
    assert!(calls.deletes().is_empty(), "{:?}", calls.summary());
    let why = calls.status()["chaos"]["lastSkipReason"].as_str().unwrap().to_string();
    assert!(why.contains("1 not ready") && why.contains("1 younger"), "{why}");
}

#[tokio::test]
async fn chaos_keeps_zookeeper_above_quorum() {
    let f = chaos_farm(|c| c.targets = vec![Component::Zookeeper]);
    let ensemble = |ready_1: bool| {
        let p1 = pod("demo", "demo-zookeeper-1", Component::Zookeeper);
        vec![
            pod("demo", "demo-zookeeper-0", Component::Zookeeper),
            if ready_1 { p1 } else { not_ready(p1) },
            pod("demo", "demo-zookeeper-2", Component::Zookeeper),
        ]
    };
    // One ZooKeeper pod already down: no deletion.
    let (calls, _) = reconcile_once(&f, chaos_world(ensemble(false)), Ok(healthy_state())).await;
    assert!(calls.deletes().is_empty(), "{:?}", calls.summary());
    assert!(calls.status()["chaos"]["lastSkipReason"]
        .as_str()
        .unwrap()
        .contains("quorum guard"));
    // All ready: exactly one goes.
    let (calls, _) = reconcile_once(&f, chaos_world(ensemble(true)), Ok(healthy_state())).await;
    assert_eq!(calls.deletes().len(), 1);
    assert!(calls.deletes()[0].path.contains("demo-zookeeper-"));
}

#[tokio::test]
async fn chaos_dry_run_deletes_nothing_but_records_it() {
    let f = chaos_farm(|c| c.dry_run = true);
    let (calls, metrics) = reconcile_once(
        &f,
        chaos_world(vec![pod("demo", "demo-worker-1", Component::Worker)]),
        Ok(healthy_state()),
    )
    .await;
    assert!(calls.deletes().is_empty());
    let status = calls.status();
    assert_eq!(status["chaos"]["kills"], 0);
    assert_eq!(status["chaos"]["lastActions"][0]["dryRun"], true);
    assert_eq!(status["chaos"]["lastActions"][0]["pod"], "demo-worker-1");
    assert!(status["chaos"].get("lastKillTime").is_none());
    assert_eq!(condition(&status, "ChaosRunning"), ("True".into(), "DryRun".into()));
    assert!(calls.event("ChaosDryRun").body["note"]
        .as_str()
        .unwrap()
        .contains("would delete"));
    assert!(metrics
        .encode()
        .contains("taskfarm_controller_chaos_dry_run_actions_total 1"));
}

#[tokio::test]
async fn chaos_waits_for_its_interval() {
    let f = chaos_farm(|c| c.interval_seconds = 60);
    let world = chaos_world(vec![pod("demo", "demo-worker-1", Component::Worker)]);
    let status = first_status(&f, world.clone(), Ok(healthy_state())).await;
    // 0s later (same NOW): not due, so no pod list and no deletion.
    let (calls, _) = reconcile_once(&reconciled(f, status), world, Ok(healthy_state())).await;
    calls.none("GET", PODS);
    assert!(calls.deletes().is_empty());
}

#[tokio::test]
async fn a_stalled_farm_after_a_kill_is_degraded_and_chaos_pauses() {
    let f = chaos_farm(|c| c.progress_timeout_seconds = 60);
    let world = chaos_world(vec![pod("demo", "demo-worker-1", Component::Worker)]);
    let mut status = first_status(&f, world.clone(), Ok(healthy_state())).await;
    assert_eq!(status["chaos"]["kills"], 1);
    // Ten minutes later, still 100 completed with 2 pending: degraded.
    status["chaos"]["lastRunTime"] = Value::String("2027-01-15T07:50:00Z".into());
    status["chaos"]["lastKillTime"] = Value::String("2027-01-15T07:50:00Z".into());
    let (calls, metrics) = reconcile_once(&reconciled(f, status), world, Ok(healthy_state())).await;
    let status = calls.status();
    assert_eq!(condition(&status, "Degraded"), ("True".into(), "NoProgress".into()));
    let event = calls.event("Degraded");
    assert_eq!(event.body["type"], "Warning");
    assert!(calls.deletes().is_empty(), "chaos pauses while degraded");
    assert_eq!(status["chaos"]["lastSkipReason"], "paused: the farm is Degraded");
    assert!(metrics
        .encode()
        .contains("taskfarm_controller_farm_degraded{namespace=\"testns\",taskfarm=\"demo\"} 1"));
}

#[tokio::test]
async fn chaos_pauses_when_zookeeper_cannot_be_read() {
    let f = chaos_farm(|_| {});
    let world = chaos_world(vec![pod("demo", "demo-worker-1", Component::Worker)]);
    let (calls, _) = reconcile_once(&f, world, Err("timeout".into())).await;
    calls.none("GET", PODS);
    assert!(calls.deletes().is_empty());
    assert_eq!(
        calls.status()["chaos"]["lastSkipReason"],
        "paused: the farm's ZooKeeper state cannot be read"
    );
}

#[tokio::test]
async fn chaos_fixed_mode_deletes_several_pods_up_to_max_kills() {
    let f = chaos_farm(|c| {
        c.mode = ChaosMode::Fixed;
        c.value = 3;
        c.max_kills = 2;
    });
    let pods = (1..=4)
        .map(|i| pod("demo", &format!("demo-worker-{i}"), Component::Worker))
        .collect();
    let (calls, _) = reconcile_once(&f, chaos_world(pods), Ok(healthy_state())).await;
    assert_eq!(calls.deletes().len(), 2, "{:?}", calls.summary());
    let status = calls.status();
    assert_eq!(status["chaos"]["kills"], 2);
    assert_eq!(status["chaos"]["lastActions"].as_array().unwrap().len(), 2);
    assert_eq!(
        calls
            .find("POST", EVENTS)
            .iter()
            .filter(|c| c.body["reason"] == "ChaosKill")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_victim_that_vanished_before_the_delete_is_not_counted() {
    let f = chaos_farm(|_| {});
    let world = World {
        vanished: vec!["demo-worker-1".into()],
        ..chaos_world(vec![pod("demo", "demo-worker-1", Component::Worker)])
    };
    let (calls, _) = reconcile_once(&f, world, Ok(healthy_state())).await;
    assert_eq!(calls.deletes().len(), 1);
    let status = calls.status();
    assert_eq!(status["chaos"]["kills"], 0);
    assert!(status["chaos"]["lastActions"].as_array().unwrap().is_empty());
    assert!(!calls.event_reasons().contains(&"ChaosKill".to_string()));
}

#[tokio::test]
async fn the_action_history_keeps_the_newest_ten() {
    let f = chaos_farm(|_| {});
    let world = chaos_world(vec![pod("demo", "demo-worker-1", Component::Worker)]);
    let mut status = first_status(&f, world.clone(), Ok(healthy_state())).await;
    let old: Vec<Value> = (0..10)
        .map(|i| serde_json::json!({"time": "2027-01-15T07:00:00Z", "pod": format!("old-{i}"), "role": "worker", "action": "delete", "dryRun": false}))
        .collect();
    status["chaos"]["lastActions"] = Value::Array(old);
    status["chaos"]["lastRunTime"] = Value::String("2027-01-15T07:00:00Z".into());
    status["chaos"]["lastKillTime"] = Value::String("2027-01-15T07:00:00Z".into());
    status["chaos"]["completedAtLastKill"] = 50.into();
    let (calls, _) = reconcile_once(&reconciled(f, status), world, Ok(healthy_state())).await;
    let actions = calls.status()["chaos"]["lastActions"].as_array().unwrap().clone();
    assert_eq!(actions.len(), 10);
    assert_eq!(actions[0]["pod"], "old-1");
    assert_eq!(actions[9]["pod"], "demo-worker-1");
}

#[tokio::test]
async fn a_refused_apply_fails_the_reconcile_and_backs_off() {
    use super::controller::error_policy;
    use kube::runtime::controller::Action;
    use std::time::Duration;
    let f = Arc::new(farm("demo", |_| {}));
    let world = World {
        farm: Some((*f).clone()),
        reject_apply: true,
        ..World::default()
    };
    let (ctx, server, _) = context(world, Ok(healthy_state()));
    let err = super::controller::reconcile(f.clone(), ctx.clone()).await.unwrap_err();
    assert!(err.to_string().contains("quantities"), "{err}");
    // The error names the step and the Deployment.
    assert!(
        matches!(&err, super::controller::Error::Apply { kind, name, .. } if kind == "Deployment" && name == "demo-master"),
        "{err:?}"
    );
    assert_eq!(err.step(), "apply");
    assert_eq!(
        error_policy(f.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(f.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    assert!(ctx
        .metrics
        .encode()
        .contains("taskfarm_controller_reconcile_errors_total 2"));
    drop(ctx);
    let calls = server.finish().await;
    calls.none("PATCH", &status_path("demo"));
}

#[tokio::test]
async fn the_next_reconcile_comes_at_the_resync_or_when_chaos_is_due() {
    use kube::runtime::controller::Action;
    use std::time::Duration;
    let requeue_after = |f: TaskFarm| async move {
        let world = World {
            farm: Some(f.clone()),
            ..World::default()
        };
        let (ctx, server, _) = context(world, Ok(healthy_state()));
        let action = reconcile_at(&f, &ctx, at(NOW)).await.unwrap();
        drop(ctx);
        server.finish().await;
        action
    };
    // Without chaos: the resync period of the test context (10s).
    let plain = farm("demo", |_| {});
    assert_eq!(requeue_after(plain).await, Action::requeue(Duration::from_secs(10)));
    // Chaos due in 4s: sooner than the resync.
    let f = chaos_farm(|c| c.interval_seconds = 60);
    let mut status = TaskFarmStatus::default();
    status.chaos.last_run_time = Some("2027-01-15T07:59:04Z".into());
    let mut soon = f.clone();
    soon.status = Some(status);
    assert_eq!(requeue_after(soon).await, Action::requeue(Duration::from_secs(4)));
}

#[tokio::test]
async fn a_reconcile_on_a_cache_older_than_our_write_repeats_nothing() {
    // The watch event carrying our status write has not arrived yet: the second reconcile
    // sees the same object (same resourceVersion) without status.
    let f = chaos_farm(|_| {});
    let world = World {
        farm: Some(f.clone()),
        ..chaos_world(vec![pod("demo", "demo-worker-1", Component::Worker)])
    };
    let (ctx, server, _) = context(world, Ok(healthy_state()));
    reconcile_at(&f, &ctx, at(NOW)).await.unwrap();
    reconcile_at(&f, &ctx, at(NOW + 1)).await.unwrap();
    drop(ctx);
    let calls = server.finish().await;
    assert_eq!(calls.event_reasons(), ["Created", "ChaosKill"], "{:?}", calls.summary());
    assert_eq!(calls.deletes().len(), 1);
    // The second status write (the Degraded check now says Recovering) still counts one kill.
    let writes = calls.find("PATCH", &status_path("demo"));
    assert_eq!(writes.last().unwrap().body["status"]["chaos"]["kills"], 1);
    let reason = |c: &&Call| condition(&c.body["status"], "Degraded").1;
    assert_eq!(
        writes.iter().map(reason).collect::<Vec<_>>(),
        ["SteadyState", "Recovering"]
    );
}

#[tokio::test]
async fn pod_settings_reach_every_applied_deployment() {
    use k8s_openapi::api::core::v1::LocalObjectReference;
    let f = farm("demo", |s| {
        s.pod.image_pull_secrets = vec![LocalObjectReference {
            name: "registry".into(),
        }];
        s.worker.pod.node_selector.insert("pool".into(), "big".into());
    });
    let (calls, _) = reconcile_once(&f, World::default(), Ok(healthy_state())).await;
    for role in ["master", "worker", "client"] {
        let pod = &calls.one("PATCH", &deployment_path(&format!("demo-{role}"))).body["spec"]["template"]["spec"];
        assert_eq!(
            pod["imagePullSecrets"],
            serde_json::json!([{"name": "registry"}]),
            "{role}"
        );
        let pool = if role == "worker" {
            Value::from("big")
        } else {
            Value::Null
        };
        assert_eq!(pod["nodeSelector"]["pool"], pool, "{role}");
    }
}

#[tokio::test]
async fn a_pod_label_the_controller_sets_applies_nothing_and_says_why() {
    let f = farm("demo", |s| {
        s.worker
            .pod
            .labels
            .insert("app.kubernetes.io/component".into(), "master".into());
    });
    let (calls, _) = reconcile_once(&f, World::default(), Ok(healthy_state())).await;
    calls.none("PATCH", &configmap_path("demo-commands"));
    for role in ["master", "worker", "client"] {
        calls.none("PATCH", &deployment_path(&format!("demo-{role}")));
    }
    let note = calls.event("InvalidSpec").body["note"].as_str().unwrap().to_string();
    assert_eq!(
        note,
        "spec.worker.pod.labels: \"app.kubernetes.io/component\" is set by the controller (it selects the farm's pods)"
    );
}

/// The liveness probe's view: a reconcile is due at once while it runs, then after the requeue it
/// asked for (the resync here); an error's backoff likewise; a deleted farm drops out.
#[tokio::test]
async fn each_reconcile_says_when_the_next_is_due_for_the_liveness_probe() {
    use super::controller::{error_policy, reconcile};
    use std::time::{Duration, Instant};
    let f = Arc::new(farm("demo", |_| {}));
    let world = World {
        farm: Some((*f).clone()),
        ..World::default()
    };
    let (ctx, server, _) = context(world, Ok(healthy_state()));
    let before = Instant::now();
    reconcile(f.clone(), ctx.clone()).await.expect("reconcile succeeds");
    let due = ctx.progress.due("testns/demo").expect("the farm is scheduled");
    assert!(
        due >= before + ctx.resync && due <= Instant::now() + ctx.resync,
        "due at the resync"
    );
    let bound = ctx.progress.bound();
    assert_eq!(ctx.progress.stalled(due + bound), None, "late by the bound: not yet");
    let (farm_named, late) = ctx
        .progress
        .stalled(due + bound + Duration::from_secs(1))
        .expect("past the bound: stalled");
    assert_eq!(
        (farm_named.as_str(), late),
        ("testns/demo", bound + Duration::from_secs(1))
    );

    let err = super::controller::Error::NoNamespace;
    let before = Instant::now();
    error_policy(f.clone(), &err, ctx.clone());
    let due = ctx.progress.due("testns/demo").unwrap();
    assert!(due >= before + Duration::from_secs(5), "due after the backoff");

    let mut gone = (*f).clone();
    gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(NOW)));
    reconcile(Arc::new(gone), ctx.clone()).await.unwrap();
    assert_eq!(ctx.progress.due("testns/demo"), None, "a deleted farm is forgotten");
    assert!(!ctx.metrics.encode().contains("taskfarm=\"demo\""));
    drop(ctx);
    server.finish().await;
}
