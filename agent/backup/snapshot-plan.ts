import type { CtMountPoint } from "../pve/mount-points.ts";
import type { BackupMode } from "./backup-types.ts";

/**
 * Whether vzdump's snapshot mode will really snapshot this CT, and what a backup does about it. Pure.
 *
 * vzdump decides in pve-container src/PVE/VZDump/LXC.pm `prepare`: `has_feature('snapshot', $conf,
 * $storecfg, undef, undef, $backup_only = 1)` over the mount points in the backup; one volume on a storage
 * without snapshots (dir/NFS/CIFS raw images, thick LVM) and it dies `mode failure - some volumes do not
 * support snapshots`, and PVE/VZDump.pm `exec_backup_task` runs suspend mode instead: a full rsync of the
 * root while the guest runs, the whole CT frozen for a second rsync. The agent can ask PVE
 * (`GET /nodes/{node}/lxc/{vmid}/feature?feature=snapshot`, VM.Audit; src/PVE/API2/LXC.pm `vm_feature`),
 * but that calls has_feature without `$backup_only`: it also judges bind mounts (pve-storage Storage.pm
 * `volume_has_feature` answers undef for a path) and `backup=0` volumes, which vzdump skips. So PVE's
 * "yes" is vzdump's yes, its "no" is vzdump's no only when every mount point is in the backup; otherwise
 * (and when PVE does not answer) the backup learns it from vzdump's log.
 */
export type SnapshotVerdict =
  | { readonly can: "yes" }
  | { readonly can: "no"; readonly volumes: readonly string[] }
  | { readonly can: "unknown"; readonly why: string };

export function snapshotVerdict(
  answer: { readonly hasFeature: boolean } | { readonly error: string },
  mountPoints: readonly CtMountPoint[] | undefined,
): SnapshotVerdict {
  if ("error" in answer)
    return { can: "unknown", why: `PVE did not say whether the CT can be snapshotted (${answer.error})` };
  if (answer.hasFeature) return { can: "yes" };
  if (!mountPoints)
    return {
      can: "unknown",
      why: "PVE says a volume of the CT cannot be snapshotted, and the CT config was unreadable: it may be a mount point the backup leaves out",
    };
  const out = mountPoints.filter((m) => !m.inBackup).map((m) => m.key);
  if (out.length > 0)
    return {
      can: "unknown",
      why: `PVE says a volume of the CT cannot be snapshotted, but it also judges ${out.join(", ")}, which the backup leaves out and vzdump does not judge`,
    };
  return { can: "no", volumes: mountPoints.map((m) => `${m.key} (${m.volume})`) };
}

/** `backup.no_snapshot.policy`: what a snapshot-mode backup does on a CT that cannot be snapshotted. */
export type NoSnapshotPolicy = "hold" | "stop" | "crash" | "refuse";

/** How a backup runs, decided before anything is quiesced; the machine (backup-machine.ts) carries it. */
export interface RunPlan {
  /** The mode the agent asks PVE for. Snapshot-family plans ask `snapshot`: PVE falls back itself. */
  readonly mode: BackupMode;
  /** false: `crash` on a CT that cannot snapshot; nothing is quiesced and the copy is crash-consistent. */
  readonly quiesce: boolean;
  /** Snapshot mode: the downtime deadline, from the start of the quiesce. */
  readonly deadlineSeconds: number;
  /**
   * What PVE's `trying 'suspend' mode instead` does: `hold` keeps the stacks down through both syncs until
   * `resuming guest`, the deadline moved to `holdSeconds`; `resume` brings them back at once (crash): a
   * hold nobody planned, announced or bounded for would be the silent five minutes the policy exists for.
   */
  readonly onFallback: "hold" | "resume";
  readonly holdSeconds: number;
  /** The preflight knew PVE will fall back: the deadline is the hold bound from the start. */
  readonly holdFromStart?: true;
  /** The CT cannot snapshot and the policy changed the run: said in the result's warnings. */
  readonly note?: string;
}

export interface PlanConfig {
  readonly policy: NoSnapshotPolicy;
  readonly maxDowntimeSeconds: number;
  readonly maxHoldSeconds: number;
}

export type PlanResult =
  | { readonly ok: true; readonly plan: RunPlan }
  | { readonly ok: false; readonly message: string; readonly hint: string };

export const NO_SNAPSHOT_HINT =
  "move the CT's volumes to a storage that snapshots (LVM-thin, ZFS, btrfs, Ceph RBD: pct move-volume), or set backup.no_snapshot.policy to hold, stop or crash";

export function planRun(requested: BackupMode, verdict: SnapshotVerdict, cfg: PlanConfig): PlanResult {
  const snapshot = {
    mode: "snapshot" as const,
    quiesce: true,
    deadlineSeconds: cfg.maxDowntimeSeconds,
    onFallback: "resume" as const,
    holdSeconds: cfg.maxHoldSeconds,
  };
  if (requested === "stop") return { ok: true, plan: { ...snapshot, mode: "stop" } };
  if (verdict.can === "yes") return { ok: true, plan: snapshot };
  const held = cfg.policy === "hold" ? ({ onFallback: "hold" } as const) : {};
  if (verdict.can === "unknown") return { ok: true, plan: { ...snapshot, ...held } };
  // PVE's check says no for the CT as a whole, not which volume: it names none, so neither does this.
  const cannot = `CT cannot be snapshotted (a volume on a storage without snapshots, one of: ${verdict.volumes.join(", ")})`;
  switch (cfg.policy) {
    case "hold":
      return {
        ok: true,
        plan: { ...snapshot, ...held, deadlineSeconds: cfg.maxHoldSeconds, holdFromStart: true },
      };
    case "stop":
      return {
        ok: true,
        plan: {
          ...snapshot,
          mode: "stop",
          note: `${cannot}: backed up in stop mode (backup.no_snapshot.policy)`,
        },
      };
    case "crash":
      return {
        ok: true,
        plan: {
          ...snapshot,
          quiesce: false,
          note: `${cannot}: the stacks were not quiesced and the backup is crash-consistent (backup.no_snapshot.policy crash)`,
        },
      };
    case "refuse":
      return { ok: false, message: `${cannot}; backup.no_snapshot.policy is refuse`, hint: NO_SNAPSHOT_HINT };
  }
}
