//! Leader election between controller replicas: a coordination.k8s.io Lease held through
//! kube-lease-manager, with a standby that takes a released Lease within a second.
//!
//! kube-lease-manager's standby reads the Lease, then sleeps until that reading expires
//! (`renewTime` + `duration`) before it reads it again: up to `duration` (15 s) after it starts,
//! then every `duration - grace` (10 s, the holder's renewal period). A Lease released on SIGTERM
//! therefore waited for that wake-up (handovers of 1.3 s and 13.1 s were seen). So a standby
//! here also reads the Lease every [`STANDBY_CHECK`]; once it is free, it starts a fresh
//! manager, whose first step reads the Lease anew and takes it. The holder's side is the
//! manager's own: it renews `grace` seconds before expiry and releases when dropped.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a Lease stays valid after its last renewal: a holder that stops renewing (its node
/// is gone) is replaced after this.
pub const DURATION_SECONDS: u64 = 15;
/// The holder renews this long before expiry (so every 10 s), which also bounds the clock skew
/// between nodes the election tolerates.
pub const GRACE_SECONDS: u64 = 5;
/// How often a standby reads the Lease to see whether it was released: the handover time
/// after the holder releases it on SIGTERM (one GET per standby per second).
pub const STANDBY_CHECK: Duration = Duration::from_secs(1);
/// Pause before trying again after an API error.
const RETRY: Duration = Duration::from_secs(5);

/// Which Lease, who competes for it, and the timings above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// The holder identity written into the Lease (the pod's name).
    pub identity: String,
    pub duration_seconds: u64,
    pub grace_seconds: u64,
    pub standby_check: Duration,
}

impl LeaseSettings {
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration_seconds: DURATION_SECONDS,
            grace_seconds: GRACE_SECONDS,
            standby_check: STANDBY_CHECK,
        }
    }

    async fn manager(&self, client: Client) -> kube_lease_manager::Result<LeaseManager> {
        LeaseManagerBuilder::new(client, &self.name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(self.duration_seconds)
            .with_grace(self.grace_seconds)
            .build()
            .await
    }
}

/// The Lease, held: `leading` turns false if it is lost; dropping `leading` releases it (the
/// manager's task then ends).
pub struct Leadership {
    pub leading: watch::Receiver<bool>,
    pub task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

/// Free: nobody holds it (released, never taken) or it does not exist yet.
pub fn is_free(lease: Option<&Lease>) -> bool {
    lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.holder_identity.as_deref())
        .is_none_or(str::is_empty)
}

/// Waits until this replica holds the Lease; `None` when `stop` resolves first. API errors are
/// logged and retried.
pub async fn acquire(
    client: Client,
    settings: &LeaseSettings,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Option<Leadership>> {
    tokio::pin!(stop);
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    loop {
        // A fresh manager reads the Lease before anything else.
        let attempt = async {
            let manager = settings.manager(client.clone()).await?;
            // `changed` returns once this manager's state changes: here, when it took the Lease.
            while !manager.changed().await? {}
            anyhow::Ok(manager)
        };
        let failed = tokio::select! {
            held = attempt => match held {
                Ok(manager) => {
                    let (leading, task) = manager.watch().await;
                    return Ok(Some(Leadership { leading, task }));
                }
                Err(e) => e,
            },
            // Dropping a manager that does not hold the Lease changes nothing in it.
            () = released(&api, settings) => {
                tracing::info!(lease = %settings.name, "the leader Lease was released; taking it");
                continue;
            }
            () = &mut stop => return Ok(None),
        };
        let failed = failed.context(format!("leader Lease {}/{}", settings.namespace, settings.name));
        tracing::warn!(
            error = format!("{failed:#}"),
            retry_in_s = RETRY.as_secs(),
            "leader election failed"
        );
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = &mut stop => return Ok(None),
        }
    }
}

/// Resolves once the Lease is seen free, reading it every `standby_check`.
async fn released(api: &Api<Lease>, settings: &LeaseSettings) {
    loop {
        tokio::time::sleep(settings.standby_check).await;
        match api.get_opt(&settings.name).await {
            Ok(lease) if is_free(lease.as_ref()) => return,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "reading the leader Lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fake_api, not_found, respond};
    use http::StatusCode;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::{json, Value};
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_standby_checks_every_second_and_the_holder_renews_every_ten() {
        let s = LeaseSettings::new("taskfarm-controller", "farms", "pod-a");
        assert_eq!(s.standby_check, Duration::from_secs(1));
        assert_eq!((s.duration_seconds, s.grace_seconds), (15, 5));
        // kube-lease-manager refuses grace >= duration; the renewal period is their difference.
        assert!(s.grace_seconds < s.duration_seconds);
        assert_eq!(s.duration_seconds - s.grace_seconds, 10);
        // The check is far below the manager's own wake-up, or it would gain nothing.
        assert!(s.standby_check * 5 <= Duration::from_secs(s.duration_seconds - s.grace_seconds));
    }

    #[test]
    fn a_lease_is_free_when_nobody_holds_it() {
        let lease = |holder: Option<&str>| Lease {
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: holder.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(is_free(None), "not created yet");
        assert!(is_free(Some(&Lease::default())), "no spec");
        assert!(is_free(Some(&lease(None))), "released");
        assert!(is_free(Some(&lease(Some("")))));
        assert!(!is_free(Some(&lease(Some("pod-a")))));
    }

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/testns/leases/taskfarm-controller";

    /// A Lease held by `holder`, renewed just now (so valid for 15 s more).
    fn held_by(holder: &str) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "taskfarm-controller", "namespace": "testns", "resourceVersion": "1"},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": 15,
                "acquireTime": MicroTime(Timestamp::now()),
                "renewTime": MicroTime(Timestamp::now()),
                "leaseTransitions": 1,
            }
        })
    }

    /// What the API server does to the Lease: GET it, take it when free (a conflict otherwise),
    /// merge the manager's other patches (renewals, transitions, releases) into its spec.
    fn lease_server(
        lease: Arc<Mutex<Value>>,
        conflicts: Arc<Mutex<u32>>,
    ) -> impl Fn(&crate::fixtures::Call) -> http::Response<kube::client::Body> {
        move |call| {
            if call.path != PATH {
                return not_found(&call.path);
            }
            let mut lease = lease.lock().unwrap();
            if call.method == "PATCH" {
                let patch = &call.body["spec"];
                let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default().to_string();
                let taking = patch["holderIdentity"].as_str().unwrap_or_default();
                if !taking.is_empty() && !holder.is_empty() && holder != taking {
                    *conflicts.lock().unwrap() += 1;
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "reason": "Conflict", "code": 409, "message": "held"});
                    return respond(StatusCode::CONFLICT, &status);
                }
                for (k, v) in patch.as_object().into_iter().flatten() {
                    lease["spec"][k] = v.clone();
                }
            }
            respond(StatusCode::OK, &lease)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_takes_a_released_lease_within_a_second() {
        let lease = Arc::new(Mutex::new(held_by("old-leader")));
        let conflicts = Arc::new(Mutex::new(0));
        let (client, server) = fake_api(lease_server(lease.clone(), conflicts.clone()));
        let settings = LeaseSettings {
            namespace: "testns".into(),
            ..LeaseSettings::new("taskfarm-controller", "farms", "new-leader")
        };
        // The old leader releases the Lease 3 s in, as it does on SIGTERM.
        let releaser = {
            let lease = lease.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let spec = &mut lease.lock().unwrap()["spec"];
                for field in ["holderIdentity", "acquireTime", "renewTime", "leaseDurationSeconds"] {
                    spec[field] = Value::Null;
                }
                tokio::time::Instant::now()
            })
        };
        let leadership = acquire(client, &settings, std::future::pending())
            .await
            .unwrap()
            .expect("the Lease");
        let took = tokio::time::Instant::now() - releaser.await.unwrap();
        // Without the standby's own check this waited for the manager's wake-up (up to 15 s).
        assert!(took <= Duration::from_secs(1), "took {took:?} after the release");
        assert!(*leadership.leading.borrow());
        assert_eq!(lease.lock().unwrap()["spec"]["holderIdentity"], "new-leader");
        assert_eq!(*conflicts.lock().unwrap(), 0, "a held Lease is never grabbed");
        // Dropping `leading` releases the Lease and ends the manager.
        drop(leadership.leading);
        leadership.task.await.unwrap().unwrap();
        assert_eq!(lease.lock().unwrap()["spec"]["holderIdentity"], Value::Null);
        server.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_stops_when_asked() {
        let lease = Arc::new(Mutex::new(held_by("old-leader")));
        let (client, server) = fake_api(lease_server(lease.clone(), Arc::default()));
        let settings = LeaseSettings {
            namespace: "testns".into(),
            ..LeaseSettings::new("taskfarm-controller", "farms", "new-leader")
        };
        let stop = tokio::time::sleep(Duration::from_secs(30));
        assert!(acquire(client, &settings, stop).await.unwrap().is_none());
        assert_eq!(lease.lock().unwrap()["spec"]["holderIdentity"], "old-leader");
        let calls = server.finish().await;
        assert!(calls.find("PATCH", PATH).is_empty(), "{:?}", calls.summary());
        // It read the Lease about once a second meanwhile.
        assert!(calls.find("GET", PATH).len() >= 25, "{:?}", calls.summary());
    }
}
