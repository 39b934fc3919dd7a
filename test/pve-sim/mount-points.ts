/**
 * The CT's mount points as vzdump's `prepare` sees them (pve-container VZDump/LXC.pm `prepare`, via
 * LXC/Config.pm `get_backup_volumes`): `rootfs`, then `mp0`..`mp255` in order (`valid_volume_keys`), each
 * classified by `classify_mountpoint` (a `/dev/` path is a device, another absolute path a bind mount,
 * anything else a storage volume) and judged by `mountpoint_backup_enabled`: rootfs always; a bind or
 * device mount point never ("not a volume"); a volume only with `backup=1` ("enabled"; unset is
 * "disabled", the schema has no default).
 */
export interface SimMountPoint {
  key: string;
  volume: string;
  /** The path inside the guest. */
  mp: string;
  type: "volume" | "bind" | "device";
  included: boolean;
  reason: "rootfs" | "not a volume" | "enabled" | "disabled";
}

export function mountPointsOf(config: Record<string, string | number>): SimMountPoint[] {
  const keys = Object.keys(config)
    .filter((k) => k === "rootfs" || /^mp\d+$/.test(k))
    .sort((a, b) => (a === "rootfs" ? -1 : b === "rootfs" ? 1 : Number(a.slice(2)) - Number(b.slice(2))));
  const out: SimMountPoint[] = [];
  for (const key of keys) {
    const opts = new Map<string, string>();
    for (const part of String(config[key]).split(",")) {
      const eq = part.indexOf("=");
      // the first, key-less item is the default key `volume`
      if (eq < 0) opts.set("volume", part);
      else opts.set(part.slice(0, eq), part.slice(eq + 1));
    }
    const volume = opts.get("volume") ?? "";
    const mp = key === "rootfs" ? "/" : opts.get("mp");
    if (!volume || !mp) continue; // get_backup_volumes' caller: `next if !$volid || !$mount`
    const type = volume.startsWith("/dev/") ? "device" : volume.startsWith("/") ? "bind" : "volume";
    const backup = /^(1|yes|on|true)$/i.test(opts.get("backup") ?? "");
    const [included, reason]: [boolean, SimMountPoint["reason"]] =
      key === "rootfs"
        ? [true, "rootfs"]
        : type !== "volume"
          ? [false, "not a volume"]
          : backup
            ? [true, "enabled"]
            : [false, "disabled"];
    out.push({ key, volume, mp, type, included, reason });
  }
  return out;
}
