//! The soak's independent observer: its own ZooKeeper session, a persistent recursive watch on
//! the farm's root, and a read of every created or changed task, worker, result and status
//! znode. It records what [`super::check`] judges: master-made writes with their zxid and
//! epoch, and every result written (progress).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt as _};
use taskfarm::protocol::{now_ms, paths, FarmStatus, TaskRecord, TaskState, WorkerRecord};
use taskfarm::zk::{is_terminal, ZkConfig};
use tokio::sync::watch;
use zookeeper_client::{AddWatchMode, EventType, SessionState};

use super::check::{FencedWrite, Progress};

/// What the observer's sessions have seen so far.
#[derive(Debug, Default)]
pub(super) struct Observed {
    pub writes: Vec<FencedWrite>,
    pub progress: Vec<Progress>,
    /// (task, czxid, mzxid) of every result read (`/data/<task>` at version 1 or more).
    pub dones: Vec<(String, i64, i64)>,
    pub leader: Option<String>,
    pub events: u64,
    pub sessions: u64,
}

/// Observes the farm into `seen` until `stop` changes, with a new session whenever one ends.
#[tracing::instrument(name = "checker", skip_all)]
pub(super) async fn observe(config: ZkConfig, seen: Arc<Mutex<Observed>>, mut stop: watch::Receiver<bool>) {
    loop {
        let session = tokio::select! {
            s = config.connect() => match s {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot connect; retrying");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        seen.lock().unwrap().sessions += 1;
        let mut events = match session.client.watch("/", AddWatchMode::PersistentRecursive).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch; reconnecting");
                continue;
            }
        };
        let mut reads = FuturesUnordered::new();
        loop {
            tokio::select! {
                event = events.changed() => {
                    if event.event_type == EventType::Session {
                        // Persistent-watch events can be lost across a reconnection
                        // (ZOOKEEPER-4698), and zookeeper-client 0.11.2 does not re-register
                        // persistent watches at all after one: start afresh with a new session.
                        if is_terminal(event.session_state) || event.session_state == SessionState::Disconnected {
                            break;
                        }
                        continue;
                    }
                    if !matches!(event.event_type, EventType::NodeCreated | EventType::NodeDataChanged) {
                        continue;
                    }
                    let interesting = event.path == paths::STATUS
                        || event.path.starts_with("/tasks/")
                        || event.path.starts_with("/workers/")
                        || (event.path.starts_with("/data/") && event.event_type == EventType::NodeDataChanged);
                    if interesting {
                        let client = session.client.clone();
                        reads.push(async move {
                            let r = tokio::time::timeout(Duration::from_secs(10), client.get_data(&event.path)).await;
                            (event.path, r, now_ms())
                        });
                    }
                }
                Some((path, read, at)) = reads.next() => {
                    if let Ok(Ok((data, stat))) = read {
                        record(&seen, &path, &data, &stat, at);
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}

/// Records what one read of a znode shows.
fn record(seen: &Mutex<Observed>, path: &str, data: &[u8], stat: &zookeeper_client::Stat, at: u64) {
    let mut o = seen.lock().unwrap();
    o.events += 1;
    if path == paths::STATUS {
        if let Ok(s) = FarmStatus::parse(data) {
            o.leader = Some(s.leader.clone());
            o.writes.push(FencedWrite {
                zxid: stat.mzxid,
                epoch: s.epoch,
                path: path.to_string(),
            });
        }
    } else if path.starts_with("/tasks/") {
        if let Ok(TaskRecord {
            state: TaskState::Assigned,
            epoch: Some(epoch),
            ..
        }) = TaskRecord::parse(data)
        {
            o.writes.push(FencedWrite {
                zxid: stat.mzxid,
                epoch,
                path: path.to_string(),
            });
        }
    } else if let Some(task) = path.strip_prefix("/data/") {
        // Version 0 is the payload; a commit (or a poison failure) writes the result.
        if stat.version >= 1 {
            o.progress.push(Progress {
                observed_ms: at,
                created_ms: stat.ctime.max(0) as u64,
            });
            o.dones.push((task.to_string(), stat.czxid, stat.mzxid));
        }
    } else if path.starts_with("/workers/") {
        if let Ok(Some(a)) = WorkerRecord::parse(data).map(|w| w.assignment().ok().flatten()) {
            o.writes.push(FencedWrite {
                zxid: stat.mzxid,
                epoch: a.epoch,
                path: path.to_string(),
            });
        }
    }
}
