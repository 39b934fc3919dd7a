import { join } from "node:path";
import type { Event } from "../../protocol/index.ts";
import { BackupService } from "../backup/backup-service.ts";
import type { BackupOutcome, Trigger } from "../backup/backup-types.ts";
import { recordLastBackup } from "../backup/last-backup.ts";
import { recoverAtStart } from "../backup/recover-at-start.ts";
import type { AgentConfig } from "../config/schema.ts";
import { HubClient, hubOptionsFromConfig } from "../hub/hub-client.ts";
import { errorMessage } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import { Scheduler } from "../schedule/scheduler.ts";
import { AGENT_VERSION } from "../version.ts";
import { agentId } from "./agent-id.ts";
import { createContext } from "./context.ts";
import { hubHandlers, statusProvider } from "./hub-handlers.ts";

/** The event for a finished backup, as the hub receives it. */
export function outcomeEvent(outcome: BackupOutcome): Event {
  return outcome.ok
    ? { kind: "backup.completed", ...outcome.result }
    : { kind: "backup.failed", ...outcome.failure };
}

/**
 * `felhom-guest run`: open the hub link (events are durable from here on), recover whatever an earlier
 * run left behind (stacks first), then serve the schedule and the hub's commands until SIGTERM. On
 * SIGTERM a running snapshot-mode backup resumes its stacks before the process exits; a stop-mode backup
 * whose guest is going down leaves the rest to the next boot.
 */
export async function runDaemon(config: AgentConfig, log: Logger): Promise<void> {
  const ctx = await createContext(config, log);
  let hub: HubClient | undefined;
  const emit = (e: Event) => {
    if (e.kind === "backup.phase") log.info({ backupId: e.backupId, phase: e.phase }, "backup phase");
    if (!hub) return;
    const sent =
      e.kind === "blackout" ? hub.announceBlackout(e.expectedSeconds, e.reason, e.operationId) : hub.emit(e);
    // The outbox refused it (invalid) or the disk failed: log it, never let it break the backup.
    sent.catch((err) =>
      log.error({ kind: e.kind, err: errorMessage(err) }, "could not queue an event for the hub"),
    );
  };
  const finished = (outcome: BackupOutcome, trigger: Trigger) => {
    emit(outcomeEvent(outcome));
    log[outcome.ok ? "info" : "error"](
      { trigger: trigger.source, ...(outcome.ok ? outcome.result : outcome.failure) },
      outcome.ok ? "backup completed" : "backup failed",
    );
    recordLastBackup(config.state_dir, outcome).catch((err) =>
      log.error({ err: errorMessage(err) }, "could not record the last backup"),
    );
  };

  const deps = ctx.backupDeps(emit);
  const shutdown = new AbortController();
  const service = new BackupService({ ...deps, onOutcome: finished });
  const scheduler = config.schedule
    ? new Scheduler({
        config: config.schedule,
        statePath: join(config.state_dir, "schedule.json"),
        log,
        onRun: async () => {
          const ticket = await service.request({
            mode: config.backup.mode,
            trigger: { source: "schedule" },
            retryWhenBusy: true,
            signal: shutdown.signal,
          });
          if (!ticket.started)
            log.info({ running: ticket.backupId }, "scheduled backup skipped: a backup is already running");
          await ticket.done;
        },
      })
    : undefined;

  if (config.hub) {
    const payload = statusProvider(ctx, service, () => scheduler?.nextRun() ?? null);
    hub = await HubClient.open({
      ...hubOptionsFromConfig(config.hub, config.state_dir),
      agentId: await agentId(config.state_dir),
      agentVersion: AGENT_VERSION,
      statusProvider: payload,
      handlers: hubHandlers({
        ctx,
        backups: service,
        emit,
        status: async () => ({
          ...(await payload()),
          outboxDepth: hub?.outboxDepth ?? 0,
          lastSeq: hub?.lastSeq ?? 0,
        }),
      }),
      logger: log,
    });
    hub.start();
  }

  const recovery = await recoverAtStart(deps);
  if (recovery.outcome) finished(recovery.outcome, { source: "journal-replay" });
  await scheduler?.start();
  log.info(
    { nextRun: scheduler?.nextRun()?.toISOString() ?? null, hub: config.hub?.url ?? null },
    "felhom-guest is running",
  );

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "stopping");
      shutdown.abort();
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  service.stop();
  await scheduler?.stop();
  const running = service.running();
  if (running)
    log.info({ backupId: running.backupId }, "waiting for the running backup to hand its stacks back");
  await service.settled();
  await hub?.stop();
  await ctx.close();
}
