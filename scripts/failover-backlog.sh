#!/usr/bin/env bash
# Leader failover with a deep queue (the baseline of issue 15): N no-op tasks are queued with no
# worker yet, two masters start (m1 leads), four workers start draining, and the leader gets
# SIGTERM. Printed: the queue at the kill, how the new leader started (its scan, or its warm
# index: tasks, nodes read, ms), and the time from the SIGTERM to the new leader's first
# assignment, with its resident memory.
#
#   scripts/failover-backlog.sh [path/to/taskfarm] [queued]
#
# One standalone ZooKeeper server (the Debian package, as .ci/install.sh installs it). Run it
# alone on the machine: it measures.
set -euo pipefail

BIN=${1:-target/release/taskfarm}
QUEUED=${2:-10000}
PORT=${PORT:-22481}
[ -x "$BIN" ] || { echo "no taskfarm binary at $BIN (cargo build --release -p taskfarm)" >&2; exit 2; }
# shellcheck source=scripts/lib/standalone-zk.sh
source "$(dirname "$0")/lib/standalone-zk.sh"
zk_start "$PORT" -Xmx3g

export TASKFARM_ZK=127.0.0.1:$PORT/failover-backlog TASKFARM_SESSION_TIMEOUT=10s TASKFARM_LOG_FORMAT=json
"$BIN" zk init >/dev/null

# Queue: clients of up to 10,000 tasks each, all in flight at once, no worker to take them.
per=10000
clients=$(((QUEUED + per - 1) / per))
for i in $(seq "$clients"); do
    n=$((QUEUED - (i - 1) * per))
    [ "$n" -gt "$per" ] && n=$per
    "$BIN" client --id "q$i" --tasks "$n" --concurrency "$n" --json >/dev/null 2>"$DIR/q$i.log" &
    PIDS+=($!)
done
znodes() { four mntr | awk '$1 == "zk_znode_count" { print $2 }'; }
base=$(znodes)
until [ "$(znodes)" -ge $((base + 2 * QUEUED)) ]; do sleep 0.5; done
echo "queued: $QUEUED tasks"

: >"$DIR/m1.log"
: >"$DIR/m2.log"
"$BIN" master --id m1 2>"$DIR/m1.log" &
M1=$!
PIDS+=("$M1")
until grep -q '"became leader' "$DIR/m1.log"; do sleep 0.1; done
"$BIN" master --id m2 2>"$DIR/m2.log" &
M2=$!
PIDS+=("$M2")
# A standby is ready once its index is warm (a binary without warm standbys: once its session
# started).
ready='"session started"'
grep -qa 'standby warm' "$BIN" && ready='"standby warm"'
until grep -q "$ready" "$DIR/m2.log"; do sleep 0.1; done
for i in 1 2 3 4; do
    "$BIN" worker --id "w$i" 2>"$DIR/w$i.log" &
    PIDS+=($!)
done
until [ "$(grep -c '"assigned"' "$DIR/m1.log")" -ge 200 ]; do sleep 0.05; done

killed=$(date +%s.%N)
kill -TERM "$M1"
until grep -q '"assigned"' <(grep -A1000000 '"became leader' "$DIR/m2.log"); do sleep 0.05; done
rss_kib=$(ps -o rss= -p "$M2" | tr -d ' ')
wait "$M1" || true # m1's last lines (its session's close) are written when it has exited
python3 - "$DIR/m2.log" "$killed" "$rss_kib" "$DIR/m1.log" <<'PY'
import datetime, json, sys
log, killed, rss = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
old = [json.loads(l) for l in open(sys.argv[4]) if l.startswith("{")]
def ts(v):
    return datetime.datetime.fromisoformat(v["timestamp"].replace("Z", "+00:00")).timestamp()
lines = [json.loads(l) for l in open(log) if l.startswith("{")]
led = next(i for i, v in enumerate(lines) if v["message"].startswith("became leader"))
start = next(v for v in lines[led:] if v["message"] in ("scanned ZooKeeper", "leading from the warm index"))
first = next(v for v in lines[led:] if v["message"] == "assigned")
if start["message"] == "scanned ZooKeeper":
    print(f"new leader's scan: {start['tasks']} tasks, {start['scan_ms']} ms")
else:
    print(f"new leader's warm index: {start['tasks']} tasks, {start['dirty_nodes']} dirty nodes read in {start['catch_up_ms']} ms")
closing = next((v for v in old if v["message"].startswith("shutting down")), None)
if closing:
    print(f"SIGTERM -> old leader closes its session: {(ts(closing) - killed) * 1000:.0f} ms")
print(f"SIGTERM -> new leader: {(ts(lines[led]) - killed) * 1000:.0f} ms")
print(f"SIGTERM -> new leader ready to decide: {(ts(start) - killed) * 1000:.0f} ms")
print(f"SIGTERM -> first assignment: {(ts(first) - killed) * 1000:.0f} ms")
print(f"new leader's resident memory: {rss / 1024:.1f} MiB")
PY
