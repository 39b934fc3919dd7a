import { encodeUpid } from "./upid.ts";

/**
 * Worker tasks as pvedaemon forks them: a UPID, a log whose last line is the `TASK ...` marker, and a status
 * derived from that line exactly as PVE::UPID `read_status` does.
 */
export interface Task {
  upid: string;
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  /** The UPID user: `user@realm` or the full token id `user@realm!token`. */
  user: string;
  lines: string[];
  running: boolean;
  endtime?: number;
  exitstatus?: string;
  /** Resolves when the task has stopped. */
  done: Promise<void>;
}

/** Thrown by a worker to end with `TASK ERROR: <message>`. */
export class TaskError extends Error {}
/** Thrown by a worker that ends like `exit(-1)`: no TASK line at all. */
export class TaskExit extends Error {}
/** Delivered once to a worker whose task was stopped through DELETE (pvedaemon's SIGTERM). */
export class TaskInterrupted extends Error {
  constructor() {
    super("interrupted by signal");
  }
}

export interface TaskContext {
  upid: string;
  task: Task;
  /** Appends a line; awaiting it is where a hung task stops and where a stop request is delivered. */
  log(line: string): Promise<void>;
  /** `log_warn`: a `WARN:` line that counts towards `TASK WARNINGS: n`. */
  warn(msg: string): Promise<void>;
  signal: AbortSignal;
}

export type TaskWorker = (ctx: TaskContext) => Promise<void>;

export interface TaskHang {
  match: (t: Task) => boolean;
  /** Hang once a line matching this has been logged; immediately when unset. */
  afterLine?: RegExp;
  /** A pause rather than a hang: the worker goes on once this resolves (or the task is stopped). */
  release?: Promise<void>;
  /** Called when the task reaches the hang or pause point. */
  onReached?: (t: Task) => void;
}

export interface TaskFailure {
  match: (t: Task) => boolean;
  message: string;
  /**
   * "fail": the step fails with the message; "warn": a `WARN:` line is logged and the task goes on;
   * "grant-lock-on-stop": a vzdump waiting for the node lock is granted it as its stop request lands;
   * "snapshot-fail": a vzdump's storage snapshot fails with the message; "notes-fail": writing its notes
   * fails with the message (a warning).
   */
  kind: "fail" | "warn" | "grant-lock-on-stop" | "snapshot-fail" | "notes-fail";
}

interface Internal {
  task: Task;
  abort: AbortController;
  hung: boolean;
  interruptDelivered: boolean;
  hang?: TaskHang;
  finish: () => void;
  kill: () => void;
}

export function readStatus(lines: readonly string[]): string {
  const last = lines.at(-1);
  if (last === undefined) return "unexpected status";
  if (last === "TASK OK") return "OK";
  const warn = /^TASK WARNINGS: (\d+)$/.exec(last);
  if (warn) return `WARNINGS: ${warn[1]}`;
  const err = /^TASK ERROR: (.+)$/.exec(last);
  if (err) return err[1] as string;
  return "unexpected status";
}

export class TaskRegistry {
  readonly all: Task[] = [];
  private readonly internal = new Map<string, Internal>();
  private nextPid = 0x1000 + Math.floor(Math.random() * 0x10000);
  readonly hangs: TaskHang[] = [];
  readonly failures: TaskFailure[] = [];
  /** Running tasks a DELETE stopped (each is a failed job the PVE admin is notified of). */
  readonly stopped: string[] = [];
  private readonly simStart = Date.now();

  /** `pstartBase` is the worker start time in clock ticks; above 0xFFFFFFFF it prints as 9 hex digits. */
  constructor(private readonly pstartBase: number) {}

  start(node: string, type: string, id: string, user: string, worker: TaskWorker): Task {
    const pid = this.nextPid++;
    const pstart = this.pstartBase + Math.floor((Date.now() - this.simStart) / 10);
    let starttime = Math.floor(Date.now() / 1000);
    // UPIDs must stay unique even when two tasks start in the same second with the same pid wrap.
    while (this.internal.has(encodeUpid({ node, pid, pstart, starttime, type, id, user }))) starttime++;
    const upid = encodeUpid({ node, pid, pstart, starttime, type, id, user });
    let resolveDone: () => void = () => {};
    const done = new Promise<void>((r) => {
      resolveDone = r;
    });
    const task: Task = { upid, node, pid, pstart, starttime, type, id, user, lines: [], running: true, done };
    const hangIdx = this.hangs.findIndex((h) => h.match(task));
    const hang = hangIdx >= 0 ? this.hangs.splice(hangIdx, 1)[0] : undefined;
    const it: Internal = {
      task,
      abort: new AbortController(),
      hung: false,
      interruptDelivered: false,
      ...(hang ? { hang } : {}),
      finish: () => {
        if (!task.running) return;
        task.running = false;
        task.endtime = Math.floor(Date.now() / 1000);
        task.exitstatus = readStatus(task.lines);
        resolveDone();
      },
      kill: () => {},
    };
    it.kill = it.finish;
    this.internal.set(upid, it);
    this.all.push(task);
    let warnings = 0;
    const never = new Promise<void>(() => {});
    const stopped = new Promise<void>((r) =>
      it.abort.signal.addEventListener("abort", () => r(), { once: true }),
    );
    /** Stops at the hang or pause point: forever for a hang, until release or a stop request for a pause. */
    const reach = async (h: TaskHang): Promise<void> => {
      delete it.hang;
      h.onReached?.(task);
      if (!h.release) {
        it.hung = true;
        return never;
      }
      await Promise.race([h.release, stopped]);
    };
    const log = async (line: string): Promise<void> => {
      if (!task.running) return never; // killed: the worker is gone
      task.lines.push(...line.split("\n"));
      if (it.hung) return never;
      if (it.hang?.afterLine?.test(line)) await reach(it.hang);
      if (it.abort.signal.aborted && !it.interruptDelivered) {
        it.interruptDelivered = true;
        throw new TaskInterrupted();
      }
    };
    const ctx: TaskContext = {
      upid,
      task,
      log,
      warn: async (msg) => {
        warnings++;
        await log(`WARN: ${msg}`);
      },
      signal: it.abort.signal,
    };
    void (async () => {
      await new Promise((r) => setImmediate(r));
      if (it.hang && !it.hang.afterLine) await reach(it.hang);
      try {
        await worker(ctx);
        if (!task.running) return;
        task.lines.push(warnings > 0 ? `TASK WARNINGS: ${warnings}` : "TASK OK");
      } catch (err) {
        if (!task.running) return;
        if (!(err instanceof TaskExit))
          task.lines.push(`TASK ERROR: ${(err as Error).message.trim().replace(/\n/g, " ")}`);
      }
      it.finish();
    })();
    return task;
  }

  /** The next injected failure (or warning) for a task like this one, consumed. */
  takeFailure(task: Task, kind: TaskFailure["kind"]): string | undefined {
    const i = this.failures.findIndex((f) => f.kind === kind && f.match(task));
    return i >= 0 ? this.failures.splice(i, 1)[0]?.message : undefined;
  }

  find(upid: string): Task | undefined {
    return this.internal.get(upid)?.task;
  }

  /**
   * DELETE /tasks/{upid}: SIGTERM, and SIGKILL 5 s later. A worker that is hung never reacts, so it is killed and
   * leaves no TASK line ("unexpected status"); a live worker gets `interrupted by signal` at its next log line.
   */
  stop(upid: string, killAfterMs = 5000): void {
    const it = this.internal.get(upid);
    if (!it?.task.running) return;
    this.stopped.push(upid);
    it.abort.abort();
    if (it.hung) {
      it.kill();
      return;
    }
    const timer = setTimeout(() => it.kill(), killAfterMs);
    void it.task.done.then(() => clearTimeout(timer));
  }

  /** Ends every running task (simulator shutdown); returns how many were running. */
  killAll(): number {
    let n = 0;
    for (const it of this.internal.values()) {
      if (!it.task.running) continue;
      n++;
      it.abort.abort(); // child processes (tar, zstd) listen to this
      it.kill();
    }
    return n;
  }
}
