import type { BackupFile } from "./backup-files.ts";

/**
 * Retention as pve-storage's Storage.pm `prune_mark_backup_group` and Plugin.pm `prune_backups` compute it.
 * Pure: a list of backups and a policy in, marks out.
 */
export type KeepOptions = Partial<
  Record<
    "keep-all" | "keep-last" | "keep-hourly" | "keep-daily" | "keep-weekly" | "keep-monthly" | "keep-yearly",
    number
  >
>;

export interface PruneEntry {
  volid: string;
  ctime: number;
  type: string;
  vmid?: number;
  mark?: "keep" | "remove" | "protected" | "renamed";
}

const KEYS = [
  "keep-all",
  "keep-last",
  "keep-hourly",
  "keep-daily",
  "keep-weekly",
  "keep-monthly",
  "keep-yearly",
] as const;

/** Parses the `prune-backups` property string; returns an error text for the 400 on bad input. */
export function parseKeep(value: string): KeepOptions | string {
  const out: KeepOptions = {};
  for (const part of value.split(",").filter((p) => p !== "")) {
    const m = /^([a-z-]+)=(.*)$/.exec(part);
    if (!m) return `invalid format - missing key in comma-separated list property\n`;
    const key = m[1] as (typeof KEYS)[number];
    if (!KEYS.includes(key)) return `invalid format - property '${key}' not defined in schema\n`;
    const v = m[2] as string;
    if (key === "keep-all") {
      if (!/^(0|1|true|false|yes|no|on|off)$/i.test(v))
        return `invalid format - ${key}: type check ('boolean') failed - got '${v}'\n`;
      out[key] = /^(1|true|yes|on)$/i.test(v) ? 1 : 0;
    } else {
      if (!/^\d+$/.test(v)) return `invalid format - ${key}: type check ('integer') failed - got '${v}'\n`;
      if (Number(v) < 1) return `invalid format - ${key}: value must have a minimum value of 1\n`;
      out[key] = Number(v);
    }
  }
  return out;
}

/** print_property_string in schema order, as vzdump logs it ("keep-daily=7, keep-last=3" uses sorted keys). */
export function keepToString(keep: KeepOptions, sep = ","): string {
  return Object.keys(keep)
    .sort()
    .map((k) => `${k}=${keep[k as keyof KeepOptions]}`)
    .join(sep);
}

export function isKeepAll(keep: KeepOptions): boolean {
  return Boolean(keep["keep-all"]) || !KEYS.some((k) => k !== "keep-all" && (keep[k] ?? 0) > 0);
}

/** ISO 8601 week and week-year of a local date, like strftime %V / %G. */
function isoWeek(d: Date): string {
  const thursdayOf = (x: Date): Date => {
    const t = new Date(x.getFullYear(), x.getMonth(), x.getDate());
    t.setDate(t.getDate() - ((t.getDay() + 6) % 7) + 3);
    return t;
  };
  const thursday = thursdayOf(d);
  const weekYear = thursday.getFullYear();
  const week1 = thursdayOf(new Date(weekYear, 0, 4));
  const week = 1 + Math.round((thursday.getTime() - week1.getTime()) / (7 * 86400000));
  return `${week}/${weekYear}`;
}

const ID_FUNCS: Array<[keyof KeepOptions, (ctime: number) => string]> = [
  ["keep-last", (c) => String(c)],
  [
    "keep-hourly",
    (c) => {
      const d = new Date(c * 1000);
      return `${d.getHours()}/${d.getDate()}/${d.getMonth()}/${d.getFullYear()}`;
    },
  ],
  [
    "keep-daily",
    (c) => {
      const d = new Date(c * 1000);
      return `${d.getDate()}/${d.getMonth()}/${d.getFullYear()}`;
    },
  ],
  ["keep-weekly", (c) => isoWeek(new Date(c * 1000))],
  [
    "keep-monthly",
    (c) => {
      const d = new Date(c * 1000);
      return `${d.getMonth()}/${d.getFullYear()}`;
    },
  ],
  ["keep-yearly", (c) => String(new Date(c * 1000).getFullYear())],
];

/** Marks one backup group (same type and vmid) in place. */
export function pruneMarkBackupGroup(group: PruneEntry[], keep: KeepOptions): void {
  if (isKeepAll(keep)) {
    for (const e of group) if (!e.mark || e.mark === "remove") e.mark = "keep";
    return;
  }
  const list = [...group].sort((a, b) => b.ctime - a.ctime);
  for (const [key, idOf] of ID_FUNCS) {
    const count = keep[key];
    if (!count) continue;
    const already = new Set<string>();
    for (const e of list) if (e.mark === "keep") already.add(idOf(e.ctime));
    const newly = new Set<string>();
    for (const e of list) {
      const id = idOf(e.ctime);
      if (e.mark !== undefined || already.has(id)) continue;
      if (!newly.has(id)) {
        if (newly.size >= count) break;
        newly.add(id);
        e.mark = "keep";
      } else e.mark = "remove";
    }
  }
  for (const e of list) e.mark ??= "remove";
}

/** Plugin.pm `prune_backups` without the removal: every backup of the storage (optionally one vmid/type) marked. */
export function markBackups(
  backups: readonly BackupFile[],
  keep: KeepOptions,
  filter: { vmid?: number; type?: string },
): PruneEntry[] {
  const list: PruneEntry[] = [];
  const groups = new Map<string, PruneEntry[]>();
  for (const b of backups) {
    if (filter.vmid !== undefined && b.vmid !== filter.vmid) continue;
    const type = b.subtype;
    if (filter.type !== undefined && filter.type !== type) continue;
    const e: PruneEntry = {
      volid: b.volid,
      ctime: b.ctime,
      type,
      ...(b.vmid !== undefined ? { vmid: b.vmid } : {}),
    };
    if (b.protected) e.mark = "protected";
    if (b.isStdName) {
      const key = `${type}/${b.vmid}`;
      groups.set(key, [...(groups.get(key) ?? []), e]);
    } else e.mark = "renamed";
    list.push(e);
  }
  for (const g of groups.values()) pruneMarkBackupGroup(g, keep);
  return list;
}
