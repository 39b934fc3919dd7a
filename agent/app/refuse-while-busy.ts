import { CommandError } from "../hub/command-runner.ts";
import { type Operation, operationHolder } from "../operation/operation-lock.ts";

/**
 * Exclusive hub commands (backup, snapshot, stacks.up, enroll, config.reload) are refused while an
 * operation holds the guest: a backup, a snapshot or a `stacks up`, in this daemon or in an operator's CLI
 * process. The operation lock is the one answer (this process's own operations are in it too). Replacing
 * the runtime under a running snapshot would close the PVE client it polls with and keep the stacks down
 * until its deadline.
 */
export async function refuseWhileBusy(stateDir: string, what: string): Promise<void> {
  const holder = await operationHolder(stateDir);
  if (holder) throw busyError(holder, what);
}

/**
 * What holds the guest, as the hub's answer: another backup is `already_running` (follow that one); a
 * snapshot or a `stacks up` is `busy` (retry).
 */
export function busyError(holder: Operation, what: string): CommandError {
  if (holder.kind === "backup") {
    return new CommandError("already_running", `backup ${holder.operationId} is running; ${what} after it`, {
      details: { backupId: holder.operationId },
    });
  }
  return new CommandError("busy", `${holder.kind} ${holder.operationId} is running; ${what} after it`, {
    details: { operation: holder.kind, operationId: holder.operationId },
  });
}
