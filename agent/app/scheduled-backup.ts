import type { BackupService } from "../backup/backup-service.ts";
import type { BackupMode } from "../backup/backup-types.ts";
import type { Logger } from "../log/logger.ts";
import type { LearnDelay, RunBegan } from "../schedule/scheduler.ts";

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
  },
  learn: LearnDelay,
  began: RunBegan,
): Promise<void> {
  const ticket = await service.request({
    mode: opts.mode,
    trigger: { source: "schedule" },
    retryWhenBusy: true,
    // Under `jitter_seconds: 0` the operator was promised the slot's exact time: no look delays it. At its
    // learned place the node was free for this guest last time and the others come back to theirs: the first
    // attempt goes at once (a look there cost each guest its seconds of lock idle and moved every place later
    // each night: fleet bench), and only its retries look.
    ...(opts.exactTime ? { lookAtStorage: false } : opts.atLearnedPlace ? { lookAtStorage: "retries" } : {}),
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
