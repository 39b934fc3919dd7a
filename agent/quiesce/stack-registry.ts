import { z } from "zod";
import { byCodeUnits } from "../lib/order.ts";
import { readJsonFile, writeJsonDurable } from "../state/durable-file.ts";
import type { StackFacts } from "./stack-facts.ts";

/**
 * Every compose stack this guest has run, kept in the state dir. A restored guest (or one whose
 * containers were removed) still knows where each project's compose files are and can `compose up -d`
 * it. Stacks are never dropped because they are not seen once: that is exactly the restore case.
 */

const serviceSchema = z.object({
  dependsOn: z.array(z.string()),
  image: z.string().nullable(),
  /** The service's own grace period, as last seen (null = Docker's 10 s). */
  stopGraceS: z.number().nullable(),
  /** How long Docker's stop took the last time the agent quiesced it. */
  lastStopMs: z.number().nullable(),
  /**
   * When discovery last found a container of it: the stack's lastSeen while the service is part of the stack
   * (a profiled service that ran is brought back after a restore; one that no longer does is not). Null in
   * registries written before it was recorded.
   */
  lastSeen: z.string().nullable().default(null),
});

const stackSchema = z.object({
  project: z.string(),
  workingDir: z.string(),
  configFiles: z.array(z.string()),
  /** Registries written before env files were recorded have none. */
  environmentFiles: z.array(z.string()).default([]),
  composeVersion: z.string().nullable(),
  services: z.record(z.string(), serviceSchema),
  firstSeen: z.string(),
  lastSeen: z.string(),
});

const registrySchema = z.object({
  version: z.literal(1),
  stacks: z.record(z.string(), stackSchema),
});

export type RegisteredStack = z.infer<typeof stackSchema>;
export type RegisteredService = z.infer<typeof serviceSchema>;

export class StackRegistry {
  private constructor(
    readonly path: string,
    private data: z.infer<typeof registrySchema>,
  ) {}

  static async load(path: string): Promise<StackRegistry> {
    return new StackRegistry(path, (await readJsonFile(path, registrySchema)) ?? { version: 1, stacks: {} });
  }

  get stacks(): RegisteredStack[] {
    return Object.values(structuredClone(this.data.stacks)).sort((a, b) => byCodeUnits(a.project, b.project));
  }

  stack(project: string): RegisteredStack | undefined {
    const s = this.data.stacks[project];
    return s ? structuredClone(s) : undefined;
  }

  observedStopMs(project: string, service: string): number | undefined {
    return this.data.stacks[project]?.services[service]?.lastStopMs ?? undefined;
  }

  /** Merges what discovery saw; services not seen this time keep their last record. */
  async recordDiscovered(stacks: StackFacts[], now = new Date()): Promise<void> {
    const at = now.toISOString();
    for (const s of stacks) {
      const old = this.data.stacks[s.project];
      const services = { ...(old?.services ?? {}) };
      for (const svc of s.services) {
        const c = svc.containers[0];
        services[svc.name] = {
          dependsOn: svc.dependsOn,
          image: c?.image ?? null,
          stopGraceS: c?.stopTimeoutS ?? null,
          lastStopMs: old?.services[svc.name]?.lastStopMs ?? null,
          lastSeen: at,
        };
      }
      this.data.stacks[s.project] = {
        project: s.project,
        // A stack found with incomplete labels keeps the paths it was recorded with.
        workingDir: s.workingDir || old?.workingDir || "",
        configFiles: s.configFiles.length > 0 ? s.configFiles : (old?.configFiles ?? []),
        // Follows the config files: a stack found without them keeps the env files recorded with them.
        environmentFiles: s.configFiles.length > 0 ? s.environmentFiles : (old?.environmentFiles ?? []),
        composeVersion: s.composeVersion ?? old?.composeVersion ?? null,
        services,
        firstSeen: old?.firstSeen ?? at,
        lastSeen: at,
      };
    }
    await writeJsonDurable(this.path, this.data);
  }

  /** `durations` is keyed "project/service", as QuiesceHandle.stopDurationsMs. */
  async recordStopDurations(durations: Record<string, number>): Promise<void> {
    let changed = false;
    for (const [key, ms] of Object.entries(durations)) {
      const slash = key.indexOf("/");
      const svc = this.data.stacks[key.slice(0, slash)]?.services[key.slice(slash + 1)];
      if (svc) {
        svc.lastStopMs = ms;
        changed = true;
      }
    }
    if (changed) await writeJsonDurable(this.path, this.data);
  }
}
