import { describe, expect, it } from "vitest";
import { backupSection } from "../../agent/operation/journal-section.ts";

const backup = {
  kind: "backup",
  mode: "snapshot",
  trigger: "schedule",
  startedAt: "2026-01-01T00:00:00.000Z",
  node: "pve1",
  vmid: 101,
  storage: "local",
  phase: "snapshot-wait",
  upid: "UPID:pve1:1:2:3:vzdump:101:agent@pve!t:",
};

describe("the journal's operation section", () => {
  it("reads a backup's section typed", () => {
    expect(backupSection({ backup })).toEqual(backup);
  });

  it("reads a backup section an older agent wrote without a kind", () => {
    const { kind: _, ...legacy } = backup;
    expect(backupSection({ backup: legacy })).toEqual(backup);
  });

  it("reads what a run killed mid-quiesce wrote, and nothing at all as empty", () => {
    expect(backupSection({ backup: { mode: "stop", node: "pve1" } })).toEqual({
      kind: "backup",
      mode: "stop",
      node: "pve1",
    });
    expect(backupSection({ backup: {} })).toEqual({ kind: "backup" });
    expect(backupSection(undefined)).toEqual({ kind: "backup" });
  });

  it("leaves out a damaged field instead of the whole section (the stacks must still be resumed and reported)", () => {
    expect(backupSection({ backup: { ...backup, vmid: "one hundred and one", phase: "dancing" } })).toEqual({
      ...Object.fromEntries(Object.entries(backup).filter(([k]) => k !== "vmid" && k !== "phase")),
    });
  });

  it("a snapshot's section is not a backup's", () => {
    const section = { kind: "snapshot", name: "before-upgrade" };
    expect(backupSection({ backup: section })).toBeUndefined();
  });
});
