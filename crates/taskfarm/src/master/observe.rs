//! How a master learns the farm's state: reading one node after a watch event, and scanning
//! both trees. Leader and standby use the same reads; only what they do with them differs.

use std::time::Duration;

use anyhow::Context as _;
use futures::stream::FuturesOrdered;
use zookeeper_client::{Error as ZkError, WatchedEvent};

use super::index::{Index, TaskObs, WorkerObs};
use crate::protocol::{paths, TaskRecord, WorkerRecord};
use crate::zk::{timed, ZkSession};

/// Which tree an event or read concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Task,
    Worker,
}

impl Kind {
    fn root(self) -> &'static str {
        match self {
            Kind::Task => paths::TASKS,
            Kind::Worker => paths::WORKERS,
        }
    }

    fn path(self, id: &str) -> String {
        match self {
            Kind::Task => paths::task(id),
            Kind::Worker => paths::worker(id),
        }
    }

    /// The observation that `id` is gone.
    pub(super) fn gone(self, id: String) -> Observation {
        match self {
            Kind::Task => Observation::Task(id, None),
            Kind::Worker => Observation::Worker(id, None),
        }
    }
}

/// The result of reading one node after an event.
pub(super) enum Observation {
    Task(String, Option<TaskObs>),
    Worker(String, Option<WorkerObs>),
    /// The read failed (connection loss): the index may be stale, scan again.
    Failed(ZkError),
    /// Nothing to apply (an own write failed; the failure handler re-reads its nodes).
    Nothing,
}

impl Observation {
    /// Applies a read to `index`; false when the read failed (the index may be stale).
    pub(super) fn apply(self, index: &mut Index) -> Result<(), ZkError> {
        match self {
            Observation::Task(id, obs) => index.observe_task(&id, obs),
            Observation::Worker(id, obs) => index.observe_worker(&id, obs),
            Observation::Failed(e) => return Err(e),
            Observation::Nothing => {}
        }
        Ok(())
    }
}

/// Reads in flight, completed in the order they were sent (the order of the events).
pub(super) type Reads = FuturesOrdered<futures::future::BoxFuture<'static, Observation>>;

/// The direct child of `kind`'s tree that a watch event concerns (grandchildren can only hang
/// under foreign znodes, and matter to nobody).
pub(super) fn child_id(event: &WatchedEvent, kind: Kind) -> Option<String> {
    let id = event.path.strip_prefix(kind.root())?.strip_prefix('/')?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

/// Reads one node; the request is sent now, so reads complete in event order.
pub(super) fn read(session: &ZkSession, kind: Kind, id: String) -> futures::future::BoxFuture<'static, Observation> {
    let request = session.client.get_data(&kind.path(&id));
    let limit = session.request_timeout();
    Box::pin(async move {
        match timed(limit, request).await {
            Ok((data, stat)) => match kind {
                Kind::Task => Observation::Task(id, Some(task_obs(&data, &stat))),
                Kind::Worker => Observation::Worker(id, Some(worker_obs(&data, &stat))),
            },
            Err(ZkError::NoNode) => kind.gone(id),
            Err(e) => Observation::Failed(e),
        }
    })
}

/// Lists and reads both trees (reads pipelined) and builds a fresh index (settled, not leading).
pub(super) async fn scan(session: &ZkSession, max_attempts: u32) -> anyhow::Result<Index> {
    let limit = session.request_timeout() * 4;
    let started = std::time::Instant::now();
    let mut index = Index::new(0, max_attempts);
    let workers = read_all(session, paths::WORKERS, limit, &mut index, |index, id, data, stat| {
        index.scanned_worker(id, worker_obs(&data, &stat))
    })
    .await?;
    let tasks = read_all(session, paths::TASKS, limit, &mut index, |index, id, data, stat| {
        index.scanned_task(&id, task_obs(&data, &stat))
    })
    .await?;
    index.scan_done();
    tracing::info!(
        workers,
        tasks,
        scan_ms = started.elapsed().as_millis() as u64,
        "scanned ZooKeeper"
    );
    crate::metrics::get()
        .master
        .scan_duration
        .observe(started.elapsed().as_secs_f64());
    crate::health::beat();
    release_freed_memory();
    Ok(index)
}

/// The names of the children of `/tasks` and of `/workers` (no data).
pub(super) async fn list(session: &ZkSession) -> Result<(Vec<String>, Vec<String>), ZkError> {
    let limit = session.request_timeout() * 4;
    let tasks = session.client.list_children(paths::TASKS);
    let workers = session.client.list_children(paths::WORKERS);
    Ok((timed(limit, tasks).await?, timed(limit, workers).await?))
}

/// Reads every child of `parent` into `index` (sized for them first: a map grown step by step
/// leaves its old tables behind as free but resident memory), handing each to `found` as its
/// reply comes; returns how many.
/// Reads are pipelined through a window: a round trip's latency per window, not per node, and
/// no more replies held at once than the window (a deep backlog's scan would otherwise hold
/// every reply, and leave the process that much bigger).
async fn read_all(
    session: &ZkSession,
    parent: &str,
    limit: Duration,
    index: &mut Index,
    mut found: impl FnMut(&mut Index, String, Vec<u8>, zookeeper_client::Stat),
) -> anyhow::Result<usize> {
    const WINDOW: usize = 1_000;
    let client = &session.client;
    let children = timed(limit, client.list_children(parent))
        .await
        .with_context(|| format!("listing {parent}"))?;
    index.reserve(parent, children.len());
    let mut count = 0;
    let mut in_flight = std::collections::VecDeque::with_capacity(WINDOW);
    let mut next = children.into_iter();
    loop {
        while in_flight.len() < WINDOW {
            let Some(child) = next.next() else { break };
            let request = client.get_data(&format!("{parent}/{child}"));
            in_flight.push_back((child, request));
        }
        let Some((child, request)) = in_flight.pop_front() else {
            break;
        };
        match timed(limit, request).await {
            Ok((data, stat)) => {
                found(index, child, data, stat);
                count += 1;
            }
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(e).with_context(|| format!("reading {parent}/{child}")),
        }
    }
    Ok(count)
}

fn task_obs(data: &[u8], stat: &zookeeper_client::Stat) -> TaskObs {
    TaskObs {
        record: TaskRecord::parse(data).map_err(|e| e.to_string()),
        version: stat.version,
        created: stat.czxid,
    }
}

fn worker_obs(data: &[u8], stat: &zookeeper_client::Stat) -> WorkerObs {
    let assignment = WorkerRecord::parse(data)
        .map_err(|e| e.to_string())
        .and_then(|r| r.assignment().map_err(|e| e.to_string()));
    WorkerObs {
        assignment,
        version: stat.version,
        ephemeral: stat.ephemeral_owner != 0,
    }
}

/// Hands the memory a scan freed (its listing, its replies in flight) back to the system: glibc
/// keeps freed heap pages resident otherwise, and a deep backlog's scan frees tens of megabytes.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
