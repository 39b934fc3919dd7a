#!/usr/bin/env bash
# Builds felhom-guest_<version>_all.deb: the compiled agent with its production dependencies, the
# systemd unit and the example config. Runs on the guest's Debian (13, Node 20 from Debian).
#
#   bash packaging/build-deb.sh [OUT_DIR]  # → OUT_DIR (default dist)/felhom-guest_<version>_all.deb
#
# Needs node and npm (Debian: apt install nodejs npm). On a fresh clone it runs `npm ci` first: the build
# needs tsc, a devDependency. The package depends on Debian's nodejs (>= 20.19); the agent has no native
# modules, so "all" is honest.
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "${BASH_SOURCE[0]}")/../dist}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=$(node -p 'require("./package.json").version')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

if [ ! -x node_modules/.bin/tsc ]; then npm ci --no-audit --no-fund >/dev/null; fi
lib="$stage/usr/lib/felhom-guest"
mkdir -p "$lib" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/felhom-guest" "$stage/DEBIAN" \
  "$stage/usr/share/doc/felhom-guest"
# Compiled straight into the package, not copied from dist/: a module deleted from the source must not live
# on in the package from an older build. tsconfig.build.json emits no source maps or declarations and leaves
# out protocol/scripts (a development tool).
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$lib"
cp package.json package-lock.json "$lib/"
# package.json's overrides point ssh2 at this stand-in (docker-modem loads ssh2 for ssh:// hosts, never used):
# npm ci links it from here, so it ships beside node_modules.
mkdir -p "$lib/packaging" && cp -r packaging/no-ssh2 "$lib/packaging/"
# Production dependencies only, without install scripts (none is needed: no native addons are used).
(cd "$lib" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null && rm package-lock.json)
# Every megabyte is paid by thousands of guests: type declarations, source maps and docs do not run.
find "$lib/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' -o -name '*.map' -o -name '*.md' \) -delete
# V8 flags for a small resident set (packaging/node-flags: a 1 MiB young generation instead of 16 MiB, and
# size over speed): the agent idles in thousands of small containers and is never CPU-bound.
node_flags=$(cat packaging/node-flags)
cat >"$stage/usr/bin/felhom-guest" <<SH
#!/bin/sh
exec /usr/bin/node $node_flags /usr/lib/felhom-guest/agent/cli/main.js "\$@"
SH
chmod 755 "$stage/usr/bin/felhom-guest"
cp packaging/felhom-guest.service "$stage/lib/systemd/system/"
cp packaging/agent.example.yaml "$stage/etc/felhom-guest/agent.yaml.example"
cp README.md "$stage/usr/share/doc/felhom-guest/"
# What apt shows as the installed size, in KiB (dpkg-deb does not compute it).
installed_kib=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CTRL
Package: felhom-guest
Version: $version
Installed-Size: $installed_kib
Architecture: all
Maintainer: Felhom <ops@felhom.invalid>
Depends: nodejs (>= 20.19)
Recommends: docker.io | docker-ce
Section: admin
Priority: optional
Description: app-consistent self-backups for a Proxmox LXC guest
 Quiesces the guest's Docker compose stacks, vzdumps the guest through the
 Proxmox API with a self-scoped token, resumes the stacks as soon as the
 storage snapshot exists, and reports to the Felhom hub.
CTRL
printf '/etc/felhom-guest/agent.yaml.example\n' >"$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do install -m 755 "packaging/$script" "$stage/DEBIAN/$script"; done
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$stage" "$out/felhom-guest_${version}_all.deb" >/dev/null
echo "$out/felhom-guest_${version}_all.deb"
