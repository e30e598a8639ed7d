//! ZooKeeper ACLs against a real server: a farm whose roles share a secret runs end to end;
//! an anonymous ZooKeeper client may read the farm's metadata but not task payloads or results,
//! and every write it tries fails with NoAuth; a role without the secret (or with another one)
//! stops at start with a clear error.

mod common;

use std::time::Duration;

use common::{shared_standalone, wait_children, Farm};
use nix::sys::signal::Signal;
use taskfarm::protocol::FarmStatus;
use taskfarm::zk::{digest_id, DIGEST_USER};
use zookeeper_client::{Acls, CreateMode, Error as ZkError};

const SECRET: &str = "acl-test-secret";

fn with_secret<'a>(secret: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--zk-secret", secret];
    v.extend_from_slice(args);
    v
}

fn assert_no_auth<T: std::fmt::Debug>(what: &str, r: Result<T, ZkError>) {
    match r {
        Err(ZkError::NoAuth) => {}
        other => panic!("{what}: expected NoAuth, got {other:?}"),
    }
}

#[tokio::test]
async fn a_farm_with_a_secret_runs_and_anonymous_clients_can_only_read_its_metadata() {
    let farm = Farm::new(&shared_standalone().connect_string(), "acl", Duration::from_secs(10));
    // The chroot and the layout already exist with open ACLs (a run without a secret): the
    // roles with the secret tighten them.
    farm.observer().await.close().await;

    let _m = farm.spawn("m1", &with_secret(SECRET, &["master", "--id", "m1"]));
    let _w = farm.spawn("w1", &with_secret(SECRET, &["worker", "--id", "w1"]));
    let results = farm.results_path("c");
    let results = results.to_str().unwrap();
    let mut client = farm.spawn(
        "c",
        &with_secret(
            SECRET,
            &[
                "client",
                "--id",
                "c",
                "--tasks",
                "20",
                "--concurrency",
                "4",
                "--json",
                "--results-log",
                results,
            ],
        ),
    );
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 20, "{summary}");
    assert_eq!(summary["lost"], 0, "{summary}");
    assert!(client.exit().await.success());

    // An anonymous session (no secret, no layout creation).
    let anon = farm.config().connect().await.unwrap();
    // ZooKeeper shows the digest's hash only to those with ADMIN: anonymous readers see
    // `taskfarm:x`, so the secret cannot be brute-forced offline from the ACL.
    let farm_id = format!("{DIGEST_USER}:x");
    assert_ne!(farm_id, digest_id(DIGEST_USER, SECRET));
    for path in ["/", "/tasks", "/data", "/workers", "/master", "/status"] {
        let (acl, _) = anon.client.get_acl(path).await.unwrap();
        let shown: Vec<String> = acl
            .iter()
            .map(|a| format!("{}:{}:{}", a.scheme(), a.id(), a.permission()))
            .collect();
        assert_eq!(acl.len(), 2, "{path}: {shown:?}");
        assert!(
            acl.iter().any(|a| a.scheme() == "digest" && a.id() == farm_id),
            "{path}: {shown:?}"
        );
        assert!(
            acl.iter().any(|a| a.scheme() == "world" && a.id() == "anyone"),
            "{path}: {shown:?}"
        );
    }

    // Reads of the farm's metadata are allowed.
    let (status, _) = anon.client.get_data("/status").await.unwrap();
    FarmStatus::parse(&status).expect("status readable");
    assert_eq!(anon.client.list_children("/workers").await.unwrap(), vec!["w1"]);
    anon.client.get_data("/workers/w1").await.unwrap();

    // Every write fails.
    let open = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    assert_no_auth(
        "create under /tasks",
        anon.client.create("/tasks/evil-1", b"{}", &open).await,
    );
    assert_no_auth(
        "create under /data",
        anon.client.create("/data/evil-1", b"{}", &open).await,
    );
    assert_no_auth(
        "create under /workers",
        anon.client.create("/workers/evil", b"{}", &open).await,
    );
    assert_no_auth(
        "create under /master",
        anon.client
            .create("/master/_c_evil-latch-0000000001", b"{}", &open)
            .await,
    );
    assert_no_auth(
        "create in the chroot",
        anon.client.create("/evil", b"", &persistent).await,
    );
    assert_no_auth(
        "set a worker's assignment",
        anon.client
            .set_data(
                "/workers/w1",
                br#"{"task":"x","epoch":1,"attempt":1,"task_version":1}"#,
                None,
            )
            .await,
    );
    assert_no_auth("delete a worker", anon.client.delete("/workers/w1", None).await);
    assert_no_auth("overwrite /status", anon.client.set_data("/status", b"{}", None).await);
    assert_no_auth("delete a layout znode", anon.client.delete("/data", None).await);
    assert_no_auth(
        "open up an ACL",
        anon.client
            .set_acl(
                "/tasks",
                &[zookeeper_client::Acl::new(
                    zookeeper_client::Permission::ALL,
                    zookeeper_client::AuthId::anyone(),
                )],
                None,
            )
            .await,
    );

    // A task in flight: its payload and record (which will carry the result) are private.
    let mut slow = farm.spawn(
        "slow",
        &with_secret(
            SECRET,
            &[
                "client",
                "--id",
                "slow",
                "--tasks",
                "1",
                "--task",
                r#"{"kind":"sleep","ms":600000}"#,
            ],
        ),
    );
    let task = wait_children(&anon, "/tasks", "the slow task submitted", |c| c.first().cloned()).await;
    assert_no_auth(
        "read a task record",
        anon.client.get_data(&format!("/tasks/{task}")).await,
    );
    assert_no_auth(
        "read a task payload",
        anon.client.get_data(&format!("/data/{task}")).await,
    );
    assert_no_auth(
        "delete a task",
        anon.client.delete(&format!("/tasks/{task}"), None).await,
    );

    // `zk tree` without the secret still works and says what it cannot read.
    let mut tree = farm.spawn("tree", &["zk", "tree", "/"]);
    tree.expect_line("the private task record", |l| {
        l.contains(&task) && l.contains("not readable without the farm's secret")
    })
    .await;
    assert!(tree.exit().await.success());

    // Roles without the secret, or with another one, stop at start with a clear error.
    for (name, secret, expected) in [
        ("anon", "", "needs the farm's secret"),
        ("wrong", "not-the-secret", "is TASKFARM_ZK_SECRET the farm's secret?"),
    ] {
        for role in ["client", "worker", "master"] {
            let id = format!("{name}-{role}");
            let mut p = farm.spawn(&id, &with_secret(secret, &[role, "--id", &id]));
            let status = p.exit().await;
            assert!(!status.success(), "{id} should fail");
            let log = p.log();
            assert!(log.contains(expected), "{id}: {log}");
            assert!(!log.contains("panicked"), "{id}: {log}");
        }
    }

    slow.signal(Signal::SIGTERM);
    slow.exit().await;
}

#[tokio::test]
async fn a_role_with_the_secret_creates_a_missing_chroot_with_the_farm_s_acl() {
    let hosts = shared_standalone().connect_string();
    let top = format!("/acl-fresh-{:08x}", rand::random::<u32>());
    let farm = Farm {
        hosts: hosts.clone(),
        chroot: format!("{top}/farm"),
        session_timeout: Duration::from_secs(10),
        dir: common::test_dir("acl-fresh"),
    };
    let mut init = farm.spawn("init", &with_secret(SECRET, &["zk", "init"]));
    assert!(init.exit().await.success(), "{}", init.log());

    let root = taskfarm::zk::ZkConfig::new(&hosts, Duration::from_secs(10), Duration::from_secs(30), "")
        .unwrap()
        .connect()
        .await
        .unwrap();
    for path in [top.clone(), farm.chroot.clone(), format!("{}/tasks", farm.chroot)] {
        let (acl, _) = root.client.get_acl(&path).await.unwrap();
        assert!(
            acl.iter()
                .any(|a| a.scheme() == "digest" && a.id() == format!("{DIGEST_USER}:x")),
            "{path}: {acl:?}"
        );
        let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
        assert_no_auth("create", root.client.create(&format!("{path}/evil"), b"", &open).await);
    }
}
