import type { DockerEngine, ExecResult } from "../docker/docker-engine.ts";
import { describeError } from "../lib/errors.ts";
import { FROZEN_AFTER_MS, lateTimeout } from "../lib/late-timer.ts";
import { commandForReport, outputTailForReport } from "../lib/report-text.ts";
import { redactSecrets } from "../lib/secret.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import { HealthTimeoutError, HookFailedError, QuiesceFailedError, type StepFailure } from "./errors.ts";
import type { JournalEntry, QuiesceJournal } from "./journal.ts";
import { type PlannedContainer, type PlannedService, resumeLevels } from "./plan.ts";

/**
 * Carries out a journalled plan. `quiesce()` returns its own `resume()` (offen/docker-volume-backup's
 * shape): the caller registers it in a `finally` before doing anything else, and resume undoes exactly
 * what the journal says was done — never starting a container that was not running before.
 */

export type Engine = Pick<DockerEngine, "inspect" | "stop" | "start" | "pause" | "unpause" | "exec">;

export interface QuiesceOptions {
  /** The quiesce phase must end by then; later levels are skipped and everything is resumed. @default 300 s */
  quiesceDeadlineMs?: number;
  /** Dead man's switch: resume by itself this long after quiesce began, whatever the caller does. @default 900 s */
  downtimeDeadlineMs?: number;
  /**
   * A switch that fires late (FROZEN_AFTER_MS) finds a process that was frozen, not hung: it waits this much
   * longer, once, so that the caller, thawed at the same instant, acts first. @default 60 s
   */
  frozenGraceMs?: number;
  /** How long resume keeps retrying while the engine does not answer (dockerd restarting). @default 180 s */
  reconnectBudgetMs?: number;
  /** Captured hook output per run (the tail is kept). @default 64 KiB */
  maxHookOutputBytes?: number;
  logger?: Logger;
}

export interface HookRun {
  project: string;
  service: string;
  container: string;
  phase: "pre" | "post";
  exitCode: number | null;
  timedOut: boolean;
  output: string;
  truncated: boolean;
  durationMs: number;
}

export interface ContainerRef {
  project: string;
  service: string;
  container: string;
}

export interface ResumeReport {
  backupId: string;
  /** Who asked: the caller, the downtime deadline, an aborted quiesce, or a journal replayed at start. */
  trigger: "caller" | "deadline" | "abort" | "journal";
  /** Containers started or unpaused again. */
  resumed: ContainerRef[];
  failures: StepFailure[];
  hooks: HookRun[];
  /** Per "project/service": first container quiesced → last container resumed. */
  downtimeMs: Record<string, number>;
  /** The same windows as instants (ms since the epoch), for a breakdown of where the downtime went. */
  spans: Record<string, { down: number; up: number }>;
  /** When this resume began (ms since the epoch). */
  startedAt: number;
  /**
   * False when a container could not be started or unpaused again: the journal stays unfinished so that
   * resumeFromJournal retries it at the next agent start.
   */
  finished: boolean;
}

export interface QuiesceHandle {
  backupId: string;
  quiesced: ContainerRef[];
  /** Failures of services with on-error=continue; the quiesce went on. */
  failures: StepFailure[];
  hooks: HookRun[];
  /** Per "project/service": how long Docker's stop took (the registry remembers it for warnings). */
  stopDurationsMs: Record<string, number>;
  /** Idempotent: a second call (or the deadline) returns the same report. */
  resume(): Promise<ResumeReport>;
}

const DEFAULTS = {
  quiesceDeadlineMs: 300_000,
  downtimeDeadlineMs: 900_000,
  frozenGraceMs: 60_000,
  reconnectBudgetMs: 180_000,
  maxHookOutputBytes: 64 * 1024,
};

const HEALTH_POLL_MS = 250;
const RECONNECT_POLL_MS = 500;

export async function quiesce(
  journal: QuiesceJournal,
  engine: Engine,
  options: QuiesceOptions = {},
): Promise<QuiesceHandle> {
  const opts = { ...DEFAULTS, ...options };
  const log = options.logger ?? silentLogger();
  const { plan, backupId } = journal.data;
  const started = Date.now();
  const hooks: HookRun[] = [];
  const failures: StepFailure[] = [];
  const stopDurationsMs: Record<string, number> = {};
  const quiesced: ContainerRef[] = [];

  // The undo exists before the first action: the dead man's switch is armed first. While steps are still
  // in flight it only stops further quiescing; resuming then would race a stop that has not returned yet.
  let resuming: Promise<ResumeReport> | undefined;
  let quiescing = true;
  let deadlineHit = false;
  const resume = (trigger: ResumeReport["trigger"]): Promise<ResumeReport> => {
    clearTimeout(deadman);
    resuming ??= resumeJournal(journal, engine, trigger, { ...opts, logger: log });
    return resuming;
  };
  // PVE freezes the whole CT for the storage snapshot; on thaw this timer fires at once, before the caller
  // has read the task log that says the snapshot exists. Resuming then would make an app-consistent copy
  // crash-consistent for nothing: a late switch waits once more for the caller instead. Once: a grace that
  // fires late too (a second freeze, or a caller hung while PVE froze) resumes, or a CT frozen again and
  // again would keep its stacks down past every bound.
  let graceGiven = false;
  const onDeadman = (lateMs: number) => {
    if (lateMs >= FROZEN_AFTER_MS && !graceGiven) {
      graceGiven = true;
      log.warn(
        { backupId, lateMs, graceMs: opts.frozenGraceMs },
        "the downtime deadline fell while this process was frozen; the caller gets a moment to act first",
      );
      deadman = lateTimeout(opts.frozenGraceMs, onDeadman);
      return;
    }
    log.warn({ backupId, afterMs: opts.downtimeDeadlineMs }, "downtime deadline reached; resuming stacks");
    deadlineHit = true;
    if (!quiescing) {
      resume("deadline").catch((err) =>
        log.error({ err: describeError(err) }, "resume after the deadline failed"),
      );
    }
  };
  let deadman = lateTimeout(opts.downtimeDeadlineMs, onDeadman);

  let abort: string | undefined;
  const deadlinePassed = `the downtime deadline of ${opts.downtimeDeadlineMs} ms passed during quiesce`;
  // Each service starts as soon as its dependents are quiesced: the level order, without waiting for the
  // slowest service of a level.
  const settled = await runGraph(
    plan.levels.flat(),
    (svc) => svc.dependents.map((d) => key(svc.project, d)),
    async (svc) => {
      if (abort) return;
      if (deadlineHit) {
        abort ??= deadlinePassed;
        return;
      }
      const remaining = opts.quiesceDeadlineMs - (Date.now() - started);
      if (remaining <= 0) {
        abort = `quiesce deadline of ${opts.quiesceDeadlineMs} ms passed`;
        return;
      }
      await quiesceService(svc, remaining);
    },
  );
  settled.forEach((r, i) => {
    if (r.status === "rejected") {
      // quiesceService records its own step failures; a rejection here is a journal write or a bug.
      const svc = plan.levels.flat()[i]!;
      failures.push({
        project: svc.project,
        service: svc.service,
        container: "-",
        action: "journal",
        code: (r.reason as { code?: string }).code ?? "internal",
        message: describeError(r.reason),
      });
      abort ??= `quiesce of ${svc.project}/${svc.service} failed: ${describeError(r.reason)}`;
    }
  });

  quiescing = false;
  // Also when the deadline passed during the last step in flight, which no later service saw.
  if (deadlineHit) abort ??= deadlinePassed;
  if (abort) {
    log.error({ backupId, reason: abort, failures }, "quiesce aborted; resuming what was quiesced");
    const report = await resume(deadlineHit ? "deadline" : "abort");
    throw new QuiesceFailedError(`quiesce of backup ${backupId} aborted: ${abort}`, failures, report);
  }
  log.info({ backupId, containers: quiesced.length, ms: Date.now() - started }, "stacks quiesced");
  return { backupId, quiesced, failures, hooks, stopDurationsMs, resume: () => resume("caller") };

  async function quiesceService(svc: PlannedService, remainingMs: number): Promise<void> {
    await Promise.all(svc.containers.map((c) => quiesceContainer(svc, c, remainingMs)));
  }

  async function quiesceContainer(
    svc: PlannedService,
    c: PlannedContainer,
    remainingMs: number,
  ): Promise<void> {
    const ref = { project: svc.project, service: svc.service, container: c.name };
    const fail = (action: StepFailure["action"], err: unknown) => {
      const code = (err as { code?: unknown }).code;
      failures.push({
        ...ref,
        action,
        code: typeof code === "string" ? code : "internal",
        message: describeError(err),
      });
      if (svc.onError === "abort") abort ??= `${action} of ${c.name} failed: ${describeError(err)}`;
    };
    if (svc.pre) {
      await journal.updateContainer(c.id, { pre: "started" });
      try {
        const run = await runHook(
          engine,
          svc,
          c,
          "pre",
          Math.min(svc.timeoutMs, remainingMs),
          opts.maxHookOutputBytes,
        );
        hooks.push(run);
        await journal.updateContainer(c.id, { pre: "ok" });
      } catch (err) {
        if (err instanceof HookRunError) hooks.push(err.run);
        await journal.updateContainer(c.id, { pre: "failed", error: describeError(err) });
        fail("pre", err);
        if (svc.onError === "abort") return;
      }
    }
    // Another service of this level may have failed with on-error=abort: touch nothing more.
    if (abort) return;
    if (svc.strategy === "exec") {
      await journal.updateContainer(c.id, { status: "quiesced", quiescedAt: new Date().toISOString() });
      quiesced.push(ref);
      return;
    }
    await journal.updateContainer(c.id, { status: "quiescing" });
    const t0 = Date.now();
    try {
      if (svc.strategy === "stop") {
        log.info(
          { container: c.name, signal: svc.stopSignal ?? "SIGTERM", graceS: svc.stopGraceS },
          "stopping",
        );
        await engine.stop(c.id, c.name, svc.stopGraceS);
        const k = key(svc.project, svc.service);
        stopDurationsMs[k] = Math.max(stopDurationsMs[k] ?? 0, Date.now() - t0);
      } else {
        log.info({ container: c.name }, "pausing");
        await engine.pause(c.id, c.name);
      }
      await journal.updateContainer(c.id, { status: "quiesced", quiescedAt: new Date(t0).toISOString() });
      quiesced.push(ref);
    } catch (err) {
      await journal.updateContainer(c.id, { status: "quiesce_failed", error: describeError(err) });
      fail(svc.strategy, err);
    }
  }
}

/**
 * Resumes everything the journal records as touched, dependencies first. Used by the
 * handle and, after a crash, by resumeFromJournal. Never throws for a container: every failure is in
 * the report, and every container is tried.
 */
export async function resumeJournal(
  journal: QuiesceJournal,
  engine: Engine,
  trigger: ResumeReport["trigger"],
  options: QuiesceOptions = {},
): Promise<ResumeReport> {
  const opts = { ...DEFAULTS, ...options };
  const log = options.logger ?? silentLogger();
  const { plan, backupId } = journal.data;
  const report: ResumeReport = {
    backupId,
    trigger,
    resumed: [],
    failures: [],
    hooks: [],
    downtimeMs: {},
    spans: {},
    startedAt: Date.now(),
    finished: false,
  };
  const persist = (id: string, patch: Partial<JournalEntry>) =>
    journal
      .updateContainer(id, patch)
      .catch((err) => log.error({ err: describeError(err) }, "journal write failed during resume"));

  // A service resumes as soon as the services it depends on are back (the reverse of quiesce order).
  const dependencies = new Map<string, string[]>();
  for (const svc of plan.levels.flat()) {
    for (const d of svc.dependents) {
      const k = key(svc.project, d);
      dependencies.set(k, [...(dependencies.get(k) ?? []), key(svc.project, svc.service)]);
    }
  }
  await runGraph(
    resumeLevels(plan).flat(),
    (svc) => dependencies.get(key(svc.project, svc.service)) ?? [],
    async (svc) => {
      await Promise.allSettled(svc.containers.map((c) => resumeContainer(svc, c)));
    },
  );
  for (const svc of plan.levels.flat()) {
    // An exec service never went down; its hook window is not downtime.
    if (svc.strategy === "exec") continue;
    const entries = svc.containers
      .map((c) => journal.entry(c.id))
      .filter((e): e is JournalEntry => e !== undefined);
    const from = entries
      .map((e) => e.quiescedAt)
      .filter((t): t is string => t !== null)
      .map(Date.parse);
    const to = entries
      .map((e) => e.resumedAt)
      .filter((t): t is string => t !== null)
      .map(Date.parse);
    if (from.length > 0 && to.length > 0) {
      const span = { down: Math.min(...from), up: Math.max(...to) };
      report.spans[`${svc.project}/${svc.service}`] = span;
      report.downtimeMs[`${svc.project}/${svc.service}`] = span.up - span.down;
    }
  }
  // A container that could not be started again keeps the journal open, so the next agent start retries
  // it (and no new backup starts meanwhile). A container removed meanwhile has nothing left to resume.
  const leftDown = report.failures.filter(
    (f) => (f.action === "start" || f.action === "unpause") && f.code !== "container_not_found",
  );
  report.finished = leftDown.length === 0;
  if (report.finished) {
    await journal
      .finish()
      .catch((err) => log.error({ err: describeError(err) }, "could not mark the journal finished"));
  }
  log.info(
    { backupId, trigger, resumed: report.resumed.length, failures: report.failures.length },
    "stacks resumed",
  );
  return report;

  async function resumeContainer(svc: PlannedService, c: PlannedContainer): Promise<void> {
    const entry = journal.entry(c.id);
    if (!entry) return;
    const ref = { project: svc.project, service: svc.service, container: c.name };
    const fail = (action: StepFailure["action"], err: unknown) => {
      const code = (err as { code?: unknown }).code;
      report.failures.push({
        ...ref,
        action,
        code: typeof code === "string" ? code : "internal",
        message: describeError(err),
      });
    };
    const touched = entry.status !== "pending" && entry.status !== "resumed";
    if (touched) {
      // A stop or a pause is undone. An exec service kept running, unless the guest went down meanwhile
      // (stop mode): its post hook needs it running again, and so does the stack; a paused exec container
      // was paused by someone else and stays so.
      const ours = svc.strategy !== "exec";
      try {
        const state = (await reconnecting(() => engine.inspect(c.id))).state;
        let started = false;
        if (state === "paused") {
          if (ours) await reconnecting(() => engine.unpause(c.id, c.name));
        } else if (state !== "running" && state !== "restarting") {
          await reconnecting(() => engine.start(c.id, c.name));
          started = true;
        }
        if (started && ours && svc.healthcheck) await waitHealthy(c, svc.timeoutMs);
        if (ours || started) report.resumed.push(ref);
        await persist(c.id, { status: "resumed", resumedAt: new Date().toISOString(), error: null });
      } catch (err) {
        fail(
          err instanceof HealthTimeoutError ? "health" : svc.strategy === "pause" ? "unpause" : "start",
          err,
        );
        await persist(c.id, { status: "resume_failed", error: describeError(err) });
        if (!(err instanceof HealthTimeoutError)) return;
      }
    }
    // Post hooks always run for a container whose quiesce began, even when its pre hook or the backup failed.
    const began = entry.status !== "pending" || entry.pre !== "none";
    if (svc.post && began && entry.post === "none") {
      try {
        const run = await reconnecting(() =>
          runHook(engine, svc, c, "post", svc.timeoutMs, opts.maxHookOutputBytes),
        );
        report.hooks.push(run);
        await persist(c.id, { post: "ok" });
      } catch (err) {
        if (err instanceof HookRunError) report.hooks.push(err.run);
        fail("post", err);
        await persist(c.id, { post: "failed" });
      }
    }
  }

  async function waitHealthy(c: PlannedContainer, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last: string | undefined;
    for (;;) {
      const info = await reconnecting(() => engine.inspect(c.id));
      last = info.state === "running" ? info.health : info.state;
      if (info.health === "healthy") return;
      if (Date.now() >= until) throw new HealthTimeoutError(c.name, timeoutMs, last);
      await sleep(HEALTH_POLL_MS);
    }
  }

  /** The engine may be restarting (dockerd upgrade, crash): keep trying within the budget. */
  async function reconnecting<T>(fn: () => Promise<T>): Promise<T> {
    const until = Date.now() + opts.reconnectBudgetMs;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if ((err as { code?: unknown }).code !== "docker_unreachable" || Date.now() >= until) throw err;
        await sleep(RECONNECT_POLL_MS);
      }
    }
  }
}

function key(project: string, service: string): string {
  return `${project}/${service}`;
}

/**
 * Runs `run` for each service once every service named by `waitsFor` has settled, whatever its outcome;
 * unrelated services run in parallel. `services` must list each service after the ones it waits for
 * (the plan's level order does), so every wait is on a promise that already exists.
 */
async function runGraph(
  services: PlannedService[],
  waitsFor: (svc: PlannedService) => string[],
  run: (svc: PlannedService) => Promise<void>,
): Promise<PromiseSettledResult<void>[]> {
  const done = new Map<string, Promise<unknown>>();
  const all = services.map((svc) => {
    const before = waitsFor(svc).flatMap((k) => done.get(k) ?? []);
    const p = Promise.allSettled(before).then(() => run(svc));
    done.set(key(svc.project, svc.service), p);
    return p;
  });
  return Promise.allSettled(all);
}

class HookRunError extends HookFailedError {
  constructor(
    readonly run: HookRun,
    detail: string,
  ) {
    super(run.container, run.phase, detail);
  }
}

async function runHook(
  engine: Engine,
  svc: PlannedService,
  c: PlannedContainer,
  phase: "pre" | "post",
  timeoutMs: number,
  maxOutputBytes: number,
): Promise<HookRun> {
  const argv = (phase === "pre" ? svc.pre : svc.post)!;
  const t0 = Date.now();
  const result: ExecResult = await engine.exec(c.id, c.name, argv, { timeoutMs, maxOutputBytes });
  const run: HookRun = {
    project: svc.project,
    service: svc.service,
    container: c.name,
    phase,
    exitCode: result.exitCode,
    timedOut: result.timedOut,
    output: redactSecrets(result.output),
    truncated: result.truncated,
    durationMs: Date.now() - t0,
  };
  // The command and the output's last lines go into the error (logs, hub): bounded and redacted.
  const command = commandForReport(argv);
  if (result.timedOut) throw new HookRunError(run, `${command} did not finish within ${timeoutMs} ms`);
  if (result.exitCode !== 0) {
    const tail = outputTailForReport(result.output);
    throw new HookRunError(run, `${command} exited with ${result.exitCode}${tail ? `: ${tail}` : ""}`);
  }
  return run;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
