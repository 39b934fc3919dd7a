import type { BackupOutcome, BusyRetry, Trigger } from "../backup/backup-types.ts";
import { recordLastBackup } from "../backup/last-backup.ts";
import { outcomeEvent } from "../backup/outcome-event.ts";
import type { AgentConfig } from "../config/schema.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import { recordBackupHealth } from "../metrics/textfile.ts";
import type { DaemonEvents } from "./daemon-events.ts";

export type OutcomeHandler = (
  outcome: BackupOutcome,
  trigger: Trigger,
  info?: { retry: BusyRetry | undefined },
) => void;

/**
 * Every backup's end in the daemon (live, retried, or finished by the start-up after a crash or a
 * stop-mode boot): the hub hears it, the log says it, and the last backup and the metrics record it.
 */
export function outcomeRecorder(config: AgentConfig, log: Logger, events: DaemonEvents): OutcomeHandler {
  return (outcome, trigger, info) => {
    events.emit(outcomeEvent(outcome, info?.retry));
    log[outcome.ok ? "info" : "error"](
      { trigger: trigger.source, ...(outcome.ok ? outcome.result : outcome.failure) },
      outcome.ok ? "backup completed" : "backup failed",
    );
    // A busy node's refusal that will be tried again is the hub's to hear, not yet the slot's result: the
    // last backup and the metrics (consecutive failures, last attempt) wait for the attempt that ends it.
    if (info?.retry) return;
    recordLastBackup(config.state_dir, outcome).catch((err) =>
      log.error({ err: describeError(err) }, "could not record the last backup"),
    );
    recordBackupHealth(config.state_dir, config.metrics?.textfile, outcome).catch((err) =>
      log.error({ err: describeError(err) }, "could not record the backup health (metrics.textfile)"),
    );
  };
}
