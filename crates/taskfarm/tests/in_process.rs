//! Roles run inside the test process: each takes its shutdown future as a parameter (the binary
//! passes SIGTERM/SIGINT), so a test can start a master and a worker as tasks, serve a client,
//! and stop each role by resolving its future, with no process or signal involved.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::{shared_standalone, Farm, LIMIT};
use taskfarm::client::ClientArgs;
use taskfarm::master::MasterArgs;
use taskfarm::worker::WorkerArgs;
use tokio::sync::oneshot;

/// Parses a role's arguments as its subcommand would.
#[derive(Parser)]
struct Argv<T: clap::Args> {
    #[command(flatten)]
    args: T,
}

fn parse<T: clap::Args>(argv: &[&str]) -> T {
    Argv::<T>::try_parse_from(std::iter::once("role").chain(argv.iter().copied()))
        .unwrap()
        .args
}

/// A shutdown future for a role, and the switch that resolves it.
fn shutdown() -> (oneshot::Sender<()>, impl std::future::Future<Output = ()>) {
    let (tx, rx) = oneshot::channel();
    (tx, async move {
        let _ = rx.await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_run_in_process_and_stop_when_their_shutdown_future_resolves() {
    let farm = Farm::new(
        &shared_standalone().connect_string(),
        "inproc",
        std::time::Duration::from_secs(10),
    );
    let config = farm.config();
    let observer = farm.observer().await;

    let (stop_master, master_shutdown) = shutdown();
    let master = tokio::spawn({
        let config = config.clone();
        async move { taskfarm::master::run(&config, parse::<MasterArgs>(&["--id", "m1"]), master_shutdown).await }
    });
    let (stop_worker, worker_shutdown) = shutdown();
    let worker = tokio::spawn({
        let config = config.clone();
        async move { taskfarm::worker::run(&config, parse::<WorkerArgs>(&["--id", "w1"]), worker_shutdown).await }
    });

    // A client in-process too: it returns once its tasks are delivered.
    let results = farm.results_path("c1");
    let client_args = parse::<ClientArgs>(&[
        "--id",
        "c1",
        "--tasks",
        "5",
        "--task",
        r#"{"kind":"echo","message":"in-process"}"#,
        "--results-log",
        results.to_str().unwrap(),
    ]);
    let code = tokio::time::timeout(
        LIMIT,
        taskfarm::client::run(&config, client_args, std::future::pending()),
    )
    .await
    .expect("the client finishes")
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let delivered = farm.results("c1");
    assert_eq!(delivered.len(), 5);
    assert!(
        delivered.iter().all(|r| r["result"]["value"] == "in-process"),
        "{delivered:?}"
    );

    // Resolving the worker's future ends it cleanly, and its session with it: the ephemeral
    // znode is gone when run() returns (a session that merely died would keep it until expiry).
    assert!(observer.client.check_stat("/workers/w1").await.unwrap().is_some());
    stop_worker.send(()).unwrap();
    tokio::time::timeout(LIMIT, worker)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
    assert!(observer.client.check_stat("/workers/w1").await.unwrap().is_none());

    // The master too: its election candidate goes with its session.
    assert_eq!(common::candidates(&observer).await.len(), 1);
    stop_master.send(()).unwrap();
    tokio::time::timeout(LIMIT, master)
        .await
        .expect("the master stops")
        .unwrap()
        .unwrap();
    assert!(common::candidates(&observer).await.is_empty());
}
