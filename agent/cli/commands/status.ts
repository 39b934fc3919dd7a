import { createContext } from "../../app/context.ts";
import { readLastBackup } from "../../backup/last-backup.ts";
import { readMarker } from "../../backup/marker.ts";
import { DOC_DIR } from "../../config/paths.ts";
import type { AgentConfig } from "../../config/schema.ts";
import { resolveIdentity } from "../../identity/identity-service.ts";
import { readRestoreRecord } from "../../identity/restore-record.ts";
import { describeError } from "../../lib/errors.ts";
import { QuiesceJournal } from "../../quiesce/journal.ts";
import { NEXT_RUN_HORIZON_DAYS, nextScheduledSlot } from "../../schedule/scheduler.ts";
import { statePaths } from "../../state/paths.ts";
import { AGENT_VERSION } from "../../version.ts";
import { ExitCode } from "../exit-codes.ts";
import { modeText, printJson } from "../output.ts";
import type { CommandInput } from "./command.ts";

/** The next run `status` shows: the scheduler's own next slot, never a second computation of it. */
export function nextScheduledRun(schedule: AgentConfig["schedule"], now: Date): string | null {
  return schedule ? (nextScheduledSlot(schedule, now)?.toISOString() ?? null) : null;
}

export async function run({ values, loadConfig, logger, localFacts }: CommandInput): Promise<number> {
  const config = await loadConfig();
  const ctx = await createContext(config, await logger("error"), localFacts);
  try {
    const local = localFacts();
    const resolved = await resolveIdentity(ctx.pve, {
      configuredVmid: config.pve.vmid,
      local,
    }).catch((err) => ({
      state: "unverified" as const,
      reason: `PVE not reachable: ${describeError(err)}`,
      hint: "run felhom-guest doctor",
    }));
    // The hostname as the hub hears it (PROTOCOL.md, hello): this system's own, in every state.
    const identity = { ...resolved, hostname: local.hostname };
    const journal = await QuiesceJournal.open(statePaths(config.state_dir).quiesceJournal);
    const last = await readLastBackup(config.state_dir);
    const marker = await readMarker(config.state_dir);
    const nextRun = nextScheduledRun(config.schedule, new Date());
    const status = {
      version: AGENT_VERSION,
      identity,
      lastBackup: last ?? null,
      nextScheduledRun: nextRun,
      unfinishedQuiesce: journal && !journal.finished ? journal.data.backupId : null,
      marker: marker ?? null,
      restoredCopy: (await readRestoreRecord(config.state_dir)) ?? null,
    };
    if (values.json) {
      printJson(status);
      return ExitCode.ok;
    }
    const id =
      identity.state === "verified"
        ? `CT ${identity.vmid} on ${identity.node} (verified)`
        : `NOT verified: ${identity.reason}`;
    const lb = last
      ? last.outcome.ok
        ? `${last.finishedAt} ok ${last.outcome.result.volid} (${modeText(last.outcome.result.mode, last.outcome.result.pveMode)}, ${last.outcome.result.consistency}-consistent)`
        : `${last.finishedAt} FAILED: ${last.outcome.failure.message}`
      : "none yet";
    process.stdout.write(
      `${[
        `felhom-guest ${AGENT_VERSION}`,
        `identity      ${id}`,
        `last backup   ${lb}`,
        `next run      ${nextRun ?? (config.schedule ? `none in the next ${NEXT_RUN_HORIZON_DAYS} days` : "no schedule configured")}`,
        ...(status.restoredCopy
          ? [
              `RESTORED COPY of CT ${status.restoredCopy.originalVmid ?? "?"} (backup ${status.restoredCopy.fromBackupId ?? "?"}): no backups until enrolled (${DOC_DIR}/restore.md)`,
            ]
          : []),
        ...(status.unfinishedQuiesce
          ? [`UNFINISHED    quiesce of ${status.unfinishedQuiesce}: the daemon resumes it at start`]
          : []),
      ].join("\n")}\n`,
    );
    return ExitCode.ok;
  } finally {
    await ctx.close();
  }
}
