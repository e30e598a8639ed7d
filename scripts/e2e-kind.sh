#!/usr/bin/env bash
# The taskfarm Kubernetes story, end to end, on a real cluster:
#   create a kind cluster (or start minikube), build the images (role, and operator in operator
#   mode) under a tag of their own (the git revision, plus a digest of the changes in a dirty
#   tree, so that a re-run never leaves a pod on an older binary) and load them into the cluster,
#   apply the CRD (Helm installs crds/ once and never upgrades it), helm upgrade --install, wait
#   until ZooKeeper, the controller, the masters and the workers are ready, run `helm test`,
#   run a client Job that submits tasks (a failed Job stops the run at once), `kubectl delete pod` the leading master and two workers
#   while it runs, check that every task completed and that a new leader took over (higher
#   epoch), then move the workers into debian:bookworm-slim with a command catalogue
#   (charts/taskfarm/examples/exec-debian.yaml) and run `taskfarm submit exec`, and save logs,
#   `kubectl get` output and events as evidence.
#
#   scripts/e2e-kind.sh                 kind, operator mode (controller + TaskFarm)
#   scripts/e2e-kind.sh --plain         kind, plain Helm mode (no controller)
#   scripts/e2e-minikube.sh [--plain]   the same on minikube (minikube image load)
#
# Options: --minikube, --plain, --tasks N (default 60), --task-ms MS (default 1000),
#          --delete (delete the cluster at the end; by default it is kept for a look around),
#          --no-build (reuse an image already loaded), --no-exec (skip the exec step, which
#          pulls debian:bookworm-slim)
# Environment: CLUSTER_NAME (taskfarm), NAMESPACE (taskfarm), EVIDENCE_DIR (runs/e2e-...),
#              MINIKUBE_START_ARGS ("--cpus=4 --memory=6g"), IMAGE_TAG (default: 0.1.0-<git
#              revision>[-dirty-<digest of the changes>])
# Needs: docker (with a running daemon), kind or minikube, helm, kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."

platform=kind
mode=operator
tasks=60
task_ms=1000
delete_cluster=0
build=1
exec_step=1
while [ $# -gt 0 ]; do
  case $1 in
    --minikube) platform=minikube ;;
    --kind) platform=kind ;;
    --plain) mode=plain ;;
    --tasks) tasks=$2; shift ;;
    --task-ms) task_ms=$2; shift ;;
    --delete) delete_cluster=1 ;;
    --no-build) build=0 ;;
    --no-exec) exec_step=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cluster=${CLUSTER_NAME:-taskfarm}
ns=${NAMESPACE:-taskfarm}
release=taskfarm
farm=taskfarm # the chart's fullname for release "taskfarm"
# A tag per source state: loading a new image under an old tag leaves running pods (and the
# nodes' cache) on the old binary. A dirty tree's tag digests its changes, untracked files
# included, so an unchanged tree reuses its images (--no-build) and any edit gets new ones.
source_tag() {
  local revision dirty
  revision=$(git rev-parse --short=12 HEAD 2>/dev/null) || { echo 0.1.0-dev; return; }
  if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    dirty=$({
      git diff HEAD --binary
      git ls-files --others --exclude-standard -z | xargs -0 -r sha256sum
    } | sha256sum | cut -c1-10)
    revision="$revision-dirty-$dirty"
  fi
  echo "0.1.0-$revision"
}
tag=${IMAGE_TAG:-$(source_tag)}
image=taskfarm:$tag                   # the role binary: master, worker, client pods
operator_image=taskfarm-operator:$tag # the controller (operator mode only)
job=$farm-e2e-client
evidence=${EVIDENCE_DIR:-runs/e2e-$platform-$mode-$(date -u +%Y%m%dT%H%M%SZ)}

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() {
  log "FAILED: $*"
  exit 1
}
k() { kubectl -n "$ns" "$@"; }

# --- tools ------------------------------------------------------------------------------------
missing=()
for tool in docker "$platform" helm kubectl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "e2e: missing: ${missing[*]}" >&2
  echo "  This story needs Docker, $platform, helm and kubectl on PATH:" >&2
  echo "    docker   https://docs.docker.com/engine/install/" >&2
  echo "    kind     https://kind.sigs.k8s.io/docs/user/quick-start/#installation" >&2
  echo "    minikube https://minikube.sigs.k8s.io/docs/start/" >&2
  echo "    helm     https://helm.sh/docs/intro/install/" >&2
  echo "    kubectl  https://kubernetes.io/docs/tasks/tools/" >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "e2e: docker is installed but its daemon is not reachable (is Docker running? can this user use it?)" >&2
  exit 2
fi

# --- evidence, saved however the run ends ----------------------------------------------------
mkdir -p "$evidence"
collect() {
  local rc=$?
  set +e
  log "saving evidence under $evidence"
  {
    k get taskfarms -o wide
    k get statefulsets,deployments,replicasets,pods,jobs,services,pdb,networkpolicies -o wide
  } >"$evidence/get.txt" 2>&1
  k get taskfarms -o yaml >"$evidence/taskfarms.yaml" 2>&1
  k get events --sort-by=.lastTimestamp -o wide >"$evidence/events.txt" 2>&1
  k describe taskfarms >"$evidence/describe-taskfarms.txt" 2>&1
  k describe pods >"$evidence/describe-pods.txt" 2>&1
  helm -n "$ns" status "$release" >"$evidence/helm-status.txt" 2>&1
  helm -n "$ns" get values --all "$release" >"$evidence/helm-values.yaml" 2>&1
  mkdir -p "$evidence/logs"
  local pod
  for pod in $(k get pods -o name 2>/dev/null); do
    pod=${pod#pod/}
    k logs "$pod" --all-containers --prefix >"$evidence/logs/$pod.log" 2>&1
    k logs "$pod" --all-containers --prefix --previous >"$evidence/logs/$pod.previous.log" 2>/dev/null ||
      rm -f "$evidence/logs/$pod.previous.log"
  done
  # Pods deleted during the run are gone; their Deployment's logs come from the survivors.
  for d in master worker client controller; do
    k logs "deploy/$farm-$d" --all-containers --prefix >"$evidence/logs/deploy-$farm-$d.log" 2>/dev/null ||
      rm -f "$evidence/logs/deploy-$farm-$d.log"
  done
  if [ "$delete_cluster" = 1 ]; then
    log "deleting the cluster"
    case $platform in
      kind) kind delete cluster --name "$cluster" ;;
      minikube) minikube delete -p "$cluster" ;;
    esac
  fi
  if [ "$rc" = 0 ]; then log "PASSED; evidence: $evidence"; else log "FAILED (exit $rc); evidence: $evidence"; fi
}
summary=$evidence/summary.txt
: >"$summary"
trap collect EXIT
record() {
  log "$*"
  echo "$*" >>"$summary"
}

# --- cluster and image -------------------------------------------------------------------------
case $platform in
  kind)
    if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
      log "kind cluster $cluster exists; reusing it"
    else
      log "creating kind cluster $cluster (kind-config.yaml: 1 control plane, 3 workers)"
      kind create cluster --name "$cluster" --config kind-config.yaml --wait 180s
    fi
    kubectl config use-context "kind-$cluster" >/dev/null
    ;;
  minikube)
    if minikube status -p "$cluster" >/dev/null 2>&1; then
      log "minikube profile $cluster is running; reusing it"
    else
      log "starting minikube profile $cluster"
      # shellcheck disable=SC2086 # MINIKUBE_START_ARGS is a list of options
      minikube start -p "$cluster" ${MINIKUBE_START_ARGS:---cpus=4 --memory=6g}
    fi
    kubectl config use-context "$cluster" >/dev/null
    ;;
esac

images=("$image")
[ "$mode" = operator ] && images+=("$operator_image")
log "image tag $tag"
if [ "$build" = 0 ]; then
  for img in "${images[@]}"; do
    docker image inspect "$img" >/dev/null 2>&1 ||
      die "--no-build, but there is no image $img (build it, or set IMAGE_TAG to one that exists)"
  done
fi
if [ "$build" = 1 ]; then
  log "docker build -t $image . (the role image)"
  docker build -t "$image" .
  if [ "$mode" = operator ]; then
    log "docker build --target operator -t $operator_image ."
    docker build --target operator -t "$operator_image" .
  fi
fi
for img in "${images[@]}"; do
  log "loading $img into the cluster"
  case $platform in
    kind) kind load docker-image "$img" --name "$cluster" ;;
    minikube) minikube image load "$img" -p "$cluster" ;;
  esac
done

# --- install ------------------------------------------------------------------------------------
log "namespace $ns (Pod Security Standard: restricted, enforced)"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$ns" --overwrite \
  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null

helm_args=(upgrade --install "$release" charts/taskfarm --namespace "$ns" --wait --timeout 10m
  --set "image.tag=$tag" --set "controller.image.tag=$tag")
[ "$mode" = plain ] && helm_args+=(--set controller.enabled=false)
if [ "$mode" = operator ]; then
  # Helm installs charts/taskfarm/crds/ on the first install only and never upgrades it: apply
  # the CRD first, every time (server-side; forced over the fields Helm's install owns).
  log "kubectl apply --server-side --force-conflicts -f charts/taskfarm/crds/taskfarm.yaml"
  kubectl apply --server-side --force-conflicts -f charts/taskfarm/crds/taskfarm.yaml
  kubectl wait --for=condition=Established crd/taskfarms.taskfarm.dev --timeout=60s
fi
log "helm ${helm_args[*]}"
helm "${helm_args[@]}"

log "waiting for ZooKeeper (3 servers in quorum)"
k rollout status "statefulset/$farm-zookeeper" --timeout=5m
if [ "$mode" = operator ]; then
  k rollout status "deploy/$farm-controller" --timeout=3m
  log "waiting for the controller to create the role Deployments"
  for _ in $(seq 90); do
    k get "deploy/$farm-master" "deploy/$farm-worker" >/dev/null 2>&1 && break
    sleep 2
  done
fi
k rollout status "deploy/$farm-master" --timeout=5m
k rollout status "deploy/$farm-worker" --timeout=5m
if [ "$mode" = operator ]; then
  k wait "taskfarm/$farm" --for=condition=Ready --timeout=5m
  k get taskfarms
fi

log "helm test $release: three tasks through the installed farm"
helm test "$release" --namespace "$ns" --logs --timeout 5m || die "helm test failed"
record "helm test: passed"

status() { k get "taskfarm/$farm" -o jsonpath="{.status.$1}" 2>/dev/null || true; }
# wait_job JOB SECONDS: returns once the Job is Complete (0) or Failed (1), or after SECONDS (1).
wait_job() {
  local deadline=$((SECONDS + $2)) done_as
  while [ "$SECONDS" -lt "$deadline" ]; do
    done_as=$(k get "job/$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' 2>/dev/null || true)
    case " $done_as " in
      *" Complete "*) return 0 ;;
      *" Failed "*)
        log "job $1 failed: $(k get "job/$1" -o jsonpath='{.status.conditions[?(@.type=="Failed")].message}')"
        return 1
        ;;
    esac
    sleep 2
  done
  log "job $1 neither completed nor failed within $2 s"
  return 1
}
pods_of() { k get pods -l "taskfarm.dev/farm=$farm,app.kubernetes.io/component=$1" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'; }

leader0=
epoch0=
completed0=0
if [ "$mode" = operator ]; then
  leader0=$(status leader)
  epoch0=$(status epoch)
  completed0=$(status completed)
  completed0=${completed0:-0}
  record "before: leader=$leader0 epoch=$epoch0 completed=$completed0 liveWorkers=$(status liveWorkers)"
  [ -n "$leader0" ] || die "the TaskFarm reports no leader"
fi

# --- tasks ----------------------------------------------------------------------------------------
log "client Job $job: $tasks tasks of ${task_ms} ms, 4 in flight"
k delete job "$job" --ignore-not-found --wait=true >/dev/null
k apply -f - <<JOB
apiVersion: batch/v1
kind: Job
metadata:
  name: $job
  labels:
    app.kubernetes.io/name: taskfarm
    app.kubernetes.io/instance: $release
    app.kubernetes.io/component: e2e
spec:
  backoffLimit: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: taskfarm
        app.kubernetes.io/instance: $release
        app.kubernetes.io/component: e2e
        taskfarm.dev/farm: $farm # admitted to ZooKeeper by the NetworkPolicy
    spec:
      restartPolicy: Never
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: client
          image: $image
          imagePullPolicy: IfNotPresent
          command: ["/taskfarm"]
          args: ["client", "--tasks", "$tasks", "--concurrency", "4", "--json", "--task", "{\"kind\":\"sleep\",\"ms\":$task_ms}"]
          env:
            - {name: TASKFARM_ZK, value: "$farm-zookeeper:2181"}
            - {name: TASKFARM_LOG_FORMAT, value: json}
            - name: TASKFARM_ID
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          resources:
            requests: {cpu: 50m, memory: 64Mi}
            limits: {cpu: 500m, memory: 256Mi}
          securityContext:
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
JOB

# Let some tasks complete before the kills.
sleep 10

# --- kill the leading master and two workers ---------------------------------------------------
masters=$(pods_of master)
if [ "$mode" = operator ]; then
  if k get pod "$leader0" >/dev/null 2>&1; then
    record "kubectl delete pod $leader0 (the leading master)"
    k delete pod "$leader0" --wait=false
  else
    die "the leader $leader0 reported in the TaskFarm status is not a pod of namespace $ns"
  fi
else
  # No TaskFarm status to name the leader: delete every master, one after the other, so that
  # the leader is certainly among them, waiting for each replacement to be ready.
  for m in $masters; do
    record "kubectl delete pod $m (a master; one of them leads)"
    k delete pod "$m" --wait=true
    k rollout status "deploy/$farm-master" --timeout=3m
  done
fi
victims=$(pods_of worker | sed -n 1,2p)
for w in $victims; do
  record "kubectl delete pod $w (a worker)"
  k delete pod "$w" --wait=false
done

if [ "$mode" = operator ]; then
  log "waiting for a new leader (higher epoch)"
  for _ in $(seq 60); do
    leader=$(status leader)
    epoch=$(status epoch)
    if [ -n "$leader" ] && [ "$leader" != "$leader0" ] && [ "${epoch:-0}" -gt "${epoch0:-0}" ]; then break; fi
    sleep 2
  done
  record "after the kill: leader=$leader epoch=$epoch"
  [ "$leader" != "$leader0" ] || die "no new leader: still $leader0"
  [ "${epoch:-0}" -gt "${epoch0:-0}" ] || die "epoch did not increase ($epoch0 -> $epoch)"
fi

# --- every task completed ------------------------------------------------------------------------
log "waiting for the client Job to complete (or fail)"
job_timeout=$((tasks * task_ms / 1000 + 300))
if ! wait_job "$job" "$job_timeout"; then
  k logs "job/$job" --tail=20 || true
  die "the client Job did not complete"
fi
# The client prints its summary as one JSON object on stdout (its logs are JSON lines on stderr):
# every task submitted must have come back completed, none failed, none lost.
client_summary=$(k logs "job/$job" | grep '"submitted"' | tail -n 1)
record "client summary: $client_summary"
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$client_summary"; }
[ "$(field completed)" = "$tasks" ] || die "the client got $(field completed) results, expected $tasks"
[ "$(field failed)" = 0 ] || die "$(field failed) tasks failed"
[ "$(field lost)" = 0 ] || die "$(field lost) tasks were lost"

k rollout status "deploy/$farm-worker" --timeout=3m
k rollout status "deploy/$farm-master" --timeout=3m
log "one more task through kubectl exec: taskfarm submit"
k exec "deploy/$farm-master" -c master -- /taskfarm submit "{\"kind\":\"sleep\",\"ms\":100}" | tee -a "$summary"

if [ "$mode" = operator ]; then
  want=$((completed0 + tasks + 1))
  for _ in $(seq 30); do
    completed=$(status completed)
    [ "${completed:-0}" -ge "$want" ] && break
    sleep 2
  done
  record "after: completed=$completed (want >= $want) pending=$(status pending) running=$(status running) liveWorkers=$(status liveWorkers) readyMasters=$(status readyMasters) readyWorkers=$(status readyWorkers)"
  [ "${completed:-0}" -ge "$want" ] || die "the TaskFarm counts $completed completed tasks, expected at least $want"
  k wait "taskfarm/$farm" --for=condition=Ready --timeout=3m
  k get taskfarms
fi
record "PASSED: $tasks tasks + 1 submit completed through the loss of the leading master and two workers"

# --- exec: workers in a stock image, running declared commands ---------------------------------
[ "$exec_step" = 1 ] || exit 0
example=charts/taskfarm/examples/exec-debian.yaml
log "helm upgrade -f $example: workers in debian:bookworm-slim, commands checksum and compress"
helm "${helm_args[@]}" -f "$example"
# In operator mode the controller changes the worker Deployment after Helm is done.
for _ in $(seq 60); do
  [ "$(k get "deploy/$farm-worker" -o jsonpath='{.spec.template.spec.containers[0].image}')" = debian:bookworm-slim ] && break
  sleep 2
done
k rollout status "deploy/$farm-worker" --timeout=5m
submit_exec() { k exec -i "deploy/$farm-master" -c master -- /taskfarm submit exec "$@"; }
text="hello from $farm"
want=$(printf '%s\n' "$text" | sha256sum)
got=$(printf '%s\n' "$text" | submit_exec checksum)
record "exec checksum: $got"
[ "$got" = "$want" ] || die "exec checksum printed '$got', sha256sum here prints '$want'"
got=$(printf '%s\n' "$text" | submit_exec compress -- 9 | base64 -d | gunzip)
[ "$got" = "$text" ] || die "exec compress did not round-trip: '$got'"
record "exec compress: round trip through gzip -9 and base64 gives the text back"
rc=0
submit_exec rm -- -rf / </dev/null || rc=$?
record "exec rm (not declared): exit $rc"
[ "$rc" = 125 ] || die "an undeclared command exited $rc, expected 125 (refused)"
record "PASSED: exec tasks ran in debian:bookworm-slim workers; an undeclared command was refused"
