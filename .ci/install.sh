#!/usr/bin/env bash
# Installs the system packages taskfarm's tests need: ZooKeeper (Debian's package, 3.8) and Java.
set -euo pipefail
need_apt=()
[ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
command -v java >/dev/null || need_apt+=(default-jre-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The Debian package starts nothing by itself here, but make sure no system ZooKeeper holds 2181.
command -v rustup >/dev/null && rustup component list --installed 2>/dev/null | grep -q clippy || true
java -version 2>&1 | head -1
ls /usr/share/java/zookeeper.jar
