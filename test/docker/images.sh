#!/usr/bin/env bash
# The local test images, made without a registry, on the engine that $DOCKER talks to (setup.sh's main
# engine; test/docker/leg.sh copies them to its engines). Idempotent: an image that exists is kept.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DOCKER=${DOCKER:-/usr/bin/docker}
MIRROR=http://deb.debian.org/debian
t0=$SECONDS; step() { echo "[docker-images +$((SECONDS - t0))s] $*"; }

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
# `docker build` without BuildKit: Debian's engine has no buildx plugin and the legacy builder is what
# both engines share.
export DOCKER_BUILDKIT=0
if ! $DOCKER image inspect local/postgres:15 >/dev/null 2>&1; then
  step "docker build local/postgres:15"
  $DOCKER build -q -t local/postgres:15 "$HERE/images/postgres" 2>&1 | grep -v -i -E 'deprecat|buildx|buildkit|environment-variable|^sha256:|^ *$|install the buildx' || true
  $DOCKER image inspect local/postgres:15 >/dev/null
fi
if ! $DOCKER image inspect local/node:20 >/dev/null 2>&1; then
  step "docker build local/node:20 (this machine's node binary on the Debian base)"
  D=$(mktemp -d); cp "$(readlink -f "$(command -v node)")" "$D/node"
  printf 'FROM local/debian:bookworm\nCOPY node /usr/local/bin/node\nCMD ["node"]\n' >"$D/Dockerfile"
  $DOCKER build -q -t local/node:20 "$D" >/dev/null 2>&1; rm -rf "$D"
  $DOCKER image inspect local/node:20 >/dev/null
fi
