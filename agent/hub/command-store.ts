import { z } from "zod";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";

/** What the store knows about a command id when it arrives. */
export type CommandBegin<R> =
  /** First sight: the caller runs it (the id is already recorded as running, durably). */
  | { state: "new" }
  /** The first execution has not finished: answer "still running". */
  | { state: "running"; name: string; startedAt: string }
  /** Answer with the stored result, never run again. */
  | { state: "done"; result: R };

export interface CommandStoreOptions<R> {
  /** The JSON file (in the state dir). */
  path: string;
  /** Results younger than this are kept whatever their number. */
  retentionMs: number;
  /** The newest this many results are kept whatever their age. */
  minKeep: number;
  /** Hard cap, oldest first, so a flood of ids cannot grow the file without bound. */
  maxEntries: number;
  /**
   * The result recorded for a command that was running when the agent died: its outcome is unknown (a
   * backup may have started), so it is reported as failed, never run again under the same id.
   */
  interrupted: (id: string, name: string, startedAt: string) => R;
  now?: () => Date;
}

const fileSchema = z.object({
  version: z.literal(1),
  commands: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      startedAt: z.string(),
      finishedAt: z.string().optional(),
      result: z.unknown().optional(),
    }),
  ),
});

interface CommandRecord<R> {
  id: string;
  name: string;
  startedAt: string;
  finishedAt?: string;
  result?: R;
}

/**
 * Makes hub commands idempotent: each id runs at most once, in this process and across restarts. A
 * record is written (durably) as "running" before the handler starts and replaced by the result when it
 * ends; a repeat of the id gets the stored result, or "running" while the first execution goes on.
 * Results are kept `retentionMs` or as the newest `minKeep`, whichever keeps more, up to `maxEntries`;
 * running commands are never dropped.
 */
export class CommandStore<R> {
  readonly #opts: Required<CommandStoreOptions<R>>;
  /** Insertion order is age order (records are re-inserted when they finish). */
  readonly #records = new Map<string, CommandRecord<R>>();
  #saving: Promise<void> | undefined;
  #dirty = false;

  private constructor(opts: Required<CommandStoreOptions<R>>) {
    this.#opts = opts;
  }

  static async open<R>(options: CommandStoreOptions<R>): Promise<CommandStore<R>> {
    const store = new CommandStore<R>({ now: () => new Date(), ...options });
    const file = await readJsonFile(options.path, fileSchema);
    let changed = false;
    for (const r of file?.commands ?? []) {
      if (r.result === undefined) {
        const finishedAt = store.#opts.now().toISOString();
        store.#records.set(r.id, {
          ...r,
          finishedAt,
          result: options.interrupted(r.id, r.name, r.startedAt),
        });
        changed = true;
      } else {
        store.#records.set(r.id, r as CommandRecord<R>);
      }
    }
    if (changed) await store.#save();
    return store;
  }

  /** Looks the id up; when it is new, records it as running (durably) before resolving. */
  async begin(id: string, name: string): Promise<CommandBegin<R>> {
    const known = this.#records.get(id);
    if (known?.result !== undefined) return { state: "done", result: known.result };
    if (known) return { state: "running", name: known.name, startedAt: known.startedAt };
    this.#records.set(id, { id, name, startedAt: this.#opts.now().toISOString() });
    this.#prune();
    await this.#save();
    return { state: "new" };
  }

  /** Stores the final result of a command that `begin` reported as new. */
  async finish(id: string, result: R): Promise<void> {
    const known = this.#records.get(id);
    if (!known) return;
    this.#records.delete(id);
    this.#records.set(id, { ...known, finishedAt: this.#opts.now().toISOString(), result });
    await this.#save();
  }

  get size(): number {
    return this.#records.size;
  }

  #prune(): void {
    const now = this.#opts.now().getTime();
    let finished = 0;
    for (const r of this.#records.values()) if (r.result !== undefined) finished++;
    let excess = finished - this.#opts.minKeep;
    for (const [id, r] of this.#records) {
      if (excess <= 0) break;
      const overCap = finished > this.#opts.maxEntries;
      const expired = now - Date.parse(r.finishedAt ?? r.startedAt) > this.#opts.retentionMs;
      // A running command is never forgotten: its repeat must say "running", not run it again.
      if (r.result === undefined || !(overCap || expired)) continue;
      this.#records.delete(id);
      excess--;
      finished--;
    }
  }

  /** Writes are serialised; a change made during a write is covered by the next one. */
  async #save(): Promise<void> {
    if (this.#saving) {
      this.#dirty = true;
      while (this.#saving) await this.#saving;
      if (!this.#dirty) return;
    }
    this.#dirty = false;
    const snapshot = { version: 1 as const, commands: [...this.#records.values()] };
    this.#saving = writeJsonDurable(this.#opts.path, snapshot).finally(() => {
      this.#saving = undefined;
    });
    await this.#saving;
  }
}
