#!/usr/bin/env python3
"""Helpers for .ci/k8s-checks.sh (needs PyYAML and jsonschema, both installed with kubernetes-validate).

  split OUT_DIR RENDERED.yaml...
      Splits each multi-document render NAME.yaml into OUT_DIR/NAME.k8s.yaml, the built-in kinds
      (for kubernetes-validate, which has no schema for custom resources), and OUT_DIR/NAME.cr.yaml,
      the taskfarm.dev custom resources (validated by `crs`).
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
"""

import copy
import os
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


def is_cr(doc):
    return str(doc.get("apiVersion", "")).split("/")[0] == CR_GROUP


def cmd_split(out_dir, *paths):
    for src in paths:
        name = os.path.splitext(os.path.basename(src))[0]
        all_docs = docs(src)
        dump(os.path.join(out_dir, f"{name}.k8s.yaml"), [d for d in all_docs if not is_cr(d)])
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


def pod_problems(pod, is_controller):
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
        if kind == "container":
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problems.append(f"{name}: no {probe}")
    if not pod.get("terminationGracePeriodSeconds", 30) >= 30:
        problems.append("terminationGracePeriodSeconds below 30")
    return problems


def cmd_pods(*paths):
    failures = checked = 0
    for path in paths:
        for d in docs(path):
            if d.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                continue
            checked += 1
            name = f"{d['kind']}/{d['metadata']['name']}"
            pod_labels = d["spec"]["template"].get("metadata", {}).get("labels", {})
            is_controller = pod_labels.get("app.kubernetes.io/component") == "controller"
            problems = pod_problems(d["spec"]["template"]["spec"], is_controller)
            for p in problems:
                print(f"  FAIL {path}: {name}: {p}")
            failures += bool(problems)
    print(f"  {checked} workloads checked, {failures} with problems")
    return 1 if failures or not checked else 0


def main(argv):
    commands = {"split": cmd_split, "ownership": cmd_ownership, "crs": cmd_crs, "values-doc": cmd_values_doc, "pods": cmd_pods}
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
