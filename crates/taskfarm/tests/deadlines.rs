//! A deadline on every assignment: a worker znode whose session stays open but which never runs
//! its assignment (a wedged worker) loses the task once its time limit plus the grace period has
//! passed, and the task runs elsewhere as its next attempt. The wedged worker here is a znode
//! of the test's own session, which never acts.

mod common;

use std::time::Duration;

use common::{assignment_of, shared_standalone, wait_data, Farm};

#[tokio::test]
async fn an_assignment_held_past_its_deadline_is_taken_back_and_runs_elsewhere() {
    let farm = Farm::new(
        &shared_standalone().connect_string(),
        "deadline",
        Duration::from_secs(10),
    );
    let wedged = farm.observer().await;
    wedged
        .client
        .create("/workers/wedged", b"{}", &wedged.ephemeral())
        .await
        .unwrap();
    let mut master = farm.spawn("m1", &["master", "--id", "m1", "--assignment-grace", "1s"]);
    // An echo task states a limit of 0 ms: its deadline is the grace period.
    let mut client = farm.client("c1", 1, 1, r#"{"kind":"echo","message":"late"}"#);
    let task = wait_data(&wedged, "/workers/wedged", "the assignment to the wedged worker", |d| {
        assignment_of(d).map(|a| a.task)
    })
    .await;
    // Taken back: the wedged worker's znode is freed by the master.
    wait_data(&wedged, "/workers/wedged", "the take-back", |d| {
        (d == Some(b"{}".as_slice())).then_some(())
    })
    .await;
    // The wedged worker is quarantined: a real one comes and runs the task as its second attempt.
    let _worker = farm.worker("w1");
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 1, "{summary}");
    let results = farm.results("c1");
    assert_eq!(results[0]["task"], task.as_str());
    assert_eq!(results[0]["result"]["worker"], "w1");
    assert_eq!(results[0]["result"]["attempt"], 2, "{results:?}");
    master.signal(nix::sys::signal::Signal::SIGTERM);
    master.exit().await;
    let log = master.log();
    assert!(
        log.lines()
            .any(|l| l.contains("took the task back from its worker") && l.contains("wedged")),
        "{log}"
    );
    assert!(log.contains("worker wedged held task"), "{log}");
}
