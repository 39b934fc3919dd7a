import type { CtMountPoint } from "../pve/mount-points.ts";
import { coverageText, type MountCoverage } from "../quiesce/archive-coverage.ts";
import type { Finding } from "./assess-permissions.ts";

/**
 * Which container data a backup of this CT leaves out (archive-coverage.ts): a warning per mount outside
 * the archive, with what to do about it; otherwise one line saying all of it is in, and which mount
 * points vzdump skips. Pure.
 */
export function assessArchiveCoverage(
  vmid: number,
  mountPoints: readonly CtMountPoint[],
  coverage: readonly MountCoverage[],
): Finding[] {
  const outside = coverage.filter((c) => !c.inArchive);
  if (outside.length === 0) {
    const skipped = mountPoints.filter((m) => !m.inBackup).map((m) => `${m.key} '${m.path}' (${m.reason})`);
    return [
      {
        level: "ok",
        message: `archive coverage: all ${coverage.length} bind mounts and volumes of the stacks are in the backup${skipped.length ? `; vzdump skips ${skipped.join(", ")}, which no stack uses` : ""}`,
      },
    ];
  }
  return outside.map((c) => ({
    level: "warn",
    message: `archive coverage: ${coverageText(c)}`,
    hint: hint(vmid, c),
  }));
}

function hint(vmid: number, c: MountCoverage): string {
  const move =
    "move the data onto the root file system or a volume mount point with backup=1, or back it up by other means";
  switch (c.cause) {
    case "volume driver":
    case "mounted volume":
      return `the data lives outside the guest (${c.volumeKind}): back it up where it lives, or ${move}`;
    case "standard exclude":
      return `vzdump leaves out /tmp and /var/tmp (stdexcludes): ${move}`;
    case "guest mount":
      return `a file system mounted inside the guest is not part of the CT's volumes: ${move}`;
  }
  return c.mountPoint?.reason === "disabled"
    ? `include the volume: on the PVE host, pct set ${vmid} -${c.mountPoint.key} <its current value>,backup=1 (the archive grows by its data); or back it up by other means`
    : `a ${c.mountPoint?.type} mount point is never in a vzdump backup: back up its host directory by other means, or move the data onto the root file system or a volume mount point with backup=1`;
}
