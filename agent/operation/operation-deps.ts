import type { Event } from "@felhom/protocol";
import type { AgentConfig } from "../config/schema.ts";
import type { DockerEngine } from "../docker/docker-engine.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import type { Logger } from "../log/logger.ts";
import type { PveClient } from "../pve/client.ts";
import type { FollowOptions } from "../pve/task-follower.ts";

/**
 * The events an operation sends while it runs: a backup's phases and progress, and the blackout it
 * announces and ends. The daemon routes them to the hub's outbox, the CLI to the terminal.
 */
export type OperationEvent = Extract<
  Event,
  { kind: "backup.phase" | "backup.progress" | "blackout" | "blackout.ended" }
>;

/**
 * What an operation on this guest needs, every adapter passed in (no service locator): a backup, a
 * snapshot, the boot sequence's recovery and restore checks, identity. Built by app/context.ts.
 */
export interface OperationDeps {
  pve: PveClient;
  engine: DockerEngine;
  stateDir: string;
  backup: AgentConfig["backup"];
  configuredVmid?: number | undefined;
  /** Only these compose projects (config docker.projects); undefined: every stack in the guest. */
  projects?: string[] | undefined;
  localFacts: () => LocalFacts;
  emit: (event: OperationEvent) => void;
  log: Logger;
  /** Test seam for poll speed only; production uses the follower's defaults. */
  follow?: Pick<FollowOptions, "minIntervalMs" | "maxIntervalMs">;
}
