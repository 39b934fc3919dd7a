import { AgentError } from "../lib/errors.ts";
import type { JournalBackupSection } from "../operation/journal-section.ts";
import type { PveClient } from "../pve/client.ts";
import { isSuccess } from "../pve/exit-status.ts";
import type { TaskResult } from "../pve/task-follower.ts";
import { VzdumpLogRecogniser } from "../pve/vzdump-log.ts";
import { applyRetention } from "./apply-retention.ts";
import type { BackupDeps, BackupPhase } from "./backup-types.ts";
import { findArchive } from "./notes.ts";
import { PROTECTED_LIMIT_HINT } from "./protected-limit.ts";

export interface FinishedBackup {
  volid: string;
  sizeBytes: number;
  /** The task's WARN lines, and what verification and retention found. */
  warnings: string[];
  /** What retention removed; undefined when none is configured. */
  pruned: string[] | undefined;
}

/**
 * Everything after the vzdump task stopped, for every backup: one finished live (snapshot mode) and one
 * finished after the boot that followed its own stop-mode shutdown (recover-at-start.ts). Judges the
 * exit status, verifies the archive, applies retention, with the same phase events and journal steps;
 * throws the failure as an AgentError. The caller owns the stacks' resume and the report.
 */
export async function finishBackup(
  deps: Pick<BackupDeps, "pve" | "backup" | "follow">,
  run: {
    backupId: string;
    node: string;
    vmid: number;
    task: TaskResult;
    enter: (phase: BackupPhase) => void;
    journalPatch: (patch: Partial<JournalBackupSection>) => Promise<unknown> | undefined;
  },
): Promise<FinishedBackup> {
  const { pve, backup: cfg } = deps;
  const { node, vmid, task } = run;
  await run.journalPatch({ phase: "verify" });
  if (!isSuccess(task.classified)) {
    const recogniser = new VzdumpLogRecogniser();
    const limit = task.lines.flatMap((l) => recogniser.feed(l)).find((p) => p.phase === "protected-limit");
    if (limit) {
      throw new AgentError(
        "protected_limit_reached",
        `PVE refused a protected backup: this guest already has ${limit.limit} protected backups on ${limit.storage}`,
        { hint: PROTECTED_LIMIT_HINT },
      );
    }
    throw new AgentError("vzdump_failed", `vzdump task ${task.upid} ended with: ${task.exitstatus}`, {
      hint: "see the log tail; nothing was written to the storage that the agent will count as a backup",
    });
  }

  run.enter("verify");
  const archive = await verifyArchive(pve, node, cfg.storage, vmid, run.backupId, task);
  const warnings = task.lines.filter((l) => l.startsWith("WARN:"));
  if (archive.warning) warnings.push(archive.warning);
  let pruned: string[] | undefined;
  if (cfg.retention) {
    run.enter("retention");
    await run.journalPatch({ phase: "retention" });
    const retention = await applyRetention(
      pve,
      { node, storage: cfg.storage, vmid },
      cfg.retention,
      deps.follow,
    );
    pruned = retention.removed;
    warnings.push(...retention.warnings);
  }
  return { volid: archive.volid, sizeBytes: archive.size, warnings, pruned };
}

/**
 * A task's "OK" is not a backup: the archive carrying this backup id in its notes (or, when PVE could not
 * write them, the one its log names) must be on the storage.
 */
async function verifyArchive(
  pve: PveClient,
  node: string,
  storage: string,
  vmid: number,
  backupId: string,
  task: TaskResult,
): Promise<{ volid: string; size: number; warning?: string }> {
  const archive = findArchive(await pve.backups(node, storage, vmid), backupId, vmid, {
    storage,
    lines: task.lines,
  });
  if (!archive.ok) {
    throw new AgentError("archive_missing", `the task said ${task.exitstatus}, but ${archive.reason}`, {
      hint: "the archive is not usable as a backup; check the storage on the PVE host",
    });
  }
  const { volid, size } = archive.volume;
  return archive.warning ? { volid, size, warning: archive.warning } : { volid, size };
}
