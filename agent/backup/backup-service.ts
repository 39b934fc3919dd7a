import { describeError } from "../lib/errors.ts";
import { acquireOperationLock, type Operation, operationOf } from "../operation/operation-lock.ts";
import { newBackupId } from "./backup-id.ts";
import { runBackup } from "./backup-run.ts";
import {
  type BackupDeps,
  type BackupMode,
  type BackupOutcome,
  isDeferred,
  type Trigger,
} from "./backup-types.ts";
import { busyRetryDelayMs } from "./busy-retry.ts";

export type BackupTicket =
  | { started: true; backupId: string; mode: BackupMode; done: Promise<BackupOutcome> }
  /**
   * Another operation holds the guest (in this process or another): which, not a second backup. A backup
   * holder is the backup asked for; a snapshot or a `stacks up` is not.
   */
  | { started: false; holder: Operation; done: Promise<BackupOutcome> | undefined };

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
      /** The backup's id, before its first event: a caller can follow exactly its events from the start. */
      onStarted?: (backupId: string) => void;
      /**
       * The outcome that ends this request (no busy retry follows it), with the time (ms epoch) its
       * attempt started: a retried request's last attempt, not its first.
       */
      onSettled?: (outcome: BackupOutcome, startedAtMs: number) => void;
    },
    attempt = 1,
  ): Promise<BackupTicket> {
    if (this.#running) {
      const { backupId, mode, done } = this.#running;
      return { started: false, holder: { kind: "backup", operationId: backupId, mode }, done };
    }
    const startedAt = Date.now();
    const backupId = newBackupId();
    const lock = await acquireOperationLock(this.#deps.stateDir, {
      pid: process.pid,
      kind: "backup",
      operationId: backupId,
      mode: opts.mode,
    });
    if (!lock.acquired) {
      // A scheduled backup that meets a snapshot (or a `stacks up`) is not done by it: try again later.
      // One that meets another backup is: that one is the backup of this slot.
      if (opts.retryWhenBusy && lock.holder.kind !== "backup")
        this.#retryLater(opts, attempt, `${lock.holder.kind} ${lock.holder.operationId} is running`);
      return { started: false, holder: operationOf(lock.holder), done: undefined };
    }
    try {
      opts.onStarted?.(backupId);
    } catch (err) {
      // A caller's callback must not leave the guest's one lock held by a backup that never ran.
      await lock.release();
      throw err;
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
        this.#deps.log.error({ err: describeError(err) }, "backup retry failed to start"),
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
