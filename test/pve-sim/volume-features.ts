import type { Guest } from "./cluster-model.ts";
import { mountPointsOf } from "./mount-points.ts";

/**
 * The storage types a CT's volumes can live on, as far as a snapshot is concerned. pve-storage
 * `volume_has_feature(snapshot, current)` per plugin, for a container's volume (always `raw` or `subvol`,
 * never `qcow2`, which only VMs use):
 * - `dir`, `nfs`, `cifs`: Plugin.pm `volume_has_feature`, snapshot only for qcow2 → no.
 * - `lvm` (thick): LVMPlugin.pm `volume_has_feature`, snapshot only for qcow2 (a VM's volume chain) → no.
 * - `lvmthin` (LvmThinPlugin.pm), `zfspool` (ZFSPoolPlugin.pm), `btrfs` (BTRFSPlugin.pm: raw and subvol),
 *   `rbd` (RBDPlugin.pm) → yes.
 */
export type VolumeStorageType = "dir" | "nfs" | "cifs" | "lvm" | "lvmthin" | "zfspool" | "btrfs" | "rbd";

const SNAPSHOTS: Record<VolumeStorageType, boolean> = {
  dir: false,
  nfs: false,
  cifs: false,
  lvm: false,
  lvmthin: true,
  zfspool: true,
  btrfs: true,
  rbd: true,
};

/** A default install's storages: `local` (dir) and `local-lvm` (lvmthin). */
export const DEFAULT_VOLUME_STORAGES: ReadonlyArray<[string, VolumeStorageType]> = [
  ["local", "dir"],
  ["local-lvm", "lvmthin"],
];

/**
 * pve-container LXC/Config.pm `has_feature('snapshot', $conf, $storecfg, undef, $running, $backup_only)`:
 * every volume mount point (rootfs, mpN with a storage volume; bind and device mount points are not
 * volumes, `foreach_volume` still visits them, and pve-storage Storage.pm `volume_has_feature` calls
 * `parse_volume_id($volid, 1)` (noerr) and returns undef for a path, so a CT with one cannot snapshot) must
 * be on a storage that snapshots. `backupOnly` skips mount points `mountpoint_backup_enabled` leaves out of
 * the backup: vzdump's `prepare` passes 1, and pve-guest-common AbstractConfig.pm `__snapshot_prepare`
 * passes `$snapname eq 'vzdump'` (so vzdump's own snapshot_create judges as prepare did, a user snapshot
 * every mount point); the API's `vm_feature` passes nothing. Returns the mount points that cannot snapshot
 * (empty: it can).
 */
export function volumesWithoutSnapshot(
  g: Guest,
  storageTypes: ReadonlyMap<string, VolumeStorageType>,
  backupOnly: boolean,
): string[] {
  const out: string[] = [];
  for (const m of mountPointsOf(g.config)) {
    if (backupOnly && !m.included) continue;
    const storeid = m.type === "volume" ? m.volume.slice(0, m.volume.indexOf(":")) : undefined;
    const type = storeid === undefined ? undefined : storageTypes.get(storeid);
    if (type === undefined || !SNAPSHOTS[type]) out.push(m.key);
  }
  return out;
}
