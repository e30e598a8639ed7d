//! taskfarm's Kubernetes operator: the TaskFarm custom resource and its controller (see
//! docs/CONTROLLER.md). The `taskfarm-operator` binary runs the controller; `crdgen` prints the
//! CRD (the copies in `crds/` and the chart are checked against it in CI).
//!
//! - [`crd`]: the resource's spec and status, and the generated CRD;
//! - [`validate`]: the spec checked into a [`validate::ValidatedFarm`], the builders' only input,
//!   with [`quantity`] (resource quantities), [`names`] (name and label syntax) and [`pod`]
//!   (the role pods' scheduling and metadata settings, merged per role);
//! - [`build`]: pure builders of the role Deployments, with [`worker`] (slots, the command
//!   catalogue's ConfigMap and mount, the user's image) and [`catalogue`] (`spec.commands` as
//!   the workers' catalogue file, checked by their own parser);
//! - [`chaos`]: pure chaos target selection, guards and the steady-state check;
//! - [`farmstate`]: the farm's state read from ZooKeeper;
//! - [`controller`]: the reconcile loop that sequences the API calls;
//! - [`lease`]: leader election between controller replicas;
//! - [`metrics`]: the controller's metrics (prometheus-client);
//! - [`http`]: `/metrics`, `/healthz` (the reconcile loop keeps its schedule) and `/readyz`.

pub mod build;
pub mod catalogue;
pub mod chaos;
pub mod controller;
pub mod crd;
pub mod farmstate;
#[cfg(test)]
mod fixtures;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod names;
pub mod pod;
pub mod quantity;
#[cfg(test)]
mod reconcile_tests;
pub mod validate;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{ArgAction, Args};
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::Client;
use tokio::sync::watch;

pub use crd::crd_yaml;
use crd::TaskFarm;

/// Options of `taskfarm-operator`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Address serving /metrics and /healthz.
    #[arg(long, env = "TASKFARM_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Watch only this namespace (default: the controller pod's own namespace, else the
    /// kubeconfig's current namespace).
    #[arg(long, env = "TASKFARM_NAMESPACE")]
    pub namespace: Option<String>,
    /// Watch every namespace instead (needs a ClusterRole rather than the namespaced Role).
    #[arg(long, env = "TASKFARM_ALL_NAMESPACES", conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Act only on the TaskFarms this label selector matches (e.g.
    /// `taskfarm.dev/controller=taskfarm-controller`), so that several controllers can share a
    /// namespace; default: every TaskFarm.
    #[arg(long, env = "TASKFARM_FARM_SELECTOR")]
    pub farm_selector: Option<String>,
    /// Hold a Lease before reconciling, so that only one replica acts (`--leader-election`,
    /// `--leader-election=false`).
    #[arg(long, env = "TASKFARM_LEADER_ELECTION", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = false, default_missing_value = "true")]
    pub leader_election: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "TASKFARM_LEASE_NAME", default_value = "taskfarm-controller")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the watched namespace, else the pod's own).
    #[arg(long, env = "TASKFARM_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Re-read each farm from ZooKeeper at least this often.
    #[arg(long, env = "TASKFARM_RESYNC", default_value = "10s", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    /// How long the controller tries to reach a farm's ZooKeeper before reporting it unreachable.
    #[arg(long, env = "TASKFARM_ZK_CONNECT_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub zk_connect_timeout: Duration,
}

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The namespace the controller runs in: the service account's, else the kubeconfig's.
fn own_namespace(client: &Client) -> String {
    std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string())
}

/// The watch of the TaskFarms this controller acts on.
fn farm_watch(selector: Option<&str>) -> watcher::Config {
    let config = watcher::Config::default().any_semantic();
    match selector {
        Some(selector) => config.labels(selector),
        None => config,
    }
}

/// Fails with a clear message when the CRD is missing or not readable, or the selector is not
/// one (the list uses it, as the watch will).
async fn check_crd(api: &Api<TaskFarm>, selector: Option<&str>) -> anyhow::Result<()> {
    let mut params = ListParams::default().limit(1);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    match api.list(&params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            tracing::error!(
                crd = "taskfarms.taskfarm.dev",
                "the TaskFarm CRD is not installed; install it with `kubectl apply -f crds/taskfarm.yaml` (or the Helm chart)"
            );
            bail!("the TaskFarm CRD (taskfarms.taskfarm.dev) is not installed")
        }
        Err(kube::Error::Api(e)) if e.code == 403 => {
            tracing::error!(error = %e, "not allowed to list TaskFarms: check the controller's Role");
            bail!("not allowed to list TaskFarms: {}", e.message)
        }
        Err(kube::Error::Api(e)) if e.code == 400 && selector.is_some() => {
            bail!(
                "--farm-selector {:?} is not a label selector: {}",
                selector.unwrap_or_default(),
                e.message
            )
        }
        Err(e) => Err(e).context("listing TaskFarms"),
    }
}

type Reconciled = Result<
    (ObjectRef<TaskFarm>, kube::runtime::controller::Action),
    kube::runtime::controller::Error<controller::Error, watcher::Error>,
>;

/// The controller: the selected TaskFarms and the Deployments they own, reconciled until `stop`.
fn farm_controller(
    farms: Api<TaskFarm>,
    deployments: Api<Deployment>,
    selector: Option<&str>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ctx: Arc<controller::Context>,
) -> impl Stream<Item = Reconciled> {
    // Deployments are watched for their readiness (the status shows it). The catalogue
    // ConfigMaps are not: they have no status, and every reconcile applies them again.
    let children = watcher::Config::default().labels(&format!("{}={}", build::LABEL_MANAGED_BY, build::FIELD_MANAGER));
    Controller::new(farms, farm_watch(selector))
        .owns(deployments, children)
        .graceful_shutdown_on(stop)
        .run(controller::reconcile, controller::error_policy, ctx)
}

/// Runs the controller until `shutdown` resolves (the binary passes SIGTERM/SIGINT) or the
/// leader Lease is lost.
pub async fn run(
    args: ControllerArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster service account or kubeconfig)")?;
    let own = own_namespace(&client);
    let namespace = args.namespace.clone().unwrap_or_else(|| own.clone());
    let (farms, deployments): (Api<TaskFarm>, Api<Deployment>) = if args.all_namespaces {
        (Api::all(client.clone()), Api::all(client.clone()))
    } else {
        (
            Api::namespaced(client.clone(), &namespace),
            Api::namespaced(client.clone(), &namespace),
        )
    };
    let scope = if args.all_namespaces { "*" } else { namespace.as_str() };
    let selector = args.farm_selector.as_deref().filter(|s| !s.is_empty());
    check_crd(&farms, selector).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let metrics = Arc::new(metrics::Metrics::default());
    let progress = Arc::new(http::Progress::new(http::stall_bound(args.resync)));
    let listener = http::bind(args.http_addr).await?;
    let observed = http::Observed {
        metrics: metrics.clone(),
        progress: progress.clone(),
    };
    let server = tokio::spawn(http::serve(listener, observed, stopped(stop_rx.clone())));

    let identity =
        std::env::var("HOSTNAME").unwrap_or_else(|_| format!("taskfarm-controller-{}", uuid::Uuid::new_v4()));
    let mut lease = None;
    if args.leader_election {
        let lease_ns = args.lease_namespace.clone().unwrap_or_else(|| {
            if args.all_namespaces {
                own.clone()
            } else {
                namespace.clone()
            }
        });
        let settings = lease::LeaseSettings::new(&args.lease_name, &lease_ns, &identity);
        tracing::info!(lease = %args.lease_name, namespace = %lease_ns, identity, "waiting for the leader Lease");
        match lease::acquire(client.clone(), &settings, stopped(stop_rx.clone())).await? {
            Some(held) => lease = Some(held),
            None => return Ok(()),
        }
        tracing::info!(identity, "holding the leader Lease");
    }
    metrics.leading.set(1);

    let reporter = Reporter {
        controller: build::FIELD_MANAGER.into(),
        instance: Some(identity.clone()),
    };
    let reader = Arc::new(farmstate::ZkFarmReader::new(args.zk_connect_timeout));
    let ctx = Arc::new(controller::Context::new(
        client.clone(),
        reporter,
        reader,
        metrics.clone(),
        progress.clone(),
        args.resync,
    ));
    tracing::info!(namespace = scope, http = %args.http_addr, farm_selector = selector, "controller started");
    let controller = farm_controller(farms, deployments, selector, stopped(stop_rx.clone()), ctx).for_each(|result| {
        let (metrics, progress) = (metrics.clone(), progress.clone());
        async move {
            match result {
                Ok((obj, _)) => tracing::debug!(taskfarm = %obj.name, "reconciled"),
                // A requeue of a farm that was deleted since (or, through a Deployment event, a
                // farm the selector leaves to another controller): its gauges and its place in
                // the schedule go with it.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    let namespace = obj.namespace.as_deref().unwrap_or_default();
                    metrics.forget_farm(namespace, &obj.name);
                    progress.forget(&http::farm_key(namespace, &obj.name));
                    tracing::debug!(taskfarm = %obj.name, "farm gone");
                }
                // Already logged by error_policy.
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                // Watch errors (RBAC, API server away): kube retries, but people must see them.
                Err(e) => tracing::warn!(error = %e, "controller watch error"),
            }
        }
    });

    let outcome = match lease {
        None => {
            controller.await;
            Ok(())
        }
        Some(lease::Leadership { mut leading, task }) => {
            let lost = async {
                let _ = leading.wait_for(|l| !*l).await;
            };
            let outcome = tokio::select! {
                _ = controller => Ok(()),
                _ = lost => {
                    tracing::error!(identity, "lost the leader Lease; exiting so that a fresh replica competes again");
                    Err(anyhow::anyhow!("lost the leader Lease"))
                }
            };
            // Dropping the receiver makes the manager release the Lease for a quick handover.
            drop(leading);
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            outcome
        }
    };
    metrics.leading.set(0);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(argv: &[&str]) -> ControllerArgs {
        Cli::try_parse_from(std::iter::once("controller").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn controller_flags_have_the_documented_defaults() {
        let args = parse(&[]);
        assert_eq!(args.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(args.namespace, None);
        assert!(!args.all_namespaces && !args.leader_election);
        assert_eq!(args.lease_name, "taskfarm-controller");
        assert_eq!(args.farm_selector, None);
        let selected = parse(&["--farm-selector", "taskfarm.dev/controller=a"]);
        assert_eq!(selected.farm_selector.as_deref(), Some("taskfarm.dev/controller=a"));
        assert!(parse(&["--leader-election"]).leader_election);
        assert!(parse(&["--leader-election=true"]).leader_election);
        assert!(!parse(&["--leader-election=false"]).leader_election);
        assert_eq!(parse(&["--namespace", "farms"]).namespace.as_deref(), Some("farms"));
        assert!(Cli::try_parse_from(["controller", "--namespace", "a", "--all-namespaces"]).is_err());
    }

    #[tokio::test]
    async fn a_missing_crd_is_a_clear_error() {
        use ::http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a list request");
            assert_eq!(
                request.uri().path(),
                "/apis/taskfarm.dev/v1alpha1/namespaces/farms/taskfarms"
            );
            let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404});
            send.send_response(
                Response::builder()
                    .status(404)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
        });
        let api: Api<TaskFarm> = Api::namespaced(Client::new(service, "farms"), "farms");
        let err = check_crd(&api, None).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("CRD (taskfarms.taskfarm.dev) is not installed"),
            "{err}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn the_controller_lists_and_watches_only_the_selected_farms() {
        let (seen, mut farm_requests) = tokio::sync::mpsc::unbounded_channel();
        let (client, _server) = crate::fixtures::fake_api(move |call| {
            if call.path == "/apis/taskfarm.dev/v1alpha1/namespaces/testns/taskfarms" {
                let _ = seen.send(call.query.clone());
            }
            crate::fixtures::not_found(&call.path)
        });
        let (ctx, _) = crate::fixtures::context_for(client.clone(), Ok(Default::default()));
        let selector = Some("taskfarm.dev/controller=release-a-controller");
        // The start-up check lists with the selector, as the watch does.
        let farms: Api<TaskFarm> = Api::namespaced(client.clone(), "testns");
        assert!(check_crd(&farms, selector).await.is_err(), "404: no CRD");
        let deployments = Api::namespaced(client, "testns");
        let running = tokio::spawn(
            farm_controller(farms, deployments, selector, std::future::pending(), ctx).for_each(|_| async {}),
        );
        let wanted = "labelSelector=taskfarm.dev%2Fcontroller%3Drelease-a-controller";
        for _ in 0..2 {
            let query = tokio::time::timeout(Duration::from_secs(10), farm_requests.recv())
                .await
                .expect("a TaskFarm list")
                .unwrap();
            assert!(query.contains(wanted), "{query}");
        }
        running.abort();
    }
}
