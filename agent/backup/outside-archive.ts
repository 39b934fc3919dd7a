import { describeError } from "../lib/errors.ts";
import { eventLine } from "../lib/report-text.ts";
import type { Logger } from "../log/logger.ts";
import type { PveClient } from "../pve/client.ts";
import { type CtMountPoint, readCtMountPoints } from "../pve/mount-points.ts";
import { notInArchive } from "../quiesce/archive-coverage.ts";
import type { PreparedQuiesce } from "../quiesce/quiesce-stacks.ts";

/** What a backup reports about data its archive does not hold: warning lines and the structured list. */
export interface OutsideArchive {
  warnings: string[];
  notInArchive: ReturnType<typeof notInArchive>;
}

/** The CT's mount points (readCtMountPoints); unreadable, the backup goes on without the check: it only informs. */
export async function readMountPoints(
  pve: Pick<PveClient, "lxcConfig">,
  node: string,
  vmid: number,
  log: Logger,
): Promise<CtMountPoint[] | undefined> {
  try {
    return await readCtMountPoints(pve, node, vmid);
  } catch (err) {
    log.warn(
      { err: describeError(err) },
      "could not read the CT config: which data is outside the archive is unknown",
    );
    return undefined;
  }
}

export function outsideArchive(prepared: Pick<PreparedQuiesce, "warnings" | "coverage">): OutsideArchive {
  return {
    warnings: prepared.warnings.filter((w) => w.code === "outside_archive").map((w) => eventLine(w.message)),
    notInArchive: notInArchive(prepared.coverage ?? []),
  };
}
