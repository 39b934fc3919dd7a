#!/usr/bin/env bash
# Runs a command on another Docker platform than the main one (setup.sh's Debian 13 engine 26 with compose v2
# and the classic image store):
#
#   bash test/docker/leg.sh debian12 COMMAND…          Debian 12's docker.io 20.10 (API 1.41) with compose v1
#                                                     1.29: the older platform the agent still supports
#   bash test/docker/leg.sh containerd-store COMMAND…  Debian 13's engine with the containerd image store, as
#                                                     on current Docker (29 and later) hosts
#
# e.g. bash test/docker/leg.sh debian12 npx vitest run --project docker test/quiesce/quiesce.docker.test.ts
#
# How the platforms share one machine: the leg's dockerd runs beside the main one, which is left alone, in
# namespaces of its own made for this command: a network namespace (its own docker0 and iptables, only
# loopback and a stand-in eth0, so the daemons never touch each other's bridges), a mount namespace with a
# private /run (its own /var/run/docker.sock), and a PID namespace, so that its dockerd, containers and the
# command all end with the command, also when the run is cancelled. Its data root is its own. The local images
# come from the main engine (`docker save` / `docker load`: the namespace has no network to build them).
# debian12: Debian 12's packages are unpacked under /opt, never installed (the machine's docker.io stays Debian
# 13's); the command sees no compose v2 plugin and the 20.10 client, and gets FELHOM_COMPOSE_LEG=v1.
set -euo pipefail
unset DOCKER_HOST # the main engine to save images from is the machine's own, at the default socket
LEG=${1:-}
shift || true
case "$LEG" in debian12 | containerd-store) ;; *)
  echo "usage: $0 debian12|containerd-store COMMAND [ARGS...]" >&2
  exit 64
  ;;
esac
[ $# -gt 0 ] || { echo "usage: $0 $LEG COMMAND [ARGS...]" >&2; exit 64; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive
OPT=/opt/felhom-legacy-docker
ROOT=$OPT/root
CACHE=/var/cache/felhom-docker-legs
t0=$SECONDS; step() { echo "[docker-$LEG +$((SECONDS - t0))s] $*" >&2; }

# 1. debian12: Debian 12's engine and compose v1, unpacked; compose v1's Python libraries are ordinary
#    Debian 12 packages and are installed (trixie is pinned below them, see setup.sh).
PYDEPS="python3 python3-cached-property python3-distro python3-docker python3-dockerpty python3-docopt
  python3-dotenv python3-jsonschema python3-requests python3-texttable python3-websocket python3-yaml
  python3-distutils python3-pkg-resources"
if [ "$LEG" = debian12 ] && [ ! -x "$OPT/bin/docker-compose" ]; then
  step "unpacking Debian 12's docker.io 20.10 and docker-compose 1.29 into $OPT"
  apt-get update -q >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $PYDEPS >/dev/null
  DL=$(mktemp -d); chmod 755 "$DL"
  (cd "$DL" && apt-get download -q docker.io/bookworm docker-compose/bookworm >/dev/null 2>&1)
  rm -rf "$OPT"; mkdir -p "$ROOT" "$OPT/bin" "$OPT/no-plugins"
  for deb in "$DL"/*.deb; do dpkg -x "$deb" "$ROOT"; done
  rm -rf "$DL"
  ln -s "$ROOT/usr/bin/docker" "$OPT/bin/docker"
  cat >"$OPT/bin/docker-compose" <<WRAP
#!/bin/sh
# Debian 12's docker-compose 1.29, unpacked: its Python package lives under $ROOT.
PYTHONPATH=$ROOT/usr/lib/python3/dist-packages exec /usr/bin/python3 $ROOT/usr/bin/docker-compose "\$@"
WRAP
  chmod +x "$OPT/bin/docker-compose"
fi

# 2. The local images, saved from the main engine once per set of image ids.
bash "$HERE/setup.sh" >&2
IMAGES="local/busybox:1.35 local/debian:bookworm local/postgres:15 local/node:20"
# shellcheck disable=SC2086
ids=$(/usr/bin/docker image inspect -f '{{.Id}}' $IMAGES | sha256sum | cut -c1-16)
TAR="$CACHE/images-$ids.tar"
if [ ! -f "$TAR" ]; then
  step "docker save of the local images for the leg's engine"
  rm -rf "$CACHE"; mkdir -p "$CACHE"
  # shellcheck disable=SC2086
  /usr/bin/docker save -o "$TAR.part" $IMAGES && mv "$TAR.part" "$TAR"
fi

# 3. The engine and the command, inside their own namespaces.
step "starting the leg's dockerd in its own network, mount and PID namespaces"
# --kill-child: a cancelled run (CI's timeout, Ctrl-C) takes the namespace's init, and with it everything in
# the namespace, down too.
exec unshare --mount --net --pid --fork --kill-child --mount-proc --propagation private -- /bin/bash -c '
  set -euo pipefail
  LEG=$1 OPT=$2 ROOT=$3 TAR=$4 IMAGES=$5; shift 5
  ip link set lo up
  # The guest'"'"'s eth0, before dockerd adds docker0 and the veths that come and go with containers: the
  # tests'"'"' PVE guest takes the first MAC here as its own (TEST-NET-1 address; nothing is ever sent to it).
  ip link add eth0 type veth peer name eth0-peer
  ip link set eth0 address 02:fc:00:00:10:01
  ip addr add 192.0.2.2/24 dev eth0
  ip link set eth0-peer up && ip link set eth0 up
  mount -t tmpfs -o mode=755 tmpfs /run
  DATA=/var/lib/felhom-docker-$LEG
  mkdir -p "$DATA"
  if [ "$LEG" = debian12 ]; then
    mkdir -p /usr/libexec/docker/cli-plugins
    mount --bind "$OPT/no-plugins" /usr/libexec/docker/cli-plugins
    mount --bind "$ROOT/usr/bin/docker" /usr/bin/docker
    PATH="$ROOT/usr/sbin:$ROOT/usr/bin:$PATH" "$ROOT/usr/sbin/dockerd" --data-root "$DATA" \
      >/var/log/felhom-$LEG-dockerd.log 2>&1 &
  else
    echo "{\"features\": {\"containerd-snapshotter\": true}}" >/run/felhom-daemon.json
    /usr/sbin/dockerd --config-file /run/felhom-daemon.json --data-root "$DATA" \
      >/var/log/felhom-$LEG-dockerd.log 2>&1 &
  fi
  dockerd=$!
  # Whatever the command left running goes, and dockerd shuts down cleanly, before the namespace ends (its
  # data root is kept: a container left with a restart policy would come back at the next run).
  stop_engine() {
    rc=$?
    ids=$(/usr/bin/docker ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || /usr/bin/docker rm -f -v $ids >/dev/null 2>&1 || true
    kill "$dockerd" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$dockerd" 2>/dev/null || break; sleep 0.25; done
    exit $rc
  }
  trap stop_engine EXIT
  for _ in $(seq 1 240); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.25; done
  /usr/bin/docker info >/dev/null || { tail -50 "/var/log/felhom-$LEG-dockerd.log"; exit 1; }
  # The images of this tarball (named by the main images'"'"' ids), loaded once per tarball.
  LOADED=$DATA/.felhom-images
  if [ "$(cat "$LOADED" 2>/dev/null)" != "$TAR" ]; then
    /usr/bin/docker load -q -i "$TAR" >/dev/null
    echo "$TAR" >"$LOADED"
  fi
  # The storage driver tells the image stores apart: overlay2 (classic), overlayfs (containerd snapshotter).
  engine=$(/usr/bin/docker info --format "engine {{.ServerVersion}}, storage driver {{.Driver}}")
  if [ "$LEG" = debian12 ]; then
    echo "[docker-$LEG] ready: $engine, $("$OPT/bin/docker-compose" version --short | sed "s/^/docker-compose /")" >&2
    env PATH="$OPT/bin:$PATH" FELHOM_COMPOSE_LEG=v1 "$@"
  else
    echo "[docker-$LEG] ready: $engine, $(/usr/bin/docker compose version)" >&2
    "$@"
  fi
' leg "$LEG" "$OPT" "$ROOT" "$TAR" "$IMAGES" "$@"
