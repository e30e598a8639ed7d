//! The chart's Grafana dashboard (charts/taskfarm/dashboards/taskfarm.json) queries only metrics
//! a running farm exposes: a master, a worker and a client run tasks, and every `taskfarm_...`
//! name the dashboard mentions must be among the samples of their `/metrics`. Names starting
//! with `taskfarm_controller_` belong to the operator (checked by its own unit test); ZooKeeper's
//! names (`avg_latency`, ...) come from ZooKeeper's Prometheus provider, which the Debian
//! package the tests run lacks (docs/METRICS.md lists them with their source).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Farm, LIMIT};
use taskfarm_harness::free_port;

const DASHBOARD: &str = include_str!("../../../charts/taskfarm/dashboards/taskfarm.json");

/// The `taskfarm_...` names in the dashboard, the controller's left out.
fn queried_names() -> BTreeSet<String> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| !p.is_empty()));
    regex::Regex::new(r"\btaskfarm_[a-z0-9_]+")
        .unwrap()
        .find_iter(DASHBOARD)
        .map(|m| m.as_str().to_string())
        .filter(|name| !name.starts_with("taskfarm_controller_"))
        .collect()
}

/// `GET /metrics` on `addr`: the body of a 200 answer (None while nothing answers).
fn metrics(addr: &str) -> Option<String> {
    common::http_get(addr, "/metrics").and_then(|(status, body)| (status == 200).then_some(body))
}

#[tokio::test]
async fn every_role_metric_the_dashboard_queries_is_exposed_by_a_running_farm() {
    let queried = queried_names();
    assert!(
        queried.len() >= 10,
        "the dashboard shows the farm's own metrics: {queried:?}"
    );
    let farm = Farm::new(
        &common::shared_standalone().connect_string(),
        "dashboard",
        Duration::from_secs(2),
    );
    farm.observer().await.close().await;
    let addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let _master = farm.spawn("m1", &["master", "--id", "m1", "--health-addr", &addrs[0]]);
    let _worker = farm.spawn("w1", &["worker", "--id", "w1", "--health-addr", &addrs[1]]);
    // `--tasks 0`: the client keeps submitting (two in flight) until it is stopped.
    let _client = farm.spawn(
        "c1",
        &[
            "client",
            "--id",
            "c1",
            "--tasks",
            "0",
            "--concurrency",
            "2",
            "--task",
            r#"{"kind":"echo","message":"m"}"#,
            "--health-addr",
            &addrs[2],
        ],
    );

    // Labelled families appear with their first sample (a task's outcome, the leader's first
    // status write): poll until every queried name is there, as Prometheus would scrape.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let scraped = {
            let addrs = addrs.clone();
            tokio::task::spawn_blocking(move || addrs.iter().map(|a| metrics(a)).collect::<Vec<_>>())
                .await
                .unwrap()
        };
        let exposed: BTreeSet<String> = scraped
            .iter()
            .flatten()
            .flat_map(|t| taskfarm::metrics::exposed_names(t))
            .collect();
        let missing: Vec<&String> = queried.iter().filter(|name| !exposed.contains(*name)).collect();
        if missing.is_empty() {
            // The farm ran tasks: the throughput panel has something to show.
            let worker = scraped[1].as_deref().unwrap_or_default();
            assert!(
                worker.contains("taskfarm_worker_tasks_total{outcome=\"ok\"}"),
                "{worker}"
            );
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dashboard queries {missing:?}, which no role exposes; exposed: {exposed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
