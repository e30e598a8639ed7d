#!/usr/bin/env bash
# The quick start's first command: install what the farm needs (ZooKeeper, Java) where it is
# missing, build, and run `taskfarm-lab demo` on a local 3-server ZooKeeper ensemble.
# Extra arguments go to `taskfarm-lab demo` (e.g. --chaos, --workers 8, --duration 5m).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install.sh
# The lab runs the role binary `taskfarm` as child processes: build both.
cargo build --quiet -p taskfarm -p taskfarm-lab
exec target/debug/taskfarm-lab demo "$@"
