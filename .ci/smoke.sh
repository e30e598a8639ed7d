#!/usr/bin/env bash
# Smoke runs of the commands people run by hand, at CI size: the seed's scenarios (short
# variants), a chaotic demo, the Python client of PROTOCOL.md §8, and the benchmark's quick
# mode (when present). Each must exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p taskfarm -p taskfarm-lab
bin=target/debug/taskfarm
lab=target/debug/taskfarm-lab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "--- taskfarm-lab scenario all --quick"
"$lab" scenario all --quick --run-dir "$work/scenarios"
passed=1

echo "--- taskfarm-lab demo --chaos (short)"
"$lab" demo --tasks 150 --chaos --chaos-interval 3s --run-dir "$work/demo"
passed=$((passed + 1))

echo "--- PROTOCOL.md's Python (kazoo) client against the farm"
if ! python3 -m venv "$work/venv" 2>/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
  python3 -m venv "$work/venv"
fi
"$work/venv/bin/pip" install -q --disable-pip-version-check kazoo
PATH="$work/venv/bin:$PATH" bash scripts/kazoo-client-check.sh "$bin"
passed=$((passed + 1))

if [ -f .ci/bench-smoke.sh ]; then
  echo "--- taskfarm-lab bench --quick"
  bash .ci/bench-smoke.sh
  passed=$((passed + 1))
fi
echo "smoke: $passed passed, 0 failed"
