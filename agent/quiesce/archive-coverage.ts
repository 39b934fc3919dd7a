import { posix } from "node:path";
import { type CtMountPoint, trimSlash } from "../pve/mount-points.ts";
import type { StackFacts } from "./stack-facts.ts";

/**
 * Is a container's data in the backup? Docker reports where each bind mount and volume lives in the
 * guest (a bind's source, a volume's mountpoint under the engine's data-root, /var/lib/docker/volumes by
 * default); PVE's CT config says which guest paths are mount points and whether vzdump archives them
 * (pve/mount-points.ts). The data is where the deepest mount point holding its path puts it: under a bind
 * mount point or a volume without backup=1 it is not in the archive, and a restore on another host comes
 * back without it. Pure: facts in, one answer per mount out.
 */
export interface MountCoverage {
  project: string;
  service: string;
  container: string;
  /** Docker's mount type: a bind mount or a (named or anonymous) volume. */
  type: "bind" | "volume";
  /** Where the data lives in the guest, as Docker reports it. */
  source: string;
  /** Where the container sees it. */
  destination: string;
  /** The volume's name, for a volume. */
  volume?: string;
  inArchive: boolean;
  /** What decides: the CT mount point the data lies on, or one of the causes below (then out). */
  cause: "mount point" | "standard exclude" | "guest mount" | "mounted volume" | "volume driver";
  /** Where the data really is when that is not `source`: a symlink resolved, a volume's bind `device`. */
  realPath?: string;
  /** The agent could not resolve `source` (not visible to it): judged as written. */
  unresolved?: true;
  /** The volume's driver or `type` option, for "mounted volume" and "volume driver". */
  volumeKind?: string;
  /** The CT mount point the data lies on; absent for a volume whose data is not in the guest. */
  mountPoint?: Pick<CtMountPoint, "key" | "path" | "type" | "reason">;
}

/** `docker volume inspect`: the driver and its options (`type`, `o`, `device` for `local`). */
export interface VolumeFacts {
  driver: string;
  options: Readonly<Record<string, string>>;
}

/** What the agent saw of a path in the guest (coverage-facts.ts). */
export interface PathFacts {
  /** fs.realpath of the path; undefined when it is not visible to the agent. */
  real: string | undefined;
  /** It lies on another file system than the CT mount point holding it: one mounted inside the guest. */
  foreignFs: boolean;
}

export interface CoverageFacts {
  volumes: ReadonlyMap<string, VolumeFacts>;
  paths: ReadonlyMap<string, PathFacts>;
}

export const NO_FACTS: CoverageFacts = { volumes: new Map(), paths: new Map() };

// vzdump's `stdexcludes` (on unless /etc/vzdump.conf turns it off; pve-guest-common VZDump/Common.pm
// confdesc, default 1): pve-manager VZDump.pm `new` adds '/tmp/?*', '/var/tmp/?*', '/var/run/?*.pid', which
// pve-container VZDump/LXC.pm `archive` anchors at the root (tar) and rsync_vm passes to rsync. Everything
// inside /tmp and /var/tmp is left out; of /var/run only pid files (and /var/run is a tmpfs anyway).
const STANDARD_EXCLUDES = [/^\/tmp\/./, /^\/var\/tmp\/./, /^\/var\/run\/[^/]+\.pid$/];

// Mounts that hold no application data: the kernel's and the runtime's (proc, sys, devices, /run with the
// Docker socket) are never judged; the guest's root and Docker's data-root bound read-only are what
// node-exporter or cAdvisor look at. A writable bind of / or /var/lib/docker is judged like any other.
const RUNTIME_PATHS = ["/proc", "/sys", "/dev", "/run", "/var/run"];
const READ_ONLY_SYSTEM_PATHS = ["/", "/var/lib/docker"];

const under = (path: string, dir: string) => path === dir || path.startsWith(`${dir === "/" ? "" : dir}/`);

/** The paths whose real location and file system the adapter should look at, for these stacks. */
export function pathsToResolve(stacks: readonly StackFacts[], volumes: CoverageFacts["volumes"]): string[] {
  const out = new Set<string>();
  for (const stack of stacks)
    for (const svc of stack.services)
      for (const m of svc.containers[0]?.mounts ?? []) {
        const device = m.type === "volume" && m.name ? bindDevice(volumes.get(m.name)) : undefined;
        if (device) out.add(device);
        else if ((m.type === "bind" || m.type === "volume") && m.source) out.add(m.source);
      }
  return [...out];
}

/** A `local` volume with `o=bind` and a `device`: the data is at the device path. */
function bindDevice(v: VolumeFacts | undefined): string | undefined {
  if (v?.driver !== "local" || !v.options.device) return undefined;
  const o = (v.options.o ?? "").split(",");
  return o.includes("bind") || o.includes("rbind") ? v.options.device : undefined;
}

export function mountCoverage(
  stacks: readonly StackFacts[],
  mountPoints: readonly CtMountPoint[],
  facts: CoverageFacts = NO_FACTS,
): MountCoverage[] {
  const out: MountCoverage[] = [];
  for (const stack of stacks) {
    for (const svc of stack.services) {
      const c = svc.containers[0];
      if (!c) continue;
      for (const m of c.mounts) {
        // tmpfs holds nothing to back up
        if (m.type !== "bind" && m.type !== "volume") continue;
        const base = {
          project: stack.project,
          service: svc.name,
          container: c.name,
          type: m.type as "bind" | "volume",
          source: m.source,
          destination: m.destination,
          ...(m.type === "volume" && m.name ? { volume: m.name } : {}),
        };
        const vol = m.type === "volume" && m.name ? facts.volumes.get(m.name) : undefined;
        const driver = vol?.driver ?? m.driver;
        if (m.type === "volume" && driver && driver !== "local") {
          out.push({ ...base, inArchive: false, cause: "volume driver", volumeKind: driver });
          continue;
        }
        const device = bindDevice(vol);
        const volType = vol?.options.type;
        if (!device && volType) {
          if (volType === "tmpfs") continue;
          // nfs, cifs or a block device: Docker mounts it over _data at each container start (the Mountpoint
          // it reports), so only the empty directory beneath is on the CT's volume. vzdump's snapshot and stop
          // modes mount the CT's volumes afresh (LXC.pm `prepare`), suspend mode rsyncs --one-file-system
          // (`rsync_vm`): neither sees the mount.
          out.push({ ...base, inArchive: false, cause: "mounted volume", volumeKind: volType });
          continue;
        }
        const written = device ?? m.source;
        if (!written) continue;
        const seen = facts.paths.get(written);
        const real = trimSlash(posix.normalize(seen?.real ?? written));
        if (m.type === "bind" && !device && holdsNoData(real, m.rw)) continue;
        const on = mountPointOf(real, mountPoints);
        if (!on) continue;
        const located = {
          ...base,
          ...(real !== trimSlash(posix.normalize(m.source)) ? { realPath: real } : {}),
          ...(seen && seen.real === undefined ? { unresolved: true as const } : {}),
          mountPoint: { key: on.key, path: on.path, type: on.type, reason: on.reason },
        };
        // a mount point that leaves the data out says so first (and is what the protocol's notInArchive carries)
        if (
          on.inBackup &&
          (STANDARD_EXCLUDES.some((re) => re.test(real)) || real === "/tmp" || real === "/var/tmp")
        ) {
          out.push({ ...located, inArchive: false, cause: "standard exclude" });
          continue;
        }
        if (on.inBackup && seen?.foreignFs) {
          out.push({ ...located, inArchive: false, cause: "guest mount" });
          continue;
        }
        out.push({ ...located, inArchive: on.inBackup, cause: "mount point" });
        // A mount point below the source is part of what the container sees, and may be left out on its own
        // (a bind of /srv with /srv/data a backup=0 volume): that part is its own answer.
        for (const below of mountPoints) {
          if (below.inBackup || below.path === real || !under(below.path, real)) continue;
          out.push({
            ...base,
            source: below.path,
            destination: posix.join(m.destination, posix.relative(real, below.path)),
            inArchive: false,
            cause: "mount point",
            mountPoint: { key: below.key, path: below.path, type: below.type, reason: below.reason },
          });
        }
      }
    }
  }
  return out;
}

function holdsNoData(path: string, rw: boolean | undefined): boolean {
  if (RUNTIME_PATHS.some((p) => under(path, p))) return true;
  return rw === false && READ_ONLY_SYSTEM_PATHS.some((p) => (p === "/" ? path === "/" : under(path, p)));
}

/** The deepest mount point whose path holds `path` (rootfs holds everything). */
export function mountPointOf(path: string, mountPoints: readonly CtMountPoint[]): CtMountPoint | undefined {
  const p = trimSlash(posix.normalize(path));
  let best: CtMountPoint | undefined;
  for (const mp of mountPoints) {
    const inside = mp.path === "/" || p === mp.path || p.startsWith(`${mp.path}/`);
    if (inside && (!best || mp.path.length > best.path.length)) best = mp;
  }
  return best;
}

/** "Is my data in the backup?": yes or no, with the reason, in one line. */
export function coverageText(c: MountCoverage): string {
  const at = `${c.source}${c.realPath ? ` → ${c.realPath}` : ""}${c.unresolved ? ", a path the agent cannot see, judged as written" : ""}`;
  const what = `${c.project}/${c.service}: ${c.destination} (${c.volume ? `volume ${c.volume} at ` : ""}${at})`;
  const gone = "restored on another host, it is gone";
  switch (c.cause) {
    case "volume driver":
      return `${what} is NOT in the backup: volume driver ${c.volumeKind} keeps its data outside the guest`;
    case "mounted volume":
      return `${what} is NOT in the backup: Docker mounts a ${c.volumeKind} file system there at container start, and vzdump archives the directory beneath it, empty`;
    case "standard exclude":
      return `${what} is NOT in the backup: vzdump leaves out everything in /tmp and /var/tmp (its standard excludes); ${gone}`;
    case "guest mount":
      return `${what} is NOT in the backup: it lies on a file system mounted inside the guest, which vzdump does not archive; ${gone}`;
  }
  const mp = c.mountPoint!;
  if (c.inArchive) {
    return mp.key === "rootfs"
      ? `${what} is in the backup: it lies on the CT's root file system`
      : `${what} is in the backup: it lies on mount point ${mp.key} ('${mp.path}'), which has backup=1`;
  }
  const why =
    mp.reason === "disabled"
      ? `volume mount point ${mp.key} ('${mp.path}'), which has no backup=1`
      : `${mp.type} mount point ${mp.key} ('${mp.path}'), which vzdump never backs up`;
  return `${what} is NOT in the backup: it lies on ${why}; ${gone}`;
}

/**
 * What the hub and the backup result carry for data a CT mount point leaves out of the archive
 * (PROTOCOL.md, backup.completed). Data out for another cause (a standard exclude, a file system mounted
 * in the guest, a network or non-local volume) is only in the warnings, in words: `reason` and
 * `mountPoint` are closed in protocol version 1.
 */
export function notInArchive(coverage: readonly MountCoverage[]) {
  return coverage
    .filter((c) => !c.inArchive && c.cause === "mount point" && c.mountPoint)
    .map((c) => ({
      project: c.project,
      service: c.service,
      destination: c.destination,
      source: c.source,
      ...(c.volume ? { volume: c.volume } : {}),
      mountPoint: c.mountPoint!.key,
      mountPath: c.mountPoint!.path,
      reason: c.mountPoint!.reason === "disabled" ? ("disabled" as const) : ("not a volume" as const),
    }));
}
