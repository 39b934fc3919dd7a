import { type Engine, type QuiesceOptions, type ResumeReport, resumeJournal } from "./executor.ts";
import { QuiesceJournal } from "./journal.ts";

/**
 * Called by the daemon at start (and by its signal handlers): if the last quiesce never finished — the
 * agent was killed, the guest lost power — resume what it had quiesced. Returns undefined when there is
 * nothing to do, otherwise the report of what was resumed and what failed.
 */
export async function resumeFromJournal(
  journalPath: string,
  engine: Engine,
  options: Omit<QuiesceOptions, "quiesceDeadlineMs" | "downtimeDeadlineMs"> = {},
): Promise<ResumeReport | undefined> {
  const journal = await QuiesceJournal.open(journalPath);
  if (!journal || journal.finished) return undefined;
  return resumeJournal(journal, engine, "journal", options);
}
