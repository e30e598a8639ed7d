#!/usr/bin/env bash
# Runs the Python (kazoo) client printed in PROTOCOL.md §8, as it stands in that file, against
# a real farm: one standalone ZooKeeper server, one master and one worker of ours. Checks that
# the protocol document alone is enough to write a working client in another language.
#
#   scripts/kazoo-client-check.sh [path/to/taskfarm]
#
# Needs the Debian zookeeper package, Java, python3 and kazoo (pip install kazoo).
set -euo pipefail

BIN=${1:-target/release/taskfarm}
PORT=${PORT:-22481}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$BIN" ] || { echo "no taskfarm binary at $BIN" >&2; exit 2; }
python3 -c 'import kazoo' 2>/dev/null || { echo "kazoo is not installed: pip install kazoo" >&2; exit 2; }

DIR=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

four() { exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf '%s' "$1" >&3 && cat <&3 && exec 3<&-; }
mkdir -p "$DIR/data"
cat >"$DIR/zoo.cfg" <<EOF
tickTime=200
dataDir=$DIR/data
clientPort=$PORT
admin.enableServer=false
4lw.commands.whitelist=*
EOF
java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
    org.apache.zookeeper.server.ZooKeeperServerMain "$DIR/zoo.cfg" >"$DIR/zk.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 150); do four ruok 2>/dev/null | grep -q imok && break; sleep 0.2; done

export TASKFARM_ZK=127.0.0.1:$PORT TASKFARM_SESSION_TIMEOUT=4s
"$BIN" zk init
"$BIN" master --id m1 2>"$DIR/master.log" & PIDS+=($!)
"$BIN" worker --id w1 2>"$DIR/worker.log" & PIDS+=($!)

# The first ```python block of §8, with the document's connect string replaced by ours.
awk '/^## 8\./ { in8 = 1 } in8 && /^```python/ { grab = 1; next } grab && /^```/ { exit } grab { print }' \
    "$ROOT/PROTOCOL.md" | sed "s/127.0.0.1:2181/127.0.0.1:$PORT/" >"$DIR/client.py"
[ -s "$DIR/client.py" ] || { echo "no Python client found in PROTOCOL.md §8" >&2; exit 1; }
out=$(timeout 60 python3 "$DIR/client.py")
echo "PROTOCOL.md §8 client printed: $out"
# The echo task's result: ok, with the message back.
python3 - "$out" <<'EOF'
import ast, sys
result = ast.literal_eval(sys.argv[1])
assert result["ok"] is True and result["value"] == "hi", result
EOF
left=$("$BIN" zk tree /data 2>/dev/null | grep -c -- '-00000001' || true)
[ "$left" = 0 ] || { echo "the client left its znodes behind" >&2; exit 1; }
echo "kazoo client check: OK"
