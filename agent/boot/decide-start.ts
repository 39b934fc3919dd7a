import type { BackupMode } from "../backup/backup-types.ts";
import type { BackupMarker } from "../backup/marker.ts";
import type { Identity } from "../identity/decide-identity.ts";
import type { RestoreRecord } from "../identity/restore-record.ts";

/**
 * Who am I, at start (pure; start-facts.ts gathers the facts, start-up.ts acts). Decided before anything
 * that talks to PVE on the journal's behalf or reports a backup: a restored copy boots with the
 * original's marker, journal and token, and must never follow or report the original's task as its own.
 * The table is documented in docs/restore.md; every row has a test (test/restore/decide-start.test.ts).
 */

export interface StartFacts {
  /** The "inside backup <id>" marker: every archive the agent made holds it; the live system clears it. */
  marker: BackupMarker | undefined;
  /** The quiesce journal's backup section, when there is a journal. */
  journal:
    | { backupId: string; finished: boolean; mode?: BackupMode; upid?: string; vmid?: number }
    | undefined;
  /** An earlier start already decided "restored copy" and no enrollment followed. */
  record: RestoreRecord | undefined;
  /** The live identity check (resolveIdentity), or why it could not be made. */
  identity: Identity | { state: "error"; code: string; message: string };
  /** Epoch seconds the journalled task ended, when it has. */
  taskEndedAt: number | undefined;
  /** Epoch seconds this system booted (now − its own uptime), when known. */
  bootedAt: number | undefined;
}

export type TableRow =
  | "known-copy"
  | "known-copy-enrolled-by-config"
  | "marker-no-pve"
  | "own-backup"
  | "copy-task-ended-before-boot"
  | "copy-already-enrolled"
  | "copy-original-exists"
  | "copy-original-gone"
  | "marker-token-scope"
  | "normal"
  | "unverified"
  | "no-pve";

export type StartDecision =
  /** This is the guest the token belongs to: replay the journal as usual (resume, follow, report). */
  | { kind: "own"; row: TableRow; clearRecord: boolean }
  /**
   * A restored copy: stacks come up from the registry, the journal is retired unreplayed, every PVE write
   * refuses until enrollment. `announce`: first start of the copy (restore.detected is sent once).
   */
  | {
      kind: "restored-copy";
      row: TableRow;
      announce: boolean;
      originalVmid: number | null;
      originalExists: boolean | null;
      signals: string[];
      reason: string;
    }
  /** A restored copy that already holds its own token and vmid: stacks come up, schedules run. */
  | { kind: "restored-enrolled"; row: TableRow; originalVmid: number; signals: string[] }
  /**
   * Not a copy we can name, and not verified: stacks resumed locally only, nothing sent to PVE. `vmid` is
   * the CT the check was about (the one the token sees), null when it found none.
   */
  | { kind: "unverified"; row: TableRow; signal: string; reason: string; vmid: number | null }
  /** PVE could not answer (or answered ambiguously) while it matters: local resume only, ask again later. */
  | { kind: "undecided"; row: TableRow; signal: "pve-unreachable" | "token-scope"; reason: string };

/**
 * A stop-mode task ends after it restarted the guest, so for the original the task's end is never before
 * its boot. The slack only absorbs rounding: PVE's `endtime` is whole seconds, the boot time is now − the
 * container's uptime, and a CT shares the host's clock. A copy booted within these seconds of the task's
 * end (and within the uptime tolerance of its original's restart) is not caught here; see docs/restore.md.
 */
export const TASK_BOOT_SLACK_S = 5;

const ORIGINAL_EXISTS_SIGNALS = new Set(["mac-mismatch", "hostname-mismatch", "guest-stopped", "uptime"]);

export function decideStart(f: StartFacts): StartDecision {
  const id = f.identity;
  if (f.record) {
    // Enrolled by editing the config instead of `enroll`: the token now verifies as another guest.
    if (id.state === "verified" && id.vmid !== f.record.originalVmid)
      return { kind: "own", row: "known-copy-enrolled-by-config", clearRecord: true };
    return {
      kind: "restored-copy",
      row: "known-copy",
      announce: false,
      originalVmid: f.record.originalVmid,
      originalExists: null,
      signals: f.record.signals,
      reason: `restored from backup ${f.record.fromBackupId ?? "(unknown)"}; not enrolled yet`,
    };
  }

  if (!f.marker) {
    if (id.state === "verified") return { kind: "own", row: "normal", clearRecord: false };
    if (id.state === "error")
      return { kind: "undecided", row: "no-pve", signal: "pve-unreachable", reason: id.message };
    const vmid = id.vmid ?? null;
    if (id.state === "unverified")
      return { kind: "unverified", row: "unverified", signal: id.signal, reason: id.reason, vmid };
    return { kind: "unverified", row: "unverified", signal: "restored-copy", reason: id.reason, vmid };
  }

  const m = f.marker;
  const copy = (
    row: TableRow,
    signals: string[],
    originalExists: boolean,
    reason: string,
  ): StartDecision => ({
    kind: "restored-copy",
    row,
    announce: true,
    originalVmid: m.vmid,
    originalExists,
    signals: ["marker", ...signals],
    reason,
  });
  if (id.state === "error")
    return { kind: "undecided", row: "marker-no-pve", signal: "pve-unreachable", reason: id.message };
  if (id.state === "verified") {
    if (id.vmid !== m.vmid) {
      return {
        kind: "restored-enrolled",
        row: "copy-already-enrolled",
        originalVmid: m.vmid,
        signals: ["marker", "vmid-changed"],
      };
    }
    const stopTaskEndedBeforeBoot =
      (f.journal?.mode ?? m.mode) === "stop" &&
      f.taskEndedAt !== undefined &&
      f.bootedAt !== undefined &&
      f.taskEndedAt < f.bootedAt - TASK_BOOT_SLACK_S;
    if (stopTaskEndedBeforeBoot) {
      // The original boots *inside* its stop-mode task (vzdump restarts it, then finishes); a system
      // booted after the task ended was made from its archive.
      return copy(
        "copy-task-ended-before-boot",
        ["task-ended-before-boot", "duplicate-mac"],
        true,
        `backup ${m.backupId}'s task ended before this system booted: this system was made from its archive`,
      );
    }
    return { kind: "own", row: "own-backup", clearRecord: false };
  }
  if (id.state === "unverified") {
    if (ORIGINAL_EXISTS_SIGNALS.has(id.signal)) {
      const signals = id.signal === "mac-mismatch" ? [id.signal] : [id.signal, "duplicate-mac"];
      return copy("copy-original-exists", signals, true, id.reason);
    }
    if (id.signal === "vmid-missing") return copy("copy-original-gone", [id.signal], false, id.reason);
    return { kind: "undecided", row: "marker-token-scope", signal: "token-scope", reason: id.reason };
  }
  return copy("copy-original-exists", [], true, id.reason);
}
