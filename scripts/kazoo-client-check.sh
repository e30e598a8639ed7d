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

# shellcheck source=scripts/lib/standalone-zk.sh
source "$ROOT/scripts/lib/standalone-zk.sh"
zk_start "$PORT" -XX:TieredStopAtLevel=1

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
