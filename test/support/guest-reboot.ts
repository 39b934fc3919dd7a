import { runBackup } from "../../agent/backup/backup-run.ts";
import type { BackupMode } from "../../agent/backup/backup-types.ts";
import { recoverAtStart, type StartRecovery } from "../../agent/backup/recover-at-start.ts";
import { docker } from "./compose.ts";
import type { GuestHarness, HarnessOptions } from "./guest-harness.ts";

/**
 * vzdump stop mode as the guest lives it, in process: the shutdown aborts the running agent's backup and
 * stops every container; the boot runs the agent's start (recoverAtStart). Give `hooks` to
 * startGuestHarness, then run `stopModeBackup`.
 */
export function inProcessReboot(harness: () => GuestHarness): {
  shutdown: AbortController;
  hooks: Pick<HarnessOptions, "onGuestStop" | "onGuestStart">;
  /** A stop-mode backup the shutdown interrupts, then what the agent's start after the boot reports. */
  /** `requested`: the mode asked for (a snapshot request on a CT whose policy turns it into stop mode). */
  stopModeBackup: (backupId: string, requested?: BackupMode) => Promise<StartRecovery["outcome"]>;
} {
  const shutdown = new AbortController();
  let booted: Promise<StartRecovery> | undefined;
  return {
    shutdown,
    hooks: {
      onGuestStop: async () => {
        shutdown.abort(); // systemd stops the agent as the guest shuts down…
        for (const id of await harness().running()) await docker("stop", "-t", "10", id); // …and every container
      },
      onGuestStart: async () => {
        booted = recoverAtStart(harness().deps()); // the agent's start after the boot
      },
    },
    stopModeBackup: async (backupId, requested = "stop") => {
      const live = await runBackup(harness().deps(), {
        backupId,
        mode: requested,
        trigger: { source: "cli" },
        signal: shutdown.signal,
      });
      if (live.ok || live.failure.code !== "interrupted")
        throw new Error(`the shutdown did not interrupt the backup: ${JSON.stringify(live)}`);
      for (let waited = 0; !booted; waited += 250) {
        if (waited > 60_000) throw new Error("the guest did not boot within 60 s of the backup");
        await new Promise((r) => setTimeout(r, 250));
      }
      return (await booted).outcome;
    },
  };
}
