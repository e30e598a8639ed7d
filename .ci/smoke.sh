#!/usr/bin/env bash
# Smoke runs of the commands people run by hand, at CI size: the seed's scenarios (short
# variants), a chaotic demo, and the benchmark's quick mode (when present). Each must exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=target/debug/taskfarm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "--- taskfarm scenario all --quick"
"$bin" scenario all --quick --run-dir "$work/scenarios"
passed=1

echo "--- taskfarm demo --chaos (short)"
"$bin" demo --tasks 150 --chaos --chaos-interval 3s --run-dir "$work/demo"
passed=$((passed + 1))

if [ -f .ci/bench-smoke.sh ]; then
  echo "--- taskfarm bench --quick"
  bash .ci/bench-smoke.sh
  passed=$((passed + 1))
fi
echo "smoke: $passed passed, 0 failed"
