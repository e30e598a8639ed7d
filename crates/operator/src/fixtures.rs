//! Test helpers: TaskFarm objects, pods, a fake ZooKeeper reader and a fake API server.
//!
//! The fake API server sits behind a tower-test mock service (the kube-rs/controller-rs
//! pattern), answers each request the way the API server would for our scenario, and records
//! every request. A test runs one reconcile, drops the context (which closes the mock), and
//! then asserts on the recorded requests: no sleeps, no timing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::build::{LABEL_COMPONENT, LABEL_FARM};
use super::controller::Context;
use super::crd::{Component, TaskFarm, TaskFarmSpec};
use super::farmstate::{FarmReader, FarmState, ZkTarget};
use super::http::Progress;
use super::metrics::Metrics;
use super::validate::{validate, ValidatedFarm};

/// The fixed "now" of the scenarios.
pub const NOW: i64 = 1_800_000_000;

pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

/// A TaskFarm `name` in namespace `testns`, generation 1, with `edit` applied to its spec.
pub fn farm(name: &str, edit: impl FnOnce(&mut TaskFarmSpec)) -> TaskFarm {
    let mut spec = TaskFarmSpec::default();
    edit(&mut spec);
    let mut f = TaskFarm::new(name, spec);
    f.metadata.namespace = Some("testns".into());
    f.metadata.uid = Some(format!("uid-{name}"));
    f.metadata.generation = Some(1);
    f.metadata.resource_version = Some("1".into());
    f
}

/// [`farm`], validated (it must be valid).
pub fn valid_farm(name: &str, edit: impl FnOnce(&mut TaskFarmSpec)) -> ValidatedFarm {
    validate(&farm(name, edit)).expect("a valid farm")
}

/// A ready pod of `farm` and `role`, created an hour before [`NOW`].
pub fn pod(farm: &str, name: &str, role: Component) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("testns".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(BTreeMap::from([
                (LABEL_FARM.to_string(), farm.to_string()),
                (LABEL_COMPONENT.to_string(), role.as_str().to_string()),
            ])),
            creation_timestamp: Some(Time(at(NOW - 3600))),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

pub fn not_ready(mut p: Pod) -> Pod {
    p.status = Some(PodStatus::default());
    p
}

pub fn created_seconds_ago(mut p: Pod, seconds: i64) -> Pod {
    p.metadata.creation_timestamp = Some(Time(at(NOW - seconds)));
    p
}

/// A farm state with a leader, as a healthy farm reports it.
pub fn healthy_state() -> FarmState {
    FarmState {
        leader: Some("demo-master-abc".into()),
        epoch: Some(4),
        live_workers: 3,
        pending: 2,
        running: 3,
        completed: 100,
        failovers: 0,
        leader_since_ms: None,
    }
}

/// A ZooKeeper reader that answers with a fixed state (or error) and records its targets.
pub struct FakeFarms {
    answer: Result<FarmState, String>,
    pub targets: Mutex<Vec<ZkTarget>>,
}

impl FarmReader for FakeFarms {
    fn read<'a>(&'a self, target: &'a ZkTarget) -> BoxFuture<'a, anyhow::Result<FarmState>> {
        self.targets.lock().unwrap().push(target.clone());
        let answer = self.answer.clone().map_err(anyhow::Error::msg);
        Box::pin(async move { answer })
    }
}

/// What the fake API server knows.
#[derive(Clone, Default)]
pub struct World {
    /// The TaskFarm, returned by status patches.
    pub farm: Option<TaskFarm>,
    /// readyReplicas reported for master, worker, client.
    pub ready: [i32; 3],
    /// Pods answered to any pod list (unfiltered: the code must check labels itself).
    pub pods: Vec<Pod>,
    /// Pods that vanish between the list and the delete (the delete answers 404).
    pub vanished: Vec<String>,
    /// Refuse every Deployment apply (422), as the API server does what it finds invalid.
    pub reject_apply: bool,
}

/// One request the fake API server received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Call {
    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

pub struct Calls(pub Vec<Call>);

impl Calls {
    pub fn find(&self, method: &str, path: &str) -> Vec<&Call> {
        self.0.iter().filter(|c| c.is(method, path)).collect()
    }

    pub fn one(&self, method: &str, path: &str) -> &Call {
        let found = self.find(method, path);
        assert_eq!(
            found.len(),
            1,
            "expected one {method} {path}, got: {:#?}",
            self.summary()
        );
        found[0]
    }

    pub fn none(&self, method: &str, path: &str) {
        assert!(
            self.find(method, path).is_empty(),
            "unexpected {method} {path}: {:#?}",
            self.summary()
        );
    }

    /// `METHOD path` of every call, in order.
    pub fn summary(&self) -> Vec<String> {
        self.0.iter().map(|c| format!("{} {}", c.method, c.path)).collect()
    }

    /// Reasons of the events published, in order.
    pub fn event_reasons(&self) -> Vec<String> {
        self.find("POST", EVENTS)
            .iter()
            .map(|c| c.body["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn event(&self, reason: &str) -> &Call {
        let found: Vec<&Call> = self
            .find("POST", EVENTS)
            .into_iter()
            .filter(|c| c.body["reason"] == reason)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {reason} event, got {:?}",
            self.event_reasons()
        );
        found[0]
    }

    /// The status of the single status patch.
    pub fn status(&self) -> Value {
        self.one("PATCH", &status_path("demo")).body["status"].clone()
    }

    pub fn deletes(&self) -> Vec<&Call> {
        self.0
            .iter()
            .filter(|c| c.method == "DELETE" && c.path.starts_with(PODS))
            .collect()
    }
}

pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/testns/events";
pub const PODS: &str = "/api/v1/namespaces/testns/pods";

pub fn deployment_path(name: &str) -> String {
    format!("/apis/apps/v1/namespaces/testns/deployments/{name}")
}

pub fn configmap_path(name: &str) -> String {
    format!("/api/v1/namespaces/testns/configmaps/{name}")
}

pub fn status_path(farm: &str) -> String {
    format!("/apis/taskfarm.dev/v1alpha1/namespaces/testns/taskfarms/{farm}/status")
}

/// The fake API server's task; [`ApiServer::finish`] returns what it received.
pub struct ApiServer {
    calls: Arc<Mutex<Vec<Call>>>,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// Waits until every client is gone (the mock closes) and returns the requests.
    pub async fn finish(self) -> Calls {
        self.task.await.expect("fake API server panicked");
        let calls = self.calls.lock().unwrap().clone();
        Calls(calls)
    }
}

pub fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

pub fn not_found(what: &str) -> Response<Body> {
    respond(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
    )
}

fn answer(world: &World, call: &Call) -> Response<Body> {
    let deployments = "/apis/apps/v1/namespaces/testns/deployments/";
    match call.method.as_str() {
        "PATCH" if call.path.starts_with(deployments) && world.reject_apply => respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "quantities must match the regular expression", "reason": "Invalid", "code": 422}),
        ),
        "PATCH" if call.path.starts_with(deployments) => {
            // Server-side apply answers with the object, including its status.
            let mut body = call.body.clone();
            let role = body["metadata"]["labels"][LABEL_COMPONENT].as_str().unwrap_or_default();
            let ready = match role {
                "master" => world.ready[0],
                "worker" => world.ready[1],
                _ => world.ready[2],
            };
            body["status"] = json!({"readyReplicas": ready});
            respond(StatusCode::OK, &body)
        }
        // Server-side apply of a ConfigMap answers with the object.
        "PATCH" if call.path.starts_with("/api/v1/namespaces/testns/configmaps/") => {
            respond(StatusCode::OK, &call.body)
        }
        "PATCH" if call.path.ends_with("/status") => {
            let mut farm = serde_json::to_value(world.farm.clone().expect("a farm in the world")).unwrap();
            farm["status"] = call.body["status"].clone();
            respond(StatusCode::OK, &farm)
        }
        "POST" if call.path == EVENTS => respond(StatusCode::CREATED, &call.body),
        "GET" if call.path == PODS => {
            let items: Vec<Value> = world.pods.iter().map(|p| serde_json::to_value(p).unwrap()).collect();
            respond(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items}),
            )
        }
        "DELETE" if call.path.starts_with(PODS) => {
            let name = call.path.rsplit('/').next().unwrap_or_default();
            if world.vanished.iter().any(|v| v == name) {
                return not_found(name);
            }
            match world.pods.iter().find(|p| p.metadata.name.as_deref() == Some(name)) {
                Some(p) => respond(StatusCode::OK, &serde_json::to_value(p).unwrap()),
                None => not_found(name),
            }
        }
        _ => not_found(&call.path),
    }
}

/// A client of a fake API server that answers each request with `answer` and records it.
pub fn fake_api(answer: impl Fn(&Call) -> Response<Body> + Send + 'static) -> (Client, ApiServer) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "testns");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let recorded = calls.clone();
    let task = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.expect("request body");
            let call = Call {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            send.send_response(answer(&call));
            recorded.lock().unwrap().push(call);
        }
    });
    (client, ApiServer { calls, task })
}

/// A controller context wired to a fake API server and a fake ZooKeeper reader.
pub fn context(world: World, zk: Result<FarmState, String>) -> (Arc<Context>, ApiServer, Arc<FakeFarms>) {
    let (client, server) = fake_api(move |call| answer(&world, call));
    let (ctx, farms) = context_for(client, zk);
    (ctx, server, farms)
}

/// A controller context on `client`, with a fake ZooKeeper reader.
pub fn context_for(client: Client, zk: Result<FarmState, String>) -> (Arc<Context>, Arc<FakeFarms>) {
    let reporter = Reporter {
        controller: "taskfarm-controller".into(),
        instance: Some("test".into()),
    };
    let farms = Arc::new(FakeFarms {
        answer: zk,
        targets: Mutex::new(Vec::new()),
    });
    let ctx = Context::new(
        client,
        reporter,
        farms.clone(),
        Arc::new(Metrics::default()),
        Arc::new(Progress::default()),
        Duration::from_secs(10),
    );
    (Arc::new(ctx), farms)
}
