#!/usr/bin/env bash
# Resident memory of one `taskfarm client` holding N tasks in flight (no master, no worker: all
# of them wait), read from ps once ZooKeeper holds all 2N task znodes.
#
#   scripts/client-memory.sh [path/to/taskfarm] [N]
#
# One standalone ZooKeeper server (the Debian package, as .ci/install.sh installs it).
set -euo pipefail

BIN=${1:-target/release/taskfarm}
N=${2:-10000}
PORT=${PORT:-22581}
[ -x "$BIN" ] || { echo "no taskfarm binary at $BIN (cargo build --release -p taskfarm)" >&2; exit 2; }
# shellcheck source=scripts/lib/standalone-zk.sh
source "$(dirname "$0")/lib/standalone-zk.sh"
zk_start "$PORT" -Xmx2g

export TASKFARM_ZK=127.0.0.1:$PORT/client-memory
"$BIN" zk init >/dev/null
"$BIN" client --id c --tasks "$N" --concurrency "$N" --json >/dev/null 2>"$DIR/c.log" &
C=$!
PIDS+=("$C")
znodes() { four mntr | awk '$1 == "zk_znode_count" { print $2 }'; }
base=$(znodes)
until [ "$(znodes)" -ge $((base + 2 * N)) ]; do sleep 0.2; done
echo "client with $N tasks in flight: $(ps -o rss= -p "$C" | awk '{ printf "%.1f MiB", $1 / 1024 }')"
