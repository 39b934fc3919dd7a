import { describe, expect, it } from "vitest";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import {
  type BackupHealth,
  NO_HISTORY,
  nextHealth,
  renderHealth,
} from "../../agent/metrics/backup-health.ts";

const success = (o: Partial<{ sizeBytes: number; stacksResumed: boolean }> = {}): BackupOutcome => ({
  ok: true,
  result: {
    backupId: "b-ok",
    mode: "snapshot",
    upid: "UPID:pve1:00001234:00005678:6750A1B2:vzdump:101:agent-101@pve!backup:",
    volid: "bk:backup/vzdump-lxc-101-2026_12_04-02_30_00.tar.zst",
    sizeBytes: o.sizeBytes ?? 1_234_567,
    totalMs: 61_500,
    downtime: [
      { project: "web", service: "db", strategy: "stop", downtimeMs: 4_200 },
      { project: 'we"ird\\', service: "a\nb", strategy: "pause", downtimeMs: 10 },
    ],
    exitStatus: "OK",
    warnings: [],
    consistency: "app",
    stacksResumed: o.stacksResumed ?? true,
  },
});
const failure: BackupOutcome = {
  ok: false,
  failure: {
    backupId: "b-fail",
    mode: "snapshot",
    phase: "submit",
    code: "pve_unreachable",
    message: "no route",
    exitStatus: null,
    upid: null,
    logTail: [],
    stacksResumed: true,
  },
} as BackupOutcome;

const at = (iso: string) => new Date(iso);

/** The samples of a rendering: "name{labels}" → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-z_]+(?:\{.*\})?) (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${JSON.stringify(line)}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe("backup health", () => {
  it("counts failures in a row and keeps the last success through them; a success resets the count", () => {
    let h: BackupHealth = NO_HISTORY;
    h = nextHealth(h, success(), at("2026-12-01T02:31:00Z"));
    h = nextHealth(h, failure, at("2026-12-02T02:31:00Z"));
    h = nextHealth(h, failure, at("2026-12-03T02:31:00Z"));
    expect(h.consecutiveFailures).toBe(2);
    expect(h.lastSuccess?.at).toBe("2026-12-01T02:31:00.000Z");
    expect(h.lastAttempt).toEqual({ at: "2026-12-03T02:31:00.000Z", ok: false, stacksResumed: true });
    h = nextHealth(h, success({ sizeBytes: 99 }), at("2026-12-04T02:31:00Z"));
    expect(h.consecutiveFailures).toBe(0);
    expect(h.lastSuccess).toMatchObject({ at: "2026-12-04T02:31:00.000Z", sizeBytes: 99 });
  });

  it("renders the textfile: times in Unix seconds, downtime per service with escaped labels", () => {
    const h = nextHealth(NO_HISTORY, success(), at("2026-12-04T02:31:00Z"));
    const text = renderHealth(h);
    const s = samples(text);
    const t = Date.parse("2026-12-04T02:31:00Z") / 1000;
    expect(s.get("felhom_guest_backup_last_success_timestamp_seconds")).toBe(t);
    expect(s.get("felhom_guest_backup_last_attempt_timestamp_seconds")).toBe(t);
    expect(s.get("felhom_guest_backup_last_attempt_success")).toBe(1);
    expect(s.get("felhom_guest_backup_consecutive_failures")).toBe(0);
    expect(s.get("felhom_guest_backup_archive_size_bytes")).toBe(1_234_567);
    expect(s.get("felhom_guest_backup_duration_seconds")).toBe(61.5);
    expect(s.get('felhom_guest_backup_service_downtime_seconds{project="web",service="db"}')).toBe(4.2);
    expect(
      s.get('felhom_guest_backup_service_downtime_seconds{project="we\\"ird\\\\",service="a\\nb"}'),
    ).toBe(0.01);
    // One HELP and TYPE per metric, before its samples.
    expect(text.match(/^# TYPE felhom_guest_backup_service_downtime_seconds gauge$/gm)).toHaveLength(1);
    expect(text.endsWith("\n")).toBe(true);
  });

  it("reports 0 as the last success of a guest never backed up, so that the staleness alert fires", () => {
    const s = samples(renderHealth(nextHealth(NO_HISTORY, failure, at("2026-12-04T02:31:00Z"))));
    expect(s.get("felhom_guest_backup_last_success_timestamp_seconds")).toBe(0);
    expect(s.get("felhom_guest_backup_last_attempt_success")).toBe(0);
    expect(s.get("felhom_guest_backup_consecutive_failures")).toBe(1);
    expect(s.has("felhom_guest_backup_archive_size_bytes")).toBe(false);
  });

  it("flags a backup whose stacks did not all start again", () => {
    const s = samples(renderHealth(nextHealth(NO_HISTORY, success({ stacksResumed: false }), new Date())));
    expect(s.get("felhom_guest_backup_last_attempt_stacks_resumed")).toBe(0);
  });
});
