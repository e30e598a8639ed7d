//! Bad input the service suite does not already sweep (see tests/service.rs for malformed,
//! unknown-kind and oversize payloads at the client, garbage in /tasks and /workers, a missing
//! payload and a bogus assignment): garbage payloads behind valid task records, a foreign znode
//! squatting on a task id in /data, an oversize foreign record, ZooKeeper unreachable at start,
//! and the whole ensemble gone for longer than the session timeout.
//! Each gets a clear error or a logged skip; nothing crashes; nothing valid is lost.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{shared_standalone, wait_children, wait_data, Farm};
use nix::sys::signal::Signal;
use taskfarm::protocol::{FarmStatus, TaskRecord, TaskResult};
use taskfarm_harness::{free_port, ZkCluster};

const SLEEP_0: &str = r#"{"kind":"sleep","ms":0}"#;

fn assert_exactly_once(farm: &Farm, client: &str, expected: usize) {
    let mut per_task: HashMap<String, usize> = HashMap::new();
    for r in farm.results(client) {
        *per_task.entry(r["task"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_task.len(), expected, "{client}: every task delivered");
    assert!(per_task.values().all(|&n| n == 1), "{client}: no duplicate delivery");
}

#[tokio::test]
async fn garbage_payloads_become_error_results_and_a_squatter_gets_a_clear_error() {
    let farm = Farm::new(&shared_standalone().connect_string(), "baddata", Duration::from_secs(5));
    let observer = farm.observer().await;
    let (persistent, ephemeral) = (observer.persistent(), observer.ephemeral());
    let record = TaskRecord::queued("foreign", 0).to_bytes();
    // Valid task records whose payloads (dropped by a foreign client) are garbage.
    for (id, payload) in [
        ("binary", &[0xff, 0x00, 0xfe][..]),
        ("empty", &b""[..]),
        ("unknown-kind", &br#"{"kind":"teleport"}"#[..]),
        ("not-an-object", &b"[1,2,3]"[..]),
    ] {
        observer
            .client
            .create(&format!("/data/{id}"), payload, &ephemeral)
            .await
            .unwrap();
        observer
            .client
            .create(&format!("/tasks/{id}"), &record, &ephemeral)
            .await
            .unwrap();
    }
    // A foreign record far over the size limit, and a stray payload with no task record.
    let huge = format!(r#"{{"client":"x","state":"queued","pad":"{}"}}"#, "x".repeat(200_000));
    observer
        .client
        .create("/tasks/huge", huge.as_bytes(), &persistent)
        .await
        .unwrap();
    observer
        .client
        .create("/data/orphan", SLEEP_0.as_bytes(), &persistent)
        .await
        .unwrap();
    // A foreign znode squatting on the id the client will give its first task.
    observer
        .client
        .create("/data/c-00000001", b"squat", &persistent)
        .await
        .unwrap();

    let mut m = farm.master("m1");
    let mut w = farm.worker("w1");
    let mut client = farm.client("c", 20, 4, SLEEP_0);
    let summary = client.json_summary().await;
    // The squatted id is refused with a clear error; the 19 others complete.
    assert_eq!(summary["completed"], 19, "{summary}");
    assert_eq!(summary["lost"], 1, "{summary}");
    assert!(!client.exit().await.success());
    assert!(
        client.log().contains("task id c-00000001 is already taken"),
        "{}",
        client.log()
    );
    for id in ["binary", "empty", "unknown-kind", "not-an-object"] {
        // The worker's commit replaces the payload by the (error) result.
        let result = wait_data(&observer, &format!("/data/{id}"), "the garbage task failing", |d| {
            TaskResult::parse(d?).ok()
        })
        .await;
        assert!(!result.ok, "{id}: {result:?}");
        assert!(result.error.unwrap().contains("rejected"), "{id}");
    }
    assert!(
        m.log().contains("/tasks/huge"),
        "the master reports the oversize record"
    );
    // The stray payload is left alone; nobody crashed.
    observer.client.get_data("/data/orphan").await.unwrap();
    for p in [&mut m, &mut w] {
        assert!(p.guard.try_wait().unwrap().is_none(), "{}", p.log());
        assert!(!p.log().contains("panicked"), "{}", p.log());
    }
}

#[tokio::test]
async fn every_role_exits_with_a_clear_error_when_zookeeper_is_unreachable_at_start() {
    // Nothing listens on this port.
    let farm = Farm::new(&format!("127.0.0.1:{}", free_port()), "nozk", Duration::from_secs(2));
    let roles: [&[&str]; 6] = [
        &["master", "--id", "m1"],
        &["worker", "--id", "w1"],
        &["client", "--id", "c1", "--tasks", "1"],
        &["submit", SLEEP_0],
        &["zk", "init"],
        &["election", "--id", "e1"],
    ];
    for args in roles {
        let mut all = vec!["--connect-timeout", "2s"];
        all.extend_from_slice(args);
        let mut p = farm.spawn(args[0], &all);
        let status = p.exit().await;
        let log = p.log();
        assert_eq!(status.code(), Some(1), "{args:?}: {status}\n{log}");
        assert!(log.contains("no ZooKeeper server answered"), "{args:?}: {log}");
        assert!(!log.contains("panicked"), "{args:?}: {log}");
    }
}

#[tokio::test]
async fn the_farm_recovers_when_the_whole_ensemble_is_gone_longer_than_the_session_timeout() {
    let mut zk = ZkCluster::ensemble(3, common::zk_options()).unwrap();
    let session = Duration::from_secs(2);
    let farm = Farm::new(&zk.connect_string(), "zkgone", session);
    let observer = farm.observer().await;
    let mut roles = vec![
        farm.master("m1"),
        farm.master("m2"),
        farm.worker("w1"),
        farm.worker("w2"),
    ];
    let mut client = farm.client("c", 300, 4, r#"{"kind":"sleep","ms":20}"#);
    wait_data(&observer, "/status", "some progress", |d| {
        (FarmStatus::parse(d?).ok()?.completed_total >= 20).then_some(())
    })
    .await;
    drop(observer);

    for i in 0..zk.len() {
        zk.stop_server(i, Signal::SIGKILL).unwrap();
    }
    // The fault itself: every server down for well over the session timeout (every role's
    // client declares its session expired after about 1.4 times it).
    tokio::time::sleep(session * 4).await;
    for i in 0..zk.len() {
        zk.start_server(i).unwrap();
    }
    zk.wait_serving(common::LIMIT).unwrap();

    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 300, "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    assert!(
        summary["sessions"].as_u64().unwrap() >= 2,
        "a new session after the outage: {summary}"
    );
    assert!(client.exit().await.success());
    assert_exactly_once(&farm, "c", 300);
    for p in &mut roles {
        assert!(p.guard.try_wait().unwrap().is_none(), "{}", p.log());
        assert!(!p.log().contains("panicked"), "{}", p.log());
    }
    for p in &roles {
        p.signal(Signal::SIGTERM);
    }
    for p in &mut roles {
        assert!(p.exit().await.success());
    }
    let observer = farm.observer().await;
    for parent in ["/tasks", "/data", "/workers", "/master"] {
        wait_children(&observer, parent, "everything gone", |c| c.is_empty().then_some(())).await;
    }
}

#[tokio::test]
async fn submit_into_a_chroot_with_no_farm_fails_at_once_and_creates_nothing() {
    let zk = shared_standalone();
    // A typo in the chroot: nothing there.
    let farm = Farm::new(&zk.connect_string(), "nofarm", Duration::from_secs(10));
    let mut submit = farm.spawn("submit", &["submit", r#"{"kind":"echo","message":1}"#]);
    assert!(!submit.exit().await.success());
    let log = submit.log();
    assert!(log.contains("no farm at") && log.contains("taskfarm zk init"), "{log}");
    let root = taskfarm::zk::ZkConfig::new(
        &zk.connect_string(),
        Duration::from_secs(10),
        Duration::from_secs(30),
        "",
    )
    .unwrap()
    .connect()
    .await
    .unwrap();
    assert!(
        root.client.check_stat(&farm.chroot).await.unwrap().is_none(),
        "submit created the chroot {}",
        farm.chroot
    );
    // A chroot that exists but holds no farm (no layout): the same answer, naming /tasks.
    root.client
        .create(
            &farm.chroot,
            b"",
            &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .unwrap();
    let mut submit = farm.spawn("submit2", &["submit", r#"{"kind":"echo","message":1}"#]);
    assert!(!submit.exit().await.success());
    let log = submit.log();
    assert!(log.contains("/tasks does not exist"), "{log}");
}

#[tokio::test]
async fn a_connection_limit_on_the_server_is_named_as_the_likely_cause() {
    let zk = ZkCluster::standalone(taskfarm_harness::ZkOptions {
        max_client_connections: 2,
        ..common::zk_options()
    })
    .unwrap();
    let farm = Farm::new(&zk.connect_string(), "cnxns", Duration::from_secs(10));
    // Two sessions from this host use up the limit.
    let _held = [farm.observer().await, farm.observer().await];
    let mut init = farm.spawn("init", &["--connect-timeout", "2s", "zk", "init"]);
    assert!(!init.exit().await.success());
    let log = init.log();
    assert!(log.contains("maxClientCnxns"), "{log}");
}

#[tokio::test]
async fn with_no_connect_limit_a_worker_waits_for_zookeeper_to_come_up() {
    let mut zk = ZkCluster::standalone(common::zk_options()).unwrap();
    zk.stop_server(0, Signal::SIGKILL).unwrap();
    let farm = Farm::new(&zk.connect_string(), "patient", Duration::from_secs(2));
    let mut worker = farm.spawn("w1", &["--connect-timeout", "0", "worker", "--id", "w1"]);
    // Well past the default 30 s limit would be a timing test; instead: the worker says it is
    // retrying, and it is still there to register once the server is back.
    // A log file has no event to wait on: it is polled (bounded) until the line shows.
    let deadline = tokio::time::Instant::now() + common::LIMIT;
    while !worker.log().contains("ZooKeeper not reachable yet") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retry logged:\n{}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    zk.start_server(0).unwrap();
    let observer = farm.observer().await;
    wait_children(&observer, "/workers", "the patient worker", |c| {
        (c == ["w1"]).then_some(())
    })
    .await;
    worker.signal(Signal::SIGTERM);
    assert!(worker.exit().await.success());
}
