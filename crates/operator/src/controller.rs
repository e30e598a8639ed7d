//! The reconcile loop: dereference → validate → build → apply → observe → chaos → status.
//!
//! Validating is pure ([`super::validate`]) and the builders only take its output; building is
//! pure ([`super::build`]), choosing chaos victims is pure ([`super::chaos`]),
//! reading ZooKeeper is behind [`FarmReader`]; this module only sequences API calls, so the
//! mock-API tests in [`super::fixtures`] cover each path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource as _, ResourceExt as _};

use super::build::{self, DEPLOYED_ROLES, FIELD_MANAGER, LABEL_FARM};
use super::chaos::{self, PodView, SteadyState};
use super::crd::{ChaosAction, Component, Condition, RoleCounts, TaskFarm, TaskFarmStatus};
use super::farmstate::{qualify_connect, FarmReader, FarmState, ZkTarget};
use super::http::Progress;
use super::metrics::{FarmGauges, Metrics};
use super::validate::{validate, InvalidSpec, ValidatedFarm};
use super::worker;

/// How many chaos actions the status keeps.
pub const MAX_ACTIONS: usize = 10;

/// How soon a farm with an invalid spec is looked at again (a spec change triggers a reconcile
/// anyway).
const INVALID_RECHECK: Duration = Duration::from_secs(300);

/// A failed reconcile step, with its cause.
///
/// `Validate` and `ReadZooKeeper` end in the status (`InvalidSpec`, `ZooKeeperUnreachable`)
/// rather than in [`error_policy`]: a retry cannot fix the one, and the other is a state of the
/// farm the status must show.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the TaskFarm has no namespace")]
    NoNamespace,
    #[error("invalid spec: {0}")]
    Validate(#[from] InvalidSpec),
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        source: kube::Error,
    },
    #[error("reading the farm from ZooKeeper at {connect}: {cause:#}")]
    ReadZooKeeper { connect: String, cause: anyhow::Error },
    #[error("chaos: listing the farm's pods: {0}")]
    ListPods(#[source] kube::Error),
    #[error("chaos: deleting pod {pod}: {source}")]
    DeletePod { pod: String, source: kube::Error },
    #[error("patching the status: {0}")]
    PatchStatus(#[source] kube::Error),
}

impl Error {
    /// The reconcile step that failed, as a log field.
    pub fn step(&self) -> &'static str {
        match self {
            Error::NoNamespace => "dereference",
            Error::Validate(_) => "validate",
            Error::Apply { .. } => "apply",
            Error::ReadZooKeeper { .. } => "observe",
            Error::ListPods(_) | Error::DeletePod { .. } => "chaos",
            Error::PatchStatus(_) => "status",
        }
    }
}

/// What one farm's reconciles remember between runs (lost on restart, which is fine: the
/// status holds what must survive).
#[derive(Default)]
struct Memory {
    /// The last chaos run: guards against running twice when a reconcile sees a cached object
    /// older than our own status write.
    last_chaos_run: Option<Timestamp>,
    /// Consecutive failures, for the error backoff.
    failures: u32,
    /// The status we last wrote and the resourceVersion the object had before that write.
    /// A reconcile that still sees that resourceVersion runs on a cached object older than
    /// our write (the watch event is on its way) and starts from what we wrote instead, so
    /// that events are not published twice.
    written: Option<(String, TaskFarmStatus)>,
}

pub struct Context {
    pub client: Client,
    /// Who publishes the events.
    pub reporter: Reporter,
    pub farms: Arc<dyn FarmReader>,
    pub metrics: Arc<Metrics>,
    /// When each farm is next due for a reconcile: the liveness probe's view of the loop.
    pub progress: Arc<Progress>,
    /// How often a farm is re-read from ZooKeeper when nothing changes in Kubernetes.
    pub resync: Duration,
    memory: Mutex<HashMap<String, Memory>>,
}

impl Context {
    pub fn new(
        client: Client,
        reporter: Reporter,
        farms: Arc<dyn FarmReader>,
        metrics: Arc<Metrics>,
        progress: Arc<Progress>,
        resync: Duration,
    ) -> Self {
        Self {
            client,
            reporter,
            farms,
            metrics,
            progress,
            resync,
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// Asks for the next reconcile of `farm` in `delay`, and notes when it is due.
    fn requeue(&self, farm: &TaskFarm, delay: Duration) -> Action {
        self.progress.due_in(&farm_key(farm), delay);
        Action::requeue(delay)
    }

    fn remember<T>(&self, farm: &TaskFarm, f: impl FnOnce(&mut Memory) -> T) -> T {
        let key = farm
            .uid()
            .unwrap_or_else(|| format!("{}/{}", farm.namespace().unwrap_or_default(), farm.name_any()));
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        f(memory.entry(key).or_default())
    }

    async fn publish(&self, farm: &TaskFarm, type_: EventType, reason: &str, action: &str, note: String) {
        self.publish_related(farm, type_, reason, action, note, None).await
    }

    /// Publishes an event about `farm`, naming a `related` object (the chaos victim) if any.
    async fn publish_related(
        &self,
        farm: &TaskFarm,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        related: Option<ObjectReference>,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: related,
        };
        // A fresh recorder per event: a shared one folds repeats of a reason into a series that
        // keeps the first note, and every note here (which pod, which leader) matters. Events
        // are only published on changes, so there is no flood to fold.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        // An event that cannot be written must not fail the reconcile.
        if let Err(e) = recorder.publish(&event, &farm.object_ref(&())).await {
            tracing::warn!(reason, error = %e, "could not publish an event");
        }
    }
}

/// Exponential backoff after consecutive failures: 5s, 10s, 20s ... at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::from_secs(5 * (1u64 << exp)).min(Duration::from_secs(300))
}

/// How [`Progress`] names a farm.
fn farm_key(farm: &TaskFarm) -> String {
    super::http::farm_key(&farm.namespace().unwrap_or_default(), &farm.name_any())
}

pub fn error_policy(farm: Arc<TaskFarm>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    let failures = ctx.remember(&farm, |m| {
        m.failures += 1;
        m.failures
    });
    let delay = backoff(failures);
    // The runtime calls this outside the reconcile's span: name the farm here.
    tracing::warn!(
        taskfarm = %farm.name_any(),
        namespace = %farm.namespace().unwrap_or_default(),
        step = error.step(),
        error = %error,
        failures,
        retry_in_s = delay.as_secs(),
        "reconcile failed"
    );
    ctx.requeue(&farm, delay)
}

pub async fn reconcile(farm: Arc<TaskFarm>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    // Due now, until it ends and asks for its next run: a reconcile that hangs is a stall.
    ctx.progress.due_at(&farm_key(&farm), started);
    ctx.metrics.reconciles.inc();
    let result = reconcile_at(&farm, &ctx, Timestamp::now()).await;
    ctx.metrics.reconcile_duration.observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.remember(&farm, |m| m.failures = 0);
    }
    result
}

/// RFC 3339 to the second: stable text, so equal instants compare equal in status.
pub fn rfc3339(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second()).unwrap_or(t).to_string()
}

/// Sets a condition, keeping its transition time while its status stays the same.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: &str,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" };
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.to_string(),
    };
    let condition = Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time,
        observed_generation: generation,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == "True")
}

// One span per reconcile: every line logged below carries the farm's name and namespace.
#[tracing::instrument(
    name = "reconcile",
    skip_all,
    fields(taskfarm = %farm.name_any(), namespace = %farm.namespace().unwrap_or_default())
)]
pub async fn reconcile_at(farm: &TaskFarm, ctx: &Context, now: Timestamp) -> Result<Action, Error> {
    let ns = farm.namespace().ok_or(Error::NoNamespace)?;
    // Deletion: the garbage collector removes the Deployments through their owner references.
    if farm.meta().deletion_timestamp.is_some() {
        ctx.metrics.forget_farm(&ns, &farm.name_any());
        ctx.progress.forget(&farm_key(farm));
        return Ok(Action::await_change());
    }
    let ours = ctx.remember(farm, |m| m.written.clone());
    let (old, status_exists) = match (ours, farm.resource_version()) {
        (Some((before, written)), Some(seen)) if before == seen => (written, true),
        _ => (farm.status.clone().unwrap_or_default(), farm.status.is_some()),
    };
    let mut r = Reconciliation {
        ctx,
        farm,
        name: farm.name_any(),
        ns,
        now,
        now_text: rfc3339(now),
        status: old.clone(),
        old,
        status_exists,
    };
    r.status.observed_generation = farm.metadata.generation;
    r.status.worker_selector = build::selector_string(&r.name, Component::Worker);

    // Nothing is applied from an invalid spec: the status and an event say why.
    let valid = match validate(farm) {
        Ok(valid) => valid,
        Err(problem) => {
            r.invalid(problem).await;
            r.write_status().await?;
            return Ok(ctx.requeue(farm, INVALID_RECHECK));
        }
    };
    // The catalogue first: new worker pods mount it.
    r.apply_commands(&valid).await?;
    let desired = r.apply_roles(&valid).await?;
    let farm_state = match r.observe(&valid).await {
        Ok(s) => Some(s),
        Err(e) => {
            ctx.metrics.zookeeper_errors.inc();
            tracing::warn!(step = e.step(), error = %e, "cannot read the farm; keeping the last known view");
            None
        }
    };
    let steady = farm_state
        .as_ref()
        .map(|s| chaos::steady_state(&valid.chaos, &r.old.chaos, desired.masters, s, now));
    r.judge_steady_state(steady.as_ref()).await;
    let next_chaos = r.chaos(&valid, farm_state.is_some(), steady.as_ref()).await?;
    r.set_ready(&valid, &desired, farm_state.is_some());
    r.set_chaos_running(&valid);
    r.export_metrics();
    r.write_status().await?;

    let mut requeue = ctx.resync;
    if let Some(s) = next_chaos {
        requeue = requeue.min(Duration::from_secs(s.max(1) as u64));
    }
    Ok(ctx.requeue(farm, requeue))
}

/// One reconcile of one farm: the old status, the status being built, and the steps.
struct Reconciliation<'a> {
    ctx: &'a Context,
    farm: &'a TaskFarm,
    name: String,
    ns: String,
    now: Timestamp,
    now_text: String,
    old: TaskFarmStatus,
    status: TaskFarmStatus,
    /// Whether the object has a status at all (an empty one is still written once).
    status_exists: bool,
}

impl Reconciliation<'_> {
    fn condition(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        let generation = self.farm.metadata.generation;
        set_condition(
            &mut self.status.conditions,
            type_,
            status,
            reason,
            message,
            &self.now_text,
            generation,
        );
    }

    async fn invalid(&mut self, problem: InvalidSpec) {
        let message = problem.to_string();
        let already = condition(&self.old.conditions, "Ready").is_some_and(|c| c.reason == "InvalidSpec");
        self.condition("Ready", false, "InvalidSpec", message.clone());
        self.condition("ChaosRunning", false, "InvalidSpec", "the spec is invalid".into());
        let error = Error::from(problem);
        tracing::warn!(step = error.step(), error = %error, "nothing applied");
        if !already {
            let farm = self.farm;
            self.ctx
                .publish(farm, EventType::Warning, "InvalidSpec", "Validate", message)
                .await;
        }
    }

    /// Server-side applies the command catalogue's ConfigMap. It is not watched: every reconcile
    /// (at least every resync) applies it again, which restores it if edited or deleted.
    async fn apply_commands(&self, farm: &ValidatedFarm) -> Result<(), Error> {
        let name = worker::configmap_name(&self.name);
        self.apply(&name, &worker::commands_configmap(farm)).await?;
        Ok(())
    }

    /// Server-side applies one object of the farm (forced: we own exactly the fields we set)
    /// and returns it as the API server has it.
    async fn apply<K>(&self, name: &str, object: &K) -> Result<K, Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let api: Api<K> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|source| Error::Apply {
                kind: K::kind(&()).into_owned(),
                name: name.to_string(),
                source,
            })
    }

    /// Server-side applies the role Deployments (we own exactly the fields we set) and notes
    /// their readiness; says so when the replicas changed.
    async fn apply_roles(&mut self, farm: &ValidatedFarm) -> Result<RoleCounts, Error> {
        let mut ready = [0i32; 3];
        for (i, role) in DEPLOYED_ROLES.into_iter().enumerate() {
            let name = build::deployment_name(&self.name, role);
            let applied: Deployment = self.apply(&name, &build::deployment(farm, role)).await?;
            ready[i] = applied.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        }
        [
            self.status.ready_masters,
            self.status.ready_workers,
            self.status.ready_clients,
        ] = ready;
        let desired = build::desired(farm);
        self.status.desired = Some(desired.clone());
        let note = match &self.old.desired {
            None => Some((
                "Created",
                "Apply",
                format!(
                    "applied Deployments {}-master/-worker/-client with {}/{}/{} replicas",
                    self.name, desired.masters, desired.workers, desired.clients
                ),
            )),
            Some(before) if *before != desired => Some((
                "Scaled",
                "Scale",
                format!(
                    "masters {}→{}, workers {}→{}, clients {}→{}{}",
                    before.masters,
                    desired.masters,
                    before.workers,
                    desired.workers,
                    before.clients,
                    desired.clients,
                    if farm.suspend { " (suspended)" } else { "" }
                ),
            )),
            Some(_) => None,
        };
        if let Some((reason, action, note)) = note {
            tracing::info!(%note, "{}", reason.to_lowercase());
            self.ctx
                .publish(self.farm, EventType::Normal, reason, action, note)
                .await;
        }
        Ok(desired)
    }

    /// Reads the farm from ZooKeeper into the status; on an error the status keeps the last
    /// known view.
    async fn observe(&mut self, farm: &ValidatedFarm) -> Result<FarmState, Error> {
        let zk = &farm.zookeeper;
        let target = ZkTarget {
            connect: qualify_connect(&zk.connect, &self.ns),
            session_timeout: Duration::from_secs(zk.session_timeout_seconds.max(2) as u64),
        };
        let s = self
            .ctx
            .farms
            .read(&target)
            .await
            .map_err(|cause| Error::ReadZooKeeper {
                connect: target.connect.clone(),
                cause,
            })?;
        let status = &mut self.status;
        status.leader = s.leader.clone();
        // The epoch stays at the last leader's while there is none, so that a change of
        // leader across a leaderless gap is still seen.
        if s.epoch.is_some() {
            status.epoch = s.epoch;
        }
        status.live_workers = s.live_workers;
        status.pending = s.pending;
        status.running = s.running;
        status.completed = s.completed.max(0);
        status.failovers = s.failovers;
        let since = s
            .leader_since_ms
            .and_then(|ms| Timestamp::from_millisecond(ms as i64).ok())
            .map(rfc3339);
        match (self.old.epoch, s.epoch) {
            (Some(before), Some(after)) if before != after => {
                status.last_failover_time = Some(since.unwrap_or_else(|| self.now_text.clone()));
                let note = format!(
                    "leader is now {} (epoch {after}, was epoch {before}{})",
                    s.leader.as_deref().unwrap_or("?"),
                    self.old.leader.as_deref().map(|l| format!(", {l}")).unwrap_or_default()
                );
                tracing::info!(%note, "leader changed");
                self.ctx
                    .publish(self.farm, EventType::Normal, "LeaderChanged", "Observe", note)
                    .await;
            }
            _ => {
                if status.last_failover_time.is_none() && s.failovers > 0 {
                    status.last_failover_time = since;
                }
            }
        }
        Ok(s)
    }

    /// Sets `Degraded` from the steady-state verdict (left as it was when unknown), with a
    /// Warning event when the farm becomes degraded.
    async fn judge_steady_state(&mut self, steady: Option<&SteadyState>) {
        let (degraded, reason, msg) = match steady {
            Some(SteadyState::NoProgress(msg)) => (true, "NoProgress", msg.clone()),
            Some(SteadyState::FailoverTooSlow(msg)) => (true, "FailoverTooSlow", msg.clone()),
            Some(SteadyState::Recovering) => (
                false,
                "Recovering",
                "recovering from the last chaos kill, within the bounds".into(),
            ),
            Some(SteadyState::Healthy) => (false, "SteadyState", "tasks complete and a leader is in place".into()),
            None => return,
        };
        self.condition("Degraded", degraded, reason, msg.clone());
        if degraded && !is_true(&self.old.conditions, "Degraded") {
            tracing::warn!(reason, message = %msg, "farm degraded");
            self.ctx
                .publish(self.farm, EventType::Warning, "Degraded", "SteadyStateCheck", msg)
                .await;
        }
    }

    /// Runs chaos when it is on and due; returns the seconds until the next run (None when off).
    async fn chaos(
        &mut self,
        farm: &ValidatedFarm,
        state_known: bool,
        steady: Option<&SteadyState>,
    ) -> Result<Option<i64>, Error> {
        let spec = &farm.chaos;
        if !spec.enabled || farm.suspend {
            return Ok(None);
        }
        let interval = spec.interval_seconds;
        let remembered = self.ctx.remember(self.farm, |m| m.last_chaos_run);
        let recorded = self
            .old
            .chaos
            .last_run_time
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok());
        let last_run = remembered.max(recorded);
        if !chaos::due(last_run, interval, self.now) {
            return Ok(Some(chaos::seconds_until_due(last_run, interval, self.now)));
        }
        let now = self.now;
        self.ctx.remember(self.farm, |m| m.last_chaos_run = Some(now));
        self.status.chaos.last_run_time = Some(self.now_text.clone());
        self.ctx.metrics.chaos_runs.inc();
        let degraded = steady.is_some_and(SteadyState::is_broken);
        if spec.guards.pause_when_degraded && (!state_known || degraded) {
            let why = if degraded {
                "paused: the farm is Degraded"
            } else {
                "paused: the farm's ZooKeeper state cannot be read"
            };
            tracing::info!(why, "chaos run skipped");
            self.status.chaos.last_skip_reason = Some(why.into());
            self.ctx.metrics.chaos_guarded.inc();
        } else {
            self.chaos_run(farm).await?;
        }
        Ok(Some(interval))
    }

    /// One chaos run: list the farm's pods, choose, delete (or pretend to), record.
    async fn chaos_run(&mut self, valid: &ValidatedFarm) -> Result<(), Error> {
        let (ctx, farm, ns, name) = (self.ctx, self.farm, self.ns.as_str(), self.name.as_str());
        let spec = &valid.chaos;
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        // The label selector is the first fence; chaos::select checks the label again.
        let listed = pods
            .list(&ListParams::default().labels(&format!("{LABEL_FARM}={name}")))
            .await
            .map_err(Error::ListPods)?;
        let views: Vec<PodView> = listed.items.iter().map(PodView::of).collect();
        let plan = {
            let mut rng = rand::rng();
            chaos::select(spec, name, valid.zookeeper.replicas, &views, self.now, &mut rng)
        };
        let status = &mut self.status;
        status.chaos.last_skip_reason = plan.shortfall(spec.max_kills.max(0) as usize);
        if let Some(why) = &status.chaos.last_skip_reason {
            ctx.metrics.chaos_guarded.inc();
            tracing::info!(why, "chaos run held back");
        }
        for victim in plan.victims {
            let role = victim.role.as_str();
            let related = pod_ref(ns, &victim);
            if spec.dry_run {
                ctx.metrics.chaos_dry_runs.inc();
                tracing::info!(pod = %victim.pod, role, dry_run = true, "chaos would delete a pod");
                let note = format!("dry run: would delete pod {} ({role})", victim.pod);
                ctx.publish_related(farm, EventType::Normal, "ChaosDryRun", "Delete", note, related)
                    .await;
            } else {
                let params = DeleteParams {
                    grace_period_seconds: Some(spec.grace_period_seconds.clamp(0, 3600) as u32),
                    // Delete the very pod that was judged, not a namesake created since.
                    preconditions: victim.uid.clone().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match pods.delete(&victim.pod, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                        tracing::info!(pod = %victim.pod, "chaos victim already gone");
                        continue;
                    }
                    Err(source) => {
                        return Err(Error::DeletePod {
                            pod: victim.pod,
                            source,
                        })
                    }
                }
                ctx.metrics.chaos_kills.inc();
                status.chaos.kills += 1;
                status.chaos.last_kill_time = Some(self.now_text.clone());
                status.chaos.completed_at_last_kill = status.completed;
                tracing::warn!(
                    pod = %victim.pod,
                    role,
                    grace_period_s = spec.grace_period_seconds,
                    kills = status.chaos.kills,
                    "chaos deleted a pod"
                );
                let note = format!(
                    "deleted pod {} ({role}) with a {}s grace period",
                    victim.pod, spec.grace_period_seconds
                );
                ctx.publish_related(farm, EventType::Normal, "ChaosKill", "Delete", note, related)
                    .await;
            }
            status.chaos.last_actions.push(ChaosAction {
                time: self.now_text.clone(),
                pod: victim.pod,
                role: role.into(),
                action: "delete".into(),
                dry_run: spec.dry_run,
            });
        }
        let excess = status.chaos.last_actions.len().saturating_sub(MAX_ACTIONS);
        status.chaos.last_actions.drain(..excess);
        Ok(())
    }

    fn set_ready(&mut self, farm: &ValidatedFarm, desired: &RoleCounts, state_known: bool) {
        let s = &self.status;
        let ready = [s.ready_masters, s.ready_workers, s.ready_clients];
        let counts = format!(
            "masters {}/{}, workers {}/{}, clients {}/{}",
            ready[0], desired.masters, ready[1], desired.workers, ready[2], desired.clients
        );
        let (ok, reason, msg) = if farm.suspend {
            (
                false,
                "Suspended",
                "spec.suspend is true: every role is scaled to 0".into(),
            )
        } else if !state_known {
            (
                false,
                "ZooKeeperUnreachable",
                format!(
                    "cannot read the farm from ZooKeeper at {}",
                    qualify_connect(&farm.zookeeper.connect, &self.ns)
                ),
            )
        } else if ready[0] < desired.masters || ready[1] < desired.workers || ready[2] < desired.clients {
            (false, "RolesNotReady", counts)
        } else if desired.masters > 0 && s.leader.is_none() {
            (false, "NoLeader", "no master leads yet".into())
        } else {
            (true, "FarmReady", counts)
        };
        self.condition("Ready", ok, reason, msg);
    }

    fn set_chaos_running(&mut self, farm: &ValidatedFarm) {
        let chaos = &farm.chaos;
        let (on, reason, msg) = match (chaos.enabled, farm.suspend) {
            (false, _) => (false, "Disabled", "spec.chaos.enabled is false".into()),
            (true, true) => (false, "Suspended", "chaos stops while the farm is suspended".into()),
            (true, false) => {
                let targets: Vec<&str> = chaos.targets.iter().map(|r| r.as_str()).collect();
                let msg = format!("every {}s against {}", chaos.interval_seconds, targets.join(","));
                (true, if chaos.dry_run { "DryRun" } else { "Enabled" }, msg)
            }
        };
        self.condition("ChaosRunning", on, reason, msg);
    }

    fn export_metrics(&self) {
        let s = &self.status;
        let gauges = FarmGauges {
            ready_masters: s.ready_masters.into(),
            ready_workers: s.ready_workers.into(),
            ready_clients: s.ready_clients.into(),
            live_workers: s.live_workers,
            pending: s.pending,
            running: s.running,
            completed: s.completed,
            epoch: s.epoch.unwrap_or(0),
            degraded: is_true(&s.conditions, "Degraded"),
        };
        self.ctx.metrics.set_farm(&self.ns, &self.name, gauges);
    }

    /// Writes the status only when it differs from what is there: an unconditional write
    /// would wake the controller again and loop.
    async fn write_status(&self) -> Result<(), Error> {
        if self.status_exists && self.old == self.status {
            return Ok(());
        }
        let api: Api<TaskFarm> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let patch = serde_json::json!({
            "apiVersion": format!("{}/{}", super::crd::GROUP, super::crd::VERSION),
            "kind": "TaskFarm",
            "status": self.status,
        });
        api.patch_status(
            &self.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::PatchStatus)?;
        if let Some(before) = self.farm.resource_version() {
            let written = self.status.clone();
            self.ctx.remember(self.farm, |m| m.written = Some((before, written)));
        }
        Ok(())
    }
}

fn pod_ref(namespace: &str, victim: &chaos::Victim) -> Option<ObjectReference> {
    Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(victim.pod.clone()),
        namespace: Some(namespace.into()),
        uid: victim.uid.clone(),
        ..ObjectReference::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(50), Duration::from_secs(300));
    }

    #[test]
    fn conditions_keep_their_transition_time_while_unchanged() {
        let mut cs = Vec::new();
        set_condition(&mut cs, "Ready", false, "RolesNotReady", "a".into(), "t1", Some(1));
        set_condition(&mut cs, "Ready", false, "NoLeader", "b".into(), "t2", Some(2));
        assert_eq!(cs.len(), 1);
        assert_eq!(
            (cs[0].reason.as_str(), cs[0].last_transition_time.as_str()),
            ("NoLeader", "t1")
        );
        set_condition(&mut cs, "Ready", true, "FarmReady", "c".into(), "t3", Some(2));
        assert_eq!(
            (cs[0].status.as_str(), cs[0].last_transition_time.as_str()),
            ("True", "t3")
        );
    }

    #[test]
    fn timestamps_are_written_to_the_second() {
        let t = Timestamp::from_millisecond(1_800_000_000_123).unwrap();
        assert_eq!(rfc3339(t), "2027-01-15T08:00:00Z");
    }
}
