#!/usr/bin/env bash
# Installs the system packages taskfarm's tests need: ZooKeeper (Debian's package, 3.8) and Java.
set -euo pipefail
need_apt=()
[ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
command -v java >/dev/null || need_apt+=(default-jre-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing ${need_apt[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
java -version 2>&1 | head -1
ls /usr/share/java/zookeeper.jar
