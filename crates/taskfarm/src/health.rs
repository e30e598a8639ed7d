//! `/healthz` (the process answers) and `/readyz` (it holds a live ZooKeeper session) for
//! Kubernetes probes.

use std::net::SocketAddr;

use axum::{extract::State, http::StatusCode, routing::get, Router};
use tokio::sync::watch;

/// Serves the probes on `addr` in the background; `ready` says whether `/readyz` passes.
pub async fn serve(addr: SocketAddr, ready: watch::Receiver<bool>) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(ready);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for health probes: {e}"))?;
    tracing::info!(%addr, "serving /healthz and /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(())
}

async fn readyz(State(ready): State<watch::Receiver<bool>>) -> (StatusCode, &'static str) {
    if *ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no ZooKeeper session\n")
    }
}

/// Starts the probe server when an address was given; returns the readiness switch.
pub async fn maybe_serve(addr: Option<SocketAddr>) -> anyhow::Result<watch::Sender<bool>> {
    let (tx, rx) = watch::channel(false);
    if let Some(addr) = addr {
        serve(addr, rx).await?;
    }
    Ok(tx)
}
