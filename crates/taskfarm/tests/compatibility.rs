//! PROTOCOL.md, "Compatibility": what the roles do with records of another revision or version.
//! Unknown fields are ignored (a worker runs an assignment that carries extra fields; the master
//! assigns a task whose record does); a payload of an unknown kind gets the error result
//! `rejected: …`; a task record in an unknown state is skipped and reported by the master, and
//! left as it is.

mod common;

use std::time::Duration;

use common::{shared_standalone, wait_children, wait_data, Farm};
use serde_json::{json, Value};
use taskfarm::protocol::{TaskRecord, TaskResult};
use taskfarm::zk::ZkSession;

/// Submits as a client of another revision would: payload and record in one transaction.
async fn submit_raw(s: &ZkSession, id: &str, payload: &Value, record: &Value) {
    let mut multi = s.client.new_multi_writer();
    multi
        .add_create(&format!("/data/{id}"), payload.to_string().as_bytes(), &s.ephemeral())
        .unwrap();
    multi
        .add_create(&format!("/tasks/{id}"), record.to_string().as_bytes(), &s.ephemeral())
        .unwrap();
    multi.commit().await.unwrap();
}

async fn result_of(s: &ZkSession, id: &str) -> TaskResult {
    wait_data(s, &format!("/data/{id}"), "a result", |d| TaskResult::parse(d?).ok()).await
}

fn newer_record() -> Value {
    json!({"client": "newer", "state": "queued", "attempt": 0, "priority": 5, "labels": {"team": "a"}})
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_unknown_kinds_and_states_are_refused() {
    let farm = Farm::new(&shared_standalone().connect_string(), "compat", Duration::from_secs(5));
    let observer = farm.observer().await;
    let c = &observer.client;
    let _worker = farm.worker("w1");
    wait_children(&observer, "/workers", "w1", |w| {
        w.contains(&"w1".to_string()).then_some(())
    })
    .await;

    // A worker runs an assignment with fields it does not know, written here as a master of a
    // newer revision would (no master of ours runs yet).
    submit_raw(
        &observer,
        "t1",
        &json!({"kind": "echo", "message": "hi"}),
        &newer_record(),
    )
    .await;
    let (_, worker_stat) = c.get_data("/workers/w1").await.unwrap();
    let mut assigned = newer_record();
    assigned["state"] = json!("assigned");
    assigned["attempt"] = json!(1);
    assigned["worker"] = json!("w1");
    assigned["epoch"] = json!(1);
    let assignment = json!({"task": "t1", "epoch": 1, "attempt": 1, "task_version": 1, "lease_ms": 60000});
    let mut multi = c.new_multi_writer();
    multi
        .add_set_data("/tasks/t1", assigned.to_string().as_bytes(), Some(0))
        .unwrap();
    multi
        .add_set_data(
            "/workers/w1",
            assignment.to_string().as_bytes(),
            Some(worker_stat.version),
        )
        .unwrap();
    multi.commit().await.unwrap();
    let r = result_of(&observer, "t1").await;
    assert!(r.ok, "{r:?}");
    assert_eq!((r.value, r.worker.as_deref()), (Some(json!("hi")), Some("w1")));
    assert!(
        c.check_stat("/tasks/t1").await.unwrap().is_none(),
        "the commit deleted the record"
    );

    let mut master = farm.master("m1");
    // A record in a state this version does not know: skipped, reported, left alone.
    submit_raw(
        &observer,
        "t2",
        &json!({"kind": "echo"}),
        &json!({"client": "newer", "state": "paused"}),
    )
    .await;
    // A payload of a kind this version does not know: an error result at once.
    submit_raw(
        &observer,
        "t3",
        &json!({"kind": "teleport", "to": "mars"}),
        &newer_record(),
    )
    .await;
    // The master assigns a task whose record carries fields it does not know.
    submit_raw(&observer, "t4", &json!({"kind": "echo", "message": 4}), &newer_record()).await;

    let r = result_of(&observer, "t3").await;
    assert!(!r.ok, "{r:?}");
    let error = r.error.unwrap();
    assert!(error.starts_with("rejected: "), "{error}");
    assert!(error.contains("unknown task kind \"teleport\""), "{error}");
    let r = result_of(&observer, "t4").await;
    assert_eq!((r.ok, r.value), (true, Some(json!(4))));

    // The master saw t2 before t3 and t4 (one watch, in order): it has reported it by now.
    let log = master.log();
    assert!(
        log.contains("/tasks/t2 skipped") && log.contains("paused"),
        "the master reports the unknown state: {log}"
    );
    let (record, stat) = c.get_data("/tasks/t2").await.unwrap();
    assert_eq!(stat.version, 0, "left as it is: {}", String::from_utf8_lossy(&record));
    assert!(TaskRecord::parse(&record).is_err());
    assert_eq!(c.get_data("/data/t2").await.unwrap().1.version, 0, "never run");
    assert!(master.guard.try_wait().unwrap().is_none(), "{}", master.log());
}
