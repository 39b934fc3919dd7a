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
  /** Where the data lives in the guest. */
  source: string;
  /** Where the container sees it. */
  destination: string;
  /** The volume's name, for a volume. */
  volume?: string;
  inArchive: boolean;
  /** The CT mount point the data lies on. */
  mountPoint: Pick<CtMountPoint, "key" | "path" | "type" | "reason">;
}

export function mountCoverage(
  stacks: readonly StackFacts[],
  mountPoints: readonly CtMountPoint[],
): MountCoverage[] {
  const out: MountCoverage[] = [];
  for (const stack of stacks) {
    for (const svc of stack.services) {
      const c = svc.containers[0];
      if (!c) continue;
      for (const m of c.mounts) {
        // tmpfs holds nothing to back up; a volume of another driver has no source in the guest
        if ((m.type !== "bind" && m.type !== "volume") || !m.source) continue;
        const on = mountPointOf(m.source, mountPoints);
        if (!on) continue;
        const entry = (source: string, destination: string, mp: CtMountPoint): MountCoverage => ({
          project: stack.project,
          service: svc.name,
          container: c.name,
          type: m.type as "bind" | "volume",
          source,
          destination,
          ...(m.type === "volume" && m.name ? { volume: m.name } : {}),
          inArchive: mp.inBackup,
          mountPoint: { key: mp.key, path: mp.path, type: mp.type, reason: mp.reason },
        });
        out.push(entry(m.source, m.destination, on));
        // A mount point below the source is part of what the container sees, and may be left out on its own
        // (a bind of /srv with /srv/data a backup=0 volume): that part is its own answer.
        const source = trimSlash(posix.normalize(m.source));
        for (const below of mountPoints) {
          if (
            below.inBackup ||
            below.path === source ||
            !below.path.startsWith(`${source === "/" ? "" : source}/`)
          )
            continue;
          out.push(entry(below.path, posix.join(m.destination, posix.relative(source, below.path)), below));
        }
      }
    }
  }
  return out;
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
  const what = `${c.project}/${c.service}: ${c.destination} (${c.volume ? `volume ${c.volume} at ` : ""}${c.source})`;
  const mp = c.mountPoint;
  if (c.inArchive) {
    return mp.key === "rootfs"
      ? `${what} is in the backup: it lies on the CT's root file system`
      : `${what} is in the backup: it lies on mount point ${mp.key} ('${mp.path}'), which has backup=1`;
  }
  const why =
    mp.reason === "disabled"
      ? `volume mount point ${mp.key} ('${mp.path}'), which has no backup=1`
      : `${mp.type} mount point ${mp.key} ('${mp.path}'), which vzdump never backs up`;
  return `${what} is NOT in the backup: it lies on ${why}; restored on another host, it is gone`;
}

/** What the hub and the backup result carry for data left out of the archive (PROTOCOL.md, backup.completed). */
export function notInArchive(coverage: readonly MountCoverage[]) {
  return coverage
    .filter((c) => !c.inArchive)
    .map((c) => ({
      project: c.project,
      service: c.service,
      destination: c.destination,
      source: c.source,
      ...(c.volume ? { volume: c.volume } : {}),
      mountPoint: c.mountPoint.key,
      mountPath: c.mountPoint.path,
      reason: c.mountPoint.reason === "disabled" ? ("disabled" as const) : ("not a volume" as const),
    }));
}
