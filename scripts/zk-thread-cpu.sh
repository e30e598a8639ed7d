#!/usr/bin/env bash
# Where ZooKeeper's CPU goes, by JVM thread, in each phase of a scaling bench run: the check
# behind docs/BENCHMARKS.md's finding that the server's JIT compiler, sent back to work by a
# size's failover trials, slowed the next size down on 2 cores.
#
#   scripts/zk-thread-cpu.sh [path/to/taskfarm-lab] [backlogs]     (default: 100,1000)
#
# Runs `taskfarm-lab bench --only scaling --backlogs B` and samples every second the CPU ticks
# of each thread of the ZooKeeper server it starts (/proc/<pid>/task/*/stat), tagged with the
# bench's current phase. Prints, per phase: seconds, the server's CPU in cores, and the share
# of its compiler threads. Run it alone on the machine: it measures.
set -euo pipefail

LAB=${1:-target/release/taskfarm-lab}
BACKLOGS=${2:-100,1000}
[ -x "$LAB" ] || { echo "no taskfarm-lab binary at $LAB (cargo build --release -p taskfarm -p taskfarm-lab)" >&2; exit 2; }
DIR=$(mktemp -d)
trap 'kill "$SAMPLER" 2>/dev/null || true; rm -rf "$DIR"' EXIT

sample() {
  while true; do
    local pid phase
    pid=$(pgrep -f 'org.apache.zookeeper.server' | head -1 || true)
    phase=$(grep -a '^\.\.\. scaling' "$DIR/bench.log" 2>/dev/null | tail -1 | sed 's/^\.\.\. //; s/ /_/g' || true)
    if [ -n "$pid" ] && [ -n "$phase" ]; then
      for t in /proc/"$pid"/task/*; do
        local comm ticks
        comm=$(tr ' ' '_' <"$t/comm" 2>/dev/null) || continue
        ticks=$(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null) || continue
        echo "$(date +%s) $phase ${t##*/} $comm $ticks"
      done >>"$DIR/threads.txt"
    fi
    sleep 1
  done
}

: >"$DIR/bench.log"
sample &
SAMPLER=$!
"$LAB" bench --only scaling --backlogs "$BACKLOGS" --json "$DIR/bench.json" >"$DIR/bench.log" 2>&1
grep '^scaling' "$DIR/bench.log"

python3 - "$DIR/threads.txt" <<'PY'
import sys
first, last, phases = {}, {}, []
for line in open(sys.argv[1]):
    ts, phase, tid, comm, ticks = line.split()
    key = (phase, tid)
    if phase not in phases:
        phases.append(phase)
    first.setdefault(key, (int(ts), int(ticks), comm))
    last[key] = (int(ts), int(ticks))
hz = 100  # USER_HZ
print(f"{'phase':40} {'s':>4} {'server cores':>12} {'compiler share':>14}")
for phase in phases:
    keys = [k for k in first if k[0] == phase]
    secs = max(last[k][0] - first[k][0] for k in keys)
    total = sum(last[k][1] - first[k][1] for k in keys)
    compiler = sum(last[k][1] - first[k][1] for k in keys if "Compiler" in first[k][2])
    if secs == 0:
        continue
    share = f"{100 * compiler / total:.0f} %" if total else "-"
    print(f"{phase:40} {secs:>4} {total / hz / secs:>12.2f} {share:>14}")
PY
