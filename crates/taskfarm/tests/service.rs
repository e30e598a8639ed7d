//! The task service's guarantees, each against real ZooKeeper with real role processes that are
//! stopped (SIGTERM), killed (SIGKILL) or frozen (SIGSTOP … SIGCONT) at the interesting moments.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{assignment_of, candidates, shared_standalone, wait_children, wait_data, Farm};
use nix::sys::signal::Signal;
use taskfarm::protocol::{FarmStatus, TaskRecord, TaskResult};
use taskfarm_harness::ZkCluster;

const SLEEP_0: &str = r#"{"kind":"sleep","ms":0}"#;

/// Every task of `client` delivered exactly once, all of them successful.
fn assert_exactly_once(farm: &Farm, client: &str, expected: usize) -> Vec<serde_json::Value> {
    let results = farm.results(client);
    let mut per_task: HashMap<String, usize> = HashMap::new();
    for r in &results {
        *per_task.entry(r["task"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_task.len(), expected, "{client}: every task delivered");
    assert!(per_task.values().all(|&n| n == 1), "{client}: no duplicate delivery");
    results
}

/// No task or data znode is left behind.
async fn assert_clean(farm: &Farm) {
    let s = farm.observer().await;
    let tasks = s.client.list_children("/tasks").await.unwrap();
    let data = s.client.list_children("/data").await.unwrap();
    assert!(
        tasks.is_empty() && data.is_empty(),
        "left behind: tasks {tasks:?}, data {data:?}"
    );
}

async fn run_farm_with_two_clients(hosts: &str, name: &str) {
    let farm = Farm::new(hosts, name, Duration::from_secs(10));
    let _masters = [farm.master("m1"), farm.master("m2")];
    let _workers: Vec<_> = (1..=4).map(|i| farm.worker(&format!("w{i}"))).collect();
    let mut clients = [farm.client("a", 500, 16, SLEEP_0), farm.client("b", 500, 16, SLEEP_0)];
    for c in &mut clients {
        let summary = c.json_summary().await;
        assert_eq!(summary["completed"], 500, "{summary}");
        assert_eq!(summary["lost"], 0, "{summary}");
        assert!(c.exit().await.success());
    }
    for c in ["a", "b"] {
        assert_exactly_once(&farm, c, 500);
    }
    assert_clean(&farm).await;
}

#[tokio::test]
async fn two_clients_of_500_tasks_on_a_standalone_server() {
    run_farm_with_two_clients(&shared_standalone().connect_string(), "std500").await;
}

#[tokio::test]
async fn two_clients_of_500_tasks_on_a_three_server_ensemble() {
    let zk = ZkCluster::ensemble(3, common::zk_options()).unwrap();
    run_farm_with_two_clients(&zk.connect_string(), "ens500").await;
}

/// Starts a master and the given workers, submits one task, and returns once `worker` holds it.
async fn one_task_on(farm: &Farm, worker: &str, task: &str) -> common::Proc {
    let observer = farm.observer().await;
    let client = farm.client("c", 1, 1, task);
    wait_data(
        &observer,
        &format!("/workers/{worker}"),
        "the task assigned",
        assignment_of,
    )
    .await;
    client
}

async fn finish_with_result(farm: &Farm, mut client: common::Proc) -> serde_json::Value {
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 1, "{summary}");
    let results = assert_exactly_once(farm, "c", 1);
    assert_clean(farm).await;
    results[0]["result"].clone()
}

#[tokio::test]
async fn a_worker_killed_while_running_loses_nothing() {
    for signal in [Signal::SIGKILL, Signal::SIGTERM] {
        let farm = Farm::new(&shared_standalone().connect_string(), "wrun", Duration::from_secs(2));
        let _m = farm.master("m1");
        let w1 = farm.worker("w1");
        let client = one_task_on(&farm, "w1", r#"{"kind":"sleep","ms":1000}"#).await;
        w1.signal(signal);
        let _w2 = farm.worker("w2");
        let result = finish_with_result(&farm, client).await;
        assert_eq!(result["worker"], "w2", "{signal}: {result}");
        assert_eq!(result["attempt"], 2, "{signal}: {result}");
    }
}

#[tokio::test]
async fn a_worker_killed_after_assignment_before_reading_it_loses_nothing() {
    let farm = Farm::new(&shared_standalone().connect_string(), "wpre", Duration::from_secs(2));
    let _m = farm.master("m1");
    let observer = farm.observer().await;
    let w1 = farm.worker("w1");
    wait_children(&observer, "/workers", "w1 registered", |c| {
        (!c.is_empty()).then_some(())
    })
    .await;
    // Frozen, w1 cannot read its assignment; then it dies without ever having read it.
    w1.signal(Signal::SIGSTOP);
    let client = one_task_on(&farm, "w1", SLEEP_0).await;
    w1.signal(Signal::SIGKILL);
    let _w2 = farm.worker("w2");
    let result = finish_with_result(&farm, client).await;
    assert_eq!(result["worker"], "w2");
}

#[tokio::test]
async fn a_frozen_worker_s_late_commit_fails_and_the_task_runs_again_once() {
    let farm = Farm::new(&shared_standalone().connect_string(), "wfrz", Duration::from_secs(2));
    let _m = farm.master("m1");
    let mut w1 = farm.worker("w1");
    // w1 is frozen while the task runs, past its session timeout: the task moves to w2.
    let client = one_task_on(&farm, "w1", r#"{"kind":"sleep","ms":300}"#).await;
    w1.signal(Signal::SIGSTOP);
    let _w2 = farm.worker("w2");
    let observer = farm.observer().await;
    wait_children(&observer, "/workers", "w1's session expiring", |c| {
        (!c.contains(&"w1".to_string())).then_some(())
    })
    .await;
    let result = finish_with_result(&farm, client).await;
    assert_eq!(result["worker"], "w2", "{result}");
    // Resumed, w1 finds its session expired: its result never lands, it starts afresh.
    w1.signal(Signal::SIGCONT);
    wait_children(&observer, "/workers", "w1 re-registering", |c| {
        c.contains(&"w1".to_string()).then_some(())
    })
    .await;
    let log = w1.log();
    assert!(
        !log.contains("result committed"),
        "the stale worker committed nothing:\n{log}"
    );
    assert_eq!(farm.results("c").len(), 1, "delivered once");
    w1.signal(Signal::SIGTERM);
    w1.exit().await;
}

/// Waits until the farm has completed at least `n` tasks (per /status).
async fn completed_at_least(farm: &Farm, n: u64) -> FarmStatus {
    let observer = farm.observer().await;
    wait_data(&observer, "/status", "progress", |d| {
        let s = FarmStatus::parse(d?).ok()?;
        (s.completed_total >= n).then_some(s)
    })
    .await
}

/// m1 leading (it campaigns first), m2 as its backup, three workers, and a client of 300 short
/// tasks. Returns m1, the other processes, and the client.
async fn leader_backup_and_work(farm: &Farm) -> (common::Proc, Vec<common::Proc>, common::Proc) {
    let m1 = farm.master("m1");
    let observer = farm.observer().await;
    wait_children(&observer, "/master", "m1 campaigning", |c| (c.len() == 1).then_some(())).await;
    let mut others = vec![farm.master("m2")];
    others.extend((1..=3).map(|i| farm.worker(&format!("w{i}"))));
    let client = farm.client("c", 300, 8, r#"{"kind":"sleep","ms":5}"#);
    (m1, others, client)
}

#[tokio::test]
async fn the_backup_takes_over_when_the_leader_dies_between_assignments() {
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        let farm = Farm::new(&shared_standalone().connect_string(), "lead", Duration::from_secs(2));
        let (m1, _others, mut client) = leader_backup_and_work(&farm).await;
        let before = completed_at_least(&farm, 50).await;
        assert_eq!(before.leader, "m1");
        m1.signal(signal);
        let summary = client.json_summary().await;
        assert_eq!(summary["completed"], 300, "{signal}: {summary}");
        assert_exactly_once(&farm, "c", 300);
        let after = wait_data(&farm.observer().await, "/status", "m2's status", |d| {
            let s = FarmStatus::parse(d?).ok()?;
            (s.leader == "m2").then_some(s)
        })
        .await;
        assert!(after.epoch > before.epoch, "{signal}: a new epoch");
        assert!(after.failovers > before.failovers, "{signal}: the failover is counted");
        assert_clean(&farm).await;
    }
}

/// A backup master keeps its index warm while it waits: when the leader goes, it leads from
/// that index (no scan of the queue) and the work goes on, each task delivered once.
#[tokio::test]
async fn a_warm_standby_leads_from_its_index_without_scanning() {
    let farm = Farm::new(&shared_standalone().connect_string(), "warm", Duration::from_secs(2));
    let observer = farm.observer().await;
    // A queue before any master: all 400 tasks submitted at once, nobody to run them yet.
    let mut client = farm.client("c", 400, 400, r#"{"kind":"sleep","ms":2}"#);
    wait_children(&observer, "/tasks", "the queue", |c| (c.len() == 400).then_some(())).await;
    let m1 = farm.master("m1");
    m1.wait_log("became leader").await;
    let m2 = farm.master("m2");
    m2.wait_log("standby warm").await;
    let _workers = [farm.worker("w1"), farm.worker("w2")];
    completed_at_least(&farm, 50).await;
    m1.signal(Signal::SIGTERM);
    m2.wait_log("leading from the warm index").await;
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 400, "{summary}");
    assert_exactly_once(&farm, "c", 400);
    let log = m2.log();
    let scans_after_leading = log
        .lines()
        .skip_while(|l| !l.contains("became leader"))
        .filter(|l| l.contains("scanned ZooKeeper"))
        .count();
    assert_eq!(scans_after_leading, 0, "m2 led without a scan:\n{log}");
    assert_clean(&farm).await;
}

#[tokio::test]
async fn a_leader_frozen_past_its_session_is_fenced_and_nothing_is_done_twice() {
    let farm = Farm::new(&shared_standalone().connect_string(), "lagm", Duration::from_secs(2));
    let (m1, _others, mut client) = leader_backup_and_work(&farm).await;
    let observer = farm.observer().await;
    completed_at_least(&farm, 30).await;
    m1.signal(Signal::SIGSTOP);
    // The backup takes over while m1 is frozen, and the work goes on.
    let taken = wait_data(&observer, "/status", "m2 leading", |d| {
        let s = FarmStatus::parse(d?).ok()?;
        (s.leader == "m2").then_some(s)
    })
    .await;
    completed_at_least(&farm, taken.completed_total + 20).await;
    m1.signal(Signal::SIGCONT);
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 300, "{summary}");
    assert_exactly_once(&farm, "c", 300);
    // m1 rejoined behind m2 and never led again in its old session.
    wait_children(&observer, "/master", "m1 rejoining", |c| (c.len() == 2).then_some(())).await;
    let line: Vec<String> = candidates(&observer).await.into_iter().map(|(_, id)| id).collect();
    assert_eq!(line, vec!["m2".to_string(), "m1".to_string()]);
    let log = m1.log();
    let assigned_after_resume = log
        .lines()
        .skip_while(|l| !l.contains("no longer leading"))
        .filter(|l| l.contains(" assigned"))
        .count();
    assert_eq!(
        assigned_after_resume, 0,
        "m1 assigned nothing after losing leadership:\n{log}"
    );
}

#[tokio::test]
async fn a_dead_client_leaves_nothing_behind_and_frees_its_workers() {
    let farm = Farm::new(&shared_standalone().connect_string(), "cdie", Duration::from_secs(2));
    let _m = farm.master("m1");
    let _workers = [farm.worker("w1"), farm.worker("w2")];
    let observer = farm.observer().await;
    wait_children(&observer, "/workers", "workers registered", |c| {
        (c.len() == 2).then_some(())
    })
    .await;
    let client = farm.client("c", 20, 6, r#"{"kind":"sleep","ms":1500}"#);
    // Freeze the client so finished results stay uncollected; wait for pending, running and done tasks.
    wait_children(&observer, "/tasks", "six tasks submitted", |c| {
        (c.len() == 6).then_some(())
    })
    .await;
    let running = wait_data(&observer, "/workers/w1", "w1 running a task", assignment_of)
        .await
        .task;
    client.signal(Signal::SIGSTOP);
    let ids = observer.client.list_children("/tasks").await.unwrap();
    // A commit while the client is frozen leaves an uncollected result in /data/<id> (and
    // deletes the task's record).
    wait_data(&observer, &format!("/data/{running}"), "a task finishing", |d| {
        TaskResult::parse(d?).ok()
    })
    .await;
    let mut states = HashMap::new();
    for id in &ids {
        if let Ok((d, _)) = observer.client.get_data(&format!("/tasks/{id}")).await {
            *states
                .entry(format!("{:?}", TaskRecord::parse(&d).unwrap().state))
                .or_insert(0) += 1;
        }
    }
    assert!(states.contains_key("Queued"), "pending tasks: {states:?}");
    let data = observer.client.list_children("/data").await.unwrap();
    assert!(
        data.contains(&running),
        "the finished task's result waits in /data: {data:?}"
    );
    client.signal(Signal::SIGKILL);
    wait_children(&observer, "/tasks", "the dead client's tasks vanishing", |c| {
        c.is_empty().then_some(())
    })
    .await;
    wait_children(
        &observer,
        "/data",
        "the dead client's payloads and results vanishing",
        |c| c.is_empty().then_some(()),
    )
    .await;
    assert_clean(&farm).await;
    for w in ["w1", "w2"] {
        wait_data(&observer, &format!("/workers/{w}"), "the worker freed", |d| {
            (d.is_some() && assignment_of(d).is_none()).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_poison_task_is_failed_after_three_attempts_without_holding_up_others() {
    let farm = Farm::new(&shared_standalone().connect_string(), "poison", Duration::from_secs(2));
    let _m = farm.master("m1");
    let _workers: Vec<_> = (1..=4).map(|i| farm.worker(&format!("w{i}"))).collect();
    let mut poison = farm.client("p", 1, 1, r#"{"kind":"crash"}"#);
    let mut normal = farm.client("c", 30, 2, r#"{"kind":"echo","message":"hi"}"#);
    let summary = normal.json_summary().await;
    assert_eq!(summary["completed"], 30, "{summary}");
    let summary = poison.json_summary().await;
    assert_eq!(summary["failed"], 1, "{summary}");
    let results = farm.results("p");
    let result = &results[0]["result"];
    assert_eq!(result["ok"], false);
    assert_eq!(result["attempt"], 3);
    assert!(result["error"].as_str().unwrap().contains("abandoned"), "{result}");
}

#[tokio::test]
async fn bad_payloads_are_rejected_at_the_client_and_create_nothing() {
    let farm = Farm::new(&shared_standalone().connect_string(), "badin", Duration::from_secs(5));
    let big = format!(r#"{{"kind":"echo","message":"{}"}}"#, "x".repeat(70_000));
    for (task, expected) in [
        ("{oops", "malformed task payload"),
        (r#"{"kind":"teleport"}"#, "unknown task kind"),
        (big.as_str(), "over the 65536-byte limit"),
    ] {
        let mut p = farm.spawn("submit", &["submit", task]);
        let status = p.exit().await;
        assert!(!status.success());
        assert!(p.log().contains(expected), "{expected:?} not in:\n{}", p.log());
    }
    assert_clean(&farm).await;
}

#[tokio::test]
async fn foreign_and_garbled_znodes_are_skipped_and_block_nothing() {
    let farm = Farm::new(&shared_standalone().connect_string(), "junk", Duration::from_secs(5));
    let observer = farm.observer().await;
    let persistent = observer.persistent();
    let ephemeral = observer.ephemeral();
    observer
        .client
        .create("/tasks/binary", &[0xff, 0x00, 0xfe], &persistent)
        .await
        .unwrap();
    observer.client.create("/tasks/empty", b"", &persistent).await.unwrap();
    observer
        .client
        .create("/data/stray", b"\x01\x02", &persistent)
        .await
        .unwrap();
    observer
        .client
        .create("/workers/not-ephemeral", b"{}", &persistent)
        .await
        .unwrap();
    observer
        .client
        .create("/workers/binary", &[0xde, 0xad], &ephemeral)
        .await
        .unwrap();
    // A task whose payload is missing: nobody to report to; the worker retires it.
    let record = TaskRecord::queued("foreign", 0).to_bytes();
    observer
        .client
        .create("/tasks/nodata", &record, &ephemeral)
        .await
        .unwrap();
    let m = farm.master("m1");
    let w = farm.worker("w1");
    let mut client = farm.client("c", 20, 4, SLEEP_0);
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 20, "{summary}");
    wait_data(&observer, "/tasks/nodata", "the payload-less task retired", |d| {
        d.is_none().then_some(())
    })
    .await;
    assert!(w.log().contains("task payload /data/nodata is missing"), "{}", w.log());
    let log = m.log();
    for skipped in [
        "/tasks/binary",
        "/tasks/empty",
        "/workers/not-ephemeral",
        "/workers/binary",
    ] {
        assert!(log.contains(skipped), "the master reports {skipped}:\n{log}");
    }
}

#[tokio::test]
async fn a_worker_znode_with_a_bogus_assignment_is_repaired() {
    let farm = Farm::new(&shared_standalone().connect_string(), "bogus", Duration::from_secs(5));
    let observer = farm.observer().await;
    let _w = farm.worker("w1");
    wait_children(&observer, "/workers", "w1 registered", |c| {
        (!c.is_empty()).then_some(())
    })
    .await;
    // Someone writes an assignment to a task that does not exist into w1's znode.
    let bogus = br#"{"task":"ghost","epoch":99,"attempt":1,"task_version":1}"#;
    observer.client.set_data("/workers/w1", bogus, None).await.unwrap();
    let _m = farm.master("m1");
    let mut client = farm.client("c", 5, 1, SLEEP_0);
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 5, "{summary}");
}
