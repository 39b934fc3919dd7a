import type { QuiesceHandle } from "../quiesce/executor.ts";
import type { QuiesceJournal } from "../quiesce/journal.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";
import { type QuiesceDeps, quiesceStacks } from "../quiesce/quiesce-stacks.ts";
import type { JournalSection } from "./journal-section.ts";

export interface QuiescedStacks {
  handle: QuiesceHandle;
  journal: QuiesceJournal;
  /**
   * The guest itself goes down with the stacks (a stop-mode backup interrupted by the shutdown after its
   * POST): leave them down, the next boot resumes them from the journal.
   */
  leaveDown(): void;
}

/**
 * The one quiesce every operation that needs the stacks down goes through (a backup, a snapshot): the
 * journal with the operation's section, fsync'd before the first container is touched; the quiesce;
 * `body` while they are down; and their resume on every way out of it. `body` may resume earlier itself
 * (a backup at the snapshot line): the handle's resume happens once, and this waits for that one.
 * Throws QuiesceFailedError (after resuming what it had quiesced) when a step with on-error=abort failed.
 */
export async function withQuiescedStacks<T>(
  deps: QuiesceDeps,
  op: {
    operationId: string;
    plan: QuiescePlan;
    /** The executor's own dead man's switch: resumes the stacks should this process hang. */
    downtimeDeadlineMs: number;
    /** Journalled with the plan, so that an agent killed mid-quiesce still knows what it was doing. */
    section: JournalSection;
    /** Once the journal is on disk, right before the first container is touched. */
    journalled?: () => void;
  },
  body: (q: QuiescedStacks) => Promise<T>,
): Promise<T> {
  const { handle, journal } = await quiesceStacks(deps, {
    backupId: op.operationId,
    plan: op.plan,
    downtimeDeadlineMs: op.downtimeDeadlineMs,
    backup: op.section,
    ...(op.journalled ? { journalled: op.journalled } : {}),
  });
  let leftDown = false;
  try {
    return await body({
      handle,
      journal,
      leaveDown: () => {
        leftDown = true;
      },
    });
  } finally {
    if (!leftDown) await handle.resume();
  }
}
