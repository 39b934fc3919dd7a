import type { AgentConfig } from "../config/schema.ts";
import type { PrunePolicy } from "../pve/property-string.ts";
import { backupIdFromNotes } from "./notes.ts";

type Retention = NonNullable<AgentConfig["backup"]["retention"]>;

/** The config's keep_* (snake_case keys) as PVE's prune-backups policy; undefined when not configured. */
export function retentionPolicy(retention: AgentConfig["backup"]["retention"]): PrunePolicy | undefined {
  if (!retention) return undefined;
  const policy: PrunePolicy = {};
  for (const [key, value] of Object.entries(retention)) {
    if (key.startsWith("keep_") && typeof value === "number")
      policy[key.replace(/_/g, "-") as keyof PrunePolicy] = value;
  }
  return policy;
}

/** Whose archives retention may remove: only the agent's own (default), or every backup of the guest. */
export function retentionScope(retention: Retention): "agent" | "all" {
  return retention.scope ?? "agent";
}

export interface RetentionCandidate {
  volid: string;
  ctime?: number | undefined;
  notes?: string | undefined;
  protected?: boolean | undefined;
}

/**
 * The archives among `ours` that the policy removes: pve-storage Storage.pm `prune_mark_backup_group`,
 * applied to the agent's own archives only. PVE's prune groups by type and vmid, so it would count (and
 * delete) the PVE admin's own backups of this guest as well. Newest first, each keep-* rule keeps the
 * newest archive of each of its first N periods not already kept by an earlier rule; protected archives
 * are neither counted nor removed. Periods are in this guest's local time (PVE uses the host's).
 */
export function archivesToRemove(ours: readonly RetentionCandidate[], policy: PrunePolicy): string[] {
  const rules = PERIODS.filter(([key]) => (policy[key] ?? 0) > 0);
  if (policy["keep-all"] || rules.length === 0) return [];
  const list = ours
    .filter((v) => !v.protected && v.ctime !== undefined)
    .map((v) => ({ volid: v.volid, ctime: v.ctime!, mark: undefined as "keep" | "remove" | undefined }))
    .sort((a, b) => b.ctime - a.ctime);
  for (const [key, periodOf] of rules) {
    const count = policy[key]!;
    const kept = new Set(list.filter((e) => e.mark === "keep").map((e) => periodOf(e.ctime)));
    const newly = new Set<string>();
    for (const e of list) {
      const period = periodOf(e.ctime);
      if (e.mark !== undefined || kept.has(period)) continue;
      if (newly.has(period)) {
        e.mark = "remove";
        continue;
      }
      if (newly.size >= count) break;
      newly.add(period);
      e.mark = "keep";
    }
  }
  return list.filter((e) => e.mark !== "keep").map((e) => e.volid);
}

/** The archives of this guest that the agent made: an agent backup id in the notes. */
export function madeByAgent<V extends RetentionCandidate>(volumes: readonly V[]): V[] {
  return volumes.filter((v) => backupIdFromNotes(v.notes) !== undefined);
}

const local = (ctime: number) => new Date(ctime * 1000);

/** strftime %V/%G: the ISO week and its year. */
function isoWeek(d: Date): string {
  const thursday = new Date(d.getFullYear(), d.getMonth(), d.getDate() - ((d.getDay() + 6) % 7) + 3);
  const firstThursday = new Date(thursday.getFullYear(), 0, 4);
  firstThursday.setDate(firstThursday.getDate() - ((firstThursday.getDay() + 6) % 7) + 3);
  const week = 1 + Math.round((thursday.getTime() - firstThursday.getTime()) / (7 * 86_400_000));
  return `${week}/${thursday.getFullYear()}`;
}

const PERIODS: Array<[Exclude<keyof PrunePolicy, "keep-all">, (ctime: number) => string]> = [
  ["keep-last", (c) => String(c)],
  ["keep-hourly", (c) => `${local(c).getHours()}/${local(c).toDateString()}`],
  ["keep-daily", (c) => local(c).toDateString()],
  ["keep-weekly", (c) => isoWeek(local(c))],
  ["keep-monthly", (c) => `${local(c).getMonth()}/${local(c).getFullYear()}`],
  ["keep-yearly", (c) => String(local(c).getFullYear())],
];
