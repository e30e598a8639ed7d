#!/usr/bin/env python3
"""Helpers for .ci/k8s-checks.sh (needs PyYAML and jsonschema, both installed with kubernetes-validate).

  split OUT_DIR RENDERED.yaml...
      Splits each multi-document render NAME.yaml into OUT_DIR/NAME.k8s.yaml, the built-in kinds
      (for kubernetes-validate, which has no schema for custom resources), and
      OUT_DIR/NAME.cr.yaml, the taskfarm.dev custom resources (validated by `crs`); the Prometheus
      Operator's ServiceMonitors go in neither (`monitoring on` validates them in the render).
  ownership FARM RENDERED.yaml...
      The "never both" rule: each render has either a TaskFarm and the controller (operator mode)
      or the farm's master/worker/client Deployments (plain Helm mode), never both and never neither;
      the workers' catalogue ConfigMap only in plain mode (the controller writes it otherwise).
  values-doc VALUES.yaml README.md
      Every value in values.yaml is in the README's values table (itself or a parent key), and
      every key in the table exists in values.yaml.
  pods RENDERED.yaml...
      Every pod template (Deployment, StatefulSet, Job) meets the "restricted" Pod Security
      Standard and the chart's own rules: read-only root filesystem, resources, probes on every
      long-running container, no ServiceAccount token unless it is the controller's.
  crs CRD.yaml FILE.yaml...
      Validates every TaskFarm in the files against the CRD's openAPIV3Schema, rejecting unknown
      fields as the API server's strict field validation (kubectl's default) does.
  rbac RENDERED.yaml...
      The controller's Role grants exactly the verbs its API calls use (CONTROLLER_RULES below,
      the table in docs/CONTROLLER.md), and never `delete` on Deployments.
  controller RENDERED.yaml...
      Never two acting controllers, never one acting on another release's farm: the controller
      always runs with --leader-election and a Lease named after itself, its --farm-selector
      matches the TaskFarms of its render, and a rolling update keeps the standby up first.
  releases RENDER_A.yaml RENDER_B.yaml
      Two releases in one namespace: different Leases, and each controller's selector matches
      its own TaskFarm only.
  pull-secrets NAME RENDERED.yaml...
      Every pod template (workloads and hook pods) and every TaskFarm's spec.pod pulls with the
      Secret NAME (the chart's global imagePullSecrets).
  helm-test RENDERED.yaml...
      A `helm test` hook Pod that submits tasks through the farm and exits.
  zookeeper RENDERED.yaml...
      The ZooKeeper image pinned to a patch release, the servers spread over nodes without
      blocking scheduling, and the claims' retention policy stated.
  metrics FARM RENDERED.yaml...
      Scraping in every render: a headless Service per role (and the controller's) with port
      `http-metrics` -> `http`, selecting exactly the pods of its role as both modes label them
      (plain mode: the Deployment's pod labels and its `http` port; operator mode: the labels the
      controller gives the TaskFarm's pods, crates/operator/src/build.rs); the role pods carry
      TASKFARM_CONNECT_TIMEOUT=0 (plain mode; the controller's are checked by its own tests);
      ZooKeeper runs its Prometheus provider on 7000 (zoo.cfg through ZOO_CFG_EXTRA), exposed as
      port `metrics` on its client Service.
  monitoring on|off FARM RENDERED.yaml...
      on: ServiceMonitors for the roles, the controller (operator mode) and ZooKeeper, each valid
      against the subset of the monitoring.coreos.com/v1 ServiceMonitor schema the chart uses
      (unknown fields refused) and selecting a Service of the render that has its port; the
      Grafana dashboard ConfigMap (label grafana_dashboard, the chart's dashboards/taskfarm.json).
      off (the defaults): none of them, and no NetworkPolicy admits anything from outside.
  scrapers RENDERED.yaml...
      With metrics.scraper set: every NetworkPolicy of a pod with metrics admits the scraper's
      peer on its metrics port (8080; ZooKeeper's 7000).
"""

import copy
import json
import os
import re
import sys

import jsonschema
import yaml

CR_GROUP = "taskfarm.dev"


def docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def dump(path, items):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(items, f, sort_keys=False)


MONITORING_GROUP = "monitoring.coreos.com"


def group(doc):
    return str(doc.get("apiVersion", "")).split("/")[0]


def is_cr(doc):
    return group(doc) == CR_GROUP


def cmd_split(out_dir, *paths):
    for src in paths:
        name = os.path.splitext(os.path.basename(src))[0]
        all_docs = docs(src)
        # Any other group stays with the built-in kinds, where kubernetes-validate fails on it.
        dump(os.path.join(out_dir, f"{name}.k8s.yaml"), [d for d in all_docs if group(d) not in (CR_GROUP, MONITORING_GROUP)])
        dump(os.path.join(out_dir, f"{name}.cr.yaml"), [d for d in all_docs if is_cr(d)])
    return 0


def cmd_ownership(farm, *paths):
    failures = 0
    roles = {f"{farm}-{r}" for r in ("master", "worker", "client")}
    for path in paths:
        all_docs = docs(path)
        names = {(d.get("kind"), d.get("metadata", {}).get("name")) for d in all_docs}
        farms = [n for k, n in names if k == "TaskFarm"]
        controller = ("Deployment", f"{farm}-controller") in names
        role_deps = sorted(n for k, n in names if k == "Deployment" and n in roles)
        # The workers' catalogue: the controller's in operator mode, Helm's in plain mode.
        catalogue = ("ConfigMap", f"{farm}-commands") in names
        if farms and controller and not role_deps and not catalogue:
            mode = "operator mode: TaskFarm + controller, no role Deployments, no catalogue ConfigMap"
        elif role_deps and not farms and not controller and len(role_deps) == 3:
            mode = "plain mode: " + ", ".join(role_deps) + "; no TaskFarm, no controller"
        else:
            mode = None
        if mode:
            print(f"  ok  {path}: {mode}")
        else:
            failures += 1
            print(f"  FAIL {path}: TaskFarms={farms} controller={controller} role Deployments={role_deps} catalogue={catalogue}")
    return 1 if failures else 0


def strict(schema):
    """The CRD's structural schema as JSON Schema: `nullable` honoured, and objects with declared
    properties refuse unknown ones (the API server would prune them silently, hiding typos)."""
    s = copy.deepcopy(schema)
    for key in [k for k in s if k.startswith("x-kubernetes-")]:
        del s[key]
    if s.pop("nullable", False) and "type" in s:
        s["type"] = [s["type"], "null"]
    if "properties" in s:
        s["properties"] = {k: strict(v) for k, v in s["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            s.setdefault("additionalProperties", False)
    if isinstance(s.get("items"), dict):
        s["items"] = strict(s["items"])
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strict(s["additionalProperties"])
    return s


def cmd_crs(crd_path, *paths):
    crd = docs(crd_path)[0]
    spec = crd["spec"]
    kind = spec["names"]["kind"]
    group = spec["group"]
    schemas = {f"{group}/{v['name']}": strict(v["schema"]["openAPIV3Schema"]) for v in spec["versions"]}
    failures = checked = 0
    for path in paths:
        for d in docs(path):
            if d.get("kind") != kind:
                continue
            checked += 1
            name = d.get("metadata", {}).get("name")
            schema = schemas.get(d.get("apiVersion"))
            if schema is None:
                failures += 1
                print(f"  FAIL {path}: {kind}/{name}: apiVersion {d.get('apiVersion')} not served by the CRD")
                continue
            body = {k: v for k, v in d.items() if k not in ("apiVersion", "kind", "metadata")}
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=str)
            if errors:
                failures += 1
                for e in errors:
                    where = "/".join(str(p) for p in e.absolute_path)
                    print(f"  FAIL {path}: {kind}/{name}: {where}: {e.message}")
            else:
                print(f"  ok  {path}: {kind}/{name}")
    if checked == 0:
        print("  FAIL: no TaskFarm found to validate")
        return 1
    return 1 if failures else 0


def cmd_values_doc(values_path, readme_path):
    with open(values_path, encoding="utf-8") as f:
        values = yaml.safe_load(f)
    paths = set()

    def walk(node, prefix):
        if prefix:
            paths.add(prefix)
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else k)

    walk(values, "")
    leaves = set()

    def leaves_of(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                leaves_of(v, f"{prefix}.{k}" if prefix else k)
        else:
            leaves.add(prefix)

    leaves_of(values, "")
    documented = set()
    in_values = False
    with open(readme_path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("## "):
                in_values = line.strip() == "## Values"
            elif in_values and line.startswith("| `"):
                documented.add(line.split("`")[1])
    failures = 0
    for leaf in sorted(leaves):
        parts = leaf.split(".")
        if not any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)):
            failures += 1
            print(f"  FAIL {leaf}: not in the values table of {readme_path}")
    for key in sorted(documented):
        if key not in paths:
            failures += 1
            print(f"  FAIL {key}: in the values table of {readme_path} but not in {values_path}")
    if not failures:
        print(f"  ok  {len(leaves)} values, all in the table ({len(documented)} rows)")
    return 1 if failures else 0


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def pod_problems(pod, is_controller, long_running=True):
    """Problems of one pod spec against the restricted Pod Security Standard and the chart's rules."""
    problems = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is set")
    for v in pod.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {v.get('name')}: type {sorted(kinds - ALLOWED_VOLUMES)} not allowed")
    if pod.get("automountServiceAccountToken") is not False and not is_controller:
        problems.append("mounts a ServiceAccount token (automountServiceAccountToken is not false)")
    if psc.get("runAsUser") == 0:
        problems.append("pod runs as uid 0")
    containers = [("container", c) for c in pod.get("containers") or []]
    containers += [("initContainer", c) for c in pod.get("initContainers") or []]
    for kind, c in containers:
        name = f"{kind} {c.get('name')}"
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) in (0, None):
            problems.append(f"{name}: no non-zero runAsUser")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp!r}")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps.get('add')}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem not read-only")
        res = c.get("resources") or {}
        for kind_ in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind_) or {}):
                    problems.append(f"{name}: no {r} {kind_[:-1]}")
        if kind == "container" and long_running:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problems.append(f"{name}: no {probe}")
    if not pod.get("terminationGracePeriodSeconds", 30) >= 30:
        problems.append("terminationGracePeriodSeconds below 30")
    return problems


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def pod_templates(path):
    """(kind/name, pod metadata, pod spec) of every workload's template and every bare Pod."""
    for d in docs(path):
        name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
        if d.get("kind") in WORKLOADS:
            template = d["spec"]["template"]
            yield name, template.get("metadata") or {}, template["spec"]
        elif d.get("kind") == "Pod":
            yield name, d.get("metadata") or {}, d["spec"]


def cmd_pods(*paths):
    failures = checked = 0
    for path in paths:
        for name, meta, spec in pod_templates(path):
            checked += 1
            is_controller = (meta.get("labels") or {}).get("app.kubernetes.io/component") == "controller"
            # Bare pods (helm test) run and exit: nothing to probe.
            problems = pod_problems(spec, is_controller, long_running=not name.startswith("Pod/"))
            for p in problems:
                print(f"  FAIL {path}: {name}: {p}")
            failures += bool(problems)
    print(f"  {checked} workloads checked, {failures} with problems")
    return 1 if failures or not checked else 0


# What the controller's API calls need (docs/CONTROLLER.md, "RBAC"): server-side apply is a
# PATCH (and a create when the object does not exist), events are created one by one, the Lease
# manager GETs, creates and PATCHes its Lease.
CONTROLLER_RULES = {
    ("taskfarm.dev", "taskfarms"): {"list", "watch"},
    ("taskfarm.dev", "taskfarms/status"): {"patch"},
    ("taskfarm.dev", "taskfarms/finalizers"): {"update"},
    ("apps", "deployments"): {"list", "watch", "create", "patch"},
    ("", "configmaps"): {"create", "patch"},
    ("", "pods"): {"list", "delete"},
    ("events.k8s.io", "events"): {"create"},
    ("coordination.k8s.io", "leases"): {"get", "create", "patch"},
}


def granted(role):
    out = {}
    for rule in role.get("rules") or []:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                out.setdefault((group, resource), set()).update(rule.get("verbs") or [])
    return out


def controller_parts(path):
    """The controller Deployment, its Role, and the TaskFarms of one render."""
    all_docs = docs(path)
    controllers = [d for d in all_docs if d.get("kind") == "Deployment"
                   and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "controller"]
    roles = [d for d in all_docs if d.get("kind") == "Role"]
    farms = [d for d in all_docs if d.get("kind") == "TaskFarm"]
    return controllers, roles, farms


def report(path, problems, ok):
    for p in problems:
        print(f"  FAIL {path}: {p}")
    if not problems and ok:
        print(f"  ok  {path}: {ok}")
    return len(problems)


def cmd_rbac(*paths):
    failures = checked = 0
    for path in paths:
        _, roles, _ = controller_parts(path)
        for role in roles:
            checked += 1
            rules = granted(role)
            problems = []
            if "delete" in rules.get(("apps", "deployments"), set()):
                problems.append(f"Role/{role['metadata']['name']} grants delete on deployments: the garbage collector deletes them")
            for key in sorted(set(rules) | set(CONTROLLER_RULES)):
                want, got = CONTROLLER_RULES.get(key, set()), rules.get(key, set())
                if got != want:
                    group = key[0] or "core"
                    problems.append(f"{group}/{key[1]}: grants {sorted(got)}, the code uses {sorted(want)}")
            failures += report(path, problems, f"Role/{role['metadata']['name']}: exactly the verbs used")
    if not checked:
        print("  FAIL: no controller Role found")
        return 1
    return 1 if failures else 0


def flag(args, name):
    """The value after NAME in args, None when absent; True for a bare switch."""
    for i, a in enumerate(args):
        if a == name:
            nxt = args[i + 1] if i + 1 < len(args) else None
            return True if nxt is None or str(nxt).startswith("--") else nxt
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def selects(selector, labels):
    """An equality-based label selector (k=v,...) against labels; none selects everything."""
    if not isinstance(selector, str):
        return True
    return all(labels.get(k) == v for k, v in (term.split("=", 1) for term in selector.split(",")))


def controller_problems(path):
    problems = []
    controllers, _, farms = controller_parts(path)
    for c in controllers:
        name = c["metadata"]["name"]
        args = c["spec"]["template"]["spec"]["containers"][0].get("args") or []
        election = flag(args, "--leader-election")
        if election not in (True, "true"):
            problems.append(f"{name}: runs without --leader-election (two controllers act during an upgrade)")
        if flag(args, "--lease-name") != name:
            problems.append(f"{name}: --lease-name is {flag(args, '--lease-name')!r}, not the controller's own name (releases would share a Lease)")
        selector = flag(args, "--farm-selector")
        if not isinstance(selector, str):
            problems.append(f"{name}: no --farm-selector (it would act on every TaskFarm of the namespace)")
        else:
            for f in farms:
                if not selects(selector, f["metadata"].get("labels") or {}):
                    problems.append(f"{name}: its --farm-selector {selector} does not match TaskFarm/{f['metadata']['name']}")
        strategy = c["spec"].get("strategy") or {}
        rolling = strategy.get("rollingUpdate") or {}
        if strategy.get("type") == "RollingUpdate" and rolling.get("maxUnavailable") != 0:
            problems.append(f"{name}: a rolling update may stop the leader before its standby is up (maxUnavailable != 0)")
    return controllers, problems


def cmd_controller(*paths):
    failures = 0
    for path in paths:
        controllers, problems = controller_problems(path)
        if controllers:
            failures += report(path, problems, "controller: leader election on its own Lease, its own farms only")
    return 1 if failures else 0


def cmd_releases(path_a, path_b):
    (ca, _, fa), (cb, _, fb) = controller_parts(path_a), controller_parts(path_b)
    problems = []
    if len(ca) != 1 or len(cb) != 1:
        print(f"  FAIL: want one controller per render, got {len(ca)} and {len(cb)}")
        return 1
    args = [c["spec"]["template"]["spec"]["containers"][0].get("args") or [] for c in (ca[0], cb[0])]
    leases = [flag(a, "--lease-name") for a in args]
    if leases[0] == leases[1]:
        problems.append(f"both releases' controllers use the Lease {leases[0]}")
    for selector, own, other in ((flag(args[0], "--farm-selector"), fa, fb), (flag(args[1], "--farm-selector"), fb, fa)):
        for f in own:
            if not selects(selector, f["metadata"].get("labels") or {}):
                problems.append(f"{selector} misses its own TaskFarm/{f['metadata']['name']}")
        for f in other:
            if selects(selector, f["metadata"].get("labels") or {}):
                problems.append(f"{selector} also selects the other release's TaskFarm/{f['metadata']['name']}")
    return 1 if report(f"{path_a} + {path_b}", problems, f"Leases {leases}, each controller selects its own farm") else 0


def cmd_pull_secrets(secret, *paths):
    failures = checked = 0
    for path in paths:
        problems = []
        for name, _, spec in pod_templates(path):
            checked += 1
            if secret not in [s.get("name") for s in spec.get("imagePullSecrets") or []]:
                problems.append(f"{name}: no imagePullSecret {secret}")
        for d in docs(path):
            if d.get("kind") == "TaskFarm":
                checked += 1
                pod = (d.get("spec") or {}).get("pod") or {}
                if secret not in [s.get("name") for s in pod.get("imagePullSecrets") or []]:
                    problems.append(f"TaskFarm/{d['metadata']['name']}: spec.pod.imagePullSecrets lacks {secret} (the controller's pods would not pull)")
        failures += report(path, problems, f"every pod and TaskFarm pulls with {secret}")
    return 1 if failures or not checked else 0


def cmd_helm_test(*paths):
    failures = 0
    for path in paths:
        tests = [d for d in docs(path) if d.get("kind") == "Pod"
                 and (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
        problems = []
        if not tests:
            problems.append("no Pod with the annotation helm.sh/hook: test")
        for t in tests:
            spec = t["spec"]
            if spec.get("restartPolicy") != "Never":
                problems.append(f"Pod/{t['metadata']['name']}: restartPolicy is not Never (a failure would retry, not fail)")
            steps = (spec.get("initContainers") or []) + spec.get("containers", [])
            if not steps or any((c.get("args") or [None])[0] != "submit" for c in steps):
                problems.append(f"Pod/{t['metadata']['name']}: every container must run `taskfarm submit`")
        failures += report(path, problems, f"helm test: {len(tests)} pod(s) submitting tasks")
    return 1 if failures else 0


def cmd_zookeeper(*paths):
    failures = checked = 0
    for path in paths:
        for d in docs(path):
            if d.get("kind") != "StatefulSet":
                continue
            checked += 1
            problems = []
            spec = d["spec"]
            pod = spec["template"]["spec"]
            for c in pod.get("containers", []) + (pod.get("initContainers") or []):
                if not re.fullmatch(r"[^:]+:\d+\.\d+\.\d+", c["image"]):
                    problems.append(f"{c['name']}: image {c['image']} is not pinned to a patch release")
            spread = pod.get("topologySpreadConstraints") or []
            if not any(t.get("topologyKey") == "kubernetes.io/hostname" for t in spread):
                problems.append("no topologySpreadConstraint over kubernetes.io/hostname")
            if any(t.get("whenUnsatisfiable") != "ScheduleAnyway" for t in spread):
                problems.append("a topologySpreadConstraint would leave servers unscheduled on a small cluster")
            if spec.get("volumeClaimTemplates") and not spec.get("persistentVolumeClaimRetentionPolicy"):
                problems.append("claims without a persistentVolumeClaimRetentionPolicy")
            failures += report(path, problems, f"StatefulSet/{d['metadata']['name']}: pinned, spread, retention stated")
    return 1 if failures or not checked else 0


ROLES = ("master", "worker", "client")
FARM_LABEL = "taskfarm.dev/farm"
COMPONENT_LABEL = "app.kubernetes.io/component"
ZK_PROVIDER = "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "charts", "taskfarm", "dashboards", "taskfarm.json")


def by_kind(all_docs, kind):
    return {d["metadata"]["name"]: d for d in all_docs if d.get("kind") == kind}


def matches(selector, labels):
    return all((labels or {}).get(k) == v for k, v in (selector or {}).items())


def container_ports(pod_spec):
    return {p.get("name"): p.get("containerPort") for c in pod_spec.get("containers") or [] for p in c.get("ports") or []}


def cmd_metrics(farm, *paths):
    failures = 0
    for path in paths:
        all_docs = docs(path)
        services, deployments = by_kind(all_docs, "Service"), by_kind(all_docs, "Deployment")
        statefulsets = by_kind(all_docs, "StatefulSet")
        farms = [d for d in all_docs if d.get("kind") == "TaskFarm"]
        operator = bool(farms)
        problems, notes = [], []
        components = list(ROLES) + (["controller"] if operator else [])
        for component in components:
            name = f"{farm}-{component}-metrics"
            svc = services.get(name)
            if svc is None:
                problems.append(f"no Service {name}")
                continue
            spec = svc["spec"]
            if spec.get("clusterIP") != "None":
                problems.append(f"Service/{name}: not headless")
            ports = {p.get("name"): p for p in spec.get("ports") or []}
            port = ports.get("http-metrics")
            if not port or port.get("port") != 8080 or port.get("targetPort") != "http":
                problems.append(f"Service/{name}: no port http-metrics 8080 -> http ({spec.get('ports')})")
            selector = spec.get("selector") or {}
            if component == "controller":
                ctrl = deployments.get(f"{farm}-controller")
                targets = [ctrl["spec"]["template"]] if ctrl else []
            elif operator:
                # The controller labels each TaskFarm's pods with its name and the role (build.rs).
                targets = [{"metadata": {"labels": {FARM_LABEL: f["metadata"]["name"], COMPONENT_LABEL: component}},
                            "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]}} for f in farms]
            else:
                dep = deployments.get(f"{farm}-{component}")
                targets = [dep["spec"]["template"]] if dep else []
            selected = [t for t in targets if matches(selector, t["metadata"].get("labels"))]
            if not selected:
                problems.append(f"Service/{name}: its selector {selector} selects no {component} pod")
            for t in selected:
                if container_ports(t["spec"]).get("http") != 8080:
                    problems.append(f"Service/{name}: the {component} pods have no port http 8080")
            others = [n for n, d in deployments.items() if not n.endswith(f"-{component}")
                      and matches(selector, d["spec"]["template"]["metadata"].get("labels"))]
            if others:
                problems.append(f"Service/{name}: also selects the pods of {others}")
        if operator:
            notes.append("role pods built by the controller (TASKFARM_CONNECT_TIMEOUT: build.rs tests)")
        else:
            for role in ROLES:
                dep = deployments.get(f"{farm}-{role}")
                if not dep:
                    continue
                env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0].get("env") or []}
                if env.get("TASKFARM_CONNECT_TIMEOUT") != "0":
                    problems.append(f"Deployment/{dep['metadata']['name']}: TASKFARM_CONNECT_TIMEOUT is {env.get('TASKFARM_CONNECT_TIMEOUT')!r}, not \"0\" (the pods would crash-loop while ZooKeeper starts)")
            notes.append("role pods wait for ZooKeeper (TASKFARM_CONNECT_TIMEOUT=0)")
        for sts_name, sts in statefulsets.items():
            pod = sts["spec"]["template"]["spec"]
            c = pod["containers"][0]
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            extra = (env.get("ZOO_CFG_EXTRA") or "").split()
            if ZK_PROVIDER not in extra or "metricsProvider.httpPort=7000" not in extra:
                problems.append(f"StatefulSet/{sts_name}: ZOO_CFG_EXTRA {extra} lacks the Prometheus provider on 7000")
            if container_ports(pod).get("metrics") != 7000:
                problems.append(f"StatefulSet/{sts_name}: no container port metrics 7000")
            svc = services.get(sts_name)
            if not svc or not any(p.get("name") == "metrics" and p.get("port") == 7000 and p.get("targetPort") == "metrics"
                                  for p in svc["spec"].get("ports") or []):
                problems.append(f"Service/{sts_name}: no port metrics 7000 -> metrics")
            else:
                notes.append("ZooKeeper's provider on 7000")
        failures += report(path, problems, f"metrics Services for {', '.join(components)}; " + "; ".join(notes))
    return 1 if failures else 0


DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "operator"],
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"}, "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
# The part of the monitoring.coreos.com/v1 ServiceMonitor CRD (prometheus-operator) the chart
# uses, field names and types as the CRD has them; the CRD itself is not vendored here, and
# kubernetes-validate has no schema for it.
SERVICE_MONITOR = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "additionalProperties": False, "required": ["name", "namespace"],
                     "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
                                    "namespace": {"type": "string"}, "labels": STRING_MAP, "annotations": STRING_MAP}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                 "properties": {
                     "selector": LABEL_SELECTOR,
                     "namespaceSelector": {"type": "object", "additionalProperties": False,
                                           "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                     "jobLabel": {"type": "string"},
                     "endpoints": {"type": "array", "minItems": 1, "items": {
                         "type": "object", "additionalProperties": False, "required": ["port"],
                         "properties": {
                             "port": {"type": "string", "minLength": 1},
                             "path": {"type": "string"},
                             "scheme": {"type": "string", "enum": ["http", "https", "HTTP", "HTTPS"]},
                             "interval": {"type": "string", "pattern": DURATION},
                             "scrapeTimeout": {"type": "string", "pattern": DURATION},
                             "honorLabels": {"type": "boolean"},
                         }}},
                 }},
    },
}


def duration_seconds(text):
    units = {"y": 31536000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|[ywdhms])", text))


def selects_labels(selector, labels):
    if not matches(selector.get("matchLabels"), labels):
        return False
    for e in selector.get("matchExpressions") or []:
        has, value = e["key"] in labels, labels.get(e["key"])
        ok = {"In": has and value in e.get("values", []), "NotIn": not has or value not in e.get("values", []),
              "Exists": has, "DoesNotExist": not has}.get(e["operator"], False)
        if not ok:
            return False
    return True


def own_peer(peer):
    """A peer of the farm itself: its pods (taskfarm.dev/farm) or its controller."""
    labels = (peer.get("podSelector") or {}).get("matchLabels") or {}
    return set(peer) == {"podSelector"} and (FARM_LABEL in labels or labels.get(COMPONENT_LABEL) == "controller")


def outside_peers(policy):
    """(peer, rule) of every ingress peer that is not the farm's own (a scraper, say)."""
    return [(peer, rule) for rule in policy["spec"].get("ingress") or [] for peer in rule.get("from") or [] if not own_peer(peer)]


def cmd_monitoring(state, farm, *paths):
    with open(DASHBOARD, encoding="utf-8") as f:
        dashboard_text = f.read()
    failures = 0
    for path in paths:
        all_docs = docs(path)
        monitors = [d for d in all_docs if d.get("kind") == "ServiceMonitor"]
        dashboards = [d for d in all_docs if d.get("kind") == "ConfigMap" and "grafana_dashboard" in (d["metadata"].get("labels") or {})]
        policies = [d for d in all_docs if d.get("kind") == "NetworkPolicy"]
        problems = []
        if state == "off":
            if monitors:
                problems.append(f"ServiceMonitors by default: {[m['metadata']['name'] for m in monitors]}")
            if dashboards:
                problems.append("a dashboard ConfigMap by default")
            for p in policies:
                for peer, _ in outside_peers(p):
                    problems.append(f"NetworkPolicy/{p['metadata']['name']} admits {peer} by default")
            failures += report(path, problems, "no ServiceMonitor, no dashboard, no scraper admitted (the defaults)")
            continue
        operator = any(d.get("kind") == "TaskFarm" for d in all_docs)
        zookeeper = any(d.get("kind") == "StatefulSet" for d in all_docs)
        wanted = set(ROLES) | ({"controller"} if operator else set()) | ({"zookeeper"} if zookeeper else set())
        seen = set()
        services = [d for d in all_docs if d.get("kind") == "Service"]
        for m in monitors:
            name = m["metadata"]["name"]
            errors = sorted(jsonschema.Draft7Validator(SERVICE_MONITOR).iter_errors(m), key=str)
            for e in errors:
                problems.append(f"ServiceMonitor/{name}: {'/'.join(str(p) for p in e.absolute_path)}: {e.message}")
            if errors:
                continue
            spec = m["spec"]
            seen.add((m["metadata"].get("labels") or {}).get(COMPONENT_LABEL))
            namespaces = (spec.get("namespaceSelector") or {}).get("matchNames") or [m["metadata"]["namespace"]]
            chosen = [s for s in services if s["metadata"].get("namespace") in namespaces
                      and selects_labels(spec["selector"], s["metadata"].get("labels") or {})]
            for ep in spec["endpoints"]:
                with_port = [s["metadata"]["name"] for s in chosen if any(p.get("name") == ep["port"] for p in s["spec"].get("ports") or [])]
                if not with_port:
                    problems.append(f"ServiceMonitor/{name}: no Service it selects has the port {ep['port']} (selected: {[s['metadata']['name'] for s in chosen]})")
                if "scrapeTimeout" in ep and duration_seconds(ep["scrapeTimeout"]) > duration_seconds(ep.get("interval", "30s")):
                    problems.append(f"ServiceMonitor/{name}: scrapeTimeout longer than the interval")
        if wanted - seen:
            problems.append(f"no ServiceMonitor for {sorted(wanted - seen)}")
        if len(dashboards) != 1:
            problems.append(f"{len(dashboards)} dashboard ConfigMaps (want 1 with the label grafana_dashboard)")
        for d in dashboards:
            data = (d.get("data") or {}).get("taskfarm.json", "")
            try:
                panels = json.loads(data).get("panels") or []
            except ValueError as e:
                problems.append(f"ConfigMap/{d['metadata']['name']}: taskfarm.json is not JSON: {e}")
                continue
            if data.strip() != dashboard_text.strip():
                problems.append(f"ConfigMap/{d['metadata']['name']}: taskfarm.json is not charts/taskfarm/dashboards/taskfarm.json")
            if not panels:
                problems.append(f"ConfigMap/{d['metadata']['name']}: a dashboard without panels")
        failures += report(path, problems, f"ServiceMonitors for {', '.join(sorted(seen))} (schema subset, each selects a Service with its port); the dashboard ConfigMap")
    return 1 if failures else 0


def cmd_scrapers(*paths):
    failures = 0
    for path in paths:
        problems, admitted = [], []
        for p in (d for d in docs(path) if d.get("kind") == "NetworkPolicy"):
            component = p["spec"]["podSelector"]["matchLabels"].get(COMPONENT_LABEL)
            if component == "test":
                continue
            port = 7000 if component == "zookeeper" else 8080
            ok = any(port in [x.get("port") for x in rule.get("ports") or []] for _, rule in outside_peers(p))
            if ok:
                admitted.append(component or p["metadata"]["name"])
            else:
                problems.append(f"NetworkPolicy/{p['metadata']['name']}: the scraper is not admitted on {port}")
        failures += report(path, problems, f"the scraper admitted to the metrics ports of {', '.join(admitted)}")
    return 1 if failures else 0


def main(argv):
    commands = {"split": cmd_split, "ownership": cmd_ownership, "crs": cmd_crs, "values-doc": cmd_values_doc, "pods": cmd_pods,
                "rbac": cmd_rbac, "controller": cmd_controller, "releases": cmd_releases, "pull-secrets": cmd_pull_secrets,
                "helm-test": cmd_helm_test, "zookeeper": cmd_zookeeper, "metrics": cmd_metrics, "monitoring": cmd_monitoring,
                "scrapers": cmd_scrapers}
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
