import type { BackupMode } from "../backup/backup-types.ts";
import { NO_SNAPSHOT_HINT, type NoSnapshotPolicy, type SnapshotVerdict } from "../backup/snapshot-plan.ts";
import type { CtMountPoint } from "../pve/mount-points.ts";
import type { Finding } from "./assess-permissions.ts";

export interface SnapshotSettings {
  mode: BackupMode;
  policy: NoSnapshotPolicy;
  maxDowntimeSeconds: number;
  maxHoldSeconds: number;
}

/**
 * Whether a snapshot-mode backup of this CT really snapshots (backup/snapshot-plan.ts), per mount point as
 * far as known, and what the agent does under `backup.no_snapshot.policy`, with its cost. Pure.
 */
export function assessSnapshot(
  verdict: SnapshotVerdict,
  mountPoints: readonly CtMountPoint[] | undefined,
  cfg: SnapshotSettings,
): Finding {
  const volumes = mountPoints ? ` (${mountPointList(mountPoints)})` : "";
  if (verdict.can === "yes")
    return {
      level: "ok",
      message: `snapshot: PVE can snapshot every volume of the CT${volumes}; ${cfg.mode === "stop" ? "backup.mode is stop, so the whole guest goes down for the archive" : `snapshot mode: the stacks are down until the snapshot exists (at most ${cfg.maxDowntimeSeconds} s)`}`,
    };
  if (cfg.mode === "stop")
    return {
      level: "ok",
      message: `snapshot: ${verdict.can === "no" ? "the CT cannot be snapshotted" : verdict.why}${volumes}; backup.mode is stop, which needs no snapshot`,
    };
  if (verdict.can === "no")
    return {
      level: cfg.policy === "refuse" ? "error" : "warn",
      message: `snapshot: the CT cannot be snapshotted: a volume is on a storage without snapshots (one of: ${verdict.volumes.join(", ")}); PVE would fall back to suspend mode. ${planned(cfg)}`,
      hint: NO_SNAPSHOT_HINT,
    };
  return {
    level: "warn",
    message: `snapshot: not known before a backup: ${verdict.why}${volumes}. Should PVE fall back to suspend mode: ${cfg.policy === "hold" ? `the stacks are held down through it (app-consistent, at most ${cfg.maxHoldSeconds} s)` : "the stacks come back at once and the backup is crash-consistent (only policy hold holds a fallback nobody could plan for)"}`,
    // Not "move or drop them": a bind mount never snapshots and backup=0 is how bulk data is left out of the
    // archive (README). Nor is the storage of each volume looked up: that needs Datastore.Audit, a permission
    // the agent does not otherwise ask for.
    hint: verdict.why.startsWith("PVE did not say")
      ? "grant VM.Audit on the CT to the token and its user"
      : `nothing to change for that: each backup learns from PVE's task log whether it falls back to suspend mode (trying 'suspend' mode instead), and then ${cfg.policy === "hold" ? `holds the stacks down through it (at most ${cfg.maxHoldSeconds} s)` : "resumes the stacks at once (crash-consistent)"}; set backup.no_snapshot.policy for what it should do`,
  };
}

/** What backup.no_snapshot.policy does on a CT that cannot be snapshotted, and its cost. */
function planned(cfg: SnapshotSettings): string {
  switch (cfg.policy) {
    case "hold":
      return `Policy hold: the stacks stay down through suspend mode's first copy of the whole root file system (/var/lib/docker included) and the final copy with the CT frozen; app-consistent; downtime about the time of that copy, at most ${cfg.maxHoldSeconds} s (then they come back and the backup is crash-consistent)`;
    case "stop":
      return "Policy stop: the backup runs in stop mode: the whole guest (this agent too) is down for the whole archive and a restart; app-consistent";
    case "crash":
      return "Policy crash: nothing is quiesced: no downtime beyond the CT freeze of the final copy; every backup is crash-consistent";
    case "refuse":
      return "Policy refuse: every backup fails before any downtime until the storage changes";
  }
}

function mountPointList(mountPoints: readonly CtMountPoint[]): string {
  return mountPoints
    .map((m) => `${m.key} ${m.volume}${m.inBackup ? "" : ` not in the backup (${m.reason})`}`)
    .join("; ");
}
