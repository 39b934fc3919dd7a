import { lockHolder } from "../backup/backup-lock.ts";
import type { BackupService } from "../backup/backup-service.ts";
import { CommandError } from "../hub/command-runner.ts";

/**
 * Exclusive hub commands (backup, snapshot, stacks.up, enroll, config.reload) are refused while a backup or a
 * snapshot runs — in this daemon or in an operator's CLI process. The backup service knows only its own
 * backups; the lock file also knows snapshots and other processes. Replacing the runtime under a running
 * snapshot would close the PVE client it polls with and keep the stacks down until its deadline.
 */
export async function refuseWhileBusy(backups: BackupService, stateDir: string, what: string): Promise<void> {
  const running = backups.running();
  const holder = running
    ? { kind: "backup" as const, backupId: running.backupId }
    : await lockHolder(stateDir);
  if (holder) throw busyError(holder, what);
}

/**
 * What holds the guest, as the hub's answer: another backup is `already_running` (follow that one); a
 * snapshot or a `stacks up` is `busy` (retry).
 */
export function busyError(
  holder: { kind: "backup" | "snapshot" | "stacks-up"; backupId: string },
  what: string,
): CommandError {
  if (holder.kind === "backup") {
    return new CommandError("already_running", `backup ${holder.backupId} is running; ${what} after it`, {
      details: { backupId: holder.backupId },
    });
  }
  return new CommandError("busy", `${holder.kind} ${holder.backupId} is running; ${what} after it`, {
    details: { operation: holder.kind, operationId: holder.backupId },
  });
}
