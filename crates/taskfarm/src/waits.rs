//! Waiting for conditions on znodes by watching them (never by polling), with a bound that turns
//! a hang into an error. Used by the scenarios, the demo and the tests.

use std::future::Future;
use std::time::Duration;

use anyhow::anyhow;
use zookeeper_client::Error as ZkError;

use crate::zk::ZkSession;

/// Runs `fut` for at most `limit`, naming `what` in the error.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(anyhow!("{what} did not happen within {limit:?}")),
    }
}

/// Waits until the children of `path` satisfy `check` (re-evaluated at every change).
pub async fn children<T>(
    s: &ZkSession,
    path: &str,
    limit: Duration,
    what: &str,
    mut check: impl FnMut(&[String]) -> Option<T>,
) -> anyhow::Result<T> {
    within(limit, what, async {
        loop {
            let (list, _, watcher) = s.client.get_and_watch_children(path).await?;
            if let Some(t) = check(&list) {
                return Ok(t);
            }
            watcher.changed().await;
        }
    })
    .await
}

/// Waits until the data of `path` (`None` while it does not exist) satisfies `check`.
pub async fn data<T>(
    s: &ZkSession,
    path: &str,
    limit: Duration,
    what: &str,
    mut check: impl FnMut(Option<&[u8]>) -> Option<T>,
) -> anyhow::Result<T> {
    within(limit, what, async {
        loop {
            match s.client.get_and_watch_data(path).await {
                Ok((bytes, _, watcher)) => {
                    if let Some(t) = check(Some(&bytes)) {
                        return Ok(t);
                    }
                    watcher.changed().await;
                }
                Err(ZkError::NoNode) => {
                    let (stat, watcher) = s.client.check_and_watch_stat(path).await?;
                    if stat.is_none() {
                        if let Some(t) = check(None) {
                            return Ok(t);
                        }
                        watcher.changed().await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    })
    .await
}
