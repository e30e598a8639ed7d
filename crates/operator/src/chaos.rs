//! Chaos, the pure half: which pods one run may delete, and whether the farm stayed healthy
//! after the last deletion. The controller does the listing and deleting; everything that
//! decides is here, without I/O, so each guard is tested on its own.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use rand::seq::SliceRandom as _;
use rand::Rng;

use super::build::{LABEL_COMPONENT, LABEL_FARM};
use super::crd::{ChaosMode, ChaosSpec, ChaosStatus, Component};
use super::farmstate::FarmState;

/// What chaos needs to know about one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    pub name: String,
    pub uid: Option<String>,
    /// Value of the `taskfarm.dev/farm` label.
    pub farm: Option<String>,
    pub role: Option<Component>,
    /// The Ready condition is True.
    pub ready: bool,
    /// Has a deletionTimestamp.
    pub terminating: bool,
    pub created: Option<Timestamp>,
}

impl PodView {
    pub fn of(pod: &Pod) -> Self {
        let labels = pod.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Self {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone(),
            farm: label(LABEL_FARM),
            role: label(LABEL_COMPONENT).as_deref().and_then(Component::from_label),
            ready,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }

    fn available(&self) -> bool {
        self.ready && !self.terminating
    }
}

/// A pod chosen for deletion.
#[derive(Clone, Debug, PartialEq)]
pub struct Victim {
    pub pod: String,
    pub uid: Option<String>,
    pub role: Component,
}

/// The outcome of one selection: the victims, and why the others were spared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub victims: Vec<Victim>,
    /// How many pods the mode asked for (before `maxKills` and the guards).
    pub wanted: usize,
    /// Pods of the targeted roles that belong to this farm.
    pub targeted: usize,
    pub not_ready: usize,
    pub too_young: usize,
    pub quorum_guarded: usize,
    /// Pods listed that do not carry this farm's label (never touched).
    pub foreign: usize,
}

impl Plan {
    /// Why fewer pods than wanted were chosen, for status and logs; `None` when all were.
    pub fn shortfall(&self, max_kills: usize) -> Option<String> {
        let wanted = self.wanted.min(max_kills);
        if self.victims.len() >= wanted && wanted > 0 {
            return None;
        }
        if self.targeted == 0 {
            return Some("no pod of the targeted roles".into());
        }
        if wanted == 0 {
            return Some("the mode asks for no pod".into());
        }
        let mut why = Vec::new();
        if self.not_ready > 0 {
            why.push(format!("{} not ready", self.not_ready));
        }
        if self.too_young > 0 {
            why.push(format!("{} younger than the minimum age", self.too_young));
        }
        if self.quorum_guarded > 0 {
            why.push(format!(
                "{} held back by the ZooKeeper quorum guard",
                self.quorum_guarded
            ));
        }
        Some(format!(
            "chose {} of {wanted} wanted among {} targeted pods: {}",
            self.victims.len(),
            self.targeted,
            if why.is_empty() {
                "no other pod".into()
            } else {
                why.join(", ")
            }
        ))
    }
}

/// How many pods the mode asks for out of `targeted` pods.
pub fn wanted(mode: ChaosMode, value: i32, targeted: usize) -> usize {
    let value = value.max(0) as usize;
    match mode {
        ChaosMode::One => 1,
        ChaosMode::Fixed => value,
        ChaosMode::Percent => (targeted * value.min(100)).div_ceil(100),
    }
    .min(targeted)
}

/// Chooses the pods one run deletes.
///
/// Guards, in order: only pods labelled with this farm (`farm`), only the targeted roles; never
/// a terminating pod; with `readyOnly`, never a pod that is not ready; never a pod younger than
/// `minPodAgeSeconds`; with `zookeeperQuorum`, a ZooKeeper pod only while every one of the
/// `zk_replicas` ZooKeeper pods exists and is ready, and at most one per run; at most
/// `maxKills` pods per run.
pub fn select(
    spec: &ChaosSpec,
    farm: &str,
    zk_replicas: i32,
    pods: &[PodView],
    now: Timestamp,
    rng: &mut impl Rng,
) -> Plan {
    let mut plan = Plan::default();
    let own: Vec<&PodView> = pods
        .iter()
        .filter(|p| {
            let mine = p.farm.as_deref() == Some(farm);
            plan.foreign += usize::from(!mine);
            mine
        })
        .collect();
    // ZooKeeper pods not serving, counting those missing from the list (deleted, not yet back).
    let zk_pods: Vec<&&PodView> = own.iter().filter(|p| p.role == Some(Component::Zookeeper)).collect();
    let zk_unavailable =
        zk_pods.iter().filter(|p| !p.available()).count() + (zk_replicas.max(0) as usize).saturating_sub(zk_pods.len());

    let mut targeted: Vec<&PodView> = own
        .into_iter()
        .filter(|p| p.role.is_some_and(|r| spec.targets.contains(&r)))
        .collect();
    plan.targeted = targeted.len();
    plan.wanted = wanted(spec.mode, spec.value, targeted.len());
    let limit = plan.wanted.min(spec.max_kills.max(0) as usize);

    // Random order first, so that guards and limits do not favour any pod.
    targeted.shuffle(rng);
    let min_age = spec.min_pod_age_seconds.max(0);
    let mut zk_killed = 0;
    for pod in targeted {
        if pod.terminating || (spec.guards.ready_only && !pod.ready) {
            plan.not_ready += 1;
            continue;
        }
        let old_enough = pod
            .created
            .is_some_and(|c| now.as_second().saturating_sub(c.as_second()) >= min_age);
        if !old_enough {
            plan.too_young += 1;
            continue;
        }
        let role = pod.role.expect("targeted pods have a role");
        if role == Component::Zookeeper && spec.guards.zookeeper_quorum && (zk_unavailable > 0 || zk_killed > 0) {
            plan.quorum_guarded += 1;
            continue;
        }
        if plan.victims.len() >= limit {
            continue;
        }
        zk_killed += usize::from(role == Component::Zookeeper);
        plan.victims.push(Victim {
            pod: pod.name.clone(),
            uid: pod.uid.clone(),
            role,
        });
    }
    plan
}

/// Whether the next run is due, given the last one (status or memory, the later of the two).
pub fn due(last_run: Option<Timestamp>, interval_seconds: i64, now: Timestamp) -> bool {
    match last_run {
        None => true,
        Some(last) => now.as_second() - last.as_second() >= interval_seconds,
    }
}

/// Seconds until the next run is due (0 when due now).
pub fn seconds_until_due(last_run: Option<Timestamp>, interval_seconds: i64, now: Timestamp) -> i64 {
    match last_run {
        None => 0,
        Some(last) => (last.as_second() + interval_seconds - now.as_second()).max(0),
    }
}

/// The steady-state verdict after the last deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SteadyState {
    /// Nothing was deleted yet, or the farm recovered in time.
    Healthy,
    /// Still within the bounds: too early to judge.
    Recovering,
    /// Tasks are pending but none completed within `progressTimeoutSeconds` of the kill.
    NoProgress(String),
    /// No leader within `failoverTimeoutSeconds` of the kill.
    FailoverTooSlow(String),
}

impl SteadyState {
    pub fn is_broken(&self) -> bool {
        matches!(self, SteadyState::NoProgress(_) | SteadyState::FailoverTooSlow(_))
    }
}

/// Checks the farm against its steady state after the last real deletion: a leader must be
/// back within the failover bound, and while tasks are pending the completed count must have
/// moved past its value at the kill within the progress bound.
pub fn steady_state(
    spec: &ChaosSpec,
    chaos: &ChaosStatus,
    masters: i32,
    state: &FarmState,
    now: Timestamp,
) -> SteadyState {
    let Some(kill) = chaos
        .last_kill_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
    else {
        return SteadyState::Healthy;
    };
    let elapsed = now.as_second() - kill.as_second();
    if masters > 0 && state.leader.is_none() {
        if elapsed > spec.failover_timeout_seconds {
            return SteadyState::FailoverTooSlow(format!(
                "no leader {elapsed}s after the last kill (bound {}s)",
                spec.failover_timeout_seconds
            ));
        }
        return SteadyState::Recovering;
    }
    if state.pending > 0 && state.completed <= chaos.completed_at_last_kill {
        if elapsed > spec.progress_timeout_seconds {
            return SteadyState::NoProgress(format!(
                "{} tasks pending and none completed in the {elapsed}s since the last kill (bound {}s)",
                state.pending, spec.progress_timeout_seconds
            ));
        }
        return SteadyState::Recovering;
    }
    SteadyState::Healthy
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng as _;

    const NOW: i64 = 1_800_000_000;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn pod(name: &str, role: Component) -> PodView {
        PodView {
            name: name.into(),
            uid: Some(format!("uid-{name}")),
            farm: Some("demo".into()),
            role: Some(role),
            ready: true,
            terminating: false,
            created: Some(at(NOW - 3600)),
        }
    }

    fn zk_ensemble() -> Vec<PodView> {
        (0..3)
            .map(|i| pod(&format!("demo-zookeeper-{i}"), Component::Zookeeper))
            .collect()
    }

    fn spec(targets: &[Component]) -> ChaosSpec {
        ChaosSpec {
            enabled: true,
            targets: targets.to_vec(),
            ..ChaosSpec::default()
        }
    }

    fn run(spec: &ChaosSpec, pods: &[PodView]) -> Plan {
        select(spec, "demo", 3, pods, at(NOW), &mut StdRng::seed_from_u64(7))
    }

    fn names(plan: &Plan) -> Vec<&str> {
        let mut n: Vec<&str> = plan.victims.iter().map(|v| v.pod.as_str()).collect();
        n.sort();
        n
    }

    #[test]
    fn pod_views_read_labels_readiness_termination_and_age() {
        use crate::fixtures;
        let p = fixtures::pod("demo", "demo-worker-1", Component::Worker);
        let v = PodView::of(&p);
        assert_eq!(v.name, "demo-worker-1");
        assert_eq!((v.farm.as_deref(), v.role), (Some("demo"), Some(Component::Worker)));
        assert!(v.ready && !v.terminating);
        assert_eq!(v.created, Some(at(fixtures::NOW - 3600)));
        assert!(!PodView::of(&fixtures::not_ready(p.clone())).ready);
        let mut going = p.clone();
        going.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(NOW)));
        assert!(PodView::of(&going).terminating);
        let mut odd = p;
        odd.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_COMPONENT.into(), "sidecar".into());
        assert_eq!(PodView::of(&odd).role, None);
    }

    #[test]
    fn modes_ask_for_one_a_fixed_number_or_a_percentage() {
        assert_eq!(wanted(ChaosMode::One, 5, 10), 1);
        assert_eq!(wanted(ChaosMode::Fixed, 3, 10), 3);
        assert_eq!(wanted(ChaosMode::Fixed, 30, 10), 10);
        assert_eq!(wanted(ChaosMode::Percent, 25, 10), 3, "rounded up");
        assert_eq!(wanted(ChaosMode::Percent, 0, 10), 0);
        assert_eq!(wanted(ChaosMode::Percent, 100, 4), 4);
        assert_eq!(wanted(ChaosMode::One, 1, 0), 0);
    }

    #[test]
    fn one_mode_deletes_one_pod_of_the_targeted_roles() {
        let pods = vec![
            pod("w1", Component::Worker),
            pod("w2", Component::Worker),
            pod("m1", Component::Master),
        ];
        let plan = run(&spec(&[Component::Worker]), &pods);
        assert_eq!(plan.victims.len(), 1);
        assert_eq!(plan.victims[0].role, Component::Worker);
        assert_eq!(plan.targeted, 2);
        assert_eq!(plan.shortfall(1), None);
    }

    #[test]
    fn max_kills_caps_fixed_and_percent_modes() {
        let pods: Vec<PodView> = (0..10).map(|i| pod(&format!("w{i}"), Component::Worker)).collect();
        let mut s = spec(&[Component::Worker]);
        s.mode = ChaosMode::Fixed;
        s.value = 4;
        s.max_kills = 2;
        assert_eq!(run(&s, &pods).victims.len(), 2);
        s.max_kills = 10;
        assert_eq!(run(&s, &pods).victims.len(), 4);
        s.mode = ChaosMode::Percent;
        s.value = 50;
        assert_eq!(run(&s, &pods).victims.len(), 5);
    }

    #[test]
    fn only_pods_of_its_own_farm_are_ever_chosen() {
        let mut stranger = pod("other-worker", Component::Worker);
        stranger.farm = Some("other".into());
        let mut unlabelled = pod("loose", Component::Worker);
        unlabelled.farm = None;
        let plan = run(&spec(&[Component::Worker]), &[stranger, unlabelled]);
        assert!(plan.victims.is_empty());
        assert_eq!((plan.foreign, plan.targeted), (2, 0));
        assert_eq!(plan.shortfall(1).as_deref(), Some("no pod of the targeted roles"));
    }

    #[test]
    fn pods_that_are_not_ready_or_terminating_are_spared() {
        let mut not_ready = pod("w1", Component::Worker);
        not_ready.ready = false;
        let mut terminating = pod("w2", Component::Worker);
        terminating.terminating = true;
        let ok = pod("w3", Component::Worker);
        let mut s = spec(&[Component::Worker]);
        s.mode = ChaosMode::Percent;
        s.value = 100;
        s.max_kills = 3;
        let plan = run(&s, &[not_ready.clone(), terminating.clone(), ok]);
        assert_eq!(names(&plan), ["w3"]);
        assert_eq!(plan.not_ready, 2);
        assert!(plan.shortfall(3).unwrap().contains("2 not ready"));
        // With the guard off, a not-ready pod may go; a terminating one never does.
        s.guards.ready_only = false;
        let plan = run(&s, &[not_ready, terminating]);
        assert_eq!(names(&plan), ["w1"]);
    }

    #[test]
    fn pods_younger_than_the_minimum_age_are_spared() {
        let mut young = pod("w1", Component::Worker);
        young.created = Some(at(NOW - 30));
        let mut unknown_age = pod("w2", Component::Worker);
        unknown_age.created = None;
        let s = spec(&[Component::Worker]);
        let plan = run(&s, &[young.clone(), unknown_age]);
        assert!(plan.victims.is_empty());
        assert_eq!(plan.too_young, 2);
        let mut lenient = s.clone();
        lenient.min_pod_age_seconds = 30;
        assert_eq!(names(&run(&lenient, &[young])), ["w1"]);
    }

    #[test]
    fn zookeeper_is_never_taken_below_quorum() {
        let s = spec(&[Component::Zookeeper]);
        // All three ready: one may go.
        let plan = run(&s, &zk_ensemble());
        assert_eq!(plan.victims.len(), 1);
        // One not ready: none may go.
        let mut pods = zk_ensemble();
        pods[0].ready = false;
        let plan = run(&s, &pods);
        assert!(plan.victims.is_empty());
        assert_eq!(plan.quorum_guarded, 2);
        // One missing (deleted, not yet recreated): none may go.
        let plan = run(&s, &zk_ensemble()[..2]);
        assert!(plan.victims.is_empty());
        assert_eq!(plan.quorum_guarded, 2);
        // Never two in one run, whatever the mode asks.
        let mut greedy = s.clone();
        greedy.mode = ChaosMode::Percent;
        greedy.value = 100;
        greedy.max_kills = 3;
        let plan = run(&greedy, &zk_ensemble());
        assert_eq!(plan.victims.len(), 1);
        assert_eq!(plan.quorum_guarded, 2);
    }

    #[test]
    fn the_quorum_guard_also_counts_zookeeper_pods_when_other_roles_are_targeted() {
        // Workers may still die while ZooKeeper is short: the guard is about ZooKeeper pods.
        let mut pods = zk_ensemble();
        pods[1].ready = false;
        pods.push(pod("w1", Component::Worker));
        let plan = run(&spec(&[Component::Worker, Component::Zookeeper]), &pods);
        assert_eq!(names(&plan), ["w1"]);
    }

    #[test]
    fn selection_is_random_but_reproducible_with_a_seed() {
        let pods: Vec<PodView> = (0..20).map(|i| pod(&format!("w{i:02}"), Component::Worker)).collect();
        let s = spec(&[Component::Worker]);
        let pick = |seed| select(&s, "demo", 3, &pods, at(NOW), &mut StdRng::seed_from_u64(seed)).victims;
        assert_eq!(pick(1), pick(1));
        let distinct: std::collections::BTreeSet<String> = (0..20).map(|s| pick(s)[0].pod.clone()).collect();
        assert!(distinct.len() > 1, "always the same victim: {distinct:?}");
    }

    #[test]
    fn runs_are_due_after_the_interval() {
        assert!(due(None, 60, at(NOW)));
        assert!(!due(Some(at(NOW - 59)), 60, at(NOW)));
        assert!(due(Some(at(NOW - 60)), 60, at(NOW)));
        assert_eq!(seconds_until_due(Some(at(NOW - 45)), 60, at(NOW)), 15);
        assert_eq!(seconds_until_due(Some(at(NOW - 90)), 60, at(NOW)), 0);
    }

    fn after_kill(seconds_ago: i64, completed_at_kill: i64) -> ChaosStatus {
        ChaosStatus {
            last_kill_time: Some(at(NOW - seconds_ago).to_string()),
            completed_at_last_kill: completed_at_kill,
            ..ChaosStatus::default()
        }
    }

    fn state(leader: Option<&str>, pending: i64, completed: i64) -> FarmState {
        FarmState {
            leader: leader.map(Into::into),
            pending,
            completed,
            ..FarmState::default()
        }
    }

    #[test]
    fn steady_state_needs_progress_after_a_kill() {
        let s = spec(&[Component::Worker]); // progress bound 120s, failover bound 60s
        let check = |chaos: &ChaosStatus, st: &FarmState| steady_state(&s, chaos, 2, st, at(NOW));
        assert_eq!(check(&ChaosStatus::default(), &state(None, 5, 0)), SteadyState::Healthy);
        assert_eq!(
            check(&after_kill(30, 10), &state(Some("m"), 5, 10)),
            SteadyState::Recovering
        );
        assert!(matches!(
            check(&after_kill(200, 10), &state(Some("m"), 5, 10)),
            SteadyState::NoProgress(_)
        ));
        assert_eq!(
            check(&after_kill(200, 10), &state(Some("m"), 5, 11)),
            SteadyState::Healthy
        );
        assert_eq!(
            check(&after_kill(200, 10), &state(Some("m"), 0, 10)),
            SteadyState::Healthy,
            "an idle farm is not stuck"
        );
    }

    #[test]
    fn steady_state_needs_a_leader_within_the_failover_bound() {
        let s = spec(&[Component::Master]);
        let check = |masters, st: &FarmState| steady_state(&s, &after_kill(90, 0), masters, st, at(NOW));
        assert!(matches!(check(2, &state(None, 0, 0)), SteadyState::FailoverTooSlow(_)));
        assert!(check(2, &state(None, 0, 0)).is_broken());
        assert_eq!(check(0, &state(None, 0, 0)), SteadyState::Healthy, "no masters wanted");
        let early = steady_state(&s, &after_kill(10, 0), 2, &state(None, 0, 0), at(NOW));
        assert_eq!(early, SteadyState::Recovering);
    }
}
