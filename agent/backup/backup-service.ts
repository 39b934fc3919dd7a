import { errorMessage } from "../lib/errors.ts";
import { newBackupId } from "./backup-id.ts";
import { acquireBackupLock } from "./backup-lock.ts";
import { runBackup } from "./backup-run.ts";
import type { BackupDeps } from "./backup-types.ts";
import { type BackupMode, type BackupOutcome, isDeferred, type Trigger } from "./backup-types.ts";
import { busyRetryDelayMs } from "./busy-retry.ts";

export type BackupTicket =
  | { started: true; backupId: string; mode: BackupMode; done: Promise<BackupOutcome> }
  /**
   * Something holds the guest (in this process or another): its id, not a second backup. `kind` says
   * what: a backup (then that is the backup asked for), a snapshot or an operator's `stacks up`.
   */
  | {
      started: false;
      backupId: string;
      mode: BackupMode;
      kind: "backup" | "snapshot" | "stacks-up";
      done: Promise<BackupOutcome> | undefined;
    };

export interface BackupServiceDeps extends BackupDeps {
  /**
   * Every finished backup, success or failure (the daemon sends it to the hub as backup.completed/failed).
   * `willRetry`: a busy node's refusal that this service tries again later, so not yet the slot's result.
   */
  onOutcome?: (outcome: BackupOutcome, trigger: Trigger, info: { willRetry: boolean }) => void;
}

/**
 * The one door to backups for the CLI, the schedule and the hub: one at a time (a second request gets the
 * running backup's id), and when the node's vzdump lock is busy, a bounded number of later attempts with
 * jitter (only for requests that asked for it: the daemon's, not an operator waiting at a terminal).
 */
export class BackupService {
  readonly #deps: BackupServiceDeps;
  #running: { backupId: string; mode: BackupMode; done: Promise<BackupOutcome> } | undefined;
  readonly #retries = new Set<NodeJS.Timeout>();

  constructor(deps: BackupServiceDeps) {
    this.#deps = deps;
  }

  running(): { backupId: string; mode: BackupMode } | undefined {
    return this.#running && { backupId: this.#running.backupId, mode: this.#running.mode };
  }

  async request(
    opts: {
      mode: BackupMode;
      trigger: Trigger;
      retryWhenBusy?: boolean;
      signal?: AbortSignal;
      /**
       * The outcome that ends this request (no busy retry follows it), with the time (ms epoch) its
       * attempt started: a retried request's last attempt, not its first.
       */
      onSettled?: (outcome: BackupOutcome, startedAtMs: number) => void;
    },
    attempt = 1,
  ): Promise<BackupTicket> {
    if (this.#running) return { started: false, kind: "backup", ...this.#running };
    const startedAt = Date.now();
    const backupId = newBackupId();
    const lock = await acquireBackupLock(this.#deps.stateDir, {
      pid: process.pid,
      backupId,
      mode: opts.mode,
    });
    if (!lock.acquired) {
      // A scheduled backup that meets a snapshot (or a `stacks up`) is not done by it: try again later.
      // One that meets another backup is: that one is the backup of this slot.
      if (opts.retryWhenBusy && lock.holder.kind !== "backup")
        this.#retryLater(opts, attempt, `${lock.holder.kind} ${lock.holder.backupId} is running`);
      return {
        started: false,
        backupId: lock.holder.backupId,
        mode: lock.holder.mode,
        kind: lock.holder.kind,
        done: undefined,
      };
    }
    const done = (async () => {
      try {
        return await runBackup(this.#deps, {
          backupId,
          mode: opts.mode,
          trigger: opts.trigger,
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.retryWhenBusy
            ? { busyRetry: { retriesLeft: Math.max(0, this.#deps.backup.busy_retry.attempts - attempt) } }
            : {}),
        });
      } finally {
        await lock.release();
        this.#running = undefined;
      }
    })();
    this.#running = { backupId, mode: opts.mode, done };
    void done.then((outcome) => {
      const busy = !outcome.ok && outcome.failure.code === "vzdump_lock_busy" && opts.retryWhenBusy === true;
      const willRetry = busy && attempt < this.#deps.backup.busy_retry.attempts;
      if (!isDeferred(outcome)) {
        this.#deps.onOutcome?.(outcome, opts.trigger, { willRetry });
        if (!willRetry) opts.onSettled?.(outcome, startedAt);
      }
      if (busy) this.#retryLater(opts, attempt, "the node's vzdump lock was busy");
    });
    return { started: true, backupId, mode: opts.mode, done };
  }

  /** Within backup.busy_retry's attempts, with jitter; nothing when they are used up. */
  #retryLater(opts: Parameters<BackupService["request"]>[0], attempt: number, why: string): void {
    if (attempt >= this.#deps.backup.busy_retry.attempts) {
      this.#deps.log.warn({ attempt, why }, "busy; no retry left for this backup");
      return;
    }
    const delay = busyRetryDelayMs(this.#deps.backup.busy_retry.delay_seconds);
    this.#deps.log.info({ attempt, delayMs: delay, why }, "busy; retrying the backup later");
    const timer = setTimeout(() => {
      this.#retries.delete(timer);
      this.request(opts, attempt + 1).catch((err) =>
        this.#deps.log.error({ err: errorMessage(err) }, "backup retry failed to start"),
      );
    }, delay);
    this.#retries.add(timer);
  }

  /** Resolves when no backup runs in this process (at once when none does). */
  async settled(): Promise<void> {
    await this.#running?.done;
  }

  /** Cancels pending retries; a running backup finishes (its resume is already registered). */
  stop(): void {
    for (const t of this.#retries) clearTimeout(t);
    this.#retries.clear();
  }
}
