import type { Event, EventOf } from "@felhom/protocol";

export type BackupMode = "snapshot" | "stop";
export type BackupPhase = EventOf<"backup.phase">["phase"];
export type Trigger = EventOf<"backup.phase">["trigger"];

/** The events a backup emits; the daemon routes them to the hub outbox and the CLI to the terminal. */
export type BackupEvent = Extract<
  Event,
  { kind: "backup.phase" | "backup.progress" | "blackout" | "blackout.ended" }
>;

/**
 * A backup's end, in the same shape the hub receives (`backup.completed` / `backup.failed` without
 * `kind`), so that the CLI's --json output, the hub event and the command result agree field for field.
 */
export type BackupOutcome =
  | { ok: true; result: Omit<EventOf<"backup.completed">, "kind"> }
  | { ok: false; failure: Omit<EventOf<"backup.failed">, "kind"> };

/** The last lines of a task log, for a failure report. */
export class LogTail {
  readonly #max: number;
  readonly #lines: string[] = [];

  constructor(max: number) {
    this.#max = max;
  }

  push(line: string): void {
    this.#lines.push(line.slice(0, 1000));
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
