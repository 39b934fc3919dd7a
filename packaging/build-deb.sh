#!/usr/bin/env bash
# Builds felhom-guest_<version>_all.deb: the compiled agent with the production dependencies it runs, the
# systemd unit, the example config, the documentation, a manual page, the changelog and the licences of
# everything shipped. Runs on the guest's Debian (13, Node 20 from Debian).
#
#   bash packaging/build-deb.sh [OUT_DIR]  # → OUT_DIR (default dist)/felhom-guest_<version>_all.deb
#
# Needs node and npm (Debian: apt install nodejs npm). On a fresh clone it runs `npm ci` first: the build
# needs tsc, a devDependency. The package depends on Debian's nodejs (>= 20.19); the agent has no native
# modules, so "all" is honest.
#
# Reproducible: SOURCE_DATE_EPOCH (default: the date of the newest packaging/changelog entry, as
# dpkg-buildpackage does) sets every timestamp; file order, modes and owners do not depend on the machine.
# Prints the .deb's path on stdout, and its installed size on stderr.
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "${BASH_SOURCE[0]}")/../dist}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
umask 022
version=$(node -p 'require("./package.json").version')
changelog_version=$(sed -n '1s/^felhom-guest (\([^)]*\)).*/\1/p' packaging/changelog)
if [ "$version" != "$changelog_version" ]; then
  echo "build-deb: package.json says $version, packaging/changelog $changelog_version: add a changelog entry" >&2
  exit 1
fi
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(date -d "$(sed -n 's/^ -- .*>  //p' packaging/changelog | head -1)" +%s)}"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

if [ ! -x node_modules/.bin/tsc ]; then npm ci --no-audit --no-fund >/dev/null; fi
lib="$stage/usr/lib/felhom-guest"
doc="$stage/usr/share/doc/felhom-guest"
mkdir -p "$lib" "$stage/usr/bin" "$stage/usr/lib/systemd/system" "$stage/DEBIAN" "$doc/examples" \
  "$stage/usr/share/man/man1"
# Compiled fresh for the package, not copied from dist/: a module deleted from the source must not live on in
# the package from an older build. tsconfig.build.json emits no source maps or declarations; it compiles the
# agent and the protocol sources it imports (not protocol/scripts, a development tool), which ship as the
# workspace package @felhom/protocol: its package.json and that JavaScript as its dist/ (what its exports
# name), linked into node_modules by the `npm ci` below as in the repo. protocol/dist is left alone: tests
# build the package there while this runs.
build="$stage/build"
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$build"
mv "$build/agent" "$lib/agent"
mkdir -p "$lib/protocol"
mv "$build/protocol" "$lib/protocol/dist"
cp protocol/package.json "$lib/protocol/"
rmdir "$build"
cp package.json package-lock.json "$lib/"
# package.json's overrides point ssh2 at this stand-in (docker-modem loads ssh2 for ssh:// hosts, never used):
# npm ci links it from here, so it ships beside node_modules.
mkdir -p "$lib/packaging" && cp -r packaging/no-ssh2 "$lib/packaging/"
# Production dependencies only, without install scripts (no native addon is needed) and without optional
# ones (none runs: the native ones were ssh2's, which the stand-in above replaces).
(cd "$lib" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund >/dev/null &&
  rm package-lock.json)
# The licences of what ships, read from the packages before their licence files are pruned below.
node packaging/copyright.mjs "$lib" "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)" >"$doc/copyright"
# Only what runs ships: every megabyte is paid by thousands of guests. Out go the dependencies' tests,
# benchmarks, docs and examples, their TypeScript sources and declarations (zod ships its src/), source maps,
# the browser builds, zod's v3 API (the agent imports zod v4), their licence files (in copyright above) and
# their development dotfiles (.npmignore, .eslintrc, .gitattributes: lintian's errors), and the C++ sources
# of addons that are never built (--ignore-scripts). package.json files stay: Node resolves through them.
# The ssh2 stand-in is a link to ../packaging/no-ssh2, which find does not follow: it ships whole.
nm="$lib/node_modules"
find "$nm" -depth -type d \( -name test -o -name tests -o -name __tests__ -o -name benchmarks -o -name bench \
  -o -name docs -o -name example -o -name examples -o -name browser -o -name '.?*' \) \
  -exec rm -rf {} +
rm -rf "$nm/zod/src" "$nm/zod/v3"
find "$nm" -type f \( -name '*.ts' -o -name '*.d.cts' -o -name '*.d.mts' -o -name '*.map' -o -name '*.md' \
  -o -name '*.markdown' -o -name '*.html' -o -name '.*' -o -iname 'licen[cs]e*' -o -iname 'copying*' \
  -o -name 'Makefile' -o -name '*.gyp' -o -name '*.gypi' -o -name '*.c' -o -name '*.cc' -o -name '*.h' -o -name '*.yml' -o -name '*.yaml' -o -name 'tsconfig*.json' -o -name '*.tsbuildinfo' \) \
  -delete
find "$nm" -depth -type d -empty -delete
# V8 flags for a small resident set (packaging/node-flags), measured in the daemon bench (README, "The daemon's
# idle resident set"): the agent idles in thousands of small containers and is never CPU-bound.
# --max-semi-space-size=1     a 1 MiB young generation instead of 16 MiB
# --optimize-for-size --no-opt  size over speed; no optimising compiler for JavaScript
# --liftoff-only              WebAssembly (undici's HTTP parser) left to its baseline compiler: tiering it up
#                             cost 1.4 MiB idle and more after a backup
# --bytecode-old-age=1 --flush-baseline-code  bytecode (and baseline code) of a function that did not run
#                             since the last full collection is dropped at the next; the daemon runs a few full
#                             collections once idle (agent/lib/heap-settle.ts), so what its start-up or a backup
#                             ran does not stay resident (0.5-2.0 MiB idle in probes); run again, it is compiled again
# Not here: --no-icu-timezone-data (0.7 MiB less) reads the zone through the C library, but V8's code for that
# takes every daylight-saving change for an hour: Lord Howe's half-hour change came out 30 minutes wrong.
node_flags=$(cat packaging/node-flags)
cat >"$stage/usr/bin/felhom-guest" <<SH
#!/bin/sh
exec /usr/bin/node $node_flags /usr/lib/felhom-guest/agent/cli/main.js "\$@"
SH
chmod 755 "$stage/usr/bin/felhom-guest"
# main.js is run through /usr/bin/felhom-guest, never on its own: no #! line is needed, and without the
# executable bit lintian does not ask for one.
sed -i '1{/^#!/d}' "$lib/agent/cli/main.js"
# Debian 13 ships units under /usr/lib (the /usr merge); /lib is a symlink to it.
cp packaging/felhom-guest.service "$stage/usr/lib/systemd/system/"
cp packaging/agent.example.yaml "$doc/examples/agent.yaml"
cp README.md docs/*.md "$doc/"
gzip -9n <packaging/changelog >"$doc/changelog.gz"
gzip -9n <packaging/felhom-guest.1 >"$stage/usr/share/man/man1/felhom-guest.1.gz"
# What apt shows as the installed size, in KiB (dpkg-deb does not compute it).
installed_kib=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CTRL
Package: felhom-guest
Version: $version
Installed-Size: $installed_kib
Architecture: all
Maintainer: Felhom <ops@felhom.invalid>
Depends: nodejs (>= 20.19)
Recommends: docker.io | docker-ce, docker-compose-v2 | docker-compose-plugin | docker-compose
Section: admin
Priority: optional
Description: app-consistent self-backups for a Proxmox LXC guest
 Quiesces the guest's Docker compose stacks, vzdumps the guest through the
 Proxmox API with a self-scoped token, resumes the stacks as soon as the
 storage snapshot exists, and reports to the Felhom hub.
CTRL
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) \
  >"$stage/DEBIAN/md5sums"
for script in postinst prerm postrm; do install -m 755 "packaging/$script" "$stage/DEBIAN/$script"; done
# Same modes and times on every machine: files 0644 (0755 where executable), everything at SOURCE_DATE_EPOCH.
find "$stage" -type d -exec chmod 755 {} +
find "$stage" -type f ! -perm -u+x -exec chmod 644 {} +
find "$stage" -type f -perm -u+x -exec chmod 755 {} +
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb="$out/felhom-guest_${version}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "build-deb: installed size $installed_kib KiB, $(find "$stage" -type f -not -path '*/DEBIAN/*' | wc -l) files" >&2
echo "$deb"
