import { z } from "zod";
import type { BackupOutcome } from "../backup/backup-types.ts";

/**
 * What an admin alerts on without the hub: the backup history reduced to the few numbers node_exporter's
 * textfile collector publishes. Kept in the state dir (whether or not a textfile is configured, so that
 * turning it on later starts with the history) and updated on every final outcome.
 */
export const backupHealthSchema = z.object({
  lastAttempt: z.object({ at: z.iso.datetime(), ok: z.boolean(), stacksResumed: z.boolean() }).optional(),
  lastSuccess: z
    .object({
      at: z.iso.datetime(),
      sizeBytes: z.number().min(0),
      totalMs: z.number().min(0),
      appConsistent: z.boolean(),
      downtime: z.array(
        z.object({ project: z.string(), service: z.string(), downtimeMs: z.number().min(0) }),
      ),
    })
    .optional(),
  consecutiveFailures: z.number().int().min(0),
});
export type BackupHealth = z.infer<typeof backupHealthSchema>;

export const NO_HISTORY: BackupHealth = { consecutiveFailures: 0 };

/** The health after one more final outcome. Pure. */
export function nextHealth(prev: BackupHealth, outcome: BackupOutcome, at: Date): BackupHealth {
  const stacksResumed = outcome.ok ? outcome.result.stacksResumed : outcome.failure.stacksResumed;
  const lastAttempt = { at: at.toISOString(), ok: outcome.ok, stacksResumed };
  if (!outcome.ok) return { ...prev, lastAttempt, consecutiveFailures: prev.consecutiveFailures + 1 };
  const r = outcome.result;
  return {
    lastAttempt,
    lastSuccess: {
      at: lastAttempt.at,
      sizeBytes: r.sizeBytes,
      totalMs: r.totalMs,
      appConsistent: r.consistency === "app",
      downtime: r.downtime.map((d) => ({ project: d.project, service: d.service, downtimeMs: d.downtimeMs })),
    },
    consecutiveFailures: 0,
  };
}

/** A label value in the exposition format: backslash, double quote and line feed escaped. */
const label = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const seconds = (iso: string) => Date.parse(iso) / 1000;

/**
 * The Prometheus text exposition of the health (node_exporter's textfile collector format). The last
 * success time is 0 until the first success, so that `time() - …_last_success_timestamp_seconds > 26 * 3600`
 * also fires for a guest that was never backed up. Pure.
 */
export function renderHealth(h: BackupHealth): string {
  const out: string[] = [];
  const metric = (name: string, help: string, samples: [labels: string, value: number][]) => {
    if (samples.length === 0) return;
    out.push(`# HELP felhom_guest_${name} ${help}`, `# TYPE felhom_guest_${name} gauge`);
    for (const [labels, value] of samples) out.push(`felhom_guest_${name}${labels} ${value}`);
  };
  const s = h.lastSuccess;
  const a = h.lastAttempt;
  metric("backup_last_success_timestamp_seconds", "When the last successful backup finished (0: none yet).", [
    ["", s ? seconds(s.at) : 0],
  ]);
  metric(
    "backup_last_attempt_timestamp_seconds",
    "When the last backup attempt ended, successful or not.",
    a ? [["", seconds(a.at)]] : [],
  );
  metric(
    "backup_last_attempt_success",
    "1 if the last backup attempt succeeded, 0 if it failed.",
    a ? [["", a.ok ? 1 : 0]] : [],
  );
  metric(
    "backup_last_attempt_stacks_resumed",
    "0 if a container the last backup stopped or paused did not start again (check felhom-guest stacks).",
    a ? [["", a.stacksResumed ? 1 : 0]] : [],
  );
  metric("backup_consecutive_failures", "Failed backups since the last successful one.", [
    ["", h.consecutiveFailures],
  ]);
  metric(
    "backup_archive_size_bytes",
    "Size of the last successful backup's archive.",
    s ? [["", s.sizeBytes]] : [],
  );
  metric(
    "backup_duration_seconds",
    "Total time of the last successful backup.",
    s ? [["", s.totalMs / 1000]] : [],
  );
  metric(
    "backup_app_consistent",
    "1 if the last successful backup was app-consistent, 0 if only crash-consistent.",
    s ? [["", s.appConsistent ? 1 : 0]] : [],
  );
  metric(
    "backup_service_downtime_seconds",
    "How long each compose service was stopped or paused by the last successful backup.",
    (s?.downtime ?? []).map((d) => [
      `{project="${label(d.project)}",service="${label(d.service)}"}`,
      d.downtimeMs / 1000,
    ]),
  );
  return `${out.join("\n")}\n`;
}
