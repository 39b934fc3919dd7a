import type { backupMode, EventOf } from "@felhom/protocol";
import type { z } from "zod";
import { eventLine } from "../lib/report-text.ts";
import type { OperationDeps } from "../operation/operation-deps.ts";
import type { StallBounds } from "./stall-watch.ts";

export type BackupMode = z.infer<typeof backupMode>;
export type BackupPhase = EventOf<"backup.phase">["phase"];
export type Trigger = EventOf<"backup.phase">["trigger"];

/**
 * A backup's end, in the same shape the hub receives (`backup.completed` / `backup.failed` without
 * `kind`), so that the CLI's --json output, the hub event and the command result agree field for field.
 */
export type BackupOutcome =
  | { ok: true; result: Omit<EventOf<"backup.completed">, "kind"> }
  | { ok: false; failure: Omit<EventOf<"backup.failed">, "kind"> };

/** backup.completed/failed's `pveMode` from vzdump's `backup mode: X` line; nothing when it never came. */
export function pveModeField(mode: string | undefined): { pveMode?: "snapshot" | "suspend" | "stop" } {
  return mode === "snapshot" || mode === "suspend" || mode === "stop" ? { pveMode: mode } : {};
}

/**
 * A result's `warnings` as the protocol takes them: at most 100, each cut to an event line. Every list of
 * warnings that reaches `backup.completed` passes here (a plan note naming two dozen mount points is longer
 * than a line, and one invalid warning would drop the whole event).
 */
export function resultWarnings(warnings: readonly string[]): string[] {
  return warnings.slice(0, 100).map(eventLine);
}

/** The last lines of a task log, for a failure report. */
export class LogTail {
  readonly #max: number;
  readonly #lines: string[] = [];

  constructor(max: number) {
    this.#max = max;
  }

  push(line: string): void {
    this.#lines.push(eventLine(line));
    if (this.#lines.length > this.#max) this.#lines.shift();
  }

  lines(): string[] {
    return [...this.#lines];
  }
}

/**
 * A backup interrupted by the agent's own shutdown after PVE had started the task: not a result yet.
 * The journal keeps it, and the next start follows the task and reports the real outcome.
 */
export function isDeferred(o: BackupOutcome): boolean {
  return !o.ok && o.failure.code === "interrupted" && o.failure.upid !== null;
}

/** A backup's needs: an operation's, and a test seam of its own. */
export interface BackupDeps extends OperationDeps {
  /** Test seam: how long a task may make no progress (production: DEFAULT_STALL_BOUNDS). */
  stall?: StallBounds;
}

export interface BackupRequest {
  backupId: string;
  mode: BackupMode;
  trigger: Trigger;
  /**
   * The agent is shutting down. Snapshot mode: resume now and leave the task to the next start, which
   * follows it and reports it. Stop mode after the POST: the guest itself is going down for the backup;
   * touch nothing, the next boot resumes and reports.
   */
  signal?: AbortSignal;
  /**
   * Whether the caller tries again if the node's vzdump lock is busy: `retriesLeft` more attempts
   * (backup.busy_retry), so that the failure says what will really happen. Undefined: no retry.
   */
  busyRetry?: { retriesLeft: number };
}

/**
 * A busy node's refusal that the backup service tries again (backup.failed's `retry` for the hub): the attempt
 * that was refused (1 for the first), attempts still to come (at least 1), and seconds until the next.
 */
export type BusyRetry = NonNullable<EventOf<"backup.failed">["retry"]>;
