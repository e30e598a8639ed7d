#!/usr/bin/env bash
# ZooKeeper packets per no-op task, by role: one standalone server, one master, one worker and
# one client submitting N tasks one at a time. Each role's connection counters come from the
# server's `cons` four-letter word (packets received = requests + pings; packets sent =
# responses + watch notifications), matched to the role by the session id it logs.
#
#   scripts/requests-per-role.sh [path/to/taskfarm] [tasks]
#
# Needs the Debian zookeeper package (as .ci/install.sh installs it) and Java.
set -euo pipefail

BIN=${1:-target/release/taskfarm}
TASKS=${2:-3000}
PORT=${PORT:-22381}
[ -x "$BIN" ] || { echo "no taskfarm binary at $BIN (cargo build --release)" >&2; exit 2; }
# shellcheck source=scripts/lib/standalone-zk.sh
source "$(dirname "$0")/lib/standalone-zk.sh"
zk_start "$PORT"

export TASKFARM_ZK=127.0.0.1:$PORT/per-role TASKFARM_SESSION_TIMEOUT=4s TASKFARM_LOG_FORMAT=json
"$BIN" master --id m1 2>"$DIR/master.log" & PIDS+=($!)
"$BIN" worker --id w1 2>"$DIR/worker.log" & PIDS+=($!)
# A warm-up batch: the server's JIT and the farm's first connections settle before counting.
"$BIN" client --id warm --tasks 500 --concurrency 1 --json >/dev/null 2>&1
"$BIN" client --id c1 --tasks "$TASKS" --concurrency 1 --json >"$DIR/client.json" 2>"$DIR/client.log" &
CLIENT=$!
PIDS+=("$CLIENT")

session_of() { grep -o '"session_id":"0x[0-9a-f]*"' "$1" | tail -1 | grep -o '0x[0-9a-f]*'; }
counters() { # "<recved> <sent>" of session $1 in the cons output $2
    grep "sid=$1," <<<"$2" | sed -E 's/.*recved=([0-9]+),sent=([0-9]+).*/\1 \2/'
}
# The client's counters vanish with its connection: sample until it exits, keep the last.
until [ -s "$DIR/client.log" ] && session_of "$DIR/client.log" >/dev/null; do sleep 0.1; done
first=$(four cons); last=$first
while kill -0 "$CLIENT" 2>/dev/null; do
    now=$(four cons)
    grep -q "sid=$(session_of "$DIR/client.log")," <<<"$now" && last=$now
    sleep 0.2
done
zxid_tasks() { grep -o 'lzxid=0x[0-9a-f]*' <<<"$1" | head -1 | cut -d= -f2; }
echo "| role | requests / task | packets sent / task (responses + notifications) |"
echo "|---|---:|---:|"
z0=$(( $(zxid_tasks "$first") )); z1=$(( $(zxid_tasks "$last") ))
tasks=$(( (z1 - z0) / 4 ))   # 4 write transactions per task (checked by the bench)
total_r=0; total_s=0
for role in client master worker; do
    sid=$(session_of "$DIR/$role.log")
    read -r r0 s0 <<<"$(counters "$sid" "$first")"
    read -r r1 s1 <<<"$(counters "$sid" "$last")"
    total_r=$((total_r + r1 - r0)); total_s=$((total_s + s1 - s0))
    awk -v r=$((r1 - r0)) -v s=$((s1 - s0)) -v t="$tasks" -v role="$role" \
        'BEGIN { printf "| %s | %.2f | %.2f |\n", role, r / t, s / t }'
done
awk -v r="$total_r" -v s="$total_s" -v t="$tasks" 'BEGIN { printf "| all | %.2f | %.2f |\n", r / t, s / t }'
echo
echo "(over $tasks tasks between two cons samples; client summary: $(cat "$DIR/client.json" 2>/dev/null))"
