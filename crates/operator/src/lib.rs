//! taskfarm's Kubernetes operator: the TaskFarm custom resource and its controller (see
//! docs/CONTROLLER.md). The `taskfarm-operator` binary runs the controller; `crdgen` prints the
//! CRD (the copies in `crds/` and the chart are checked against it in CI).
//!
//! - [`crd`]: the resource's spec and status, and the generated CRD;
//! - [`validate`]: the spec checked into a [`validate::ValidatedFarm`], the builders' only input,
//!   with [`quantity`] (resource quantities) and [`names`] (name and label syntax);
//! - [`build`]: pure builders of the role Deployments, with [`worker`] (slots, the command
//!   catalogue's ConfigMap and mount, the user's image) and [`catalogue`] (`spec.commands` as
//!   the workers' catalogue file, checked by their own parser);
//! - [`chaos`]: pure chaos target selection, guards and the steady-state check;
//! - [`farmstate`]: the farm's state read from ZooKeeper;
//! - [`controller`]: the reconcile loop that sequences the API calls;
//! - [`http`]: `/metrics` and `/healthz`.

pub mod build;
pub mod catalogue;
pub mod chaos;
pub mod controller;
pub mod crd;
pub mod farmstate;
#[cfg(test)]
mod fixtures;
pub mod http;
pub mod names;
pub mod quantity;
#[cfg(test)]
mod reconcile_tests;
pub mod validate;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{ArgAction, Args};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use kube::runtime::{watcher, Controller};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
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

/// Fails with a clear message when the CRD is missing or not readable.
async fn check_crd(api: &Api<TaskFarm>) -> anyhow::Result<()> {
    match api.list(&ListParams::default().limit(1)).await {
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
        Err(e) => Err(e).context("listing TaskFarms"),
    }
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
    check_crd(&farms).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let metrics = Arc::new(http::Metrics::default());
    let listener = http::bind(args.http_addr).await?;
    let server = tokio::spawn(http::serve(listener, metrics.clone(), stopped(stop_rx.clone())));

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
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&lease_ns)
            .with_identity(&identity)
            .with_duration(15)
            .with_grace(5)
            .build()
            .await
            .with_context(|| format!("setting up the leader Lease {lease_ns}/{}", args.lease_name))?;
        let (mut leading, task) = manager.watch().await;
        tracing::info!(lease = %args.lease_name, namespace = %lease_ns, identity, "waiting for the leader Lease");
        tokio::select! {
            r = leading.wait_for(|l| *l) => { r.context("the Lease manager stopped")?; }
            _ = stopped(stop_rx.clone()) => { return Ok(()); }
        }
        tracing::info!(identity, "holding the leader Lease");
        lease = Some((leading, task));
    }
    metrics.leading.store(true, Ordering::Relaxed);

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
        args.resync,
    ));
    tracing::info!(namespace = scope, http = %args.http_addr, "controller started");
    let children = watcher::Config::default().labels(&format!("{}={}", build::LABEL_MANAGED_BY, build::FIELD_MANAGER));
    // Deployments are watched for their readiness (the status shows it). The catalogue
    // ConfigMaps are not: they have no status, and every reconcile applies them again.
    let controller = Controller::new(farms, watcher::Config::default().any_semantic())
        .owns(deployments, children)
        .graceful_shutdown_on(stopped(stop_rx.clone()))
        .run(controller::reconcile, controller::error_policy, ctx)
        .for_each(|result| {
            let metrics = metrics.clone();
            async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(taskfarm = %obj.name, "reconciled"),
                    // A requeue of a farm that was deleted since: its gauges go with it.
                    Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                        metrics.forget_farm(obj.namespace.as_deref().unwrap_or_default(), &obj.name);
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
        Some((mut leading, task)) => {
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
    metrics.leading.store(false, Ordering::Relaxed);
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
        let err = check_crd(&api).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("CRD (taskfarms.taskfarm.dev) is not installed"),
            "{err}"
        );
        server.await.unwrap();
    }
}
