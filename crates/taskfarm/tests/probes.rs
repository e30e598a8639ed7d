//! A role's probes and metrics on its `--health-addr`: `/metrics` carries `taskfarm_` metrics,
//! `/readyz` follows the ZooKeeper session (503 while its server is frozen, 200 when it is
//! back) and `/healthz` says the role's loop makes progress. The endpoints are polled, as a
//! kubelet or Prometheus does; nothing here is timed.

mod common;

use std::time::Duration;

use common::{Farm, LIMIT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use taskfarm_harness::{free_port, ZkCluster};

/// Polls `path` until it answers `status` (a probe has no event to wait on).
async fn wait_status(addr: &str, path: &str, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (addr2, path2) = (addr.to_string(), path.to_string());
        let got = tokio::task::spawn_blocking(move || common::http_get(&addr2, &path2))
            .await
            .unwrap();
        match got {
            Some((s, body)) if s == status => return body,
            other if tokio::time::Instant::now() > deadline => {
                panic!("{path} never answered {status}; last: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Polls `/metrics` until it holds `needle` (gauges follow the leader's once-a-second status).
async fn wait_metric(addr: &str, needle: &str) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let body = wait_status(addr, "/metrics", 200).await;
        if body.contains(needle) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{needle:?} never in:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_worker_serves_metrics_and_its_readiness_follows_a_frozen_server() {
    let zk = ZkCluster::standalone(common::zk_options()).unwrap();
    let farm = Farm::new(&zk.connect_string(), "probes", Duration::from_secs(2));
    farm.observer().await.close().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let master_addr = format!("127.0.0.1:{}", free_port());
    let _master = farm.spawn("m1", &["master", "--id", "m1", "--health-addr", &master_addr]);
    let _worker = farm.spawn("w1", &["worker", "--id", "w1", "--health-addr", &addr]);
    wait_status(&addr, "/readyz", 200).await;
    assert_eq!(wait_status(&addr, "/healthz", 200).await, "ok\n");

    let mut submit = farm.spawn("submit", &["submit", r#"{"kind":"echo","message":"m"}"#]);
    assert!(submit.exit().await.success());
    let metrics = wait_status(&addr, "/metrics", 200).await;
    for expected in [
        "taskfarm_worker_tasks_total{outcome=\"ok\"} 1",
        "taskfarm_worker_task_duration_seconds_count 1",
        "taskfarm_zookeeper_session_connected 1",
        "# EOF",
    ] {
        assert!(metrics.contains(expected), "{expected:?} not in:\n{metrics}");
    }

    // The leader's view: it leads, it assigned the task, and its gauges follow /status.
    for expected in [
        "taskfarm_master_leading 1",
        "taskfarm_master_assignments_total 1",
        "taskfarm_farm_completed 1",
        "taskfarm_master_workers{state=\"free\"} 1",
    ] {
        wait_metric(&master_addr, expected).await;
    }

    // Freeze the server: the session disconnects and the worker is not ready; thaw: ready.
    let server = Pid::from_raw(zk.servers()[0].pid().unwrap() as i32);
    kill(server, Signal::SIGSTOP).unwrap();
    let body = wait_status(&addr, "/readyz", 503).await;
    kill(server, Signal::SIGCONT).unwrap();
    assert!(body.contains("no connected ZooKeeper session"), "{body}");
    wait_status(&addr, "/readyz", 200).await;
    let metrics = wait_status(&addr, "/metrics", 200).await;
    assert!(metrics.contains("taskfarm_zookeeper_reconnects_total 1"), "{metrics}");
}
