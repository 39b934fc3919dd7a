import { rm } from "node:fs/promises";
import { z } from "zod";
import { AgentError } from "../lib/errors.ts";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import { statePaths } from "../state/paths.ts";

/**
 * "This system is a restored copy of CT <originalVmid>, made from backup <id>": written by the first start
 * that decides so (the marker and the journal it came with are consumed then), kept across restarts, and
 * removed only by enrollment. It is what keeps a copy a copy after its first start.
 */
export const restoreRecordSchema = z.object({
  detectedAt: z.iso.datetime(),
  fromBackupId: z.string().nullable(),
  takenAt: z.iso.datetime().nullable(),
  originalVmid: z.number().int().nullable(),
  /** The signals that decided it, as sent in `restore.detected`. */
  signals: z.array(z.string()),
  /** The original's task the archive was made by; never followed by the copy, kept for the operator. */
  originalUpid: z.string().nullable(),
});

export type RestoreRecord = z.infer<typeof restoreRecordSchema>;

export function readRestoreRecord(stateDir: string): Promise<RestoreRecord | undefined> {
  return readJsonFile(statePaths(stateDir).restoredCopy, restoreRecordSchema);
}

export function writeRestoreRecord(stateDir: string, record: RestoreRecord): Promise<void> {
  return writeJsonDurable(statePaths(stateDir).restoredCopy, record);
}

/**
 * Every PVE write, not only the daemon's: the live check alone verifies a copy as its original in some
 * rows (same MAC and hostname, the original stopped or restarted after it), and an operator's
 * `felhom-guest snapshot rollback` run on the copy would then kill the original.
 */
export async function refuseAsRestoredCopy(stateDir: string): Promise<void> {
  const record = await readRestoreRecord(stateDir);
  if (!record) return;
  throw new AgentError(
    "identity_unverified",
    `this system is a restored copy of CT ${record.originalVmid ?? "?"} (detected ${record.detectedAt}); it does not write to PVE with the original's token`,
    {
      hint: "give it its own token: felhom-guest enroll --vmid <new vmid> --token-id … --token-secret-file …",
    },
  );
}

export async function clearRestoreRecord(stateDir: string): Promise<void> {
  await rm(statePaths(stateDir).restoredCopy, { force: true });
}
