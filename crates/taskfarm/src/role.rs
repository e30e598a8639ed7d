//! The life cycle every long-running role shares: one ZooKeeper session at a time, a fresh
//! start when it expires, and a clean close when the shutdown future (passed in by the caller:
//! SIGTERM/SIGINT in the binary, anything in a test) resolves.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tracing::Instrument as _;

use crate::zk::{ZkConfig, ZkSession};

/// The roles of a farm, each a subcommand of the role binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Master,
    Worker,
    Client,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Master, Role::Worker, Role::Client];

    /// The subcommand, and the name used in logs, labels and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Client => "client",
        }
    }
}

/// Resolves at the first SIGTERM or SIGINT, which it logs. The handlers are installed at once
/// (not at the first poll), so a signal that arrives before the role awaits this is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    }
}

/// Runs `body` with one session after another until `shutdown` resolves.
///
/// `body` returns when its session has ended (expired or closed); a new session is then opened
/// and `body` starts again from nothing, as a session's ephemerals and watches died with it.
/// The first connection must succeed within the configured connect timeout; later ones are
/// retried for as long as it takes (ZooKeeper may be down for a while; the role waits).
/// Each session's work runs in a `session` span carrying its id; the caller's span names the role.
pub async fn run_sessions<F, Fut>(
    config: &ZkConfig,
    shutdown: impl Future<Output = ()>,
    mut body: F,
) -> anyhow::Result<()>
where
    F: FnMut(ZkSession) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
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
            () = &mut shutdown => {
                tracing::info!("shutting down before a session was established");
                return Ok(());
            }
        };
        first = false;
        let span = tracing::info_span!("session", session_id = %format_args!("{:#x}", session.session_id()));
        let tracker = tokio::spawn(track_session(&session));
        span.in_scope(|| tracing::info!(zk = %config.connect_string(), "session started"));
        tokio::select! {
            outcome = body(session.clone()).instrument(span.clone()) => {
                if let Err(e) = outcome {
                    if e.downcast_ref::<crate::zk::AccessDenied>().is_some() {
                        session.close().await;
                        return Err(e);
                    }
                    span.in_scope(|| tracing::warn!(error = %format!("{e:#}"), "session ended with an error; starting afresh"));
                } else {
                    span.in_scope(|| tracing::warn!("session ended (expired or closed); starting a new session"));
                }
                tracker.abort();
                crate::metrics::get().session.connected.set(0);
                drop(session);
            }
            () = &mut shutdown => {
                span.in_scope(|| tracing::info!("shutting down: closing the ZooKeeper session"));
                session.close().await;
                return Ok(());
            }
        }
    }
}

/// Follows a session's state into the session metrics (and so `/readyz`) until it ends. Holds
/// only the session's state watcher: a clone of the session would keep it open after its
/// owner closes it.
pub fn track_session(session: &ZkSession) -> impl Future<Output = ()> + Send + 'static {
    use zookeeper_client::SessionState;
    let mut states = session.client.state_watcher();
    let mut state = session.client.state();
    async move {
        let metrics = &crate::metrics::get().session;
        metrics.sessions.inc();
        let mut lost = false;
        loop {
            match state {
                SessionState::SyncConnected => {
                    metrics.connected.set(1);
                    if std::mem::take(&mut lost) {
                        metrics.reconnects.inc();
                    }
                }
                SessionState::Disconnected => {
                    metrics.connected.set(0);
                    lost = true;
                }
                s if crate::zk::is_terminal(s) => {
                    metrics.connected.set(0);
                    return;
                }
                _ => {}
            }
            state = states.changed().await;
        }
    }
}
