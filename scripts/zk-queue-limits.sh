#!/usr/bin/env bash
# Curator Tech Note 4 ("ZooKeeper makes a very bad queue source"), measured for taskfarm's
# znode layout (issue 15 item 6; write-up in docs/bench/zk-queue-limits.md).
#
#   scripts/zk-queue-limits.sh [PHASE...]      # default: children restart ensemble session break
#
# Phases (each a few minutes; each starts its own servers on 127.0.0.1:22700-22799):
#   children  standalone server; backlogs of no-op tasks at 10k, 37.4k, 37.5k, 100k, 1M: the
#             getChildren("/tasks") reply size against jute.maxbuffer and how each client fares
#             (Java zkCli `ls`, kazoo, the Rust zookeeper-client crate = a taskfarm master's scan),
#             plus the latency of one task's create+delete multi at that backlog
#   restart   standalone server, kill -9 and restart with 10k/100k no-op and 10k/30k 64-KiB
#             backlogs: process start -> serving (srvr prints Mode:), first from the txn log,
#             then from the snapshot the first restart wrote; snapshot and log sizes
#   ensemble  3 servers with 100k no-op + 10k 64-KiB tasks: a follower killed and restarted
#             (DIFF), a follower with a wiped disk (SNAP), the leader killed, all three killed
#   session   3 servers; one client holding N queued tasks in its session closes it (the product
#             client on SIGTERM, a kazoo client): 10k tasks with default ids, 10k with a long
#             client id, 30k from a kazoo client, then the long id again with
#             -Djute.maxbuffer=4MiB on the servers: does the ensemble still serve? (ZOOKEEPER-4306)
#   break     standalone server at the chart's heap (-Xmx256m), the upstream zkEnv.sh default
#             (-Xmx1000m): fill 64-KiB and no-op tasks until the server dies; then restart it
#             with the same heap
#   break-debian (not in the default set) the same with 64-KiB tasks and Debian's heap (no -Xmx:
#             the JVM default, 1/4 of RAM): needs ~15 GB of free disk with the restart; stops
#             when less than DISK_MIN_GB (default 4) is left. BREAK_SECS caps a fill (300 s).
#
# The backlog: /tasks/<id> (a queued TaskRecord) + /data/<id> (payload: the no-op task
# {"kind":"sleep","ms":0}, 23 bytes, or a 64 KiB echo task), one multi per task as PROTOCOL.md
# §5.4 (the 1M and break fills batch 20-50 tasks per multi to save time), ids
# `client-<8 hex>-<8 digits>`, chroot /tql. The backlog znodes are PERSISTENT except in the
# `session` phase: a restart of the server loads a live session's ephemerals exactly as it loads
# persistent znodes (same snapshot/log records; the session is restored with them), and
# persistent znodes keep the measurement free of session timeouts. The `session` phase is the
# one place where ephemerals differ, so it uses the product client and real ephemerals.
#
# Server settings: the Debian package's (tickTime 2000, initLimit 10, syncLimit 5, default
# jute.maxbuffer, snapCount 100000, fsync on), its JVM flags as zkServer.sh gives them
# (-XX:+HeapDumpOnOutOfMemoryError -XX:OnOutOfMemoryError='kill -9 %p'; no -Xmx unless a
# phase sets one), admin.enableServer=false, 4lw.commands.whitelist=*.
#
# Needs: the Debian zookeeper package, Java 17, python3 with kazoo (a venv under
# ~/.cache/taskfarm-zk-limits-venv is made if kazoo is missing), target/release/taskfarm.
# Set KEEP=1 to keep the data dirs and logs (printed at the end). Run it alone if you can:
# it measures times.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/taskfarm}
HELPER=$ROOT/scripts/zk_queue_limits.py
[ -x "$BIN" ] || { echo "no taskfarm binary at $BIN (cargo build --release -p taskfarm)" >&2; exit 2; }
[ -f /usr/share/java/zookeeper.jar ] || { echo "ZooKeeper not installed (apt-get install zookeeper)" >&2; exit 2; }
PY=python3
if ! $PY -c 'import kazoo' 2>/dev/null; then
    VENV=$HOME/.cache/taskfarm-zk-limits-venv
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -c 'import kazoo' 2>/dev/null ||
        "$VENV/bin/pip" install -q --disable-pip-version-check kazoo
    PY=$VENV/bin/python
fi

PHASES=("$@")
[ ${#PHASES[@]} -gt 0 ] || PHASES=(children restart ensemble session break)

DIR=$(mktemp -d /tmp/zk-queue-limits.XXXXXX)
RESULTS=$DIR/results.tsv
: >"$RESULTS"
declare -A SRV_PID=()
OTHER_PIDS=()
CP=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
MAXBUF=1048575 # jute.maxbuffer default (0xfffff)

cleanup() {
    local p
    for p in "${OTHER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${SRV_PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -s "$RESULTS" ]; then
        echo
        echo "== results (machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load at end: $(cut -d' ' -f1-3 /proc/loadavg))"
        column -t -s $'\t' "$RESULTS"
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept: $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

row() { # phase, case, measure, value, note
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" | tee -a "$RESULTS"
}

four() { # PORT WORD
    local out
    out=$({ exec 3<>"/dev/tcp/127.0.0.1/$1" && printf '%s' "$2" >&3 && timeout 5 cat <&3; } 2>/dev/null) || true
    printf '%s' "$out"
}
mntr() { four "$1" mntr | awk -v k="$2" '$1 == k { print $2 }'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# srv_conf NAME PORT [ensemble-id]: a config in $DIR/NAME; ensembles use client ports
# 22711-22713, peer 22721-22723, election 22731-22733.
srv_conf() {
    local name=$1 port=$2 id=${3:-}
    mkdir -p "$DIR/$name/data"
    cat >"$DIR/$name/zoo.cfg" <<CFG
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$DIR/$name/data
clientPort=$port
admin.enableServer=false
4lw.commands.whitelist=*
CFG
    if [ -n "$id" ]; then
        echo "$id" >"$DIR/$name/data/myid"
        printf 'server.%d=127.0.0.1:%d:%d\n' 1 22721 22731 2 22722 22732 3 22723 22733 >>"$DIR/$name/zoo.cfg"
    fi
}

# srv_start NAME [JVM flags...]: starts it (log appended to $DIR/NAME/zk.log); sets STARTED.
srv_start() {
    local name=$1 main=org.apache.zookeeper.server.ZooKeeperServerMain
    shift
    [ -f "$DIR/$name/data/myid" ] && main=org.apache.zookeeper.server.quorum.QuorumPeerMain
    echo "---- start $(date +%T.%N)" >>"$DIR/$name/zk.log"
    STARTED=$(now)
    java "$@" -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath=/dev/null \
        -XX:OnOutOfMemoryError='kill -9 %p' -Xlog:gc:file="$DIR/$name/gc.log" \
        -cp "$CP" "$main" "$DIR/$name/zoo.cfg" >>"$DIR/$name/zk.log" 2>&1 &
    SRV_PID[$name]=$!
}
srv_kill() { kill -9 "${SRV_PID[$1]}" 2>/dev/null || true; wait "${SRV_PID[$1]}" 2>/dev/null || true; unset "SRV_PID[$1]"; }

# wait_mode PORT TIMEOUT [pid]: until srvr prints a Mode: line; prints the Mode or "timeout"/"died".
wait_mode() {
    local port=$1 end pid=${3:-}
    end=$(($(date +%s) + $2))
    while [ "$(date +%s)" -lt "$end" ]; do
        local m
        m=$(four "$port" srvr | awk '/^Mode:/ { print $2 }')
        [ -n "$m" ] && { echo "$m"; return 0; }
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then echo died; return 1; fi
        sleep 0.05
    done
    echo timeout
    return 1
}

heap_used_mb() { # PID: heap in use after a full GC, MiB
    jcmd "$1" GC.run >/dev/null 2>&1 || true
    jcmd "$1" GC.heap_info 2>/dev/null | awk '/garbage-first heap|def new generation|total/ && /used/ {
        for (i = 1; i <= NF; i++) if ($i == "used") { v = $(i + 1); sub(/K,?$/, "", v); printf "%d", v / 1024; exit } }'
}
disk() { # NAME: snapshot (newest) and txn log bytes
    local d=$DIR/$1/data/version-2 s l
    s=$(find "$d" -maxdepth 1 -name 'snapshot.*' -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -1 | cut -d' ' -f2- || true)
    s=$([ -n "$s" ] && stat -c %s "$s" || echo 0)
    l=$(cat "$d"/log.* 2>/dev/null | wc -c || true)
    echo "snapshot $(mb "$s") MB, txn logs $(mb "$l") MB"
}
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# Loaded-in / taken-in figures from the server log since the last start.
last_start_log() { awk '/^---- start/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$DIR/$1/zk.log"; }
load_ms() { last_start_log "$1" | sed -n 's/.*Snapshot loaded in \([0-9]*\) ms.*/\1/p' | tail -1; }
snap_ms() { last_start_log "$1" | sed -n 's/.*Snapshot taken in \([0-9]*\) ms.*/\1/p' | tail -1; }

fill() { # HOSTPORTS N START PAYLOAD [extra helper args]
    local hosts=$1 n=$2 start=$3 payload=$4
    shift 4
    "$PY" "$HELPER" fill "$hosts/tql" "$n" --start "$start" --payload "$payload" \
        --client-id client-1a2b3c4d "$@"
}
init_chroot() { TASKFARM_ZK="$1/tql" "$BIN" zk init >/dev/null; }

# ---------------------------------------------------------------------------------------------
phase_children() {
    local P=22700 name=children have=0 n
    srv_conf $name $P
    srv_start $name
    wait_mode $P 60 >/dev/null
    init_chroot 127.0.0.1:$P
    for n in 10000 37400 37500 100000 1000000; do
        local pm=1
        [ "$n" -gt 100000 ] && pm=50
        fill 127.0.0.1:$P $((n - have)) $((have + 1)) small --per-multi $pm >"$DIR/fill.json"
        have=$n
        local k="${n} no-op tasks"
        # The exact reply size, from the names kazoo got (kazoo has no client-side limit).
        local kz
        kz=$("$PY" "$HELPER" ls 127.0.0.1:$P/tql /tasks)
        local bytes
        bytes=$(sed -n 's/.*"reply_bytes": \([0-9]*\).*/\1/p' <<<"$kz")
        row children "$k" "getChildren(/tasks) reply" "$bytes B" "$(awk -v b="$bytes" -v m=$MAXBUF 'BEGIN { printf "%.2f x jute.maxbuffer", b / m }')"
        row children "$k" "kazoo 2.11 get_children" "$(grep -q '"ok": true' <<<"$kz" && echo ok || echo FAIL)" \
            "$(sed -n 's/.*"ms": \([0-9]*\).*/\1 ms/p; s/.*"error": "\([^"]*\)".*/\1/p' <<<"$kz")"
        # The Java client (zkCli), defaults (its jute.maxbuffer is 0xfffff too).
        timeout 120 java -cp "$CP" org.apache.zookeeper.ZooKeeperMain -server 127.0.0.1:$P \
            ls /tql/tasks >"$DIR/zkcli.out" 2>"$DIR/zkcli.err" || true
        if grep -q 'client-1a2b3c4d-' "$DIR/zkcli.out"; then
            row children "$k" "Java zkCli ls" ok
        else
            row children "$k" "Java zkCli ls" FAIL "$(grep -o 'Packet len[^!]*!' "$DIR/zkcli.err" | head -1); $(grep -o 'KeeperErrorCode = [A-Za-z]* for [^ ]*' "$DIR/zkcli.out" | head -1)"
        fi
        # The Rust crate, as the product uses it: a master's leader scan (getChildren + getData of each).
        : >"$DIR/master.log"
        TASKFARM_ZK=127.0.0.1:$P/tql TASKFARM_LOG_FORMAT=json "$BIN" master --id m1 2>"$DIR/master.log" &
        local m=$! t0
        t0=$(date +%s)
        until grep -q '"scanned ZooKeeper"\|"level":"ERROR"' "$DIR/master.log" || [ $(($(date +%s) - t0)) -gt 180 ] || ! kill -0 $m 2>/dev/null; do sleep 0.2; done
        local scan
        scan=$(grep -o '"scan_ms":[0-9]*,"tasks":[0-9]*' "$DIR/master.log" | head -1 || true)
        if [ -n "$scan" ]; then
            row children "$k" "taskfarm master scan (Rust crate)" ok "$scan, master RSS $(($(ps -o rss= -p $m) / 1024)) MiB"
        else
            row children "$k" "taskfarm master scan (Rust crate)" FAIL "$(grep -m1 -o '"message":"[^"]*"[^}]*' "$DIR/master.log" | cut -c1-200)"
        fi
        kill $m 2>/dev/null || true
        wait $m 2>/dev/null || true
        local lat
        lat=$("$PY" "$HELPER" lat 127.0.0.1:$P/tql --n 300)
        row children "$k" "create+delete of 1 task, p50/p99" "$(sed -n 's/.*p50_ms": \([0-9.]*\), "p99_ms": \([0-9.]*\).*/\1 \/ \2 ms/p' <<<"$lat")" \
            "server heap after GC $(heap_used_mb "${SRV_PID[$name]}") MiB"
    done
    srv_kill $name
    rm -rf "${DIR:?}/$name"
}

# ---------------------------------------------------------------------------------------------
restart_twice() { # NAME PORT CASE: kill -9, restart (log replay), kill -9, restart (snapshot)
    local name=$1 P=$2 k=$3 i
    for i in 1 2; do
        srv_kill "$name"
        local what
        [ $i = 1 ] && what="restart from txn log" || what="restart from snapshot"
        local d
        d=$(disk "$name")
        srv_start "$name"
        local mode t1
        mode=$(wait_mode "$P" 900 "${SRV_PID[$name]}" || true)
        t1=$(now)
        row restart "$k" "$what: start->serving" "$(secs "$STARTED" "$t1") s" \
            "$mode; db load $(load_ms "$name") ms, startup snapshot $(snap_ms "$name") ms; on disk before: $d"
    done
}
phase_restart() {
    local P=22701 name=restart
    srv_conf $name $P
    srv_start $name
    wait_mode $P 60 >/dev/null
    init_chroot 127.0.0.1:$P
    local t0
    t0=$(now)
    restart_twice $name $P "empty farm"
    fill 127.0.0.1:$P 10000 1 small >/dev/null
    restart_twice $name $P "10k no-op"
    fill 127.0.0.1:$P 90000 10001 small >/dev/null
    restart_twice $name $P "100k no-op"
    row restart "100k no-op" "server heap after GC" "$(heap_used_mb "${SRV_PID[$name]}") MiB"
    srv_kill $name
    rm -rf "${DIR:?}/$name"
    srv_conf $name $P
    srv_start $name
    wait_mode $P 60 >/dev/null
    init_chroot 127.0.0.1:$P
    local r
    r=$(fill 127.0.0.1:$P 10000 1 large)
    row restart "10k 64-KiB" "fill rate" "$(sed -n 's/.*"tasks_per_s": \([0-9]*\).*/\1 tasks\/s/p' <<<"$r")"
    restart_twice $name $P "10k 64-KiB"
    row restart "10k 64-KiB" "server heap after GC" "$(heap_used_mb "${SRV_PID[$name]}") MiB"
    fill 127.0.0.1:$P 20000 10001 large >/dev/null
    restart_twice $name $P "30k 64-KiB"
    row restart "30k 64-KiB" "server heap after GC" "$(heap_used_mb "${SRV_PID[$name]}") MiB"
    srv_kill $name
    rm -rf "${DIR:?}/$name"
}

# ---------------------------------------------------------------------------------------------
ens_start() { # [JVM flags...] for all three
    local i
    for i in 1 2 3; do
        [ -d "$DIR/s$i" ] || srv_conf "s$i" "2271$i" "$i"
        srv_start "s$i" "$@"
    done
}
leader_of() { local i; for i in 1 2 3; do [ "$(four "2271$i" srvr | awk '/^Mode:/ { print $2 }')" = leader ] && { echo "$i"; return; }; done; echo 0; }
wait_quorum() { # TIMEOUT: until some server serves as leader and another as follower
    local end
    end=$(($(date +%s) + $1))
    while [ "$(date +%s)" -lt "$end" ]; do
        local modes=""
        for i in 1 2 3; do modes+=" $(four "2271$i" srvr | awk '/^Mode:/ { print $2 }')"; done
        [[ $modes == *leader* && $modes == *follower* ]] && return 0
        sleep 0.05
    done
    return 1
}
phase_ensemble() {
    local H=127.0.0.1:22711,127.0.0.1:22712,127.0.0.1:22713
    ens_start
    wait_quorum 60
    init_chroot $H
    fill $H 100000 1 small >/dev/null
    fill $H 10000 100001 large >/dev/null
    local k="100k no-op + 10k 64-KiB" L F t0
    row ensemble "$k" "db per server" "$(disk s1)" "heap after GC $(heap_used_mb "${SRV_PID[s1]}") MiB"
    L=$(leader_of)
    F=$((L % 3 + 1))
    # 1. A follower crashes and restarts (its disk intact): rejoins with a DIFF.
    srv_kill "s$F"
    "$PY" "$HELPER" fill "$H/tql" 100 --client-id client-2b2b2b2b >/dev/null # some writes meanwhile
    srv_start "s$F"
    row ensemble "$k" "follower kill -9 + restart: start->following" "$(wait_mode "2271$F" 600 >/dev/null; secs "$STARTED" "$(now)") s" \
        "$(last_start_log "s$F" | grep -o -E 'Getting a [a-z]+ from (the )?leader|Truncating log' | head -1)"
    # 2. A follower replaced with an empty disk (a new pod/volume): a full SNAP.
    srv_kill "s$F"
    rm -rf "$DIR/s$F/data/version-2"
    srv_start "s$F"
    row ensemble "$k" "follower with wiped disk: start->following" "$(wait_mode "2271$F" 600 >/dev/null; secs "$STARTED" "$(now)") s" \
        "$(last_start_log "s$F" | grep -o -E 'Getting a [a-z]+ from (the )?leader|Truncating log' | head -1)"
    # 3. The leader crashes: time until a new quorum serves (kill to leader+follower modes).
    L=$(leader_of)
    t0=$(now)
    srv_kill "s$L"
    sleep 0.2
    local ok=yes
    wait_quorum 600 || ok=no
    row ensemble "$k" "leader kill -9: kill->quorum serves" "$(secs "$t0" "$(now)") s" "new leader s$(leader_of); served=$ok"
    srv_start "s$L"
    row ensemble "$k" "old leader restart: start->following" "$(wait_mode "2271$L" 600 >/dev/null; secs "$STARTED" "$(now)") s"
    # 4. All three crash and restart at once.
    for i in 1 2 3; do srv_kill "s$i"; done
    ens_start
    t0=$STARTED
    ok=yes
    wait_quorum 900 || ok=no
    row ensemble "$k" "all 3 kill -9 + restart: start->quorum serves" "$(secs "$t0" "$(now)") s" "served=$ok; db load s1 $(load_ms s1) ms"
    for i in 1 2 3; do srv_kill "s$i"; done
    rm -rf "$DIR"/s1 "$DIR"/s2 "$DIR"/s3
}

# ---------------------------------------------------------------------------------------------
# One client holds N queued tasks (no worker) in its session, then closes it: the server deletes
# the 2N ephemerals with ONE closeSession transaction that lists every path (ZooKeeper >= 3.6,
# zookeeper.closeSessionTxn.enabled=true by default). Its size: per task 8 bytes of lengths +
# the two server-side paths (/tql/tasks/<id>, /tql/data/<id>: 21 + 2 x len(id) with this chroot).
session_case() { # N CLIENT(product|kazoo) CLIENT_ID LABEL [server JVM flags...]
    local n=$1 how=$2 cid=$3 label=$4 H=127.0.0.1:22711,127.0.0.1:22712,127.0.0.1:22713
    shift 4
    ens_start "$@"
    wait_quorum 60
    init_chroot $H
    local base c
    base=$(mntr 22711 zk_znode_count)
    if [ "$how" = product ]; then
        # taskfarm client caps --concurrency at 10,000: one session holds at most 10,000 tasks.
        TASKFARM_ZK=$H/tql TASKFARM_SESSION_TIMEOUT=10s "$BIN" client --id "$cid" \
            --tasks "$n" --concurrency "$n" --json >/dev/null 2>"$DIR/client.log" &
        c=$!
    else
        exec 8> >(exec "$PY" "$HELPER" fill "$H/tql" "$n" --client-id "$cid" --ephemeral \
            --hold close --session-timeout 10 >"$DIR/client.log" 2>&1)
        c=$!
    fi
    OTHER_PIDS+=("$c")
    local t0
    t0=$(date +%s)
    until [ "$(mntr 22711 zk_znode_count || echo 0)" -ge $((base + 2 * n)) ] || [ $(($(date +%s) - t0)) -gt 240 ]; do sleep 0.5; done
    local txn=$((n * (8 + 21 + 2 * (${#cid} + 9)) + 48))
    if [ "$how" = product ]; then kill -TERM "$c"; else exec 8>&-; fi # both close the session
    wait "$c" 2>/dev/null || true
    sleep 15 # > the session timeout (10 s): a session expiry would have come too
    local serving=0 i states=""
    for i in 1 2 3; do
        local m
        m=$(four "2271$i" srvr | awk '/^Mode:/ { print $2 }')
        states+="s$i=${m:-down} "
        [ -n "$m" ] && serving=$((serving + 1))
    done
    local err
    err=$(cat "$DIR"/s?/zk.log | grep -o 'Unreasonable length = [0-9]*' | head -1 || true)
    row session "$label" "$n tasks in 1 session, closed: ensemble +15 s" "$([ $serving -ge 2 ] && echo serves || echo DOWN)" \
        "$states; closeSession ~$txn B; ${err:-no length error}"
    if [ $serving -lt 2 ]; then
        # Does a restart bring it back? (Not while a server's log holds the oversize txn.)
        for i in 1 2 3; do srv_kill "s$i"; done
        ens_start "$@"
        local ok=yes
        wait_quorum 60 || ok=no
        row session "$label" "all 3 restarted: quorum within 60 s" "$ok" \
            "$(grep -l 'Unable to load database on disk' "$DIR"/s?/zk.log | wc -l) of 3 logs say 'Unable to load database on disk'"
    fi
    for i in 1 2 3; do srv_kill "s$i"; done
    rm -rf "$DIR"/s1 "$DIR"/s2 "$DIR"/s3
}
phase_session() {
    local long
    long=client-$(printf 'x%.0s' $(seq 100)) # a valid 107-character client id (ids <= 119)
    session_case 10000 product client-0000abcd "taskfarm client, default id (24-char task ids)"
    session_case 10000 product "$long" "taskfarm client --id of 107 chars"
    session_case 30000 kazoo client-0000abcd "kazoo client (zk_queue_limits.py), 24-char ids"
    session_case 10000 product "$long" "same, servers -Djute.maxbuffer=4MiB" -Djute.maxbuffer=4194304
}

# ---------------------------------------------------------------------------------------------
# Fill until the server dies (zkServer.sh's -XX:OnOutOfMemoryError='kill -9 %p'), or the time
# cap (BREAK_SECS, default 300). The backlog held is read from the server (mntr) every 0.5 s.
break_case() { # HEAPLABEL PAYLOAD PER_MULTI [JVM flags...]
    local hl=$1 payload=$2 pm=$3 P=22702 name=brk
    shift 3
    rm -rf "${DIR:?}/$name"
    srv_conf $name $P
    srv_start $name "$@"
    wait_mode $P 60 >/dev/null
    init_chroot 127.0.0.1:$P
    local base t0 last=0 why="time cap" f
    base=$(mntr $P zk_znode_count)
    t0=$(date +%s)
    "$PY" "$HELPER" fill 127.0.0.1:$P/tql 50000000 --payload "$payload" --per-multi "$pm" \
        --client-id client-1a2b3c4d --session-timeout 10 >"$DIR/fill.out" 2>&1 &
    f=$!
    OTHER_PIDS+=("$f")
    while kill -0 "${SRV_PID[$name]}" 2>/dev/null && [ $(($(date +%s) - t0)) -lt "${BREAK_SECS:-300}" ]; do
        local c
        c=$(mntr $P zk_znode_count)
        [ -n "$c" ] && last=$(((c - base) / 2))
        if ! kill -0 $f 2>/dev/null; then why="filler stopped: $(tail -c 200 "$DIR/fill.out")"; break; fi
        if [ "$(df --output=avail -k "$DIR" | tail -1)" -lt $((${DISK_MIN_GB:-4} * 1000000)) ]; then why="stopped: <${DISK_MIN_GB:-4} GB disk left"; break; fi
        sleep 0.5
    done
    local secs_run=$(($(date +%s) - t0))
    kill $f 2>/dev/null || true
    wait $f 2>/dev/null || true
    sleep 1
    local alive=died
    kill -0 "${SRV_PID[$name]}" 2>/dev/null && alive=alive
    [ $alive = died ] && why="server killed by -XX:OnOutOfMemoryError after ${secs_run} s"
    local gcmax nfull oom
    gcmax=$(awk '/Pause/ && $NF ~ /ms$/ { v = $NF; sub(/ms/, "", v); if (v + 0 > m) m = v + 0 } END { printf "%.0f", m }' "$DIR/$name/gc.log" 2>/dev/null || true)
    nfull=$(grep -c 'Pause Full' "$DIR/$name/gc.log" 2>/dev/null || true)
    oom=$(grep -m1 -o 'java.lang.OutOfMemoryError[^"]*' "$DIR/$name/zk.log" | head -1 | cut -c1-60 || true)
    row break "$hl, $payload tasks" "largest backlog held" "$last tasks" \
        "$why; ${oom:-no OOM}; longest GC pause ${gcmax:-?} ms, ${nfull:-0} full GCs; $(disk $name)"
    local need avail
    need=$(du -sk "$DIR/$name/data" | cut -f1)
    avail=$(df --output=avail -k "$DIR" | tail -1)
    if [ "$alive" = died ] && [ "$avail" -lt $((need + ${DISK_MIN_GB:-4} * 1000000)) ]; then
        # A restarted standalone server writes a full snapshot before it serves: it needs about
        # the database's size of free disk again.
        row break "$hl, $payload tasks" "restart with the same heap" skipped \
            "not enough free disk for its startup snapshot ($((avail / 1000000)) GB free, db $((need / 1000000)) GB)"
    elif [ "$alive" = died ]; then
        srv_kill $name
        srv_start $name "$@"
        local mode
        mode=$(wait_mode $P 300 "${SRV_PID[$name]}" || true)
        row break "$hl, $payload tasks" "restart with the same heap" "$mode" \
            "after $(secs "$STARTED" "$(now)") s; $(last_start_log $name | grep -m1 -o 'OutOfMemoryError[^"]*' | cut -c1-60 || true)"
    else
        row break "$hl, $payload tasks" "server heap after GC" "$(heap_used_mb "${SRV_PID[$name]}") MiB"
    fi
    srv_kill $name
    rm -rf "${DIR:?}/$name"
}
phase_break() {
    break_case "chart -Xmx256m" large 1 -Xmx256m
    break_case "upstream -Xmx1000m" large 1 -Xmx1000m
    break_case "chart -Xmx256m" small 50 -Xmx256m
    break_case "upstream -Xmx1000m" small 50 -Xmx1000m
}
phase_break-debian() {
    # No -Xmx: the JVM's default, 1/4 of physical memory (the Debian package sets no heap).
    row break "Debian default heap" "JVM MaxHeapSize" "$(java -XX:+PrintFlagsFinal -version 2>/dev/null | awk '$2 == "MaxHeapSize" { printf "%.0f MiB", $4 / 1048576 }')"
    break_case "Debian default heap" large 1
}

echo "zk-queue-limits: phases ${PHASES[*]}; work dir $DIR; load $(cut -d' ' -f1-3 /proc/loadavg)"
for ph in "${PHASES[@]}"; do
    echo "== phase $ph ($(date +%T))"
    "phase_$ph"
done
