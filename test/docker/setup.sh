#!/usr/bin/env bash
# Makes the guests' Docker platform, and the local test images, available on a fresh Debian 12 machine of
# the project's kind (root, no image registry reachable, Debian's mirror reachable): Debian 13 (trixie)'s
# docker.io 26 with the compose v2 plugin, the engine and compose a Felhom guest really runs
# (platform-reference.md §1). trixie is pinned so that only the Docker packages come from it; their other
# dependencies (containerd, runc, iptables) are Debian 12's, which satisfy them.
# The older platform (Debian 12's engine 20.10 with compose v1) and the containerd image store are test/docker/leg.sh.
#
# Idempotent: skips whatever is already installed, running or built (under a second when warm). Never
# replaces a working compose v2, and removes only the compose v1 shim that earlier versions of this script
# installed (it shadowed the real plugin).
#
# Writes /run/felhom-dockerd.pid only when it started dockerd itself, so that .ci/run stops exactly what it
# started and never a daemon somebody else runs.
set -euo pipefail
# This script manages the machine's own engine at the default socket, whatever DOCKER_HOST says.
unset DOCKER_HOST
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive
MIRROR=http://deb.debian.org/debian
PIDFILE=/run/felhom-dockerd.pid
t0=$SECONDS; step() { echo "[docker-setup +$((SECONDS - t0))s] $*"; }
# One setup at a time (vitest's global setup, npm start, .ci/run and a test that restarts dockerd may all
# call it): two would race on dpkg and could start two daemons.
exec 9>/run/felhom-docker-setup.lock
flock 9
# dockerd of this network namespace only: a side leg's (leg.sh) runs in a namespace of its own.
dockerd_here() { pgrep --ns $$ --nslist net -x dockerd >/dev/null; }
installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# 0. The v1 shim of earlier versions of this script, found by its own vendor string only.
OLD_SHIM=/usr/local/lib/docker/cli-plugins/docker-compose
if [ -f "$OLD_SHIM" ] && grep -q '"Vendor":"local shim"' "$OLD_SHIM" 2>/dev/null; then
  step "removing the compose v1 shim of an earlier setup ($OLD_SHIM shadows the real plugin)"
  rm -f "$OLD_SHIM"
fi

# 1. Tools: debootstrap for the base image, and what the PVE simulator needs for constant-time guest
#    snapshots (btrfs on a loop device) and archives (zstd).
TOOLS="debootstrap busybox-static btrfs-progs zstd"
need_update=yes
apt_update() { if [ $need_update = yes ]; then apt-get update -q >/dev/null; need_update=no; fi; }
missing_tools=""
for p in $TOOLS; do installed "$p" || missing_tools="$missing_tools $p"; done
if [ -n "$missing_tools" ]; then
  step "apt-get install$missing_tools"
  apt_update
  apt-get install -y -q --no-install-recommends $missing_tools >/dev/null
fi

pin_trixie() {
  cat >/etc/apt/sources.list.d/felhom-trixie.sources <<SRC
Types: deb
URIs: $MIRROR
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/felhom-trixie <<'PIN'
# felhom-guest tests: only Debian 13's Docker packages come from trixie, the rest stays Debian 12.
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: docker.io docker-cli docker-compose
Pin: release n=trixie
Pin-Priority: 990
PIN
}

# 2. The engine and compose v2. A machine whose engine already answers with a compose v2 plugin keeps it
#    (whatever its origin); otherwise Debian 13's packages, pinned.
compose_v2_works() { /usr/bin/docker compose version --short 2>/dev/null | grep -Eq '^v?2\.'; }
engine_is_trixie() { dpkg-query -W -f='${Version}' docker.io 2>/dev/null | grep -Eq '^2[6-9]\.'; }
if ! { engine_is_trixie && installed docker-cli && compose_v2_works; }; then
  if [ -x /usr/bin/docker ] && /usr/bin/docker info >/dev/null 2>&1 && compose_v2_works \
    && ! installed docker.io; then
    step "keeping the running engine and its compose v2 plugin (not Debian's)"
  else
    . /etc/os-release
    if [ "${VERSION_CODENAME:-}" = trixie ]; then
      step "apt: docker.io, docker-cli and docker-compose (this machine is Debian 13 itself)"
    else
      step "apt: docker.io, docker-cli and docker-compose from Debian 13 (trixie, pinned)"
      pin_trixie
    fi
    need_update=yes; apt_update
    # A dockerd of the old engine must not keep running from deleted binaries.
    if dockerd_here && [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      for _ in $(seq 1 80); do dockerd_here || break; sleep 0.25; done
      rm -f "$PIDFILE"
    fi
    apt-get install -y -q --no-install-recommends docker.io docker-cli docker-compose >/dev/null
  fi
fi
# Debian's client in /usr/bin must win over any other docker client on PATH (API version match).
DOCKER=/usr/bin/docker

# 3. the daemon (no systemd on these machines). Never start a second dockerd: it tears down the
#    first one's docker0 bridge.
if ! $DOCKER info >/dev/null 2>&1; then
  if dockerd_here; then
    step "dockerd is running but not answering yet; waiting"
  else
    step "starting dockerd"
    # 9>&-: the daemon must not inherit (and hold forever) the setup lock.
    nohup /usr/sbin/dockerd >/var/log/felhom-dockerd.log 2>&1 9>&- &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 240); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.25; done
  $DOCKER info >/dev/null || { tail -50 /var/log/felhom-dockerd.log 2>/dev/null; exit 1; }
fi

# The engine that answers must be the one installed: an old dockerd this script did not start would keep
# serving from the replaced binaries, and the tests would run on it.
server=$($DOCKER version --format '{{.Server.Version}}')
if installed docker.io && [ "$server" != "$(/usr/sbin/dockerd --version | sed -E 's/^Docker version ([^,]+),.*/\1/')" ]; then
  echo "the running dockerd serves engine $server, not the installed $(/usr/sbin/dockerd --version); stop it and run $0 again" >&2
  exit 1
fi

# 4. base images, made without a registry
DOCKER="$DOCKER" bash "$HERE/images.sh"
step "ready: engine $($DOCKER version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), $($DOCKER compose version)"
