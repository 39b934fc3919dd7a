import type { DockerEngine } from "../docker/docker-engine.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import type { CtMountPoint } from "../pve/mount-points.ts";
import { statePaths } from "../state/paths.ts";
import type { MountCoverage } from "./archive-coverage.ts";
import { judgedCoverage } from "./coverage-facts.ts";
import { discoverStacks } from "./discover-stacks.ts";
import { PlanInvalidError, StacksDownError } from "./errors.ts";
import { type QuiesceHandle, type QuiesceOptions, quiesce } from "./executor.ts";
import { QuiesceJournal } from "./journal.ts";
import { buildPlan, type PlanOptions, type QuiescePlan } from "./plan.ts";
import { resumeFromJournal } from "./resume-from-journal.ts";
import type { StackFacts } from "./stack-facts.ts";
import { StackRegistry } from "./stack-registry.ts";
import { type StackWarning, stackWarnings } from "./stack-warnings.ts";

/**
 * The entry points the backup flow uses: `prepareQuiesce` in preflight (no downtime, fails fast on bad
 * labels), `quiesceStacks` right before the snapshot. File names inside the state dir live here only.
 */

/**
 * An unfinished journal means containers of some operation are (or may be) still down; so does one that
 * cannot be read (it may list stopped containers).
 */
export async function journalLeftOpen(stateDir: string): Promise<boolean> {
  try {
    const j = await QuiesceJournal.open(statePaths(stateDir).quiesceJournal);
    return j !== undefined && !j.finished;
  } catch {
    return true;
  }
}

export interface QuiesceDeps {
  engine: DockerEngine;
  stateDir: string;
  logger?: Logger;
}

export interface PreparedQuiesce {
  stacks: StackFacts[];
  plan: QuiescePlan;
  warnings: StackWarning[];
  /** Whether each mount's data is in the archive; undefined without the CT's mount points. */
  coverage: MountCoverage[] | undefined;
}

/**
 * Discovers the stacks, records them in the registry, builds the plan and the warnings. Throws
 * PlanInvalidError (code plan_invalid) naming every bad label before anything is touched.
 */
export async function prepareQuiesce(
  deps: QuiesceDeps,
  options: PlanOptions & {
    /** Also check named volume sizes (the engine walks every volume). @default false */
    volumeSizes?: boolean;
    /** Only these compose projects. @default all */
    projects?: string[];
    /**
     * The CT's mount points (PVE config): warns about data that is not in the archive. A promise is awaited
     * only after the discovery, so PVE can be asked meanwhile.
     */
    mountPoints?: CtMountPoint[] | Promise<CtMountPoint[] | undefined>;
  } = {},
): Promise<PreparedQuiesce> {
  const stacks = await discoverStacks(deps.engine, options.projects);
  const registry = await StackRegistry.load(statePaths(deps.stateDir).stackRegistry);
  await registry.recordDiscovered(stacks);
  const result = buildPlan(stacks, options);
  if (!result.ok) throw new PlanInvalidError(result.issues);
  const mountPoints = await options.mountPoints;
  const coverage = mountPoints && (await judgedCoverage(deps.engine, stacks, mountPoints));
  const warnings = stackWarnings(stacks, {
    observedStopMs: (p, s) => registry.observedStopMs(p, s),
    ...(options.volumeSizes ? { volumeSizes: await deps.engine.volumeSizes() } : {}),
    ...(coverage ? { coverage } : {}),
  });
  return { stacks, plan: result.plan, warnings, coverage };
}

/**
 * Only under the backup lock, before a new quiesce: an unfinished journal then is an earlier resume that
 * failed (a container would not start). It is retried; while something stays down nothing new is
 * quiesced (StacksDownError). Outside the lock the journal may belong to a running operation.
 */
export async function retryLeftoverResume(deps: QuiesceDeps): Promise<void> {
  const leftover = await resumeFromJournal(statePaths(deps.stateDir).quiesceJournal, deps.engine, {
    ...(deps.logger ? { logger: deps.logger } : {}),
  });
  if (leftover && !leftover.finished) throw new StacksDownError(leftover);
}

/**
 * Journals the plan (fsync'd) and quiesces. The returned handle's `resume()` must be awaited in a
 * `finally`; the journal is returned so the backup flow can `update({ backup: {...} })` it. Throws
 * QuiesceFailedError after resuming whatever it had quiesced when a step with on-error=abort failed.
 */
export async function quiesceStacks(
  deps: QuiesceDeps,
  run: {
    backupId: string;
    plan: QuiescePlan;
    /** The caller's section, journalled with the plan before anything is touched. */
    backup?: Record<string, unknown>;
    /** Called once the journal is on disk, right before the first container is touched. */
    journalled?: () => void;
  } & QuiesceOptions,
): Promise<{ handle: QuiesceHandle; journal: QuiesceJournal }> {
  const { backupId, plan, backup, journalled, ...options } = run;
  const logger = deps.logger ?? silentLogger();
  const journal = await QuiesceJournal.create(statePaths(deps.stateDir).quiesceJournal, {
    backupId,
    plan,
    ...(backup ? { backup } : {}),
  });
  journalled?.();
  const handle = await quiesce(journal, deps.engine, { logger, ...options });
  try {
    const registry = await StackRegistry.load(statePaths(deps.stateDir).stackRegistry);
    await registry.recordStopDurations(handle.stopDurationsMs);
  } catch (err) {
    // Losing a duration only weakens a warning; it must not turn a quiesced stack into a failed backup.
    logger.warn({ err }, "could not record stop durations in the stack registry");
  }
  return { handle, journal };
}
