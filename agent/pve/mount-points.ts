import type { PveClient } from "./client.ts";
import { parsePropertyString } from "./property-string.ts";

/**
 * A CT mount point as vzdump judges it (pve-container VZDump/LXC.pm `prepare`, via LXC/Config.pm
 * `get_backup_volumes` → `mountpoint_backup_enabled`; types from `classify_mountpoint`):
 * - `rootfs` is always in the backup;
 * - a bind (`mpN: /host/path,mp=/in/guest`) or device (`/dev/...`) mount point never is ("not a volume");
 * - a storage volume only with `backup=1` ("enabled"); without the key it is left out ("disabled"): the
 *   schema has no default (the GUI ticks the box for new mount points, `pct set` does not).
 * vzdump logs `excluding <type> mount point mpN ('<path>') from backup (<reason>)` for those left out.
 */
export interface CtMountPoint {
  key: string;
  /** The storage volume, or the host path of a bind mount point. */
  volume: string;
  /** Where it is mounted inside the guest. */
  path: string;
  type: "volume" | "bind" | "device";
  inBackup: boolean;
  reason: "rootfs" | "enabled" | "not a volume" | "disabled";
}

/**
 * The mount points of a CT config (`GET /nodes/{node}/lxc/{vmid}/config` with `current=1`, which a
 * guest-scoped token reads with VM.Audit: pve-container src/PVE/API2/LXC/Config.pm `vm_config`, the raw
 * `mpN` strings, pending changes left out as vzdump leaves them out): `rootfs`, then `mp0`, `mp1`, ... in the order vzdump walks
 * them (`valid_volume_keys`). Entries without a volume or a path are skipped, as `prepare` skips them.
 */
/**
 * The CT's mount points as vzdump will judge them: the config as it is now (`current=1`; pending changes
 * apply at the next start, and vzdump reads the current values).
 */
export async function readCtMountPoints(
  pve: Pick<PveClient, "lxcConfig">,
  node: string,
  vmid: number,
): Promise<CtMountPoint[]> {
  return ctMountPoints((await pve.lxcConfig(node, vmid, { current: true })).raw);
}

export function ctMountPoints(config: Record<string, unknown>): CtMountPoint[] {
  const keys = Object.keys(config)
    .filter((k) => k === "rootfs" || /^mp\d+$/.test(k))
    .sort((a, b) => order(a) - order(b));
  const out: CtMountPoint[] = [];
  for (const key of keys) {
    const raw = config[key];
    if (typeof raw !== "string") continue;
    const props = parsePropertyString(raw, "volume");
    const volume = props.volume ?? "";
    const path = key === "rootfs" ? "/" : props.mp;
    if (!volume || !path) continue;
    const type = volume.startsWith("/dev/") ? "device" : volume.startsWith("/") ? "bind" : "volume";
    const backup = /^(1|yes|on|true)$/i.test(props.backup ?? "");
    const [inBackup, reason]: [boolean, CtMountPoint["reason"]] =
      key === "rootfs"
        ? [true, "rootfs"]
        : type !== "volume"
          ? [false, "not a volume"]
          : backup
            ? [true, "enabled"]
            : [false, "disabled"];
    out.push({ key, volume, path: trimSlash(path), type, inBackup, reason });
  }
  return out;
}

const order = (key: string) => (key === "rootfs" ? -1 : Number(key.slice(2)));

export function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}
