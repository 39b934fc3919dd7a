import type { Event, EventOf } from "@felhom/protocol";
import type { AgentConfig } from "../config/schema.ts";
import type { DockerEngine } from "../docker/docker-engine.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import type { Logger } from "../log/logger.ts";
import type { PveClient } from "../pve/client.ts";
import type { FollowOptions } from "../pve/task-follower.ts";
import type { OutsideArchive } from "./outside-archive.ts";
import type { StallBounds } from "./stall-watch.ts";

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

/** What one backup run needs; every adapter is passed in (no service locator). */
export interface BackupDeps {
  pve: PveClient;
  engine: DockerEngine;
  stateDir: string;
  backup: AgentConfig["backup"];
  configuredVmid?: number | undefined;
  /** Only these compose projects (config docker.projects); undefined: every stack in the guest. */
  projects?: string[] | undefined;
  localFacts: () => LocalFacts;
  emit: (event: BackupEvent) => void;
  log: Logger;
  /** Test seam for poll speed only; production uses the follower's defaults. */
  follow?: Pick<FollowOptions, "minIntervalMs" | "maxIntervalMs">;
  /** Test seam: how long a task may make no progress (production: DEFAULT_STALL_BOUNDS). */
  stall?: StallBounds;
}

/** The journal's `backup` section: what a restarted agent needs to finish the report (recover-at-start.ts). */
export interface JournalBackupSection {
  mode: BackupMode;
  trigger: Trigger["source"];
  startedAt: string;
  node: string;
  vmid: number;
  storage: string;
  phase: BackupPhase;
  upid?: string;
  /** Set when the stacks were resumed: "app" if after the snapshot existed, "crash" if before. */
  consistency?: "app" | "crash";
  /** Data the archive will not hold (preflight): reported by whichever run finishes the backup. */
  outside?: OutsideArchive;
  reported?: boolean;
}
