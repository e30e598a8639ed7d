#!/usr/bin/env bash
# Smoke check of `taskfarm-lab bench`: a --quick run on one ZooKeeper server must finish (exit 0)
# and write its JSON. Checks that the benchmark works, not the figures (CI machines vary).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/bench.json"
rm -f "$out"
cargo build -q -p taskfarm -p taskfarm-lab
timeout 120 target/debug/taskfarm-lab bench --quick --zk-servers 1 --json "$out"
test -s "$out"
echo "bench smoke: ok ($out)"
