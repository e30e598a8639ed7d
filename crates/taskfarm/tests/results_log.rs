//! Clients that share one `--results-log` file: every delivered result is one whole JSON line,
//! however the clients' writes interleave.

mod common;

use std::time::Duration;

use common::{shared_standalone, Farm};

#[tokio::test]
async fn clients_sharing_a_results_log_write_only_whole_lines() {
    let farm = Farm::new(
        &shared_standalone().connect_string(),
        "sharedlog",
        Duration::from_secs(10),
    );
    let _master = farm.master("m1");
    let _workers: Vec<_> = (1..=2).map(|i| farm.worker(&format!("w{i}"))).collect();
    let shared = farm.dir.join("shared.jsonl");
    let (clients, tasks) = (40, 25);
    let mut procs: Vec<_> = (0..clients)
        .map(|i| {
            let id = format!("c{i}");
            farm.spawn(
                &id,
                &[
                    "client",
                    "--id",
                    &id,
                    "--tasks",
                    &tasks.to_string(),
                    "--concurrency",
                    "8",
                    "--task",
                    r#"{"kind":"echo","message":"a result long enough that a line split in pieces would show"}"#,
                    "--json",
                    "--results-log",
                    shared.to_str().unwrap(),
                ],
            )
        })
        .collect();
    for p in &mut procs {
        assert!(p.exit().await.success());
    }
    let text = std::fs::read_to_string(&shared).unwrap();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert!(bad.is_empty(), "{} malformed lines, e.g. {:?}", bad.len(), bad.first());
    assert_eq!(text.lines().count(), clients * tasks);
}
