//! Admission control: the farm's bound on the tasks it holds is a ZooKeeper hard quota on its
//! `/data`, so the servers themselves refuse a submission beyond it (QuotaExceeded), whoever
//! the client. The client role waits for room and loses or repeats nothing; `taskfarm submit`
//! says "farm full" with exit status 75 and creates nothing (or waits when told to).

mod common;

use std::time::Duration;

use common::{shared_standalone, wait_data, zk_options, Farm};
use taskfarm::admission::{self, Bound};
use taskfarm::zk::ZkSession;
use taskfarm_harness::ZkCluster;
use zookeeper_client::{Error as ZkError, MultiWriteError};

/// `taskfarm zk init` with the bound; returns its stdout.
async fn init(farm: &Farm, flags: &[&str]) -> Vec<String> {
    let mut args = vec!["zk", "init"];
    args.extend_from_slice(flags);
    let mut p = farm.spawn("init", &args);
    // Its last line: read before the exit, so that no line is still on its way.
    p.expect_line("the admission bound", |l| l.starts_with("admission bound: "))
        .await;
    assert!(p.exit().await.success(), "zk init {flags:?} failed: {}", p.log());
    p.seen.clone()
}

/// Submits a task the way PROTOCOL.md §5.4 says (a compatible client that knows nothing of
/// the bound): one multi creating the payload and the record.
async fn submit_raw(s: &ZkSession, id: &str) -> Result<(), MultiWriteError> {
    let options = s.private_ephemeral();
    let mut multi = s.client.new_multi_writer();
    multi
        .add_create(&format!("/data/{id}"), br#"{"kind":"echo","message":"x"}"#, &options)
        .unwrap();
    multi
        .add_create(
            &format!("/tasks/{id}"),
            br#"{"client":"raw","state":"queued","attempt":0}"#,
            &options,
        )
        .unwrap();
    multi.commit().await.map(|_| ())
}

async fn children(s: &ZkSession, path: &str) -> Vec<String> {
    let mut c = s.client.list_children(path).await.unwrap();
    c.sort();
    c
}

/// Waits until the task's payload znode holds its result (version 1).
async fn wait_result(s: &ZkSession, id: &str) {
    wait_data(s, &format!("/data/{id}"), "the task's result", |d| {
        d.filter(|d| d.starts_with(b"{\"ok\"")).map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn the_bound_is_applied_as_configured_outside_the_chroot() {
    let farm = Farm::new(&shared_standalone().connect_string(), "bound", Duration::from_secs(10));
    let out = init(&farm, &["--max-queued-tasks", "5"]).await;
    assert!(
        out.iter()
            .any(|l| l == "admission bound: 5 tasks, 368640 bytes (now held: 0 tasks, 0 bytes)"),
        "{out:?}"
    );
    // The quota sits at the farm's absolute /data, outside its chroot.
    let root = farm.config().with_chroot("/").unwrap().connect().await.unwrap();
    let limits = format!("/zookeeper/quota{}/data/zookeeper_limits", farm.chroot);
    let (data, _) = root.client.get_data(&limits).await.unwrap();
    assert_eq!(
        String::from_utf8(data).unwrap(),
        "count=-1,bytes=-1,countHardLimit=6,byteHardLimit=368640"
    );
    // Said in bytes: as many tasks as 72 KiB fit; the smaller of two bounds wins.
    init(&farm, &["--max-queued-bytes", "1MiB"]).await;
    let status = admission::status(&farm.config()).await.unwrap();
    assert_eq!(status.bound, Some(Bound { tasks: 14 }));
    init(&farm, &["--max-queued-bytes", "1MiB", "--max-queued-tasks", "3"]).await;
    assert_eq!(
        admission::status(&farm.config()).await.unwrap().bound,
        Some(Bound { tasks: 3 })
    );
    // The server counts what the farm holds.
    let s = farm.observer().await;
    submit_raw(&s, "t1").await.unwrap();
    let held = admission::status(&farm.config()).await.unwrap().held.unwrap();
    assert_eq!(held, (1, br#"{"kind":"echo","message":"x"}"#.len() as u64));
    // Without flags, init leaves the bound alone; 0 removes it.
    assert!(init(&farm, &[])
        .await
        .iter()
        .any(|l| l.starts_with("admission bound: 3 tasks")));
    assert!(init(&farm, &["--max-queued-tasks", "0"])
        .await
        .iter()
        .any(|l| l == "admission bound: none"));
    assert_eq!(root.client.check_stat(&limits).await.unwrap(), None);
}

#[tokio::test]
async fn submit_over_the_bound_says_farm_full_and_creates_nothing_or_waits_when_told() {
    let farm = Farm::new(&shared_standalone().connect_string(), "full", Duration::from_secs(10));
    init(&farm, &["--max-queued-tasks", "1"]).await;
    let s = farm.observer().await;
    submit_raw(&s, "held").await.unwrap();
    // A compatible client over the bound: refused atomically, nothing left behind.
    match submit_raw(&s, "over").await {
        Err(MultiWriteError::OperationFailed {
            source: ZkError::QuotaExceeded,
            ..
        }) => {}
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    let mut submit = farm.spawn("submit", &["submit", r#"{"kind":"echo","message":"hi"}"#]);
    let status = submit.exit().await;
    assert_eq!(status.code(), Some(75), "{}", submit.log());
    assert!(submit.log().contains("farm full"), "{}", submit.log());
    assert_eq!(children(&s, "/data").await, ["held"]);
    assert_eq!(children(&s, "/tasks").await, ["held"]);

    // Told to wait, it submits once there is room: here when our task's result is collected.
    let mut waiting = farm.spawn(
        "submit-wait",
        &["submit", "--when-full", "wait", r#"{"kind":"echo","message":"waited"}"#],
    );
    waiting.wait_log("farm full").await;
    let _master = farm.master("m1");
    let _worker = farm.worker("w1");
    wait_result(&s, "held").await;
    s.client.delete("/data/held", None).await.unwrap();
    let line = waiting.expect_line("the result", |l| l.starts_with('{')).await;
    assert!(line.contains("waited"), "{line}");
    assert!(waiting.exit().await.success());
}

#[tokio::test]
async fn a_client_over_the_bound_waits_and_delivers_every_result_once() {
    let farm = Farm::new(&shared_standalone().connect_string(), "wait", Duration::from_secs(10));
    init(&farm, &["--max-queued-tasks", "2"]).await;
    let s = farm.observer().await;
    for id in ["a", "b"] {
        submit_raw(&s, id).await.unwrap();
    }
    let _master = farm.master("m1");
    let _worker = farm.worker("w1");
    for id in ["a", "b"] {
        wait_result(&s, id).await;
    }
    // The farm holds two uncollected results: the client can submit nothing yet.
    let mut client = farm.client("c1", 10, 4, r#"{"kind":"echo","message":"m"}"#);
    client.wait_log("farm full").await;
    assert_eq!(children(&s, "/data").await, ["a", "b"]);
    assert!(farm.results("c1").is_empty());
    // Collecting them makes room; the client carries on with the same task ids.
    for id in ["a", "b"] {
        s.client.delete(&format!("/data/{id}"), None).await.unwrap();
    }
    let summary = client.json_summary().await;
    assert!(client.exit().await.success());
    assert_eq!(summary["completed"], 10, "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    let mut tasks: Vec<String> = farm
        .results("c1")
        .iter()
        .map(|r| r["task"].as_str().unwrap().to_string())
        .collect();
    tasks.sort();
    let expected: Vec<String> = (1..=10).map(|n| format!("c1-{n:08}")).collect();
    assert_eq!(tasks, expected, "each task delivered exactly once");
    assert!(client.log().contains("the farm has room again"), "{}", client.log());
}

/// An ensemble (QuorumPeerMain) reads `enforceQuota=true` from zoo.cfg as the standalone
/// server does.
#[tokio::test]
async fn an_ensemble_enforces_the_bound_too() {
    let zk = ZkCluster::ensemble(3, zk_options()).unwrap();
    let farm = Farm::new(&zk.connect_string(), "ensemble", Duration::from_secs(10));
    admission::apply(&farm.config(), Bound { tasks: 1 }).await.unwrap();
    let s = farm.observer().await;
    submit_raw(&s, "one").await.unwrap();
    assert!(matches!(
        submit_raw(&s, "two").await,
        Err(MultiWriteError::OperationFailed {
            source: ZkError::QuotaExceeded,
            ..
        })
    ));
}

/// Kubernetes sets the bound on the masters (`TASKFARM_MAX_QUEUED_TASKS`): each new leader
/// applies it, so no `zk init` is needed.
#[tokio::test]
async fn a_new_leader_applies_its_configured_bound() {
    let farm = Farm::new(
        &shared_standalone().connect_string(),
        "leadbound",
        Duration::from_secs(10),
    );
    let master = farm.spawn("m1", &["master", "--id", "m1", "--max-queued-tasks", "7"]);
    master.wait_log("became leader").await;
    let root = farm.config().with_chroot("/").unwrap().connect().await.unwrap();
    let limits = format!("/zookeeper/quota{}/data/zookeeper_limits", farm.chroot);
    let data = wait_data(&root, &limits, "the leader's bound", |d| d.map(<[u8]>::to_vec)).await;
    assert_eq!(
        String::from_utf8(data).unwrap(),
        "count=-1,bytes=-1,countHardLimit=8,byteHardLimit=516096"
    );
}
