import { join } from "node:path";
import type { CommandResultData } from "@felhom/protocol";
import { BackupService } from "../backup/backup-service.ts";
import type { IdentityGate } from "../boot/start-up.ts";
import type { AgentConfig } from "../config/schema.ts";
import type { CommandHandlers } from "../hub/command-runner.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import { publishBackupHealth } from "../metrics/textfile.ts";
import type { OperationDeps } from "../operation/operation-deps.ts";
import { Scheduler } from "../schedule/scheduler.ts";
import { type AgentContext, createContext } from "./context.ts";
import type { DaemonEvents } from "./daemon-events.ts";
import { hubHandlers, statusProvider } from "./hub-handlers.ts";
import { type OutcomeHandler, outcomeRecorder } from "./outcome-recorder.ts";
import { runScheduledBackup, scheduledLeadMs } from "./scheduled-backup.ts";

/** What one identity (config + token) runs: rebuilt when the guest is enrolled with a new token. */
export interface Runtime {
  config: AgentConfig;
  ctx: AgentContext;
  deps: OperationDeps;
  service: BackupService;
  scheduler: Scheduler | undefined;
  handlers: CommandHandlers;
  status: ReturnType<typeof statusProvider>;
  /** Every backup outcome of this runtime, live or recovered at start, goes through here. */
  recordOutcome: OutcomeHandler;
}

/** What a runtime is built from that outlives it: the daemon's own parts. */
export interface RuntimeParts {
  log: Logger;
  localFacts: () => LocalFacts;
  events: DaemonEvents;
  /** The daemon's shutdown: running operations resume their stacks at once. */
  signal: AbortSignal;
  gate: () => IdentityGate | undefined;
  background: BackgroundOperations;
  enroll: (params: {
    vmid: number;
    tokenId: string;
    tokenSecret: string;
  }) => Promise<CommandResultData<"enroll">>;
  reload: () => Promise<CommandResultData<"config.reload">>;
}

export async function buildRuntime(config: AgentConfig, p: RuntimeParts): Promise<Runtime> {
  const { log, events } = p;
  const ctx = await createContext(config, log, p.localFacts);
  if (config.metrics) {
    publishBackupHealth(config.state_dir, config.metrics.textfile).catch((err) =>
      log.error({ err: describeError(err) }, "could not write metrics.textfile"),
    );
  }
  const deps = ctx.operationDeps(events.emit);
  const recordOutcome = outcomeRecorder(config, log, events);
  const service = new BackupService({ ...deps, onOutcome: recordOutcome });
  // Under `jitter_seconds: 0` the operator was promised the slot's exact time (scheduled-backup.ts).
  const exactTime = config.schedule?.jitter_seconds === 0;
  const scheduler = config.schedule
    ? new Scheduler({
        config: config.schedule,
        statePath: join(config.state_dir, "schedule.json"),
        log,
        leadMs: (place) => scheduledLeadMs(service, { exactTime, atLearnedPlace: place.learned }),
        onRun: (_reason, learn, began, place) =>
          runScheduledBackup(
            service,
            {
              mode: config.backup.mode,
              signal: p.signal,
              log,
              exactTime,
              atLearnedPlace: place.learned,
              dueAt: place.at,
            },
            learn,
            began,
          ),
      })
    : undefined;
  const status = statusProvider(ctx, service, () => scheduler?.nextRun() ?? null, p.gate);
  const handlers = hubHandlers({
    ctx,
    backups: service,
    emit: events.emit,
    status: async () => ({
      ...(await status()),
      outboxDepth: events.hub?.outboxDepth ?? 0,
      lastSeq: events.hub?.lastSeq ?? 0,
    }),
    gate: p.gate,
    enroll: p.enroll,
    reload: p.reload,
    background: { signal: p.signal, track: (op) => p.background.track(op) },
  });
  return { config, ctx, deps, service, scheduler, handlers, status, recordOutcome };
}

/** Stops the runtime's schedule and retries and waits for what it runs, then closes its adapters. */
export async function settleRuntime(r: Runtime, background: BackgroundOperations): Promise<void> {
  // The schedule first (synchronously): the slot a stop cuts short reports its failure but teaches the
  // schedule nothing, so the learned start delay survives a reload during a pending busy retry.
  const scheduleStopped = r.scheduler?.stop();
  r.service.stop();
  await scheduleStopped;
  await r.service.settled();
  await background.settled();
  await r.ctx.close();
}

/** Hub snapshot operations still running (they resume their stacks at once on shutdown). */
export class BackgroundOperations {
  readonly #running = new Set<Promise<unknown>>();

  constructor(private readonly log: Logger) {}

  track(operation: Promise<unknown>): void {
    const p = operation
      .catch((err) => this.log.error({ err: describeError(err) }, "background operation failed"))
      .finally(() => this.#running.delete(p));
    this.#running.add(p);
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }
}
