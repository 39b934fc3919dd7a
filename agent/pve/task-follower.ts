import { AgentError } from "../lib/errors.ts";
import type { PveClient } from "./client.ts";
import { PveAbortedError, PveError, PveTaskDeadlineError } from "./errors.ts";
import { classifyExitStatus, type ExitClass } from "./exit-status.ts";
import { sleep as defaultSleep } from "./retry.ts";
import { parseUpid } from "./upid.ts";
import { VzdumpLogRecogniser, type VzdumpPhase } from "./vzdump-log.ts";

export interface TaskResult {
  upid: string;
  exitstatus: string;
  classified: ExitClass;
  /** Every log line, in order, each once. */
  lines: string[];
}

/**
 * What following a task yields, in order. `line` events come exactly once per log line (keyed by PVE's
 * line number `n`, so a retried or repeated read never repeats or skips one); `phase` events follow the
 * line that completed them; `retry` reports a transient failure the follower is riding out; `end` is last.
 */
export type FollowEvent =
  | { type: "line"; n: number; text: string }
  /**
   * `seen`: the bounds of when the line that completed the phase appeared in the log, as far as polling can
   * tell (PVE's log lines carry no timestamp): after the previous log read was sent (it did not have the
   * line), by the answer of the read that returned it. Absent for phases found only at the task's end.
   */
  | { type: "phase"; phase: VzdumpPhase; seen?: { after: number; by: number } }
  | { type: "retry"; error: PveError; consecutiveFailures: number }
  | { type: "end"; result: TaskResult };

export interface FollowOptions {
  signal?: AbortSignal;
  /** Give up following after this long (the task itself goes on). */
  deadlineMs?: number;
  /** Poll interval while the log moves; it grows by `backoff` per idle poll up to `maxIntervalMs`. */
  minIntervalMs?: number;
  maxIntervalMs?: number;
  backoff?: number;
  pageSize?: number;
  /** Transient failures in a row (after the transport's own retries) before giving up. */
  maxConsecutiveFailures?: number;
  /** Recognise vzdump phases; defaults to true for `vzdump` tasks. */
  recognisePhases?: boolean;
  /**
   * The caller's own view of urgency: false once nothing waits on the task any more (the services were
   * resumed, say at a downtime deadline, before any phase of the log relieved them). Default: always.
   */
  isUrgent?: () => boolean;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

type TaskReader = Pick<PveClient, "taskStatus" | "taskLog">;

// Phases after which the services are no longer waiting on this task (resumable, or down anyway).
const RELIEF = new Set<VzdumpPhase["phase"]>([
  "snapshot-created",
  "snapshot-failed",
  "suspend-resumed",
  "guest-stopping",
  "guest-failed",
  "job-failed",
  "global-lock-timeout",
]);

/**
 * A vzdump follower polls at the fast interval from the start until the services can resume (the
 * quiesced window is the product's downtime), except while the job waits for another guest's backup to
 * release the node lock, which can take minutes.
 */
class Urgency {
  #relieved: boolean;
  #waitingForLock = false;

  constructor(vzdump: boolean) {
    this.#relieved = !vzdump;
  }

  see(phase: VzdumpPhase): void {
    if (phase.phase === "waiting-for-global-lock") this.#waitingForLock = true;
    if (phase.phase === "got-global-lock") this.#waitingForLock = false;
    if (RELIEF.has(phase.phase)) this.#relieved = true;
  }

  get urgent(): boolean {
    return !this.#relieved && !this.#waitingForLock;
  }
}

// PVE's dump_logfile answers an empty file with a fake first line (and a missing one likewise).
function isPlaceholder(line: { n: number; t: string }, emitted: number): boolean {
  return (
    emitted === 0 && line.n === 1 && (line.t === "no content" || line.t.startsWith("unable to open file - "))
  );
}

/**
 * Follows a task to its end as an async iterator of `FollowEvent`s; the generator's return value is the
 * same `TaskResult` as the final `end` event. Polling is adaptive: `minIntervalMs` while new lines arrive
 * (and, for vzdump, until the services may resume), backing off geometrically while the log is idle. Reads go through the transport's GET retries, and on
 * top of that the follower rides out 5xx answers and dropped connections until
 * `maxConsecutiveFailures`. Authentication, permission and parameter errors end it at once.
 *
 * The loop body of the consumer runs between polls: a consumer that must act on a phase without
 * pausing the follower (e.g. resuming services on `snapshot-created`) should start that work without
 * awaiting it inside the loop.
 */
export async function* followTask(
  client: TaskReader,
  node: string,
  upid: string,
  options: FollowOptions = {},
): AsyncGenerator<FollowEvent, TaskResult> {
  const minInterval = options.minIntervalMs ?? 250;
  const maxInterval = options.maxIntervalMs ?? 5_000;
  const factor = options.backoff ?? 1.6;
  const pageSize = options.pageSize ?? 500;
  const maxFailures = options.maxConsecutiveFailures ?? 30;
  const sleep = options.sleep ?? defaultSleep;
  const now = options.now ?? Date.now;
  const signal = options.signal;
  const deadline = options.deadlineMs === undefined ? Number.POSITIVE_INFINITY : now() + options.deadlineMs;
  const parsed = parseUpid(upid);
  // A task's log lives on the node that ran it, even if the guest has moved since.
  if (parsed.node !== node) {
    throw new AgentError("pve_argument_invalid", `task ${upid} ran on ${parsed.node}, not on ${node}`, {
      hint: "follow a task on the node named in its UPID",
    });
  }
  const recogniser =
    (options.recognisePhases ?? parsed.type === "vzdump") ? new VzdumpLogRecogniser() : undefined;
  const urgency = new Urgency(recogniser !== undefined);
  const lines: string[] = [];
  let emitted = 0;
  let interval = minInterval;
  let failures = 0;
  // When the last log read was sent: a line it did not return appeared after it.
  let absentSince = now();

  while (true) {
    if (signal?.aborted) throw new PveAbortedError(`following ${upid}`);
    if (now() >= deadline) throw new PveTaskDeadlineError(upid, options.deadlineMs!);
    let progressed = false;
    try {
      const status = await client.taskStatus(node, upid, signal);
      // Read the log after the status: once the status says stopped, this read sees the final line.
      let sent = now();
      while (true) {
        sent = now();
        const page = await client.taskLog(node, upid, { start: emitted, limit: pageSize }, signal);
        const seen = { after: absentSince, by: now() };
        const fresh = page.lines
          .filter((l) => l.n > emitted && !isPlaceholder(l, emitted))
          .sort((a, b) => a.n - b.n);
        for (const line of fresh) {
          emitted = line.n;
          lines.push(line.t);
          progressed = true;
          yield { type: "line", n: line.n, text: line.t };
          for (const phase of recogniser?.feed(line.t) ?? []) {
            urgency.see(phase);
            yield { type: "phase", phase, seen };
          }
        }
        const more = page.total !== undefined ? emitted < page.total : page.lines.length >= pageSize;
        if (fresh.length === 0 || !more) break;
      }
      // The last read reached the log's end: anything later appeared after it was sent.
      absentSince = sent;
      failures = 0;
      if (status.status === "stopped") {
        for (const phase of recogniser?.end() ?? []) yield { type: "phase", phase };
        // PVE omits exitstatus only if it could not read one; that is its "unexpected status".
        const exitstatus = status.exitstatus ?? "unexpected status";
        const result: TaskResult = { upid, exitstatus, classified: classifyExitStatus(exitstatus), lines };
        yield { type: "end", result };
        return result;
      }
    } catch (err) {
      if (!(err instanceof PveError) || !err.retryable) throw err;
      failures++;
      if (failures >= maxFailures) throw err;
      yield { type: "retry", error: err, consecutiveFailures: failures };
    }
    const urgent = urgency.urgent && (options.isUrgent?.() ?? true);
    interval = progressed || urgent ? minInterval : Math.min(maxInterval, Math.round(interval * factor));
    try {
      await sleep(Math.max(0, Math.min(interval, deadline - now())), signal);
    } catch {
      throw new PveAbortedError(`following ${upid}`);
    }
  }
}

/** Follows a task to its end, handing every event to `onEvent`; returns the result. */
export async function followTaskToEnd(
  client: TaskReader,
  node: string,
  upid: string,
  options: FollowOptions = {},
  onEvent: (event: FollowEvent) => void = () => {},
): Promise<TaskResult> {
  const it = followTask(client, node, upid, options);
  while (true) {
    const step = await it.next();
    if (step.done) return step.value;
    onEvent(step.value);
  }
}
