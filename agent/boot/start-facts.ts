import { readMarker } from "../backup/marker.ts";
import { resolveIdentity } from "../identity/identity-service.ts";
import { readRestoreRecord } from "../identity/restore-record.ts";
import { AgentError, describeError } from "../lib/errors.ts";
import { backupSection } from "../operation/journal-section.ts";
import type { OperationDeps } from "../operation/operation-deps.ts";
import { QuiesceJournal } from "../quiesce/journal.ts";
import { statePaths } from "../state/paths.ts";
import type { StartFacts } from "./decide-start.ts";

/**
 * Gathers what decideStart needs. Reads only: the state dir, and PVE calls that need VM.Audit or task
 * ownership (identity, the journalled task's end). Nothing here writes to PVE.
 */
export async function gatherStartFacts(
  deps: Pick<OperationDeps, "pve" | "stateDir" | "configuredVmid" | "localFacts" | "log">,
  now = Date.now(),
): Promise<StartFacts> {
  const [marker, journal, record] = await Promise.all([
    readMarker(deps.stateDir),
    QuiesceJournal.open(statePaths(deps.stateDir).quiesceJournal),
    readRestoreRecord(deps.stateDir),
  ]);
  const local = deps.localFacts();
  const identity: StartFacts["identity"] = await resolveIdentity(deps.pve, {
    configuredVmid: deps.configuredVmid,
    local,
  }).catch((err) => ({
    state: "error" as const,
    code: err instanceof AgentError ? err.code : "internal",
    message: describeError(err),
  }));
  const section = backupSection(journal?.data) ?? {};
  // Only a verified identity with a marker can turn on the task's end (decide-start.ts row 5).
  const taskEndedAt =
    marker && identity.state === "verified" && section.upid && section.node
      ? await taskEnd(deps, section.node, section.upid, section.vmid)
      : undefined;
  return {
    marker,
    journal: journal && {
      backupId: journal.data.backupId,
      finished: journal.finished,
      ...(section.mode ? { mode: section.mode } : {}),
      ...(section.upid ? { upid: section.upid } : {}),
      ...(section.vmid !== undefined ? { vmid: section.vmid } : {}),
    },
    record,
    identity,
    taskEndedAt,
    bootedAt: local.uptimeSeconds === undefined ? undefined : Math.floor(now / 1000 - local.uptimeSeconds),
  };
}

/** The end time of a task, from the node's task list (the status call has no end time). */
async function taskEnd(
  deps: Pick<OperationDeps, "pve" | "log">,
  node: string,
  upid: string,
  vmid: number | undefined,
): Promise<number | undefined> {
  const starttime = Number.parseInt(upid.split(":")[4] ?? "", 16);
  try {
    const tasks = await deps.pve.taskList(node, {
      typefilter: "vzdump",
      source: "all",
      ...(vmid !== undefined ? { vmid } : {}),
      ...(Number.isFinite(starttime) ? { since: starttime - 1 } : {}),
    });
    return tasks.find((t) => t.upid === upid)?.endtime;
  } catch (err) {
    deps.log.warn({ err: describeError(err), upid }, "could not read the journalled task's end time");
    return undefined;
  }
}
