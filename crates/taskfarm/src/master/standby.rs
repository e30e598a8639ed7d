//! A backup master's warm index: kept current through the same persistent watches the leader
//! uses, so that on winning the election the new leader assigns at once instead of scanning
//! the whole backlog first (issue 15: that scan took 3.7 s with 100,000 queued tasks).
//!
//! A standby writes nothing; staleness can only cost the new leader a failed write, never a
//! wrong one, since every assignment checks the versions it read (PROTOCOL.md §5.2). To keep
//! its cost to ZooKeeper at one read per task, a standby reads a node when it is created and
//! not when it changes: a changed node is marked *dirty* and read when the standby takes over
//! (a handful: the tasks running and the workers running them).

use std::collections::HashSet;

use zookeeper_client::{EventType, WatchedEvent};

use super::index::Index;
use super::observe::{self, child_id, Kind, Reads};
use crate::zk::ZkSession;

pub(super) struct Standby {
    /// `None` until the first scan, and again when watch events may have been lost.
    index: Option<Index>,
    reads: Reads,
    /// Nodes changed since their last read.
    dirty: HashSet<(Kind, String)>,
}

/// What a standby hands the leader it becomes: its index and the reads still in flight.
pub(super) struct Warm {
    pub index: Index,
    pub reads: Reads,
    pub dirty: HashSet<(Kind, String)>,
}

impl Standby {
    pub fn cold() -> Self {
        Self {
            index: None,
            reads: Reads::new(),
            dirty: HashSet::new(),
        }
    }

    pub fn is_warm(&self) -> bool {
        self.index.is_some()
    }

    /// Builds the index by a full scan (the watches already exist: nothing falls between).
    pub async fn warm_up(&mut self, session: &ZkSession, max_attempts: u32) -> anyhow::Result<()> {
        self.forget();
        let index = observe::scan(session, max_attempts).await?;
        let (tasks, workers) = index.sizes();
        tracing::info!(tasks, workers, "standby warm");
        self.index = Some(index);
        Ok(())
    }

    /// Forgets the index: events were lost (a reconnection) or a read failed.
    pub fn forget(&mut self) {
        self.index = None;
        self.reads = Reads::new();
        self.dirty.clear();
    }

    /// Applies one watch event of `kind`'s tree (session events are the caller's).
    pub fn on_event(&mut self, session: &ZkSession, event: &WatchedEvent, kind: Kind) {
        if self.index.is_none() {
            return;
        }
        let Some(id) = child_id(event, kind) else { return };
        match event.event_type {
            EventType::NodeCreated => {
                self.dirty.remove(&(kind, id.clone()));
                self.reads.push_back(observe::read(session, kind, id));
            }
            EventType::NodeDataChanged => {
                self.dirty.insert((kind, id));
            }
            EventType::NodeDeleted => {
                self.dirty.remove(&(kind, id.clone()));
                self.reads.push_back(Box::pin(std::future::ready(kind.gone(id))));
            }
            _ => {}
        }
    }

    /// The next completed read, applied (pending forever while none is in flight).
    pub async fn next_read(&mut self) {
        use futures::StreamExt as _;
        let Some(observation) = self.reads.next().await else {
            return std::future::pending().await;
        };
        let Some(index) = self.index.as_mut() else { return };
        match observation.apply(index) {
            Ok(()) => index.settle(),
            Err(e) => {
                tracing::debug!(error = %e, "a standby's read failed; it will scan again");
                self.forget();
            }
        }
    }

    /// Hands the warm index over (if there is one), leaving this standby cold.
    pub fn take(&mut self) -> Option<Warm> {
        let index = self.index.take()?;
        Some(Warm {
            index,
            reads: std::mem::take(&mut self.reads),
            dirty: std::mem::take(&mut self.dirty),
        })
    }
}
