import { rm } from "node:fs/promises";
import type { Event } from "@felhom/protocol";
import { clearMarker } from "../backup/marker.ts";
import { recoverAtStart, type StartRecovery } from "../backup/recover-at-start.ts";
import { clearRestoreRecord, writeRestoreRecord } from "../identity/restore-record.ts";
import { describeError } from "../lib/errors.ts";
import type { OperationDeps } from "../operation/operation-deps.ts";
import { operationHolder } from "../operation/operation-lock.ts";
import { resumeFromJournal } from "../quiesce/resume-from-journal.ts";
import { bringStacksUp, type StackOutcome, type StacksUpDeps } from "../restore/stacks-up.ts";
import { statePaths } from "../state/paths.ts";
import { decideStart, type StartDecision } from "./decide-start.ts";
import { gatherStartFacts } from "./start-facts.ts";

export const RESET_NET_HINT =
  "on the PVE host, give the copy its own MAC before it runs beside its original: pct set <new vmid> -net0 name=eth0,bridge=vmbr0,hwaddr=<new MAC>,ip=dhcp (omit hwaddr= to let PVE generate one)";

/** While set, the daemon reports this identity state and refuses every PVE write, whatever PVE says. */
export interface IdentityGate {
  state: "unverified" | "restored-copy";
  reason: string;
  hint: string;
}

export interface StartUp {
  decision: StartDecision;
  gate: IdentityGate | undefined;
  /** The journal replayed as the original's own (decision "own"). */
  recovery: StartRecovery | undefined;
  /** Stacks brought up after a restore. */
  stacks: StackOutcome[] | undefined;
  /** For the hub: restore.detected, identity.warning. */
  events: Event[];
  /** Schedules (and the retry of an in-flight backup) may run. */
  verified: boolean;
}

/**
 * The daemon's start, before the schedule and before anything that reports a backup: decide who this
 * system is (decide-start.ts), then do what that row says. Only the row "own" replays the journal
 * against PVE (follow the in-flight task, verify, report); a restored copy retires the original's
 * journal and marker unreplayed and brings the remembered stacks up with compose instead.
 */
export async function startUp(
  deps: OperationDeps,
  stacks: Omit<StacksUpDeps, "engine" | "stateDir" | "log">,
  /** The daemon is stopping: an in-flight backup is left for the next start to follow and report. */
  signal?: AbortSignal,
): Promise<StartUp> {
  const { log, stateDir } = deps;
  const facts = await gatherStartFacts(deps);
  // A live process whose operation the journal is (an operator's `felhom-guest snapshot create` while the
  // daemon restarts) owns it and the marker: resuming its stacks now would take its snapshot with them
  // running. Decide who we are, but leave its journal to it. Any other journal is recovered as usual.
  const lock = await operationHolder(stateDir);
  const holder = lock && facts.journal?.backupId === lock.operationId ? lock : undefined;
  if (holder) {
    log.info(
      { holder: holder.operationId, kind: holder.kind },
      "the journal's operation is still running: left to it",
    );
  }
  const decision = decideStart(facts);
  log.info({ row: decision.row, kind: decision.kind }, "start-up identity decision");
  const base = { recovery: undefined, stacks: undefined, events: [] as Event[] };
  const up = () => bringStacksUp({ engine: deps.engine, stateDir, log, ...stacks });

  switch (decision.kind) {
    case "own": {
      if (decision.clearRecord) await clearRestoreRecord(stateDir);
      const recovery = holder ? undefined : await recoverAtStart(deps, signal);
      return { ...base, decision, gate: undefined, recovery, verified: true };
    }
    case "restored-enrolled": {
      const marker = facts.marker!;
      await retireOriginalsBackup(deps, marker.backupId);
      const outcomes = await up();
      return {
        ...base,
        decision,
        gate: undefined,
        stacks: outcomes,
        verified: true,
        events: [
          {
            kind: "restore.detected",
            fromBackupId: marker.backupId,
            takenAt: marker.takenAt,
            signals: decision.signals,
            stacks: outcomes,
          },
        ],
      };
    }
    case "restored-copy": {
      const fromBackupId = facts.marker?.backupId ?? facts.record?.fromBackupId ?? null;
      const gate: IdentityGate = {
        state: "restored-copy",
        reason: `restored copy of CT ${decision.originalVmid ?? "?"} (backup ${fromBackupId ?? "?"}): ${decision.reason}`,
        hint: "enroll this copy with its own token and vmid (hub command enroll, or felhom-guest enroll); until then it never backs up or snapshots",
      };
      const events: Event[] = [];
      if (decision.announce) {
        const marker = facts.marker!;
        // The record first: should this process die now, the next start still knows it is a copy.
        await writeRestoreRecord(stateDir, {
          detectedAt: new Date().toISOString(),
          fromBackupId: marker.backupId,
          takenAt: marker.takenAt,
          originalVmid: marker.vmid,
          signals: decision.signals,
          originalUpid: facts.journal?.upid ?? null,
        });
        await retireOriginalsBackup(deps, marker.backupId);
      }
      const outcomes = await up();
      if (decision.announce) {
        events.push({
          kind: "restore.detected",
          fromBackupId: facts.marker!.backupId,
          takenAt: facts.marker!.takenAt,
          signals: decision.signals,
          stacks: outcomes,
        });
      }
      events.push({
        kind: "identity.warning",
        state: "restored-copy",
        signal: "restored-copy",
        message: `${gate.reason}. Backups and snapshots are off until it is enrolled.`.slice(0, 2000),
        vmid: decision.originalVmid,
      });
      if (decision.signals.includes("duplicate-mac") && decision.originalExists) {
        events.push({
          kind: "identity.warning",
          state: "restored-copy",
          signal: "duplicate-mac",
          message: `this copy has the MAC of CT ${decision.originalVmid}, which still exists: they collide on the bridge while both run. ${RESET_NET_HINT}`,
          vmid: decision.originalVmid,
        });
      }
      log.warn({ row: decision.row, signals: decision.signals }, gate.reason);
      return { ...base, decision, gate, stacks: outcomes, events, verified: false };
    }
    case "unverified":
    case "undecided": {
      // Stacks are never left down, whoever this is; but nothing is followed or reported against PVE.
      const resumed = holder
        ? undefined
        : await resumeFromJournal(statePaths(stateDir).quiesceJournal, deps.engine, { logger: log });
      if (resumed)
        log.warn({ resumed: resumed.resumed.length }, "resumed stacks left quiesced (PVE not consulted)");
      return {
        ...base,
        decision,
        gate: {
          state: "unverified",
          reason: decision.reason,
          hint: "the agent checks again every minute; see `felhom-guest doctor`",
        },
        verified: false,
        events: [
          {
            kind: "identity.warning",
            state: "unverified",
            signal: decision.signal,
            message: decision.reason.slice(0, 2000),
            // The CT the message names: the one the token sees (null only when PVE showed none).
            vmid: decision.kind === "unverified" ? decision.vmid : null,
          },
        ],
      };
    }
  }
}

/**
 * The marker, the journal and the backup lock in a copy are the original's: its task, its container ids,
 * its process. They are removed unreplayed (the record keeps what the operator may want to know).
 */
async function retireOriginalsBackup(deps: OperationDeps, backupId: string): Promise<void> {
  deps.log.info({ backupId }, "retiring the original's marker and journal unreplayed");
  await rm(statePaths(deps.stateDir).quiesceJournal, { force: true });
  await rm(statePaths(deps.stateDir).operationLock, { force: true });
  await clearMarker(deps.stateDir).catch((err) =>
    deps.log.warn({ err: describeError(err) }, "could not clear the marker"),
  );
}
