//! The controller's HTTP side: `/metrics` (OpenMetrics text, [`super::metrics`]), `/healthz`
//! (liveness: the reconcile loop keeps its schedule, [`Progress`]) and `/readyz` (up).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::metrics::Metrics;

/// A reconcile may be this many resync periods late before `/healthz` fails ...
pub const STALL_RESYNCS: u32 = 6;
/// ... and never less than this (room for slow API calls and a ZooKeeper connect).
pub const MIN_STALL: Duration = Duration::from_secs(60);

/// How late a due reconcile may be before the controller counts as stalled.
pub fn stall_bound(resync: Duration) -> Duration {
    resync.saturating_mul(STALL_RESYNCS).max(MIN_STALL)
}

/// How [`Progress`] names a farm: `namespace/name`.
pub fn farm_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The reconcile loop's schedule, for the liveness probe.
///
/// Every farm the controller acts on is always due for a reconcile at some instant: when a
/// reconcile starts, at once (it must finish); when it ends, after the requeue it asked for (the
/// resync, an error backoff, the recheck of an invalid spec). A watch event about a farm
/// triggers a reconcile, which starts at once. The loop is stalled when some farm has been due
/// for longer than the bound: a reconcile hangs, or the runtime no longer runs them. A farm
/// that is deleted (or leaves the selector) drops out. No farms: nothing is due, never stalled;
/// a standby holds no farms (it reconciles nothing until it holds the Lease).
#[derive(Debug)]
pub struct Progress {
    bound: Duration,
    due: Mutex<HashMap<String, Instant>>,
}

impl Progress {
    pub fn new(bound: Duration) -> Self {
        Self {
            bound,
            due: Mutex::new(HashMap::new()),
        }
    }

    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// `farm` (`namespace/name`) is due for a reconcile at `at`.
    pub fn due_at(&self, farm: &str, at: Instant) {
        self.lock().insert(farm.to_string(), at);
    }

    /// `farm` is due `delay` from now (it asked for that requeue).
    pub fn due_in(&self, farm: &str, delay: Duration) {
        self.due_at(farm, Instant::now() + delay);
    }

    /// `farm` is gone: nothing about it is due any more.
    pub fn forget(&self, farm: &str) {
        self.lock().remove(farm);
    }

    /// When `farm` is due, if it is known.
    pub fn due(&self, farm: &str) -> Option<Instant> {
        self.lock().get(farm).copied()
    }

    /// The farm overdue by the most, and by how much, if that is past the bound at `now`.
    pub fn stalled(&self, now: Instant) -> Option<(String, Duration)> {
        self.lock()
            .iter()
            .map(|(farm, due)| (farm.clone(), now.saturating_duration_since(*due)))
            .filter(|(_, late)| *late > self.bound)
            .max_by_key(|(_, late)| *late)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new(stall_bound(Duration::from_secs(10)))
    }
}

/// What the HTTP handlers read.
#[derive(Clone)]
pub struct Observed {
    pub metrics: Arc<Metrics>,
    pub progress: Arc<Progress>,
}

async fn metrics(State(o): State<Observed>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        o.metrics.encode(),
    )
}

/// Liveness: 503 once a farm's reconcile is overdue by more than the bound (see [`Progress`]).
async fn healthz(State(o): State<Observed>) -> (StatusCode, String) {
    match o.progress.stalled(Instant::now()) {
        None => (StatusCode::OK, "ok\n".into()),
        Some((farm, late)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the reconcile loop is stalled: {farm} has been due for a reconcile for {} s (bound {} s)\n",
                late.as_secs(),
                o.progress.bound().as_secs()
            ),
        ),
    }
}

/// Readiness: up (a standby waiting for the Lease is ready too, so that a rollout goes on and
/// Prometheus keeps scraping a stalled leader while its liveness fails).
async fn readyz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

pub fn router(observed: Observed) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(observed)
}

/// Binds the address now, so that a taken port fails the start rather than a background task.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP address {addr}"))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    observed: Observed,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    axum::serve(listener, router(observed))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_six_resyncs_and_at_least_a_minute() {
        assert_eq!(stall_bound(Duration::from_secs(10)), Duration::from_secs(60));
        assert_eq!(stall_bound(Duration::from_secs(1)), Duration::from_secs(60));
        assert_eq!(stall_bound(Duration::from_secs(30)), Duration::from_secs(180));
    }

    #[test]
    fn a_farm_overdue_past_the_bound_is_a_stall_and_a_forgotten_one_is_not() {
        let p = Progress::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(
            p.stalled(t0 + Duration::from_secs(3600)),
            None,
            "no farms: never stalled"
        );
        p.due_at("ns/a", t0 + Duration::from_secs(10));
        p.due_at("ns/b", t0);
        assert_eq!(p.stalled(t0 + Duration::from_secs(60)), None, "late, within the bound");
        assert_eq!(p.stalled(t0 + Duration::from_secs(5)), None, "not due yet");
        assert_eq!(
            p.stalled(t0 + Duration::from_secs(75)),
            Some(("ns/b".to_string(), Duration::from_secs(75))),
            "the latest farm is named"
        );
        // ns/b's reconcile ran and asked for the next one in 10 s: only ns/a is late now.
        p.due_at("ns/b", t0 + Duration::from_secs(85));
        assert_eq!(
            p.stalled(t0 + Duration::from_secs(75)),
            Some(("ns/a".to_string(), Duration::from_secs(65)))
        );
        p.forget("ns/a");
        assert_eq!(p.stalled(t0 + Duration::from_secs(75)), None);
    }

    /// A raw HTTP/1.1 GET against the real server (no client library needed).
    async fn get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn the_server_answers_the_probes_and_metrics_and_stops_on_shutdown() {
        let observed = Observed {
            metrics: Arc::new(Metrics::default()),
            progress: Arc::new(Progress::new(Duration::from_secs(60))),
        };
        observed.metrics.chaos_runs.inc();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, observed.clone(), async {
            let _ = stopped.await;
        }));
        let health = get(addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(health.ends_with("ok\n"), "{health}");
        let text = get(addr, "/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.to_lowercase()
                .contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{text}"
        );
        assert!(text.contains("taskfarm_controller_chaos_runs_total 1"), "{text}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));

        // A farm whose reconcile was due two minutes ago: the loop is stalled, liveness fails
        // and says which farm; readiness stays up.
        let Some(two_minutes_ago) = Instant::now().checked_sub(Duration::from_secs(120)) else {
            return; // a clock this young cannot express it; the pure test covers the rule
        };
        observed.progress.due_at("testns/demo", two_minutes_ago);
        let health = get(addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 503"), "{health}");
        assert!(
            health.contains("testns/demo has been due for a reconcile for 120 s (bound 60 s)"),
            "{health}"
        );
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        observed.progress.due_in("testns/demo", Duration::from_secs(10));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_taken_address_fails_at_bind_time() {
        let first = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let err = bind(first.local_addr().unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("binding the HTTP address"), "{err}");
    }
}
