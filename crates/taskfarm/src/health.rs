//! The probe and metrics endpoints of a role (`--health-addr`), for Kubernetes and Prometheus:
//!
//! - `/healthz`: the role's event loop makes progress. Each role's loop calls [`beat`] as it
//!   goes round (and at least every few seconds while idle); a loop stuck for
//!   [`STALL_LIMIT`] fails the probe, so the kubelet restarts a wedged process.
//! - `/readyz`: the role holds a live, connected ZooKeeper session (503 while its server is
//!   away or frozen, 200 when it is back).
//! - `/metrics`: the role's metrics ([`crate::metrics`]), OpenMetrics text.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{extract::State, routing::get, Router};
use tokio::sync::watch;

use crate::role::Role;

/// How long a role's loop may go without a beat before `/healthz` fails.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// How often an idle loop beats (well inside [`STALL_LIMIT`]).
pub const BEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch of the last beat (0: none yet; the process start counts).
static LAST_BEAT_MS: AtomicU64 = AtomicU64::new(0);

/// The role's loop made progress.
pub fn beat() {
    LAST_BEAT_MS.store(crate::protocol::now_ms(), Ordering::Relaxed);
}

/// Whether a loop that last beat at `last_ms` (0: not yet) is stalled at `now_ms`.
pub fn stalled(last_ms: u64, now_ms: u64, limit: Duration) -> Option<Duration> {
    let since = Duration::from_millis(now_ms.saturating_sub(last_ms));
    (last_ms != 0 && since > limit).then_some(since)
}

/// The readiness switch a role turns on once it is up (registered, leading or following,
/// submitting); `/readyz` also needs the session to be connected.
#[derive(Clone)]
struct Probes {
    ready: watch::Receiver<bool>,
}

/// Serves the probes and metrics on `addr` in the background.
async fn serve(addr: SocketAddr, probes: Probes) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probes);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for health probes: {e}"))?;
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(())
}

async fn healthz() -> (StatusCode, String) {
    match stalled(
        LAST_BEAT_MS.load(Ordering::Relaxed),
        crate::protocol::now_ms(),
        STALL_LIMIT,
    ) {
        None => (StatusCode::OK, "ok\n".into()),
        Some(since) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the role's event loop has made no progress for {} s\n", since.as_secs()),
        ),
    }
}

async fn readyz(State(probes): State<Probes>) -> (StatusCode, &'static str) {
    let connected = crate::metrics::get().session.connected.get() == 1;
    match (*probes.ready.borrow(), connected) {
        (true, true) => (StatusCode::OK, "ready\n"),
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "no connected ZooKeeper session\n"),
        (false, true) => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
    }
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::get().encode(),
    )
}

/// Registers the role's metrics and, when an address was given, serves the endpoints.
/// Returns the readiness switch.
pub async fn maybe_serve(addr: Option<SocketAddr>, role: Role) -> anyhow::Result<watch::Sender<bool>> {
    crate::metrics::install(role);
    beat();
    let (tx, rx) = watch::channel(false);
    if let Some(addr) = addr {
        serve(addr, Probes { ready: rx }).await?;
    }
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_is_stalled_only_past_the_limit_after_a_first_beat() {
        let limit = Duration::from_secs(60);
        assert_eq!(stalled(0, 1_000_000, limit), None, "no beat yet: starting, not stalled");
        assert_eq!(stalled(1_000, 61_000, limit), None);
        assert_eq!(stalled(1_000, 61_001, limit), Some(Duration::from_millis(60_001)));
        assert_eq!(stalled(5_000, 1_000, limit), None, "a clock step back is no stall");
    }
}
