//! Role pod settings (`spec.pod`, `spec.<role>.pod`): merged per role and checked against the
//! API server's rules for the validate step, so that the builders copy them into the pods as they
//! are. Each field the user wrote is checked where it was written, so that a refusal names it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::build::{LABEL_COMPONENT, LABEL_FARM, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME};
use super::crd::{Component, PodSettings, TaskFarmSpec};
use super::names;
use super::validate::InvalidSpec;
use super::worker::COMMANDS_DIGEST;

/// The labels the controller puts on every pod: the selector and the farm's identity.
pub const OWN_LABELS: [&str; 5] = [
    LABEL_NAME,
    LABEL_INSTANCE,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_FARM,
];
/// The API server's bound on a pod's annotations, keys and values together.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Each role's pod settings: `spec.pod` with the role's own merged over it, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolePods {
    pub master: PodSettings,
    pub worker: PodSettings,
    pub client: PodSettings,
}

impl RolePods {
    pub fn get(&self, role: Component) -> &PodSettings {
        match role {
            Component::Master => &self.master,
            Component::Worker => &self.worker,
            Component::Client | Component::Zookeeper => &self.client,
        }
    }
}

/// Checks `spec.pod` and each `spec.<role>.pod`, and merges them per role.
pub fn role_pods(spec: &TaskFarmSpec) -> Result<RolePods, InvalidSpec> {
    check("pod", &spec.pod)?;
    let role = |at: &str, own: &PodSettings| {
        check(at, own)?;
        let merged = merge(&spec.pod, own);
        let bytes: usize = merged.annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > ANNOTATIONS_MAX_BYTES {
            return Err(refused(
                &format!("{at}.annotations"),
                format!(
                    "the role's annotations take {bytes} bytes, more than the {ANNOTATIONS_MAX_BYTES} a pod may carry"
                ),
            ));
        }
        Ok(merged)
    };
    Ok(RolePods {
        master: role("master.pod", &spec.master.pod)?,
        worker: role("worker.pod", &spec.worker.pod)?,
        client: role("client.pod", &spec.client.pod)?,
    })
}

/// One role's settings over every role's: lists joined (without repeats), maps merged with the
/// role's value winning, `affinity` and `priorityClassName` replaced. An empty
/// `priorityClassName` means none.
pub fn merge(all: &PodSettings, own: &PodSettings) -> PodSettings {
    fn joined<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
        let mut out: Vec<T> = Vec::new();
        for item in a.iter().chain(b) {
            if !out.contains(item) {
                out.push(item.clone());
            }
        }
        out
    }
    fn merged(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        a.iter().chain(b).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    let priority = |p: &PodSettings| p.priority_class_name.clone().filter(|s| !s.is_empty());
    PodSettings {
        image_pull_secrets: joined(&all.image_pull_secrets, &own.image_pull_secrets),
        node_selector: merged(&all.node_selector, &own.node_selector),
        tolerations: joined(&all.tolerations, &own.tolerations),
        affinity: own.affinity.clone().or_else(|| all.affinity.clone()),
        priority_class_name: priority(own).or_else(|| priority(all)),
        annotations: merged(&all.annotations, &own.annotations),
        labels: merged(&all.labels, &own.labels),
    }
}

fn refused(at: &str, why: impl Into<String>) -> InvalidSpec {
    InvalidSpec::Pod {
        at: at.to_string(),
        why: why.into(),
    }
}

/// One `pod` block as written, at `spec.<at>`.
fn check(at: &str, pod: &PodSettings) -> Result<(), InvalidSpec> {
    for (i, secret) in pod.image_pull_secrets.iter().enumerate() {
        names::dns1123_subdomain(&secret.name).map_err(|why| {
            refused(
                &format!("{at}.imagePullSecrets[{i}].name"),
                format!("{:?} is not a Secret name: it {why}", secret.name),
            )
        })?;
    }
    label_map(&format!("{at}.nodeSelector"), &pod.node_selector)?;
    label_map(&format!("{at}.labels"), &pod.labels)?;
    if let Some(key) = pod.labels.keys().find(|k| OWN_LABELS.contains(&k.as_str())) {
        return Err(refused(
            &format!("{at}.labels"),
            format!("{key:?} is set by the controller (it selects the farm's pods)"),
        ));
    }
    for key in pod.annotations.keys() {
        // The API server checks annotation keys in lower case.
        names::qualified_name(&key.to_lowercase()).map_err(|why| {
            refused(
                &format!("{at}.annotations"),
                format!("{key:?} is not an annotation key: it {why}"),
            )
        })?;
        if key == COMMANDS_DIGEST {
            return Err(refused(
                &format!("{at}.annotations"),
                format!("{key:?} is set by the controller (the catalogue's digest)"),
            ));
        }
    }
    for (i, toleration) in pod.tolerations.iter().enumerate() {
        check_toleration(toleration).map_err(|why| refused(&format!("{at}.tolerations[{i}]"), why))?;
    }
    if let Some(affinity) = &pod.affinity {
        check_affinity(affinity).map_err(|(path, why)| refused(&format!("{at}.affinity.{path}"), why))?;
    }
    if let Some(name) = pod.priority_class_name.as_deref().filter(|s| !s.is_empty()) {
        names::dns1123_subdomain(name).map_err(|why| {
            refused(
                &format!("{at}.priorityClassName"),
                format!("{name:?} is not a PriorityClass name: it {why}"),
            )
        })?;
    }
    Ok(())
}

/// Label keys and values (labels, node selectors).
fn label_map(at: &str, map: &BTreeMap<String, String>) -> Result<(), InvalidSpec> {
    for (key, value) in map {
        names::qualified_name(key).map_err(|why| refused(at, format!("{key:?} is not a label key: it {why}")))?;
        names::label_value(value).map_err(|why| {
            refused(
                at,
                format!("the value of {key:?}, {value:?}, is not a label value: it {why}"),
            )
        })?;
    }
    Ok(())
}

fn check_toleration(t: &Toleration) -> Result<(), String> {
    let key = t.key.as_deref().unwrap_or_default();
    let operator = t.operator.as_deref().unwrap_or_default();
    let value = t.value.as_deref().unwrap_or_default();
    let effect = t.effect.as_deref().unwrap_or_default();
    if !key.is_empty() {
        names::qualified_name(key).map_err(|why| format!("key {key:?} is not a label key: it {why}"))?;
    }
    match operator {
        "Exists" if !value.is_empty() => return Err("value must be empty with operator Exists".into()),
        "Exists" => {}
        "" | "Equal" if key.is_empty() => return Err("an empty key needs operator Exists".into()),
        "" | "Equal" => {
            names::label_value(value).map_err(|why| format!("value {value:?} is not a label value: it {why}"))?
        }
        other => return Err(format!("operator {other:?} is not Equal or Exists")),
    }
    if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!(
            "effect {effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        return Err("tolerationSeconds needs effect NoExecute".into());
    }
    Ok(())
}

/// Where in the affinity (relative path) and why.
type AffinityError = (String, String);

fn at(path: String) -> impl FnOnce(String) -> AffinityError {
    move |why| (path, why)
}

fn check_affinity(a: &Affinity) -> Result<(), AffinityError> {
    if let Some(node) = &a.node_affinity {
        let required = "nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution";
        if let Some(selector) = &node.required_during_scheduling_ignored_during_execution {
            if selector.node_selector_terms.is_empty() {
                return Err((format!("{required}.nodeSelectorTerms"), "must not be empty".into()));
            }
            for (i, term) in selector.node_selector_terms.iter().enumerate() {
                node_term(term).map_err(at(format!("{required}.nodeSelectorTerms[{i}]")))?;
            }
        }
        let preferred = "nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution";
        for (i, p) in node
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            weight(p.weight)
                .and_then(|()| node_term(&p.preference))
                .map_err(at(format!("{preferred}[{i}]")))?;
        }
    }
    let pod_terms = [
        a.pod_affinity.as_ref().map(|p| {
            (
                "podAffinity",
                &p.required_during_scheduling_ignored_during_execution,
                &p.preferred_during_scheduling_ignored_during_execution,
            )
        }),
        a.pod_anti_affinity.as_ref().map(|p| {
            (
                "podAntiAffinity",
                &p.required_during_scheduling_ignored_during_execution,
                &p.preferred_during_scheduling_ignored_during_execution,
            )
        }),
    ];
    for (name, required, preferred) in pod_terms.into_iter().flatten() {
        for (i, term) in required.iter().flatten().enumerate() {
            pod_term(term).map_err(at(format!(
                "{name}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"
            )))?;
        }
        for (i, w) in preferred.iter().flatten().enumerate() {
            weight(w.weight)
                .and_then(|()| pod_term(&w.pod_affinity_term))
                .map_err(at(format!(
                    "{name}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
                )))?;
        }
    }
    Ok(())
}

fn weight(w: i32) -> Result<(), String> {
    (1..=100)
        .contains(&w)
        .then_some(())
        .ok_or_else(|| format!("weight must be 1-100 ({w})"))
}

/// `In`/`NotIn` need values, `Exists`/`DoesNotExist` none; `Gt`/`Lt` (nodes only) one integer.
fn requirement(key: &str, operator: &str, values: &[String], numeric: bool) -> Result<(), String> {
    names::qualified_name(key).map_err(|why| format!("key {key:?} is not a label key: it {why}"))?;
    match operator {
        "In" | "NotIn" if values.is_empty() => Err(format!("operator {operator} needs values")),
        "Exists" | "DoesNotExist" if !values.is_empty() => Err(format!("operator {operator} takes no values")),
        "In" | "NotIn" | "Exists" | "DoesNotExist" => Ok(()),
        "Gt" | "Lt" if numeric => match values {
            [one] if one.parse::<i64>().is_ok() => Ok(()),
            _ => Err(format!("operator {operator} needs exactly one integer value")),
        },
        other => Err(format!(
            "operator {other:?} is not one of In, NotIn, Exists, DoesNotExist{}",
            if numeric { ", Gt, Lt" } else { "" }
        )),
    }
}

fn node_term(term: &NodeSelectorTerm) -> Result<(), String> {
    for NodeSelectorRequirement { key, operator, values } in term.match_expressions.iter().flatten() {
        requirement(key, operator, values.as_deref().unwrap_or_default(), true)?;
    }
    for NodeSelectorRequirement { key, operator, values } in term.match_fields.iter().flatten() {
        let values = values.as_deref().unwrap_or_default();
        if key != "metadata.name" || !matches!(operator.as_str(), "In" | "NotIn") || values.len() != 1 {
            return Err("matchFields takes only key metadata.name, operator In or NotIn, and one value".into());
        }
    }
    Ok(())
}

fn pod_term(term: &PodAffinityTerm) -> Result<(), String> {
    if term.topology_key.is_empty() {
        return Err("topologyKey must not be empty".into());
    }
    names::qualified_name(&term.topology_key)
        .map_err(|why| format!("topologyKey {:?} is not a label key: it {why}", term.topology_key))?;
    for selector in [&term.label_selector, &term.namespace_selector].into_iter().flatten() {
        label_selector(selector)?;
    }
    Ok(())
}

fn label_selector(s: &LabelSelector) -> Result<(), String> {
    for (key, value) in s.match_labels.iter().flatten() {
        names::qualified_name(key).map_err(|why| format!("matchLabels key {key:?} is not a label key: it {why}"))?;
        names::label_value(value)
            .map_err(|why| format!("matchLabels value {value:?} is not a label value: it {why}"))?;
    }
    for r in s.match_expressions.iter().flatten() {
        requirement(&r.key, &r.operator, r.values.as_deref().unwrap_or_default(), false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LocalObjectReference, NodeAffinity, PodAntiAffinity, WeightedPodAffinityTerm};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn secret(name: &str) -> LocalObjectReference {
        LocalObjectReference { name: name.into() }
    }

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: some(key),
            operator: some(operator),
            value: some(value),
            effect: some(effect),
            toleration_seconds: None,
        }
    }

    fn refusal(pod: PodSettings) -> String {
        check("pod", &pod).expect_err("refused").to_string()
    }

    #[test]
    fn a_role_adds_to_every_roles_settings() {
        let all = PodSettings {
            image_pull_secrets: vec![secret("registry"), secret("mirror")],
            node_selector: map(&[("pool", "farm"), ("disk", "ssd")]),
            tolerations: vec![toleration("farm", "Exists", "", "NoSchedule")],
            priority_class_name: Some("farm-normal".into()),
            annotations: map(&[("team", "compute")]),
            labels: map(&[("cost-centre", "42")]),
            ..PodSettings::default()
        };
        let own = PodSettings {
            image_pull_secrets: vec![secret("registry"), secret("workers")],
            node_selector: map(&[("pool", "big")]),
            tolerations: vec![
                toleration("farm", "Exists", "", "NoSchedule"),
                toleration("gpu", "Exists", "", ""),
            ],
            priority_class_name: Some(String::new()),
            labels: map(&[("tier", "batch")]),
            ..PodSettings::default()
        };
        let m = merge(&all, &own);
        let names: Vec<&str> = m.image_pull_secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["registry", "mirror", "workers"], "joined, no repeats");
        assert_eq!(
            m.node_selector,
            map(&[("disk", "ssd"), ("pool", "big")]),
            "the role's wins"
        );
        assert_eq!(m.tolerations.len(), 2);
        assert_eq!(m.priority_class_name.as_deref(), Some("farm-normal"), "empty = none");
        assert_eq!(m.annotations, map(&[("team", "compute")]));
        assert_eq!(m.labels, map(&[("cost-centre", "42"), ("tier", "batch")]));
        let affinity = Affinity {
            pod_anti_affinity: Some(PodAntiAffinity::default()),
            ..Affinity::default()
        };
        let replaced = merge(
            &PodSettings {
                affinity: Some(Affinity::default()),
                ..PodSettings::default()
            },
            &PodSettings {
                affinity: Some(affinity.clone()),
                priority_class_name: Some("urgent".into()),
                ..PodSettings::default()
            },
        );
        assert_eq!(replaced.affinity, Some(affinity));
        assert_eq!(replaced.priority_class_name.as_deref(), Some("urgent"));
    }

    #[test]
    fn labels_and_names_follow_the_api_servers_syntax() {
        // Each case: a `pod` block as YAML, and what its refusal says.
        let cases = [
            (
                "labels: {Bad Key: x}",
                r#"spec.pod.labels: "Bad Key" is not a label key"#,
            ),
            (
                "labels: {tier: not ok}",
                r#"spec.pod.labels: the value of "tier", "not ok", is not"#,
            ),
            (
                "labels: {taskfarm.dev/farm: x}",
                r#"spec.pod.labels: "taskfarm.dev/farm" is set by the controller"#,
            ),
            (
                "nodeSelector: {kubernetes.io/os: -linux}",
                r#"spec.pod.nodeSelector: the value of "kubernetes.io/os""#,
            ),
            (
                "annotations: {a/b/c: x}",
                r#"spec.pod.annotations: "a/b/c" is not an annotation key"#,
            ),
            (
                "annotations: {taskfarm.dev/commands-sha256: x}",
                "is set by the controller (the catalogue's digest)",
            ),
            (
                "imagePullSecrets: [{name: Registry_Creds}]",
                r#"imagePullSecrets[0].name: "Registry_Creds" is not a Secret"#,
            ),
            (
                "priorityClassName: High Priority",
                r#"spec.pod.priorityClassName: "High Priority" is not a PriorityClass"#,
            ),
        ];
        for (yaml, want) in cases {
            let pod: PodSettings = serde_yaml::from_str(yaml).unwrap();
            let got = refusal(pod);
            assert!(got.starts_with(want) || got.contains(want), "{got:?} lacks {want:?}");
        }
        // Upper-case annotation keys are what the API server accepts too.
        let fine = PodSettings {
            annotations: map(&[("Example.com/Owner", "me"), ("prometheus.io/scrape", "true")]),
            labels: map(&[("example.com/tier", "")]),
            priority_class_name: Some(String::new()),
            ..PodSettings::default()
        };
        assert_eq!(check("pod", &fine), Ok(()));
    }

    #[test]
    fn tolerations_are_checked_as_the_api_server_does() {
        let mut seconds = toleration("node.kubernetes.io/unreachable", "Exists", "", "NoSchedule");
        seconds.toleration_seconds = Some(30);
        let cases = [
            (toleration("", "Equal", "x", ""), "an empty key needs operator Exists"),
            (
                toleration("k", "Exists", "v", ""),
                "value must be empty with operator Exists",
            ),
            (
                toleration("k", "Matches", "v", ""),
                "operator \"Matches\" is not Equal or Exists",
            ),
            (toleration("k", "", "v", "Evict"), "effect \"Evict\""),
            (
                toleration("k", "Equal", "not ok", ""),
                "value \"not ok\" is not a label value",
            ),
            (seconds, "tolerationSeconds needs effect NoExecute"),
        ];
        for (t, want) in cases {
            let got = refusal(PodSettings {
                tolerations: vec![toleration("ok", "Exists", "", ""), t],
                ..PodSettings::default()
            });
            assert!(got.starts_with("spec.pod.tolerations[1]: "), "{got}");
            assert!(got.contains(want), "{got:?} lacks {want:?}");
        }
        let fine = [
            toleration("", "Exists", "", ""),
            toleration("dedicated", "", "farm", "NoSchedule"),
            Toleration {
                toleration_seconds: Some(60),
                ..toleration("node.kubernetes.io/not-ready", "Exists", "", "NoExecute")
            },
        ];
        let pod = PodSettings {
            tolerations: fine.to_vec(),
            ..PodSettings::default()
        };
        assert_eq!(check("pod", &pod), Ok(()));
    }

    fn node_requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn preferred_node(weight: i32, requirement: NodeSelectorRequirement) -> Affinity {
        Affinity {
            node_affinity: Some(NodeAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    k8s_openapi::api::core::v1::PreferredSchedulingTerm {
                        weight,
                        preference: NodeSelectorTerm {
                            match_expressions: Some(vec![requirement]),
                            match_fields: None,
                        },
                    },
                ]),
                required_during_scheduling_ignored_during_execution: None,
            }),
            ..Affinity::default()
        }
    }

    fn spread(topology_key: &str, operator: &str, values: &[&str]) -> Affinity {
        let term = PodAffinityTerm {
            topology_key: topology_key.into(),
            label_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: LABEL_COMPONENT.into(),
                    operator: operator.into(),
                    values: Some(values.iter().map(|v| v.to_string()).collect()),
                }]),
                match_labels: None,
            }),
            ..PodAffinityTerm::default()
        };
        Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                    weight: 50,
                    pod_affinity_term: term,
                }]),
                required_during_scheduling_ignored_during_execution: None,
            }),
            ..Affinity::default()
        }
    }

    #[test]
    fn affinity_terms_are_checked_where_they_are_written() {
        let with = |affinity| PodSettings {
            affinity: Some(affinity),
            ..PodSettings::default()
        };
        let preferred = "spec.pod.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]";
        let anti = "spec.pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]";
        let cases = [
            (
                preferred_node(0, node_requirement("disk", "In", &["ssd"])),
                format!("{preferred}: weight must be 1-100 (0)"),
            ),
            (
                preferred_node(10, node_requirement("disk", "In", &[])),
                format!("{preferred}: operator In needs values"),
            ),
            (
                preferred_node(10, node_requirement("cores", "Gt", &["many"])),
                format!("{preferred}: operator Gt needs exactly one integer value"),
            ),
            (
                spread("", "In", &["worker"]),
                format!("{anti}: topologyKey must not be empty"),
            ),
            (
                spread("kubernetes.io/hostname", "Gt", &["1"]),
                format!("{anti}: operator \"Gt\" is not one of In, NotIn, Exists, DoesNotExist"),
            ),
            (
                spread("kubernetes.io/hostname", "Exists", &["worker"]),
                format!("{anti}: operator Exists takes no values"),
            ),
        ];
        for (affinity, want) in cases {
            assert_eq!(refusal(with(affinity)), want);
        }
        let empty_required = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(Default::default()),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Affinity::default()
        };
        assert!(refusal(with(empty_required)).ends_with("nodeSelectorTerms: must not be empty"));
        for fine in [
            preferred_node(100, node_requirement("cores", "Gt", &["4"])),
            spread("kubernetes.io/hostname", "In", &["worker"]),
        ] {
            assert_eq!(check("pod", &with(fine)), Ok(()));
        }
    }

    #[test]
    fn each_role_gets_every_roles_settings_and_its_own() {
        let mut spec = TaskFarmSpec::default();
        spec.pod.image_pull_secrets = vec![secret("registry")];
        spec.worker.pod.node_selector = map(&[("pool", "big")]);
        spec.client.pod.labels = map(&[("tier", "load")]);
        let pods = role_pods(&spec).unwrap();
        for role in [Component::Master, Component::Worker, Component::Client] {
            assert_eq!(pods.get(role).image_pull_secrets, [secret("registry")], "{role:?}");
        }
        assert_eq!(pods.worker.node_selector, map(&[("pool", "big")]));
        assert!(pods.master.node_selector.is_empty() && pods.master.labels.is_empty());
        assert_eq!(pods.client.labels, map(&[("tier", "load")]));
        // A refusal names the block it was written in.
        spec.master.pod.labels = map(&[(LABEL_COMPONENT, "x")]);
        let refused = role_pods(&spec).unwrap_err().to_string();
        assert!(refused.starts_with("spec.master.pod.labels: "), "{refused}");
        let mut big = TaskFarmSpec::default();
        big.pod.annotations = map(&[("a", &"x".repeat(200 * 1024))]);
        big.client.pod.annotations = map(&[("b", &"y".repeat(100 * 1024))]);
        let refused = role_pods(&big).unwrap_err().to_string();
        assert!(
            refused.starts_with("spec.client.pod.annotations: the role's annotations take"),
            "{refused}"
        );
    }
}
