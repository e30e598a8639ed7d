{{/*
Chart name (63 characters at most: a DNS label).
*/}}
{{- define "taskfarm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the farm's name. The ZooKeeper StatefulSet, the role Deployments and the controller are
named after it (`<fullname>-zookeeper`, `<fullname>-master`, ...). Truncated to 40 characters so
that `<fullname>-zookeeper-headless` and the StatefulSet pods' names stay within DNS limits.
*/}}
{{- define "taskfarm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "taskfarm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object the chart renders. Call with (dict "ctx" $ "component" "master").
*/}}
{{- define "taskfarm.labels" -}}
helm.sh/chart: {{ include "taskfarm.chart" .ctx }}
{{ include "taskfarm.podLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/*
Labels on every pod: name, instance, component, and for the farm's own pods (everything but the
controller) `taskfarm.dev/farm`, which the NetworkPolicy admits to ZooKeeper and the controller's
chaos requires before it deletes a pod.
*/}}
{{- define "taskfarm.podLabels" -}}
app.kubernetes.io/name: {{ include "taskfarm.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if ne .component "controller" }}
taskfarm.dev/farm: {{ include "taskfarm.fullname" .ctx }}
{{- end }}
{{- end }}

{{/*
Selector of a farm component (master, worker, client, zookeeper): the farm and the component,
exactly as the controller selects the Deployments it builds.
*/}}
{{- define "taskfarm.farmSelector" -}}
taskfarm.dev/farm: {{ include "taskfarm.fullname" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector of the controller's pods (the controller has no farm label: it is not one of the farm's pods).
*/}}
{{- define "taskfarm.controllerSelector" -}}
app.kubernetes.io/name: {{ include "taskfarm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/*
The role image reference (master, worker, client).
*/}}
{{- define "taskfarm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The operator image reference.
*/}}
{{- define "taskfarm.controllerImage" -}}
{{- printf "%s:%s" .Values.controller.image.repository (default .Chart.AppVersion .Values.controller.image.tag) }}
{{- end }}

{{/*
ZooKeeper connect string of the farm.
*/}}
{{- define "taskfarm.zkConnect" -}}
{{- if .Values.farm.zookeeper.connect }}
{{- .Values.farm.zookeeper.connect }}
{{- else if .Values.zookeeper.enabled }}
{{- printf "%s-zookeeper:2181" (include "taskfarm.fullname" .) }}
{{- else }}
{{- fail "zookeeper.enabled is false: set farm.zookeeper.connect to an existing ZooKeeper" }}
{{- end }}
{{- end }}

{{/*
The farm's admission bound, farm.admission.maxQueuedTasks, as a whole number ("900", "0"), or ""
when unset (null): the masters' TASKFARM_MAX_QUEUED_TASKS and the TaskFarm's
admission.maxQueuedTasks (int64: a large value read from YAML is a float, printed 1e+07).
*/}}
{{- define "taskfarm.maxQueuedTasks" -}}
{{- $tasks := dig "admission" "maxQueuedTasks" nil .Values.farm }}
{{- if not (kindIs "invalid" $tasks) }}
{{- $tasks | int64 }}
{{- end }}
{{- end }}

{{- define "taskfarm.zkName" -}}
{{- printf "%s-zookeeper" (include "taskfarm.fullname" .) }}
{{- end }}

{{- define "taskfarm.controllerServiceAccount" -}}
{{- default (printf "%s-controller" (include "taskfarm.fullname" .)) .Values.controller.serviceAccount.name }}
{{- end }}

{{/*
The workers' command catalogue (plain mode's ConfigMap), from farm.commands: the worker's file
format, which spells maxArgs and maxOutput as max_args and max_output. Fields left out stay out,
so the worker's defaults apply. The same file as the controller writes from a TaskFarm.
*/}}
{{- define "taskfarm.catalogue" -}}
{{- $names := dict "args" "args" "maxArgs" "max_args" "stdin" "stdin" "timeout" "timeout" "grace" "grace" "maxOutput" "max_output" "env" "env" "workdir" "workdir" }}
{{- $commands := dict }}
{{- range $name, $c := .Values.farm.commands }}
{{- $command := dict "argv" $c.argv }}
{{- range $from, $to := $names }}
{{- if hasKey $c $from }}
{{- $_ := set $command $to (get $c $from) }}
{{- end }}
{{- end }}
{{- $_ := set $commands $name $command }}
{{- end }}
{{- toYaml (dict "commands" $commands) }}
{{- end }}

{{/*
Container securityContext of every taskfarm container (roles and controller): the same as the
controller gives the role pods it builds.
*/}}
{{- define "taskfarm.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Pod securityContext of every taskfarm pod (roles and controller).
*/}}
{{- define "taskfarm.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Values checks that fail the render with a clear message.
*/}}
{{- define "taskfarm.validate" -}}
{{- if and (not .Values.controller.enabled) .Values.farm.chaos.enabled }}
{{- fail "farm.chaos.enabled needs the controller (controller.enabled: true): in plain Helm mode nothing runs chaos" }}
{{- end }}
{{- range $k := list "masters" "workers" "clients" }}
{{- if lt (int (get $.Values.farm $k)) 0 }}
{{- fail (printf "farm.%s must be 0 or more" $k) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Container securityContext of the ZooKeeper containers (the official image's uid/gid 1000).
*/}}
{{- define "taskfarm.zkContainerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The controller's name: its Deployment, its Lease (one per release, so that two releases in one
namespace never share a leader) and the value of the `taskfarm.dev/controller` label its
--farm-selector matches on the TaskFarms it acts on.
*/}}
{{- define "taskfarm.controllerName" -}}
{{- printf "%s-controller" (include "taskfarm.fullname" .) }}
{{- end }}

{{/*
A pod settings block (farm.pod, farm.<role>.pod) without its empty fields, as YAML.
*/}}
{{- define "taskfarm.podSettings" -}}
{{- $out := dict }}
{{- range $k, $v := . }}
{{- if $v }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
farm.pod with the chart's global imagePullSecrets in front: every role pod's settings, as the
TaskFarm's `pod` (operator mode) and the start of each role's (plain mode).
*/}}
{{- define "taskfarm.allPods" -}}
{{- $all := deepCopy (.Values.farm.pod | default dict) }}
{{- $_ := set $all "imagePullSecrets" (concat (.Values.imagePullSecrets | default list) ($all.imagePullSecrets | default list) | uniq) }}
{{- include "taskfarm.podSettings" $all }}
{{- end }}

{{/*
One role's pod settings in plain mode, merged as the controller merges spec.pod and
spec.<role>.pod (crates/operator/src/pod.rs): lists joined without repeats, maps merged with the
role's value winning, affinity and priorityClassName replaced. Labels the chart sets itself are
refused, as the controller refuses them. Call with (dict "ctx" $ "role" "worker").
*/}}
{{- define "taskfarm.rolePod" -}}
{{- $all := include "taskfarm.allPods" .ctx | fromYaml }}
{{- $own := (get (get .ctx.Values.farm .role | default dict) "pod") | default dict }}
{{- $pod := dict }}
{{- range $k := list "imagePullSecrets" "tolerations" }}
{{- $_ := set $pod $k (concat (get $all $k | default list) (get $own $k | default list) | uniq) }}
{{- end }}
{{- range $k := list "nodeSelector" "annotations" "labels" }}
{{- $_ := set $pod $k (merge (deepCopy (get $own $k | default dict)) (get $all $k | default dict)) }}
{{- end }}
{{- range $k := list "affinity" "priorityClassName" }}
{{- $_ := set $pod $k (get $own $k | default (get $all $k)) }}
{{- end }}
{{- range $at, $p := dict "farm.pod" $all (printf "farm.%s.pod" .role) $own }}
{{- range $key := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" "app.kubernetes.io/managed-by" "taskfarm.dev/farm" }}
{{- if hasKey ($p.labels | default dict) $key }}
{{- fail (printf "%s.labels: %q is set by the chart (it selects the farm's pods)" $at $key) }}
{{- end }}
{{- end }}
{{- if hasKey ($p.annotations | default dict) "taskfarm.dev/commands-sha256" }}
{{- fail (printf "%s.annotations: \"taskfarm.dev/commands-sha256\" is set by the chart (the catalogue's digest)" $at) }}
{{- end }}
{{- end }}
{{- include "taskfarm.podSettings" $pod }}
{{- end }}

{{/*
Plain mode over an operator-mode release: the controller's Deployments carry no Helm ownership
metadata, so Helm would refuse to adopt them with a message that does not say what to do. Say it.
`lookup` sees the cluster during install/upgrade only (helm template renders nothing here).
*/}}
{{- define "taskfarm.refuseControllerDeployments" -}}
{{- $farm := include "taskfarm.fullname" . }}
{{- range $role := list "master" "worker" "client" }}
{{- $name := printf "%s-%s" $farm $role }}
{{- $found := lookup "apps/v1" "Deployment" $.Release.Namespace $name }}
{{- if eq (dig "metadata" "labels" "app.kubernetes.io/managed-by" "" $found) "taskfarm-controller" }}
{{- fail (printf "\n\ncontroller.enabled=false, but Deployment %s/%s was made by the TaskFarm controller (operator mode) and Helm cannot take it over.\nSwitch modes in two steps (docs/KUBERNETES.md, \"Switching between operator and plain mode\"):\n  kubectl -n %s delete taskfarm %s --cascade=foreground   # returns once the controller's Deployments are gone\n  helm upgrade %s charts/taskfarm -n %s --set controller.enabled=false ...\n" $.Release.Namespace $name $.Release.Namespace $farm $.Release.Name $.Release.Namespace) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The scrapers a NetworkPolicy admits to the metrics ports (metrics.scraper), as a list of peers in
YAML; empty when neither selector is set (no rule then).
*/}}
{{- define "taskfarm.scraperPeers" -}}
{{- $peer := dict }}
{{- range $k := list "namespaceSelector" "podSelector" }}
{{- with get $.Values.metrics.scraper $k }}
{{- $_ := set $peer $k . }}
{{- end }}
{{- end }}
{{- if $peer }}
{{- toYaml (list $peer) }}
{{- end }}
{{- end }}
