import { z } from "zod";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import { JournalUnfinishedError } from "./errors.ts";
import { type QuiescePlan, quiescePlanSchema } from "./plan.ts";

/**
 * The quiesce journal: fsync'd JSON that exists from before the first container is touched until every
 * quiesced container has been resumed. If the agent dies in between, the next start finds it unfinished
 * and resumes from it (resume-from-journal.ts).
 *
 * `backup` is an open section owned by the operation that quiesced (a backup's UPID and phase, a
 * snapshot's name): `update({ backup })` merges into it, so this module never needs to know those fields;
 * agent/operation/journal-section.ts gives it one typed shape per kind.
 */

export const containerStatusSchema = z.enum([
  /** Planned, not touched yet. */
  "pending",
  /** About to be stopped/paused: written BEFORE the action, so a crash in between still resumes it. */
  "quiescing",
  "quiesced",
  /** The quiesce action failed; resume still checks the container. */
  "quiesce_failed",
  "resumed",
  "resume_failed",
]);

const hookStatusSchema = z.enum(["none", "started", "ok", "failed"]);

export const journalEntrySchema = z.object({
  project: z.string(),
  service: z.string(),
  name: z.string(),
  priorState: z.string(),
  status: containerStatusSchema,
  pre: hookStatusSchema,
  post: hookStatusSchema,
  quiescedAt: z.string().nullable(),
  resumedAt: z.string().nullable(),
  error: z.string().nullable(),
});

export const journalSchema = z.object({
  version: z.literal(1),
  backupId: z.string(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
  plan: quiescePlanSchema,
  /** Keyed by container id. */
  containers: z.record(z.string(), journalEntrySchema),
  backup: z.record(z.string(), z.unknown()),
});

export type JournalData = z.infer<typeof journalSchema>;
export type JournalEntry = z.infer<typeof journalEntrySchema>;
export type ContainerStatus = z.infer<typeof containerStatusSchema>;

export class QuiesceJournal {
  private writing: Promise<void> = Promise.resolve();
  private flush: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private current: JournalData,
  ) {}

  /**
   * Writes a new journal for `backupId` and returns once it is on disk. Refuses while an unfinished one
   * exists: its containers may still be down.
   */
  static async create(
    path: string,
    init: { backupId: string; plan: QuiescePlan; now?: Date; backup?: Record<string, unknown> },
  ): Promise<QuiesceJournal> {
    const existing = await readJsonFile(path, journalSchema);
    if (existing && existing.finishedAt === null) throw new JournalUnfinishedError(path, existing.backupId);
    const containers: JournalData["containers"] = {};
    for (const svc of init.plan.levels.flat()) {
      for (const c of svc.containers) {
        containers[c.id] = {
          project: svc.project,
          service: svc.service,
          name: c.name,
          priorState: c.priorState,
          status: "pending",
          pre: "none",
          post: "none",
          quiescedAt: null,
          resumedAt: null,
          error: null,
        };
      }
    }
    const journal = new QuiesceJournal(path, {
      version: 1,
      backupId: init.backupId,
      createdAt: (init.now ?? new Date()).toISOString(),
      finishedAt: null,
      plan: init.plan,
      containers,
      backup: init.backup ?? {},
    });
    await journal.persist();
    return journal;
  }

  /** The journal at `path`, finished or not; undefined when there is none. */
  static async open(path: string): Promise<QuiesceJournal | undefined> {
    const data = await readJsonFile(path, journalSchema);
    return data ? new QuiesceJournal(path, data) : undefined;
  }

  /** A deep copy: callers cannot change the journal except through the methods below. */
  get data(): JournalData {
    return structuredClone(this.current);
  }

  get finished(): boolean {
    return this.current.finishedAt !== null;
  }

  entry(containerId: string): JournalEntry | undefined {
    const e = this.current.containers[containerId];
    return e ? { ...e } : undefined;
  }

  /** Merges `patch.backup` into the open backup section; resolves once durable. */
  update(patch: { backup?: Record<string, unknown> }): Promise<void> {
    if (patch.backup) this.current.backup = { ...this.current.backup, ...patch.backup };
    return this.persist();
  }

  updateContainer(
    containerId: string,
    patch: Partial<Omit<JournalEntry, "project" | "service" | "name">>,
  ): Promise<void> {
    const e = this.current.containers[containerId];
    if (!e) throw new Error(`journal ${this.path} has no container ${containerId}`);
    Object.assign(e, patch);
    return this.persist();
  }

  finish(now = new Date()): Promise<void> {
    this.current.finishedAt = now.toISOString();
    return this.persist();
  }

  /**
   * Writes are serialised (one tmp file per process) and coalesced: every change made while a write is in
   * flight goes out in the next one, and all its callers resolve when that write is durable. Parallel steps
   * of one level therefore share fsyncs instead of queueing one each.
   */
  private persist(): Promise<void> {
    if (this.flush) return this.flush;
    this.flush = this.writing.then(async () => {
      this.flush = undefined;
      await writeJsonDurable(this.path, this.current);
    });
    this.writing = this.flush.catch(() => undefined);
    return this.flush;
  }
}
