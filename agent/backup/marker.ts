import { rm } from "node:fs/promises";
import { backupMode } from "@felhom/protocol";
import { z } from "zod";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import { statePaths } from "../state/paths.ts";

/**
 * "This file system is inside backup <id>" (brief §3 step 6). Written after the quiesce and before the
 * vzdump POST, so every archive holds it; the live guest clears it at resume. A guest that finds it at
 * start is either a restored copy or the original coming back from its own stop-mode backup — the
 * journal and the identity checks tell the two apart (§6).
 */
export const markerSchema = z.object({
  backupId: z.string(),
  mode: backupMode,
  takenAt: z.iso.datetime(),
  vmid: z.number().int(),
  node: z.string(),
  hostname: z.string(),
});

export type BackupMarker = z.infer<typeof markerSchema>;

export function writeMarker(stateDir: string, marker: BackupMarker): Promise<void> {
  return writeJsonDurable(statePaths(stateDir).backupMarker, marker);
}

export function readMarker(stateDir: string): Promise<BackupMarker | undefined> {
  return readJsonFile(statePaths(stateDir).backupMarker, markerSchema);
}

export async function clearMarker(stateDir: string): Promise<void> {
  await rm(statePaths(stateDir).backupMarker, { force: true });
}
