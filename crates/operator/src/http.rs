//! The controller's HTTP side: `/metrics` (Prometheus text format) and `/healthz`.
//!
//! The metrics are a handful of counters and per-farm gauges, written out by hand: the text
//! format is simple and this keeps a metrics library out of the dependency tree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// What one farm looked like at its last reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FarmGauges {
    pub ready_masters: i64,
    pub ready_workers: i64,
    pub ready_clients: i64,
    pub live_workers: i64,
    pub pending: i64,
    pub running: i64,
    pub completed: i64,
    pub epoch: i64,
    pub degraded: bool,
}

/// A per-farm gauge: name, help, how to read it.
type Gauge = (&'static str, &'static str, fn(&FarmGauges) -> i64);

#[derive(Default)]
pub struct Metrics {
    pub reconciles: AtomicU64,
    pub reconcile_errors: AtomicU64,
    /// Sum of reconcile durations in microseconds (exported as seconds).
    pub reconcile_micros: AtomicU64,
    pub zookeeper_errors: AtomicU64,
    pub chaos_runs: AtomicU64,
    pub chaos_kills: AtomicU64,
    pub chaos_dry_runs: AtomicU64,
    pub chaos_guarded: AtomicU64,
    /// Whether this replica holds the Lease (always true without leader election).
    pub leading: AtomicBool,
    farms: Mutex<BTreeMap<(String, String), FarmGauges>>,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_farm(&self, namespace: &str, name: &str, gauges: FarmGauges) {
        let mut farms = self.farms.lock().unwrap_or_else(|e| e.into_inner());
        farms.insert((namespace.to_string(), name.to_string()), gauges);
    }

    pub fn forget_farm(&self, namespace: &str, name: &str) {
        let mut farms = self.farms.lock().unwrap_or_else(|e| e.into_inner());
        farms.remove(&(namespace.to_string(), name.to_string()));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            &mut out,
            "taskfarm_controller_reconciles_total",
            "Reconciles run.",
            &self.reconciles,
        );
        counter(
            &mut out,
            "taskfarm_controller_reconcile_errors_total",
            "Reconciles that failed.",
            &self.reconcile_errors,
        );
        let _ = writeln!(
            out,
            "# HELP taskfarm_controller_reconcile_seconds_total Time spent reconciling.\n# TYPE taskfarm_controller_reconcile_seconds_total counter\ntaskfarm_controller_reconcile_seconds_total {:.6}",
            self.reconcile_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        counter(
            &mut out,
            "taskfarm_controller_zookeeper_errors_total",
            "Failed reads of a farm's ZooKeeper state.",
            &self.zookeeper_errors,
        );
        counter(&mut out, "taskfarm_chaos_runs_total", "Chaos runs.", &self.chaos_runs);
        counter(
            &mut out,
            "taskfarm_chaos_kills_total",
            "Pods deleted by chaos.",
            &self.chaos_kills,
        );
        counter(
            &mut out,
            "taskfarm_chaos_dry_run_actions_total",
            "Deletions chaos would have made in dry-run mode.",
            &self.chaos_dry_runs,
        );
        counter(
            &mut out,
            "taskfarm_chaos_guarded_runs_total",
            "Chaos runs that deleted fewer pods than asked because of a guard or a pause.",
            &self.chaos_guarded,
        );
        let _ = writeln!(
            out,
            "# HELP taskfarm_controller_leading Whether this replica holds the leader Lease.\n# TYPE taskfarm_controller_leading gauge\ntaskfarm_controller_leading {}",
            u8::from(self.leading.load(Ordering::Relaxed))
        );
        let farms = self.farms.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let gauges: [Gauge; 9] = [
            ("taskfarm_ready_masters", "Ready master pods.", |g| g.ready_masters),
            ("taskfarm_ready_workers", "Ready worker pods.", |g| g.ready_workers),
            ("taskfarm_ready_clients", "Ready client pods.", |g| g.ready_clients),
            ("taskfarm_live_workers", "Workers registered in ZooKeeper.", |g| {
                g.live_workers
            }),
            ("taskfarm_tasks_pending", "Tasks waiting for a worker.", |g| g.pending),
            ("taskfarm_tasks_running", "Tasks assigned to a worker.", |g| g.running),
            (
                "taskfarm_tasks_completed",
                "Tasks completed since the farm began.",
                |g| g.completed,
            ),
            ("taskfarm_leader_epoch", "Election epoch of the current leader.", |g| {
                g.epoch
            }),
            ("taskfarm_degraded", "1 while the farm is Degraded.", |g| {
                i64::from(g.degraded)
            }),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for ((ns, farm), g) in &farms {
                let _ = writeln!(out, "{name}{{namespace=\"{ns}\",taskfarm=\"{farm}\"}} {}", value(g));
            }
        }
        out
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        m.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz))
        .with_state(metrics)
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
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /healthz");
    }
    axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_prometheus_text_format() {
        let m = Metrics::default();
        Metrics::inc(&m.reconciles);
        Metrics::inc(&m.chaos_kills);
        m.set_farm(
            "ns",
            "demo",
            FarmGauges {
                pending: 4,
                degraded: true,
                ..FarmGauges::default()
            },
        );
        let text = m.render();
        assert!(text
            .contains("# TYPE taskfarm_controller_reconciles_total counter\ntaskfarm_controller_reconciles_total 1\n"));
        assert!(text.contains("taskfarm_chaos_kills_total 1\n"));
        assert!(text.contains("taskfarm_tasks_pending{namespace=\"ns\",taskfarm=\"demo\"} 4\n"));
        assert!(text.contains("taskfarm_degraded{namespace=\"ns\",taskfarm=\"demo\"} 1\n"));
        m.forget_farm("ns", "demo");
        assert!(!m.render().contains("taskfarm=\"demo\""));
        // Every sample line is `name[{labels}] value`.
        for line in m.render().lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(!name.is_empty() && value.parse::<f64>().is_ok(), "{line}");
        }
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
    async fn the_server_answers_healthz_and_metrics_and_stops_on_shutdown() {
        let metrics = Arc::new(Metrics::default());
        Metrics::inc(&metrics.chaos_runs);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, metrics, async {
            let _ = stopped.await;
        }));
        let health = get(addr, "/healthz").await;
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(health.ends_with("ok\n"), "{health}");
        let text = get(addr, "/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.to_lowercase().contains("content-type: text/plain; version=0.0.4"),
            "{text}"
        );
        assert!(text.contains("taskfarm_chaos_runs_total 1"), "{text}");
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
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
