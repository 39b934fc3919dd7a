#!/usr/bin/env bash
# Makes a real Docker engine, compose and the local test images available on a fresh Debian 12
# machine of the project's kind (root, no image registry reachable, Debian's mirror reachable).
# Idempotent: skips whatever is already installed, running or built (under a second when warm).
# Adapted from the shared docker-ci recipe; the project must stand on its own, so it lives here.
#
# Writes /run/felhom-dockerd.pid only when it started dockerd itself, so that .ci/run stops
# exactly what it started and never a daemon somebody else runs.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive
MIRROR=http://deb.debian.org/debian
PIDFILE=/run/felhom-dockerd.pid
t0=$SECONDS; step() { echo "[docker-setup +$((SECONDS - t0))s] $*"; }

# 1. packages: engine 20.10 (API 1.41), compose v1, debootstrap for the base image, and what the
#    PVE simulator needs for constant-time guest snapshots (btrfs on a loop device) and archives (zstd).
PKGS="docker.io docker-compose debootstrap busybox-static btrfs-progs zstd"
if ! (for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || exit 1; done); then
  step "apt-get install $PKGS"
  apt-get update -q
  apt-get install -y -q --no-install-recommends $PKGS
fi
# Debian's client in /usr/bin must win over any other docker client on PATH (API version match).
DOCKER=/usr/bin/docker

# 2. the daemon (no systemd on these machines). Never start a second dockerd: it tears down the
#    first one's docker0 bridge.
if ! $DOCKER info >/dev/null 2>&1; then
  if pgrep -x dockerd >/dev/null; then
    step "dockerd is running but not answering yet; waiting"
  else
    step "starting dockerd"
    nohup /usr/sbin/dockerd >/var/log/felhom-dockerd.log 2>&1 &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 240); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.25; done
  $DOCKER info >/dev/null || { tail -50 /var/log/felhom-dockerd.log 2>/dev/null; exit 1; }
fi

# 3. `docker compose …` → Debian's docker-compose v1 (no compose v2 in bookworm or on npm). Production
#    guests have the real v2 plugin; the agent handles both.
PLUG=/usr/local/lib/docker/cli-plugins/docker-compose
if [ ! -x "$PLUG" ]; then
  mkdir -p "$(dirname "$PLUG")"
  cat >"$PLUG" <<'SHIM'
#!/bin/sh
if [ "$1" = "docker-cli-plugin-metadata" ]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"local shim","Version":"1.29.2","ShortDescription":"Debian docker-compose v1"}'; exit 0
fi
[ "$1" = "compose" ] && shift
exec /usr/bin/docker-compose "$@"
SHIM
  chmod +x "$PLUG"
fi

# 4. base images, made without a registry
if ! $DOCKER image inspect local/busybox:1.35 >/dev/null 2>&1; then
  step "local/busybox:1.35"
  R=$(mktemp -d); mkdir -p "$R"/{bin,etc,tmp,proc,sys,dev}
  cp /bin/busybox "$R/bin/"; chroot "$R" /bin/busybox --install -s /bin
  echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
  tar -C "$R" -c . | $DOCKER import -c 'CMD ["/bin/sh"]' - local/busybox:1.35 >/dev/null
  rm -rf "$R"
fi
if ! $DOCKER image inspect local/debian:bookworm >/dev/null 2>&1; then
  step "debootstrap bookworm minbase"
  R=$(mktemp -d)/rootfs
  debootstrap --variant=minbase bookworm "$R" "$MIRROR" >/var/log/felhom-debootstrap.log 2>&1 \
    || { tail -30 /var/log/felhom-debootstrap.log; exit 1; }
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" >"$R/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"
  rm -rf "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/info/*
  step "docker import local/debian:bookworm"
  tar --numeric-owner -C "$R" -c . | $DOCKER import -c 'CMD ["/bin/bash"]' - local/debian:bookworm >/dev/null
  rm -rf "$(dirname "$R")"
fi
if ! $DOCKER image inspect local/postgres:15 >/dev/null 2>&1; then
  step "docker build local/postgres:15"
  $DOCKER build -q -t local/postgres:15 "$HERE/images/postgres" 2>&1 | grep -v -i -E 'deprecat|buildx|^ *$|install the buildx' || true
  $DOCKER image inspect local/postgres:15 >/dev/null
fi
if ! $DOCKER image inspect local/node:20 >/dev/null 2>&1; then
  step "docker build local/node:20 (this machine's node binary on the Debian base)"
  D=$(mktemp -d); cp "$(readlink -f "$(command -v node)")" "$D/node"
  printf 'FROM local/debian:bookworm\nCOPY node /usr/local/bin/node\nCMD ["node"]\n' >"$D/Dockerfile"
  $DOCKER build -q -t local/node:20 "$D" >/dev/null 2>&1; rm -rf "$D"
  $DOCKER image inspect local/node:20 >/dev/null
fi
step "ready: $($DOCKER version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
