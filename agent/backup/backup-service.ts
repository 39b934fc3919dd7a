import { describeError } from "../lib/errors.ts";
import { acquireOperationLock, type Operation, operationOf } from "../operation/operation-lock.ts";
import { sleep } from "../pve/retry.ts";
import { newBackupId } from "./backup-id.ts";
import { verifiedSelf } from "./backup-preflight.ts";
import { runBackup } from "./backup-run.ts";
import {
  type BackupDeps,
  type BackupMode,
  type BackupOutcome,
  type BusyRetry,
  isDeferred,
  type Trigger,
} from "./backup-types.ts";
import { busyRetryDelayMs } from "./busy-retry.ts";
import {
  type QuietStorageTiming,
  type QuietWait,
  quietLookAheadMs,
  quietStorageTiming,
  waitForQuietStorage,
} from "./quiet-storage.ts";

export type BackupTicket =
  | { started: true; backupId: string; mode: BackupMode; done: Promise<BackupOutcome> }
  /**
   * Another operation holds the guest (in this process or another): which, not a second backup. A backup
   * holder is the backup asked for; a snapshot or a `stacks up` is not.
   */
  | {
      started: false;
      holder: Operation;
      done: Promise<BackupOutcome> | undefined;
      /**
       * stop() came before a request that retries when busy made its first attempt (it was waiting for a
       * quiet storage): nothing ran and no event is owed; the schedule keeps the slot pending.
       */
      stopped?: true;
    };

export interface BackupServiceDeps extends BackupDeps {
  /**
   * Every finished backup, success or failure (the daemon sends it to the hub as backup.completed/failed).
   * `retry`: set for a busy node's refusal that this service tries again later (when, and how many attempts
   * are left), so not yet the slot's result.
   */
  onOutcome?: (outcome: BackupOutcome, trigger: Trigger, info: { retry: BusyRetry | undefined }) => void;
  /**
   * How a request that retries when busy looks at the backup storage before each attempt (quiet-storage.ts);
   * default: scaled with backup.busy_retry.delay_seconds.
   */
  quietStorage?: QuietStorageTiming;
}

export interface BackupRequestOptions {
  mode: BackupMode;
  trigger: Trigger;
  retryWhenBusy?: boolean;
  /**
   * Whether a request that retries when busy looks at the storage before its attempts (default true); false
   * for a schedule with `jitter_seconds: 0`, whose operator was promised the exact time; "retries" before its
   * retries only (a run at its learned place: the node was free there last time).
   */
  lookAtStorage?: boolean | "retries";
  /**
   * When the first attempt is due (ms epoch), for a request made ahead of it by lookAheadMs() so that its look
   * at the storage ends then: the attempt goes no earlier, and a quiet storage lets it go at that time.
   */
  dueAt?: number;
  signal?: AbortSignal;
  /** The backup's id, before its first event: a caller can follow exactly its events from the start. */
  onStarted?: (backupId: string) => void;
  /**
   * The outcome that ends this request (no busy retry follows it), with the time (ms epoch) its
   * attempt started: a retried request's last attempt, not its first. When that attempt came only because
   * the wait for a quiet storage ran out of budget, the time that wait began: the node was never seen free
   * in it, and a schedule that learned the later time would start 10 minutes later every night on a storage
   * that always looks busy.
   */
  onSettled?: (outcome: BackupOutcome, startedAtMs: number) => void;
}

/** A request and its busy retries, from the first attempt until one ends it. */
interface Chain {
  readonly opts: BackupRequestOptions;
  /** The last refused attempt, reported with a promised retry: what the chain reports if no retry comes. */
  last: { outcome: BackupOutcome; startedAt: number } | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Aborts the wait for a quiet storage before an attempt, while one runs. */
  waiting: AbortController | undefined;
  /** A backup of this guest that started in this process during that wait: it is this request's backup. */
  joined: { backupId: string; mode: BackupMode; done: Promise<BackupOutcome> } | undefined;
  /** All such waits so far, against the timing's budget. */
  waitedMs: number;
  /** The guest's node, once known: where its storage's status is read. */
  node: string | undefined;
  readonly end: () => void;
}

/**
 * The one door to backups for the CLI, the schedule and the hub: one at a time (a second request gets the
 * running backup's id), and when the node's vzdump lock is busy, a bounded number of later attempts with
 * jitter (only for requests that asked for it: the daemon's, not an operator waiting at a terminal). Such a
 * request also looks at the backup storage before each attempt and waits, within a budget, while another
 * guest's archive grows it (quiet-storage.ts): a refusal costs an outage and a mail to the PVE admin.
 *
 * A refusal reported with a promised retry is not the slot's result, so every chain ends in one final
 * outcome: the attempt that ends it, or, when no further attempt runs (the service stops: config.reload,
 * enroll, the daemon's shutdown; the last retry meets another operation; a retry meets another backup),
 * the last refusal again, without `retry` and saying why none came. A pending retry does not outlive the
 * daemon (decision: a restart reports it failed rather than persisting it; the next slot is the next try).
 */
export class BackupService {
  readonly #deps: BackupServiceDeps;
  #running: { backupId: string; mode: BackupMode; done: Promise<BackupOutcome> } | undefined;
  readonly #chains = new Set<Chain>();
  #stopped = false;

  constructor(deps: BackupServiceDeps) {
    this.#deps = deps;
  }

  running(): { backupId: string; mode: BackupMode } | undefined {
    return this.#running && { backupId: this.#running.backupId, mode: this.#running.mode };
  }

  /**
   * The ticket's `settled` resolves when the request and its busy retries have ended (at once when it did
   * not start and is not retried): a schedule slot lasts until then.
   */
  async request(opts: BackupRequestOptions): Promise<BackupTicket & { settled: Promise<void> }> {
    let resolve!: () => void;
    const settled = new Promise<void>((r) => {
      resolve = r;
    });
    const chain: Chain = {
      opts,
      last: undefined,
      timer: undefined,
      waiting: undefined,
      joined: undefined,
      waitedMs: 0,
      node: undefined,
      end: () => {
        this.#chains.delete(chain);
        resolve();
      },
    };
    this.#chains.add(chain);
    try {
      return { ...(await this.#attempt(chain, 1, opts.dueAt)), settled };
    } catch (err) {
      chain.end();
      throw err;
    }
  }

  /** `dueAt`: when this attempt is due, its look at the storage having begun ahead of it. */
  async #attempt(chain: Chain, attempt: number, dueAt?: number): Promise<BackupTicket> {
    const { opts } = chain;
    // Before quiescing into a likely refusal: another guest's archive growing the storage means the node's
    // lock is probably held (quiet-storage.ts). Not while a backup of this guest runs (it is this request's
    // backup, below); one that starts during the wait (the hub's, the CLI's through the daemon) ends it, so
    // that the slot counts it instead of waiting on its growth and running a second backup after it.
    // stop() cuts the wait short, and then no attempt follows.
    const waitBegan = Math.max(Date.now(), dueAt ?? 0);
    const waited =
      this.#looks(chain, attempt) && !this.#stopped && !this.#running
        ? await this.#waitForQuietStorage(chain, dueAt)
        : undefined;
    const other = chain.joined ?? this.#running;
    if (other) {
      const { backupId, mode, done } = other;
      this.#endWithoutAttempt(chain, `another backup of this guest (${backupId}) was running`);
      return { started: false, holder: { kind: "backup", operationId: backupId, mode }, done };
    }
    const startedAt = waited === "budget" ? waitBegan : Date.now();
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
      const why = `${lock.holder.kind} ${lock.holder.operationId} held the guest`;
      if (opts.retryWhenBusy && lock.holder.kind !== "backup") this.#retryLater(chain, attempt, why);
      else this.#endWithoutAttempt(chain, why);
      return { started: false, holder: operationOf(lock.holder), done: undefined };
    }
    if (this.#stopped && (attempt > 1 || opts.retryWhenBusy === true)) {
      // The retry's timer fired just before stop(), which could not cancel it, or stop() came during (or just
      // after) the wait for a quiet storage: it must not run a backup under a runtime being closed (a reload)
      // or a process shutting down. A first attempt never made leaves the slot to the schedule (pending).
      await lock.release();
      this.#endWithoutAttempt(chain, "the agent stopped before retrying");
      return {
        started: false,
        holder: { kind: "backup", operationId: backupId, mode: opts.mode },
        done: undefined,
        ...(attempt === 1 ? { stopped: true as const } : {}),
      };
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
    for (const waiting of this.#chains) {
      if (waiting === chain || !waiting.waiting) continue;
      waiting.joined = this.#running;
      waiting.waiting.abort();
    }
    done.then(
      (outcome) => {
        const busy =
          !outcome.ok && outcome.failure.code === "vzdump_lock_busy" && opts.retryWhenBusy === true;
        if (busy && this.#stopped && attempt < this.#deps.backup.busy_retry.attempts) {
          // Refused after stop(): its message promises a retry that will not come; say so, once.
          chain.last = { outcome, startedAt };
          this.#endWithoutAttempt(chain, "the agent stopped before retrying");
          return;
        }
        const delayMs = busy ? this.#retryDelayMs(attempt) : undefined;
        if (!isDeferred(outcome)) {
          const retry: BusyRetry | undefined =
            delayMs === undefined
              ? undefined
              : {
                  attempt,
                  retriesLeft: this.#deps.backup.busy_retry.attempts - attempt,
                  inSeconds: Math.ceil(delayMs / 1000),
                };
          this.#deps.onOutcome?.(outcome, opts.trigger, { retry });
          if (!retry) opts.onSettled?.(outcome, startedAt);
        }
        if (delayMs === undefined) {
          chain.end();
          return;
        }
        chain.last = { outcome, startedAt };
        this.#retryLater(chain, attempt, "the node's vzdump lock was busy", delayMs);
      },
      // runBackup reports its failures as outcomes; should it throw all the same, the slot still ends, and a
      // retry promised by an earlier refusal is reported as never come.
      (err) => this.#endWithoutAttempt(chain, `the retry failed (${describeError(err)})`),
    );
    return { started: true, backupId, mode: opts.mode, done };
  }

  #timing(): QuietStorageTiming {
    return this.#deps.quietStorage ?? quietStorageTiming(this.#deps.backup.busy_retry.delay_seconds);
  }

  /** How long before its time a request's first attempt should be asked for when it looks (`dueAt`). */
  lookAheadMs(): number {
    return quietLookAheadMs(this.#timing());
  }

  /** Whether the chain looks at the storage before `attempt` (its budget not yet spent). */
  #looks(chain: Chain, attempt: number): boolean {
    const { retryWhenBusy, lookAtStorage } = chain.opts;
    const look = lookAtStorage === "retries" ? attempt > 1 : lookAtStorage !== false;
    return retryWhenBusy === true && look && chain.waitedMs < this.#timing().budgetMs;
  }

  /**
   * Waits while the backup storage grows (within the chain's budget), and then, for a look that began ahead of
   * the attempt's time, until that time. A guest whose identity cannot be verified skips the look: its attempt
   * fails at the preflight and says why.
   */
  async #waitForQuietStorage(
    chain: Chain,
    dueAt: number | undefined,
  ): Promise<QuietWait["ended"] | undefined> {
    const timing = this.#timing();
    // Registered before the first await: a backup of this guest that starts from here on (the hub's, the
    // CLI's) joins this chain, also while the guest's node is still being looked up.
    const waiting = new AbortController();
    chain.waiting = waiting;
    const { signal } = chain.opts;
    const aborts = signal ? AbortSignal.any([waiting.signal, signal]) : waiting.signal;
    try {
      const ended = await this.#lookAtStorage(chain, timing, dueAt, aborts);
      // Not before its time, also when the look ended early (a storage it could not read).
      if (dueAt !== undefined && !aborts.aborted && !this.#stopped)
        await sleep(dueAt - Date.now(), aborts).catch(() => undefined);
      return ended;
    } finally {
      chain.waiting = undefined;
    }
  }

  async #lookAtStorage(
    chain: Chain,
    timing: QuietStorageTiming,
    dueAt: number | undefined,
    aborts: AbortSignal,
  ): Promise<QuietWait["ended"] | undefined> {
    const { pve, backup, log } = this.#deps;
    chain.node ??= await verifiedSelf(this.#deps).then(
      (identity) => identity.node,
      () => undefined,
    );
    const node = chain.node;
    if (node === undefined || aborts.aborted || this.#stopped) return undefined;
    const wait = await waitForQuietStorage({
      timing,
      // A storage PVE could not activate or read is reported with used 0 and active 0 (pve-storage
      // PVE/Storage.pm storage_info): unreadable, not a storage that shrank or grew by terabytes.
      used: async (abort) => {
        const status = await pve.storageStatus(node, backup.storage, abort);
        return status.active === false ? undefined : status.used;
      },
      waitedMs: chain.waitedMs,
      ...(dueAt !== undefined ? { until: dueAt } : {}),
      signal: aborts,
      onBusy: (growthBytesPerS, waitMs) =>
        log.info(
          { storage: backup.storage, growthBytesPerS, waitMs },
          "the backup storage is growing (another backup is probably running); waiting before quiescing",
        ),
    });
    chain.waitedMs += wait.waitedMs;
    return wait.ended;
  }

  /** The wait before the attempt after `attempt`, with jitter; undefined when the attempts are used up. */
  #retryDelayMs(attempt: number): number | undefined {
    const { attempts, delay_seconds } = this.#deps.backup.busy_retry;
    return attempt < attempts ? busyRetryDelayMs(delay_seconds, attempt) : undefined;
  }

  /** Within backup.busy_retry's attempts, after `delay` (drawn now when not given); else the chain ends. */
  #retryLater(chain: Chain, attempt: number, why: string, delay = this.#retryDelayMs(attempt)): void {
    if (this.#stopped) {
      this.#endWithoutAttempt(chain, "the agent stopped before retrying");
      return;
    }
    if (delay === undefined) {
      this.#deps.log.warn({ attempt, why }, "busy; no retry left for this backup");
      this.#endWithoutAttempt(chain, `${why} at the last attempt`);
      return;
    }
    this.#deps.log.info({ attempt, delayMs: delay, why }, "busy; retrying the backup later");
    // A retry that looks begins its look ahead of its time, as a scheduled run does (Scheduler `leadMs`). Its
    // time is counted from the timer, not from the wall clock now: a clock stepped back meanwhile must not hold
    // the retry that much longer.
    const lead = this.#looks(chain, attempt + 1) ? Math.min(delay, this.lookAheadMs()) : 0;
    chain.timer = setTimeout(() => {
      chain.timer = undefined;
      this.#attempt(chain, attempt + 1, lead > 0 ? Date.now() + lead : undefined).catch((err) => {
        this.#deps.log.error({ err: describeError(err) }, "backup retry failed to start");
        this.#endWithoutAttempt(chain, `the retry failed to start (${describeError(err)})`);
      });
    }, delay - lead);
  }

  /**
   * Ends a chain where no attempt of its own gives the result: a refusal already reported with a promised
   * retry is reported again as final, saying why the retry never came, so the hub records the slot failed.
   */
  #endWithoutAttempt(chain: Chain, why: string): void {
    const { last, opts } = chain;
    if (last && !last.outcome.ok) {
      const failure = last.outcome.failure;
      const outcome: BackupOutcome = {
        ok: false,
        failure: { ...failure, message: `${failure.message}; no retry came: ${why}`.slice(0, 2_000) },
      };
      this.#deps.onOutcome?.(outcome, opts.trigger, { retry: undefined });
      opts.onSettled?.(outcome, last.startedAt);
    }
    chain.end();
  }

  /** Resolves when no backup runs in this process (at once when none does). */
  async settled(): Promise<void> {
    await this.#running?.done;
  }

  /**
   * Ends every pending retry at once, each reported as the slot's failure; a running backup finishes (its
   * resume is already registered), and a refusal it meets is final. The service starts no retry after this.
   */
  stop(): void {
    this.#stopped = true;
    for (const chain of [...this.#chains]) {
      chain.waiting?.abort();
      if (chain.timer === undefined) continue;
      clearTimeout(chain.timer);
      chain.timer = undefined;
      this.#endWithoutAttempt(chain, "the agent stopped before retrying");
    }
  }
}
