//! The bench's waits for its farms to be ready: on ZooKeeper watches ([`taskfarm::waits`]),
//! never by polling.

use std::time::Duration;

use taskfarm::zk::ZkSession;

/// A farm that is not ready by then is broken (this bound is never a measurement).
const LIMIT: Duration = Duration::from_secs(30);

/// Waits until the number of children of `path` satisfies `ok`.
pub(super) async fn children(
    obs: &ZkSession,
    path: &str,
    what: &str,
    ok: impl Fn(usize) -> bool,
) -> anyhow::Result<()> {
    taskfarm::waits::children(obs, path, LIMIT, what, |c| ok(c.len()).then_some(())).await
}

/// Waits until a master stands in the election (the first candidate leads).
pub(super) async fn leader(obs: &ZkSession) -> anyhow::Result<()> {
    children(obs, taskfarm::protocol::paths::MASTER, "a leader", |n| n >= 1).await
}
