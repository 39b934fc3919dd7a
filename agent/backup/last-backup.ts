import { z } from "zod";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import { statePaths } from "../state/paths.ts";
import type { BackupOutcome } from "./backup-types.ts";

/** The last finished backup, for `status` and the hub's periodic status. */
const lastBackupSchema = z.object({
  finishedAt: z.iso.datetime(),
  outcome: z.custom<BackupOutcome>((v) => typeof v === "object" && v !== null && "ok" in v),
});
export type LastBackup = z.infer<typeof lastBackupSchema>;

export function recordLastBackup(stateDir: string, outcome: BackupOutcome, now = new Date()): Promise<void> {
  return writeJsonDurable(statePaths(stateDir).lastBackup, { finishedAt: now.toISOString(), outcome });
}

export function readLastBackup(stateDir: string): Promise<LastBackup | undefined> {
  return readJsonFile(statePaths(stateDir).lastBackup, lastBackupSchema);
}

/**
 * How long a stop-mode backup keeps the whole guest (and this agent) away, for the hub's blackout notice:
 * the last backup's total time with half again as margin plus two minutes for shutdown and boot, or half an
 * hour when there is no earlier backup to go by.
 */
export async function stopModeBlackoutSeconds(stateDir: string): Promise<number> {
  const last = await readLastBackup(stateDir).catch(() => undefined);
  if (!last?.outcome.ok) return 1800;
  return Math.min(86_400, Math.ceil((last.outcome.result.totalMs / 1000) * 1.5) + 120);
}
