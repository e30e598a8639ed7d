#!/usr/bin/env bash
# The taskfarm Kubernetes story on minikube: scripts/e2e-kind.sh --minikube (see its --help).
#   scripts/e2e-minikube.sh [--plain] [--tasks N] [--delete]
set -euo pipefail
exec "$(dirname "$0")/e2e-kind.sh" --minikube "$@"
