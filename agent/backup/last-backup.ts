import { join } from "node:path";
import { z } from "zod";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import type { BackupOutcome } from "./backup-types.ts";

/** The last finished backup, for `status` and the hub's periodic status. */
const lastBackupSchema = z.object({
  finishedAt: z.iso.datetime(),
  outcome: z.custom<BackupOutcome>((v) => typeof v === "object" && v !== null && "ok" in v),
});
export type LastBackup = z.infer<typeof lastBackupSchema>;

const path = (stateDir: string) => join(stateDir, "last-backup.json");

export function recordLastBackup(stateDir: string, outcome: BackupOutcome, now = new Date()): Promise<void> {
  return writeJsonDurable(path(stateDir), { finishedAt: now.toISOString(), outcome });
}

export function readLastBackup(stateDir: string): Promise<LastBackup | undefined> {
  return readJsonFile(path(stateDir), lastBackupSchema);
}
