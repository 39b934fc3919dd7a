import type { Task, TaskFailure, TaskHang } from "./task-registry.ts";

/** What a request rule matches: any request, a path substring, a RegExp, or a predicate. */
export type RequestMatch = string | RegExp | ((method: string, path: string) => boolean) | undefined;

interface Rule {
  kind: "fail" | "hang" | "drop";
  remaining: number;
  status: number;
  match: RequestMatch;
}

export type TaskMatch = string | { type?: string; id?: string; vmid?: number } | ((t: Task) => boolean);

function matchesRequest(match: RequestMatch, method: string, path: string): boolean {
  if (match === undefined) return true;
  if (typeof match === "string") return path.includes(match);
  if (match instanceof RegExp) return match.test(path);
  return match(method, path);
}

function taskPredicate(m: TaskMatch): (t: Task) => boolean {
  if (typeof m === "function") return m;
  if (typeof m === "string") return (t) => t.upid === m;
  return (t) =>
    (m.type === undefined || t.type === m.type) &&
    (m.id === undefined || t.id === m.id) &&
    (m.vmid === undefined || t.id === String(m.vmid));
}

/**
 * Fault injection. Request faults act before authentication, like a proxy or a dying pveproxy worker would;
 * task faults act inside workers.
 */
export class Faults {
  private rules: Rule[] = [];
  private slowMs = 0;
  private slowMatch: RequestMatch;

  constructor(
    private readonly hangs: TaskHang[],
    private readonly failures: TaskFailure[],
  ) {}

  /** The next `n` matching requests get `status` (default 500) with an empty `{"data":null}` body. */
  failNext(n: number, status = 500, match?: RequestMatch): void {
    this.rules.push({ kind: "fail", remaining: n, status, match });
  }

  /** The next `n` matching requests are read and never answered (the socket stays open until close()). */
  hangNext(n: number, match?: RequestMatch): void {
    this.rules.push({ kind: "hang", remaining: n, status: 0, match });
  }

  /** The next `n` matching requests get a partial 200 response and then the socket is destroyed. */
  dropConnections(n: number, match?: RequestMatch): void {
    this.rules.push({ kind: "drop", remaining: n, status: 0, match });
  }

  /** Every matching response is delayed by `ms` until slow(0). */
  slow(ms: number, match?: RequestMatch): void {
    this.slowMs = ms;
    this.slowMatch = match;
  }

  /** The next task matching `m` never stops (until DELETE kills it), optionally once a line matching `afterLine` is logged. */
  hangTask(m: TaskMatch, opts: { afterLine?: RegExp } = {}): void {
    this.hangs.push({ match: taskPredicate(m), ...(opts.afterLine ? { afterLine: opts.afterLine } : {}) });
  }

  /**
   * The next task matching `m` pauses (from the start, or right after a line matching `afterLine` is logged) until
   * `resume()`; a stop request (DELETE) also ends the pause and is delivered as usual. `reached` resolves with the task
   * once it is paused, so tests can act at an exact point, e.g. while the archive is being written.
   */
  pauseTask(m: TaskMatch, opts: { afterLine?: RegExp } = {}): { reached: Promise<Task>; resume: () => void } {
    let resume: () => void = () => {};
    const release = new Promise<void>((r) => {
      resume = r;
    });
    let onReached: (t: Task) => void = () => {};
    const reached = new Promise<Task>((r) => {
      onReached = r;
    });
    this.hangs.push({
      match: taskPredicate(m),
      release,
      onReached,
      ...(opts.afterLine ? { afterLine: opts.afterLine } : {}),
    });
    return { reached, resume };
  }

  /** The next task matching `m` fails with `message` (vzdump: per guest, after the snapshot, while archiving). */
  failTask(m: TaskMatch, message: string): void {
    this.failures.push({ match: taskPredicate(m), message, kind: "fail" });
  }

  /** The next task matching `m` logs `WARN: <message>` (vzdump: while archiving) and ends `TASK WARNINGS: 1`. */
  warnTask(m: TaskMatch, message: string): void {
    this.failures.push({ match: taskPredicate(m), message, kind: "warn" });
  }

  /**
   * The next vzdump matching `m` cannot take its storage snapshot: AbstractConfig.pm `snapshot_create` warns
   * `snapshot create failed: starting cleanup` (unprefixed), cleans up and dies, and the guest's backup fails
   * with `message`.
   */
  failSnapshot(m: TaskMatch, message: string): void {
    this.failures.push({ match: taskPredicate(m), message, kind: "snapshot-fail" });
  }

  /**
   * The next vzdump matching `m` cannot write its archive's notes: VZDump.pm `exec_backup_task` logs
   * `WARN: unable to add notes - <message>` and goes on (the task ends `WARNINGS: 1`, the archive has no notes).
   */
  failNotes(m: TaskMatch, message: string): void {
    this.failures.push({ match: taskPredicate(m), message, kind: "notes-fail" });
  }

  /**
   * The next vzdump matching `m` that waits for the node's lock and is stopped (DELETE) gets the lock at that
   * very moment: the holder finished just before the SIGTERM landed (RESTEnvironment.pm `check_worker`
   * signals the worker whatever it is doing; VZDump.pm `getlock` logs `got global lock` once flock returns).
   * The signal then interrupts the guest's backup after it took `lock: backup`, and its clean-up outlasts the
   * 5 s before the SIGKILL: the task ends without a TASK line and the CT keeps `lock: backup`.
   */
  grantLockOnStop(m: TaskMatch): void {
    this.failures.push({ match: taskPredicate(m), message: "", kind: "grant-lock-on-stop" });
  }

  /** Removes every pending request rule and the slowdown. */
  clear(): void {
    this.rules = [];
    this.slowMs = 0;
  }

  /** @internal the rule that applies to this request, consumed. */
  take(method: string, path: string): Rule | undefined {
    const rule = this.rules.find((r) => r.remaining > 0 && matchesRequest(r.match, method, path));
    if (!rule) return undefined;
    rule.remaining--;
    this.rules = this.rules.filter((r) => r.remaining > 0);
    return rule;
  }

  /** @internal */
  delayFor(method: string, path: string): number {
    return this.slowMs > 0 && matchesRequest(this.slowMatch, method, path) ? this.slowMs : 0;
  }
}
