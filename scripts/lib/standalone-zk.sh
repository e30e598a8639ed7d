# shellcheck shell=bash
# Shared by the measurement and check scripts: one throwaway standalone ZooKeeper server on
# loopback, in a temporary directory, stopped (with every process in PIDS) on exit.
#
#   source scripts/lib/standalone-zk.sh
#   zk_start PORT [extra JVM flags...]     # sets DIR; the server answers `ruok` when it returns
#                                          # (hard quotas enforced, as in the chart, unless
#                                          # ZK_ENFORCE_QUOTA=false)
#   four WORD                              # a four-letter word to it, over bash's /dev/tcp
#   PIDS+=($!)                             # processes to stop on exit

[ -f /usr/share/java/zookeeper.jar ] || {
    echo "ZooKeeper not installed: sudo apt-get install -y zookeeper" >&2
    exit 2
}

DIR=$(mktemp -d)
PIDS=()
ZK_PORT=
zk_cleanup() {
    # Last started first: the roles close their sessions while the server is still up.
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    rm -rf "$DIR"
}
trap zk_cleanup EXIT

four() {
    exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf '%s' "$1" >&3 && cat <&3 && exec 3<&-
}

zk_start() {
    ZK_PORT=$1
    shift
    mkdir -p "$DIR/data"
    cat >"$DIR/zoo.cfg" <<CFG
tickTime=200
dataDir=$DIR/data
clientPort=$ZK_PORT
admin.enableServer=false
4lw.commands.whitelist=*
enforceQuota=${ZK_ENFORCE_QUOTA:-true}
CFG
    java -Xmx512m -XX:+UseSerialGC "$@" -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
        org.apache.zookeeper.server.ZooKeeperServerMain "$DIR/zoo.cfg" >"$DIR/zk.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 150); do
        four ruok 2>/dev/null | grep -q imok && return 0
        sleep 0.2
    done
    echo "ZooKeeper did not start on port $ZK_PORT (log: $DIR/zk.log)" >&2
    return 1
}
