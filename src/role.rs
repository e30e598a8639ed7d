//! The life cycle every long-running role shares: one ZooKeeper session at a time, a fresh
//! start when it expires, and a clean close on SIGTERM/SIGINT.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::zk::{ZkConfig, ZkSession};

/// Resolves with the name of the first SIGTERM or SIGINT received.
pub async fn shutdown_signal() -> &'static str {
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Runs `body` with one session after another until a shutdown signal arrives.
///
/// `body` returns when its session has ended (expired or closed); a new session is then opened
/// and `body` starts again from nothing, as a session's ephemerals and watches died with it.
/// The first connection must succeed within the configured connect timeout; later ones are
/// retried for as long as it takes (ZooKeeper may be down for a while; the role waits).
pub async fn run_sessions<F, Fut>(config: &ZkConfig, role: &str, mut body: F) -> anyhow::Result<()>
where
    F: FnMut(ZkSession) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut first = true;
    loop {
        let connect = async {
            if first {
                return config.connect().await;
            }
            loop {
                match config.connect().await {
                    Ok(s) => return Ok(s),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "ZooKeeper still unreachable; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        };
        let session = tokio::select! {
            s = connect => s?,
            sig = &mut shutdown => {
                tracing::info!(signal = sig, role, "shutting down before a session was established");
                return Ok(());
            }
        };
        first = false;
        let session_id = format!("{:#x}", session.session_id());
        tracing::info!(role, session_id, zk = %config.connect_string(), "session started");
        tokio::select! {
            outcome = body(session.clone()) => {
                if let Err(e) = outcome {
                    if e.downcast_ref::<crate::zk::AccessDenied>().is_some() {
                        session.close().await;
                        return Err(e);
                    }
                    tracing::warn!(role, session_id, error = %format!("{e:#}"), "session ended with an error; starting afresh");
                } else {
                    tracing::warn!(role, session_id, "session ended (expired or closed); starting a new session");
                }
                drop(session);
            }
            sig = &mut shutdown => {
                tracing::info!(signal = sig, role, session_id, "shutting down: closing the ZooKeeper session");
                session.close().await;
                return Ok(());
            }
        }
    }
}
