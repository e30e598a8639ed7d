#!/usr/bin/env python3
"""A fake Kubernetes API server for `helm template --dry-run=server`, so that the chart's
`lookup` calls can be checked without a cluster (.ci/k8s-checks.sh).

  fake_kube_api.py PORT_FILE MANAGED_BY

Serves discovery (version, core/v1, apps/v1, taskfarm.dev/v1alpha1) and one object: the
Deployment taskfarm/taskfarm-master, labelled app.kubernetes.io/managed-by=MANAGED_BY (`Helm`:
with release taskfarm's ownership annotations too; `none`: no such Deployment). Everything else is 404. Listens on 127.0.0.1, a free port written to
PORT_FILE once it listens; runs until killed.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

RESOURCES = {
    "v1": [("pods", "Pod"), ("services", "Service"), ("configmaps", "ConfigMap"), ("secrets", "Secret"),
           ("serviceaccounts", "ServiceAccount"), ("namespaces", "Namespace")],
    "apps/v1": [("deployments", "Deployment"), ("statefulsets", "StatefulSet")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy")],
    "rbac.authorization.k8s.io/v1": [("roles", "Role"), ("rolebindings", "RoleBinding")],
    "taskfarm.dev/v1alpha1": [("taskfarms", "TaskFarm")],
}
MASTER = "/apis/apps/v1/namespaces/taskfarm/deployments/taskfarm-master"


def handler(managed_by):
    class Handler(BaseHTTPRequestHandler):
        def send(self, code, body):
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/version":
                return self.send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"})
            if path == "/api":
                return self.send(200, {"kind": "APIVersions", "versions": ["v1"],
                                       "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
            if path == "/apis":
                groups = [{"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                           "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}}
                          for gv in RESOURCES if "/" in gv]
                return self.send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            gv = path.removeprefix("/api/").removeprefix("/apis/")
            if gv in RESOURCES:
                resources = [{"name": n, "singularName": "", "namespaced": k != "Namespace", "kind": k,
                              "verbs": ["get", "list", "create", "patch"]} for n, k in RESOURCES[gv]]
                return self.send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
            if path == MASTER and managed_by != "none":
                meta = {"name": "taskfarm-master", "namespace": "taskfarm", "labels": {"app.kubernetes.io/managed-by": managed_by}}
                if managed_by == "Helm":
                    # What Helm's ownership check looks for on an object of release taskfarm.
                    meta["annotations"] = {"meta.helm.sh/release-name": "taskfarm", "meta.helm.sh/release-namespace": "taskfarm"}
                return self.send(200, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta})
            self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                            "code": 404, "message": f"{path} not found"})

        def log_message(self, *args):
            pass

    return Handler


def main(port_file, managed_by):
    server = HTTPServer(("127.0.0.1", 0), handler(managed_by))
    with open(port_file, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
