import { describe, expect, it } from "vitest";
import { type BackupRunEvent, backupStep, initialBackupState } from "../../agent/backup/backup-machine.ts";
import { breakdownOf } from "../../agent/backup/downtime.ts";

/** The machine's own timeline, fed events at the given instants (ms). */
function timeline(events: BackupRunEvent[]) {
  let state = initialBackupState("snapshot", 0);
  for (const ev of events) state = backupStep(state, ev).state;
  return state.timeline;
}

const quiesced: BackupRunEvent[] = [
  { type: "enter", phase: "quiesce", at: 50 },
  { type: "quiesced", consistency: "app", at: 250 },
  { type: "enter", phase: "submit", at: 300 },
  { type: "submitted", at: 340 },
  { type: "enter", phase: "snapshot-wait", at: 345 },
];

const sum = (b: Record<string, number | undefined>) =>
  Object.values(b).reduce<number>((a, v) => a + (v ?? 0), 0);

describe("where the downtime goes", () => {
  it("cuts the window at the POST, the last read without the snapshot line, and the resume", () => {
    const t = timeline([
      ...quiesced,
      { type: "task-phase", phase: "snapshot-created", seen: { after: 900, by: 990 }, at: 1000 },
    ]);
    const b = breakdownOf({ down: 100, up: 1500 }, 1001, t);
    expect(b).toEqual({ quiesceMs: 200, pveMs: 600, noticeMs: 100, resumeMs: 500 });
    expect(sum(b)).toBe(1400);
  });

  it("has no notice part when the deadline, not a log line, resumed the stacks", () => {
    const t = timeline([
      ...quiesced,
      { type: "deadline-passed", lateMs: 0, at: 2000 },
      { type: "task-phase", phase: "snapshot-created", seen: { after: 2100, by: 2190 }, at: 2200 },
    ]);
    const b = breakdownOf({ down: 100, up: 2600 }, 2001, t);
    expect(b).toEqual({ quiesceMs: 200, pveMs: 1700, resumeMs: 600 });
    expect(sum(b)).toBe(2500);
  });

  it("never goes negative and still adds up when the resume came before the POST", () => {
    const t = timeline([
      { type: "enter", phase: "quiesce", at: 50 },
      { type: "quiesced", consistency: "app", at: 250 },
      { type: "deadline-passed", lateMs: 0, at: 260 },
      { type: "enter", phase: "submit", at: 300 },
    ]);
    const b = breakdownOf({ down: 100, up: 280 }, 261, t);
    expect(Object.values(b).every((v) => v >= 0)).toBe(true);
    expect(sum(b)).toBe(180);
  });

  it("knows only the resume after a restart (no timeline of the run that quiesced)", () => {
    expect(breakdownOf({ down: 100, up: 5000 }, 4200, undefined)).toEqual({ resumeMs: 800 });
  });
});
