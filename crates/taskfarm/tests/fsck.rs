//! `taskfarm zk fsck` against a real ZooKeeper: clean on a farm whose tasks completed; exit 1
//! naming the znode for each kind of damage; exit 2 when it cannot check; and it changes
//! nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{shared_standalone, wait_children, Farm};
use nix::sys::signal::Signal;
use taskfarm::protocol::{Assignment, TaskRecord, WorkerRecord};
use taskfarm_harness::{free_port, RoleCommand};

struct Fsck {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `taskfarm zk fsck <extra>` against `connect` to completion (settling for 300ms
/// unless `extra` says otherwise).
async fn fsck(connect: &str, extra: &[&str]) -> Fsck {
    let mut args = vec!["--connect-timeout", "2s", "zk", "fsck"];
    if !extra.contains(&"--settle") {
        args.extend(["--settle", "300ms"]);
    }
    args.extend_from_slice(extra);
    let binary = Path::new(env!("CARGO_BIN_EXE_taskfarm"));
    let mut cmd = RoleCommand::new(binary, connect, Duration::from_secs(5)).command(&args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Fsck {
        code: out.status.code().expect("fsck exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

impl Fsck {
    fn assert_clean(&self) {
        assert_eq!((self.code, self.stdout.as_str()), (0, ""), "stderr: {}", self.stderr);
    }

    /// Exit 1 and exactly one line, about `path`, saying `words`.
    fn assert_one(&self, path: &str, words: &str) {
        assert_eq!(self.code, 1, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(&format!("{path}: ")), "{lines:?}");
        assert!(lines[0].contains(words), "{lines:?}");
    }
}

#[tokio::test]
async fn a_drained_farm_is_clean_and_each_damage_is_named() {
    let farm = Farm::new(&shared_standalone().connect_string(), "fsck", Duration::from_secs(2));
    let observer = farm.observer().await;
    let _master = farm.master("m1");
    let mut worker = farm.worker("w1");
    let mut client = farm.client("c", 20, 4, r#"{"kind":"sleep","ms":0}"#);
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 20, "{summary}");
    assert!(client.exit().await.success());
    fsck(&farm.connect_string(), &[]).await.assert_clean();

    // The rest with no worker, so that nothing runs the damaged tasks away.
    worker.signal(Signal::SIGTERM);
    worker.exit().await;
    wait_children(&observer, "/workers", "w1 gone", |c| c.is_empty().then_some(())).await;
    let c = &observer.client;

    c.create("/junk", b"", &observer.persistent()).await.unwrap();
    fsck(&farm.connect_string(), &[])
        .await
        .assert_one("/junk", "foreign znode");
    c.delete("/junk", None).await.unwrap();

    c.create("/workers/ghost", b"{garbage", &observer.ephemeral())
        .await
        .unwrap();
    fsck(&farm.connect_string(), &[])
        .await
        .assert_one("/workers/ghost", "malformed worker record");
    c.delete("/workers/ghost", None).await.unwrap();

    let record = TaskRecord::queued("observer", 0).to_bytes();
    c.create("/tasks/.hidden", &record, &observer.ephemeral())
        .await
        .unwrap();
    c.create("/data/.hidden", br#"{"kind":"echo"}"#, &observer.ephemeral())
        .await
        .unwrap();
    let run = fsck(&farm.connect_string(), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        [
            "/tasks/.hidden: invalid task id: starts with a dot (the master never assigns it)",
            "/data/.hidden: invalid task id: starts with a dot",
        ],
        "{}",
        run.stdout
    );
    c.delete("/tasks/.hidden", None).await.unwrap();
    c.delete("/data/.hidden", None).await.unwrap();

    // A stray payload with nobody to run it, and a persistent "worker".
    c.create("/data/stray", br#"{"kind":"echo"}"#, &observer.ephemeral())
        .await
        .unwrap();
    fsck(&farm.connect_string(), &[])
        .await
        .assert_one("/data/stray", "a payload without a task record");
    c.delete("/data/stray", None).await.unwrap();
    c.create("/workers/w9", b"{}", &observer.persistent()).await.unwrap();
    fsck(&farm.connect_string(), &[])
        .await
        .assert_one("/workers/w9", "not a live worker");
    c.delete("/workers/w9", None).await.unwrap();

    fsck(&farm.connect_string(), &[]).await.assert_clean();
}

#[tokio::test]
async fn a_busy_farm_is_clean() {
    // Commits land between fsck's reads; the second read must not mistake that for damage.
    let farm = Farm::new(
        &shared_standalone().connect_string(),
        "fsckbusy",
        Duration::from_secs(2),
    );
    let observer = farm.observer().await;
    let _master = farm.master("m1");
    let _workers = [farm.worker("w1"), farm.worker("w2")];
    let mut client = farm.client("c", 400, 8, r#"{"kind":"sleep","ms":10}"#);
    wait_children(&observer, "/tasks", "tasks running", |c| (c.len() >= 4).then_some(())).await;
    for _ in 0..3 {
        fsck(&farm.connect_string(), &[]).await.assert_clean();
    }
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 400, "{summary}");
    fsck(&farm.connect_string(), &[]).await.assert_clean();
}

#[tokio::test]
async fn other_versions_and_lasting_transient_states_are_reported() {
    // No master: nothing repairs what we write.
    let farm = Farm::new(&shared_standalone().connect_string(), "fsckver", Duration::from_secs(2));
    let observer = farm.observer().await;
    let c = &observer.client;
    let v1 = br#"{"client":"old","state":"done","attempt":1,"result":{"ok":true}}"#;
    c.create("/tasks/old-00000001", v1, &observer.ephemeral())
        .await
        .unwrap();
    c.create("/data/old-00000001", br#"{"kind":"echo"}"#, &observer.ephemeral())
        .await
        .unwrap();
    fsck(&farm.connect_string(), &[])
        .await
        .assert_one("/tasks/old-00000001", "protocol version 1");
    c.delete("/tasks/old-00000001", None).await.unwrap();
    c.delete("/data/old-00000001", None).await.unwrap();

    // A worker holding a task that has no record: a leading master would clear it.
    let busy = WorkerRecord::assigned(&Assignment {
        task: "gone".into(),
        epoch: 1,
        attempt: 1,
        task_version: 1,
    });
    c.create("/workers/w1", &busy.to_bytes(), &observer.ephemeral())
        .await
        .unwrap();
    let run = fsck(&farm.connect_string(), &[]).await;
    run.assert_one("/workers/w1", "names task gone, which has no record");
    assert!(run.stdout.contains("transient"), "{}", run.stdout);
}

#[tokio::test]
async fn fsck_exits_2_when_it_cannot_check_and_creates_nothing() {
    let hosts = shared_standalone().connect_string();
    let missing = format!("/never-created-{:08x}", rand::random::<u32>());
    let run = fsck(&format!("{hosts}{missing}"), &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no farm at"), "{}", run.stderr);
    // Read-only: not even the chroot was created.
    let root = Farm::new(&hosts, "root", Duration::from_secs(2))
        .config()
        .with_chroot("/")
        .unwrap();
    let session = root.connect().await.unwrap();
    assert!(session.client.check_stat(&missing).await.unwrap().is_none());

    let run = fsck(&format!("127.0.0.1:{}", free_port()), &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no ZooKeeper server answered"), "{}", run.stderr);

    let run = fsck(&hosts, &["--settle", "soon"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("'soon'"), "{}", run.stderr);
}
