import type { BackupService } from "../backup/backup-service.ts";
import type { BackupMode } from "../backup/backup-types.ts";
import type { Logger } from "../log/logger.ts";
import type { LearnDelay, RunBegan } from "../schedule/scheduler.ts";

/**
 * Whether a scheduled run's attempts look at the backup storage first (BackupRequestOptions.lookAtStorage).
 * Under `jitter_seconds: 0` the operator was promised the slot's exact time: no look delays it. At its learned
 * place the node was free for this guest last time and the others come back to theirs: the first attempt goes
 * at once (a look there cost each guest its seconds of lock idle and moved every place later each night: fleet
 * bench), and only its retries look. Pure; the daemon's scheduler starts a run that looks ahead of its time by
 * the look's length (Scheduler `leadMs`, BackupService.lookAheadMs).
 */
export function scheduledLook(o: { exactTime: boolean; atLearnedPlace: boolean }): boolean | "retries" {
  if (o.exactTime) return false;
  return o.atLearnedPlace ? "retries" : true;
}

/**
 * How long before its time the scheduler starts a run (Scheduler `leadMs`): a look's length when its first
 * attempt looks, else nothing. The daemon's wiring and the fleet bench's agent both take it from here.
 */
export function scheduledLeadMs(
  service: BackupService,
  o: { exactTime: boolean; atLearnedPlace: boolean },
): number {
  return scheduledLook(o) === true ? service.lookAheadMs() : 0;
}

/**
 * One schedule slot's backup, busy retries included: resolves when the slot has its result (the service's
 * stop() ends pending retries at once, so a shutdown is not held up). The scheduler skips a slot that comes
 * while this runs, so a next slot cannot start a second chain beside a pending retry, nor learn over its result.
 */
export async function runScheduledBackup(
  service: BackupService,
  opts: {
    mode: BackupMode;
    signal: AbortSignal;
    log: Logger;
    exactTime?: boolean;
    /** The run starts at its learned delay (the scheduler's RunPlace). */
    atLearnedPlace?: boolean;
    /** When its first attempt is due (the scheduler's RunPlace.at); a run that looks begins ahead of it. */
    dueAt?: number;
  },
  learn: LearnDelay,
  began: RunBegan,
): Promise<void> {
  const ticket = await service.request({
    mode: opts.mode,
    trigger: { source: "schedule" },
    retryWhenBusy: true,
    lookAtStorage: scheduledLook({
      exactTime: opts.exactTime === true,
      atLearnedPlace: opts.atLearnedPlace === true,
    }),
    ...(opts.dueAt !== undefined ? { dueAt: opts.dueAt } : {}),
    signal: opts.signal,
    onStarted: began,
    // Where the node was free for this guest: the next slot comes back there (run-delay.ts).
    onSettled: (outcome, startedAt) => {
      if (outcome.ok) learn(startedAt);
      else if (outcome.failure.code === "vzdump_lock_busy") learn(undefined);
    },
  });
  if (!ticket.started && ticket.stopped)
    opts.log.info("scheduled backup: the agent stopped before its first attempt; the slot stays pending");
  else if (!ticket.started) {
    opts.log.info({ running: ticket.holder }, "scheduled backup: another operation holds the guest");
    // Another backup of this guest (the hub's, the CLI's) is this slot's backup: the slot has begun, and a
    // stop before that backup ends must not leave it pending for a restart to run a second one.
    if (ticket.holder.kind === "backup") began();
  }
  await ticket.done;
  await ticket.settled;
}
