import { backupMode, backupPhase, consistency, notInArchive } from "@felhom/protocol";
import { z } from "zod";
import type { JournalData } from "../quiesce/journal.ts";

/**
 * The quiesce journal's operation section: what the operation that took the stacks down needs after a
 * crash, one shape per kind. The quiesce journal itself keeps it as an open record (it needs none of
 * it); here it is written and read back typed, never cast. The key on disk stays `backup`: journals that
 * agents up to 0.1.0 left behind (whose backup sections carry no `kind`) are read the same way.
 */
const backupSectionSchema = z.object({
  kind: z.literal("backup").default("backup"),
  mode: backupMode,
  trigger: z.enum(["schedule", "hub", "cli", "journal-replay"]),
  startedAt: z.string(),
  node: z.string(),
  vmid: z.number().int(),
  storage: z.string(),
  phase: backupPhase,
  upid: z.string().optional(),
  /** Set when the stacks were resumed: "app" if after the snapshot existed, "crash" if before. */
  consistency: consistency.optional(),
  /** Data the archive will not hold (preflight): reported by whichever run finishes the backup. */
  outside: z.object({ warnings: z.array(z.string()), notInArchive: z.array(notInArchive) }).optional(),
  /**
   * What the preflight's plan says in the result (backup/snapshot-plan.ts: e.g. a snapshot request run in stop
   * mode because the CT cannot be snapshotted): reported by whichever run finishes the backup.
   */
  planWarnings: z.array(z.string()).optional(),
  reported: z.boolean().optional(),
});

const snapshotSectionSchema = z.object({
  kind: z.literal("snapshot"),
  name: z.string(),
  consistency: consistency.optional(),
});

/** The backup's section: what a restarted agent needs to finish the report (recover-at-start.ts). */
export type JournalBackupSection = z.input<typeof backupSectionSchema>;
export type JournalSnapshotSection = z.infer<typeof snapshotSectionSchema>;
export type JournalSection = JournalBackupSection | JournalSnapshotSection;

/**
 * The backup section of a journal, as far as it was written (an agent killed mid-quiesce may have left
 * only part of it); undefined when the journal belongs to another kind of operation. Fields that do not
 * parse are left out: a damaged section must not keep the journal's stacks from being resumed.
 */
export function backupSection(
  data: Pick<JournalData, "backup"> | undefined,
): Partial<JournalBackupSection> | undefined {
  const raw = data?.backup ?? {};
  if (raw.kind !== undefined && raw.kind !== "backup") return undefined;
  const fields = Object.entries(backupSectionSchema.shape).flatMap(([key, schema]) => {
    if (raw[key] === undefined) return [];
    const field = schema.safeParse(raw[key]);
    return field.success ? [[key, field.data]] : [];
  });
  return { ...Object.fromEntries(fields), kind: "backup" } as Partial<JournalBackupSection>;
}
