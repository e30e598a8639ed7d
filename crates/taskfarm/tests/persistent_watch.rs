//! `zk::PersistentWatch` against a real 3-server ensemble: after the server its session is on
//! dies and the session moves to another server, the watch keeps reporting changes.
//! (zookeeper-client 0.11.2 alone does not register persistent watches again after a
//! reconnection: without the wrapper's renewal these events never come.)

mod common;

use std::time::Duration;

use nix::sys::signal::Signal;
use taskfarm::waits::within;
use taskfarm::zk::{PersistentWatch, ZkConfig};
use taskfarm_harness::ZkCluster;
use zookeeper_client::{EventType, SessionState, WatchedEvent};

/// The next event that is not a session event.
async fn next_node_event(watch: &mut PersistentWatch) -> WatchedEvent {
    loop {
        let e = watch.next().await;
        if e.event_type != EventType::Session {
            return e;
        }
    }
}

#[tokio::test]
async fn persistent_watches_keep_reporting_after_their_server_dies() {
    let mut zk = ZkCluster::ensemble(3, common::zk_options()).expect("3-server ensemble");
    let config = ZkConfig::new(
        &zk.connect_string(),
        Duration::from_secs(4),
        Duration::from_secs(30),
        "",
    )
    .unwrap();
    let watcher = config.connect().await.unwrap();
    let writer = config.connect().await.unwrap();
    let persistent = writer.persistent();
    writer.client.create("/w", b"", &persistent).await.unwrap();
    writer.client.create("/n", b"0", &persistent).await.unwrap();
    let mut tree = PersistentWatch::recursive(&watcher.client, "/w").await.unwrap();
    let mut node = PersistentWatch::node(&watcher.client, "/n").await.unwrap();

    // The server holding the watcher's session: its `cons` lists the session id.
    let sid = format!("sid={:#x}", watcher.session_id());
    let home = (0..zk.len())
        .find(|&i| zk.four_letter(i, "cons").is_some_and(|c| c.contains(&sid)))
        .expect("the watcher's server");
    zk.stop_server(home, Signal::SIGKILL).unwrap();

    // Both watches hand out the reconnection only once they are registered again.
    for watch in [&mut tree, &mut node] {
        within(common::LIMIT, "the watcher's session moving to another server", async {
            loop {
                let e = watch.next().await;
                if e.event_type == EventType::Session && e.session_state == SessionState::SyncConnected {
                    return Ok(());
                }
            }
        })
        .await
        .unwrap();
    }
    assert!(zk
        .four_letter((home + 1) % 3, "cons")
        .into_iter()
        .chain(zk.four_letter((home + 2) % 3, "cons"))
        .any(|c| c.contains(&sid)));

    writer.client.create("/w/x", b"", &persistent).await.unwrap();
    writer.client.set_data("/n", b"1", None).await.unwrap();
    let created = within(common::LIMIT, "the tree watch's event", async {
        Ok(next_node_event(&mut tree).await)
    })
    .await
    .unwrap();
    assert_eq!(
        (created.event_type, created.path.as_str()),
        (EventType::NodeCreated, "/w/x")
    );
    let changed = within(common::LIMIT, "the node watch's event", async {
        Ok(next_node_event(&mut node).await)
    })
    .await
    .unwrap();
    assert_eq!(
        (changed.event_type, changed.path.as_str()),
        (EventType::NodeDataChanged, "/n")
    );
}
