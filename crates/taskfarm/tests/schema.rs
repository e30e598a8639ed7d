//! The published JSON Schemas (docs/schema/): the committed files are what the code generates,
//! they agree with fsck's record checks, and the records of a running farm (real master,
//! worker and client on a real ZooKeeper) satisfy them while broken ones do not.
//!
//! After changing a record type: `TASKFARM_WRITE_SCHEMAS=1 cargo test -p taskfarm --test schema`
//! (or `taskfarm zk schema docs/schema`) rewrites the files.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::{assignment_of, shared_standalone, wait_children, wait_data, Farm};
use serde_json::{json, Value};
use taskfarm::fsck::{record_problems, Record};
use taskfarm::protocol::{FarmStatus, TaskRecord, TaskResult, TaskState};
use taskfarm::zk::ZkSession;

const REGENERATE: &str = "regenerate with `TASKFARM_WRITE_SCHEMAS=1 cargo test -p taskfarm --test schema`";

fn schema_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema"))
}

/// A validator for a committed schema file (the normative one, not the generated copy).
fn validator(file: &str) -> jsonschema::Validator {
    let path = schema_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn errors(file: &str, instance: &Value) -> Vec<String> {
    let v = validator(file);
    v.iter_errors(instance).map(|e| e.to_string()).collect()
}

/// Asserts that `data` (a znode's bytes) satisfies schema `file`.
fn assert_valid(file: &str, what: &str, data: &[u8]) -> Value {
    let instance: Value = serde_json::from_slice(data).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let errs = errors(file, &instance);
    assert!(errs.is_empty(), "{what} {instance} breaks {file}: {errs:?}");
    instance
}

fn assert_invalid(file: &str, what: &str, instance: &Value) {
    assert!(
        !validator(file).is_valid(instance),
        "{what}: {instance} should break {file}"
    );
}

#[test]
fn the_committed_schemas_are_what_the_code_generates() {
    let dir = schema_dir();
    if std::env::var_os("TASKFARM_WRITE_SCHEMAS").is_some() {
        taskfarm::schema::write_all(&dir).unwrap();
    }
    let mut expected = BTreeSet::new();
    for f in taskfarm::schema::all() {
        let path = dir.join(f.file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} is missing ({e}): {REGENERATE}", path.display()));
        let committed: Value = serde_json::from_str(&text).unwrap();
        // Compared as JSON values: key order is not part of a schema.
        let generated = serde_json::to_value(&f.schema).unwrap();
        assert!(committed == generated, "{} is stale: {REGENERATE}", path.display());
        assert!(
            jsonschema::meta::is_valid(&committed),
            "{}: not a valid JSON Schema",
            f.file
        );
        expected.insert(f.file.to_string());
    }
    // No file for a record the code no longer has.
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(on_disk, expected, "docs/schema/ holds other files: {REGENERATE}");
}

/// Records that are valid or broken, each with the schema file and fsck's record kind.
fn corpus() -> Vec<(&'static str, Record, Value, bool)> {
    let long_error = "e".repeat(4097);
    let too_many_args: Vec<String> = (0..1025).map(|i| i.to_string()).collect();
    let t = ("task-record.json", Record::Task);
    let w = ("worker-record.json", Record::Worker);
    let s = ("farm-status.json", Record::Status);
    let c = ("candidate.json", Record::Candidate);
    let p = ("task-payload.json", Record::Payload);
    let r = ("task-result.json", Record::Result);
    let status = json!({"leader": "m1", "epoch": 7, "leader_since_ms": 1, "updated_ms": 2, "workers": 1,
        "free_workers": 1, "pending": 0, "running": 0, "completed_total": 3, "failovers": 0});
    let mut status_without_leader = status.clone();
    status_without_leader.as_object_mut().unwrap().remove("leader");
    let cases = [
        (
            t,
            json!({"client": "c1", "state": "queued", "attempt": 0, "submitted_ms": 5}),
            true,
        ),
        (t, json!({"client": "py", "state": "queued"}), true),
        (
            t,
            json!({"client": "c1", "state": "queued", "priority": 3, "x": {"y": 1}}),
            true,
        ),
        (
            t,
            json!({"client": "c1", "state": "assigned", "attempt": 1, "worker": "w1", "epoch": 7}),
            true,
        ),
        (t, json!({"client": "c1", "state": "assigned", "attempt": 1}), false),
        (
            t,
            json!({"client": "c1", "state": "assigned", "worker": null, "epoch": 7}),
            false,
        ),
        (t, json!({"client": "c1", "state": "done"}), false),
        (t, json!({"client": "c1", "state": "paused"}), false),
        (t, json!({"state": "queued"}), false),
        (t, json!({"client": "bad id", "state": "queued"}), false),
        (t, json!({"client": "c1", "state": "queued", "attempt": -1}), false),
        (t, json!({"client": "c1", "state": "queued", "timeout_ms": "5"}), false),
        (t, json!([1, 2]), false),
        (w, json!({}), true),
        (w, json!({"task": null}), true),
        (w, json!({"note": "free"}), true),
        (
            w,
            json!({"task": "t1", "epoch": 7, "attempt": 1, "task_version": 1}),
            true,
        ),
        (
            w,
            json!({"task": "t1", "epoch": 7, "attempt": 1, "task_version": 1, "lease": 5}),
            true,
        ),
        (w, json!({"task": "t1"}), false),
        (
            w,
            json!({"task": "t1", "epoch": 7, "attempt": 1, "task_version": null}),
            false,
        ),
        (
            w,
            json!({"task": "../x", "epoch": 7, "attempt": 1, "task_version": 1}),
            false,
        ),
        (w, json!({"task": 5}), false),
        (s, status.clone(), true),
        (s, status_without_leader, false),
        (c, json!({"id": "m1", "pid": 42, "host": "h"}), true),
        (c, json!({"id": "m1"}), true),
        (c, json!({"pid": 42}), false),
        (c, json!({"id": ".m"}), false),
        (p, json!({"kind": "sleep", "ms": 0}), true),
        (p, json!({"kind": "sleep", "ms": 3_600_000}), true),
        (p, json!({"kind": "sleep", "ms": 3_600_001}), false),
        (p, json!({"kind": "sleep"}), false),
        (p, json!({"kind": "sleep", "ms": 5, "extra": 1}), false),
        (p, json!({"kind": "cpu", "rounds": 50_000_000, "seed": "x"}), true),
        (p, json!({"kind": "cpu", "rounds": 50_000_001}), false),
        (p, json!({"kind": "echo"}), true),
        (p, json!({"kind": "echo", "message": {"any": [1, null]}}), true),
        (p, json!({"kind": "fail"}), true),
        (p, json!({"kind": "fail", "message": 5}), false),
        (p, json!({"kind": "crash"}), true),
        (p, json!({"kind": "crash", "now": true}), false),
        (
            p,
            json!({"kind": "exec", "command": "checksum", "args": ["a"], "stdin": "x", "timeout_ms": 1}),
            true,
        ),
        (p, json!({"kind": "exec", "command": "checksum", "stdin": null}), true),
        (p, json!({"kind": "exec", "command": "check sum"}), false),
        (p, json!({"kind": "exec", "command": "c", "timeout_ms": 0}), false),
        (
            p,
            json!({"kind": "exec", "command": "c", "timeout_ms": 86_400_001}),
            false,
        ),
        (p, json!({"kind": "exec", "command": "c", "args": ["a\u{0}b"]}), false),
        (p, json!({"kind": "exec", "command": "c", "args": too_many_args}), false),
        (p, json!({"kind": "exec"}), false),
        (p, json!({"kind": "teleport"}), false),
        (p, json!({"ms": 5}), false),
        (
            r,
            json!({"ok": true, "value": {"slept_ms": 5}, "worker": "w1", "attempt": 1, "run_ms": 5}),
            true,
        ),
        (
            r,
            json!({"ok": true, "value": null, "worker": "w1", "attempt": 1, "run_ms": 0}),
            true,
        ),
        (
            r,
            json!({"ok": false, "error": "boom", "attempt": 3, "run_ms": 0}),
            true,
        ),
        (
            r,
            json!({"ok": false, "error": "exited", "value": {"exit_code": 3}, "worker": "w1"}),
            true,
        ),
        (r, json!({"ok": true, "worker": "w1"}), false),
        (r, json!({"ok": false, "worker": "w1"}), false),
        (r, json!({"ok": false, "error": null}), false),
        (r, json!({"ok": false, "error": long_error}), false),
        (r, json!({"ok": "yes", "value": 1}), false),
        (r, json!({"kind": "sleep", "ms": 5}), false),
    ];
    cases
        .into_iter()
        .map(|((file, kind), v, ok)| (file, kind, v, ok))
        .collect()
}

#[test]
fn the_schemas_and_fscks_record_checks_agree() {
    for (file, kind, instance, valid) in corpus() {
        let errs = errors(file, &instance);
        assert_eq!(errs.is_empty(), valid, "{file}: {instance}: {errs:?}");
        let problems = record_problems(kind, instance.to_string().as_bytes());
        assert_eq!(problems.is_empty(), valid, "fsck on {file}: {instance}: {problems:?}");
    }
}

/// Submits a task as a foreign client would (PROTOCOL.md §5.4): payload and record in one
/// transaction, owned by `s`.
async fn submit_raw(s: &ZkSession, id: &str, payload: &Value) {
    let record = TaskRecord::queued("observer", 0).to_bytes();
    let mut multi = s.client.new_multi_writer();
    multi
        .add_create(&format!("/data/{id}"), payload.to_string().as_bytes(), &s.ephemeral())
        .unwrap();
    multi
        .add_create(&format!("/tasks/{id}"), &record, &s.ephemeral())
        .unwrap();
    multi.commit().await.unwrap();
}

async fn get(s: &ZkSession, path: &str) -> Vec<u8> {
    s.client
        .get_data(path)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .0
}

fn without(record: &Value, field: &str) -> Value {
    let mut v = record.clone();
    v.as_object_mut().unwrap().remove(field);
    v
}

fn with(record: &Value, field: &str, value: Value) -> Value {
    let mut v = record.clone();
    v.as_object_mut().unwrap().insert(field.into(), value);
    v
}

#[tokio::test]
async fn records_read_from_a_running_farm_satisfy_the_schemas() {
    let farm = Farm::new(&shared_standalone().connect_string(), "schema", Duration::from_secs(5));
    let observer = farm.observer().await;
    let catalogue = farm.dir.join("commands.yaml");
    std::fs::write(
        &catalogue,
        "commands:\n  greet:\n    argv: [\"sh\", \"-c\", \"echo hi; exit 3\"]\n",
    )
    .unwrap();
    let _master = farm.master("m1");

    // A client's task while queued (no worker yet): its record and its payload.
    let mut client = farm.client("c", 1, 1, r#"{"kind":"sleep","ms":1500}"#);
    let id = wait_children(&observer, "/tasks", "the client's task", |c| c.first().cloned()).await;
    let queued = assert_valid(
        "task-record.json",
        "a queued task record",
        &get(&observer, &format!("/tasks/{id}")).await,
    );
    assert_eq!(queued["state"], "queued");
    let payload = assert_valid(
        "task-payload.json",
        "a payload",
        &get(&observer, &format!("/data/{id}")).await,
    );

    // Assigned: the task record and the busy worker's record.
    let worker_args = ["worker", "--id", "w1", "--commands", catalogue.to_str().unwrap()];
    let _worker = farm.spawn("w1", &worker_args);
    let busy = wait_data(&observer, "/workers/w1", "w1's assignment", |d| {
        assignment_of(d).map(|_| d.unwrap().to_vec())
    })
    .await;
    let busy = assert_valid("worker-record.json", "a busy worker record", &busy);
    let assigned = get(&observer, &format!("/tasks/{id}")).await;
    assert_eq!(TaskRecord::parse(&assigned).unwrap().state, TaskState::Assigned);
    let assigned = assert_valid("task-record.json", "an assigned task record", &assigned);

    // Results, kept from collection by submitting as a foreign client that never collects.
    let tasks = [
        ("obs-echo", json!({"kind": "echo", "message": {"a": [1, 2]}})),
        ("obs-null", json!({"kind": "echo"})),
        ("obs-exec", json!({"kind": "exec", "command": "greet"})),
        ("obs-fail", json!({"kind": "fail"})),
    ];
    for (id, payload) in &tasks {
        submit_raw(&observer, id, payload).await;
    }
    let mut results = Vec::new();
    for (id, _) in &tasks {
        let data = wait_data(&observer, &format!("/data/{id}"), "a result", |d| {
            TaskResult::parse(d?).ok().map(|_| d.unwrap().to_vec())
        })
        .await;
        results.push(assert_valid("task-result.json", id, &data));
    }
    assert_eq!(results[0]["ok"], true);
    assert_eq!(
        results[2]["error"], "command \"greet\" exited with status 3",
        "{}",
        results[2]
    );
    let exec_output = &results[2]["value"];
    let errs = errors("exec-output.json", exec_output);
    assert!(
        errs.is_empty(),
        "an exec output {exec_output} breaks exec-output.json: {errs:?}"
    );
    assert_eq!(results[3]["error"], "task asked to fail");

    // Free again, once the client's task is done too.
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 1, "{summary}");
    let free = wait_data(&observer, "/workers/w1", "w1 free", |d| {
        (d.is_some() && assignment_of(d).is_none()).then(|| d.unwrap().to_vec())
    })
    .await;
    let free = assert_valid("worker-record.json", "a free worker record", &free);

    // The leader's status and its candidate.
    let status = wait_data(&observer, "/status", "a status with w1", |d| {
        FarmStatus::parse(d?)
            .ok()
            .filter(|s| s.workers >= 1)
            .map(|_| d.unwrap().to_vec())
    })
    .await;
    let status = assert_valid("farm-status.json", "/status", &status);
    let candidates = observer.client.list_children("/master").await.unwrap();
    assert_eq!(candidates.len(), 1, "{candidates:?}");
    let candidate = get(&observer, &format!("/master/{}", candidates[0])).await;
    let candidate = assert_valid("candidate.json", "a candidate", &candidate);

    // The same records, broken, are refused: the schemas would catch a writer gone wrong.
    let broken = [
        ("task-record.json", with(&queued, "state", json!("done"))),
        ("task-record.json", without(&assigned, "worker")),
        ("task-record.json", with(&queued, "client", json!("no/slash"))),
        ("task-payload.json", with(&payload, "extra", json!(1))),
        ("task-payload.json", with(&payload, "ms", json!(3_600_001))),
        ("worker-record.json", without(&busy, "task_version")),
        ("worker-record.json", with(&free, "task", json!(""))),
        ("task-result.json", without(&results[0], "value")),
        ("task-result.json", without(&results[3], "error")),
        ("exec-output.json", without(exec_output, "timed_out")),
        ("farm-status.json", without(&status, "epoch")),
        ("candidate.json", with(&candidate, "id", json!(7))),
    ];
    for (file, instance) in &broken {
        assert_invalid(file, "a broken record", instance);
    }
}
