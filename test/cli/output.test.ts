import { describe, expect, it } from "vitest";
import { describeDowntime, describeOutcome } from "../../agent/cli/output.ts";

describe("a service's downtime, for a person", () => {
  it("names each part it has, the agent's noticing as an upper bound", () => {
    const d = { project: "shop", service: "db", strategy: "stop" as const, downtimeMs: 2710 };
    expect(
      describeDowntime({ ...d, breakdown: { quiesceMs: 200, pveMs: 2100, noticeMs: 250, resumeMs: 160 } }),
    ).toBe("shop/db 2.71 s = quiesce 0.20 + PVE 2.10 + notice ≤0.25 + resume 0.16");
    expect(describeDowntime({ ...d, breakdown: { resumeMs: 900 } })).toBe("shop/db 2.71 s = resume 0.90");
    expect(describeDowntime(d)).toBe("shop/db 2.71 s");
  });
});

describe("a backup's outcome, for a person", () => {
  it("says the mode PVE ran where it is not the one asked for", () => {
    const result = {
      backupId: "b-1",
      mode: "snapshot" as const,
      upid: "UPID:pve1:00000001:00000001:00000001:vzdump:101:agent@pve!t:",
      volid: "bk:backup/vzdump-lxc-101-2026_12_05-03_00_00.tar.zst",
      sizeBytes: 1048576,
      totalMs: 5000,
      downtime: [],
      exitStatus: "OK",
      warnings: [],
      consistency: "app" as const,
      stacksResumed: true,
    };
    expect(describeOutcome({ ok: true, result: { ...result, pveMode: "suspend" } })).toContain(
      "  mode     snapshot requested, PVE ran suspend\n",
    );
    expect(describeOutcome({ ok: true, result: { ...result, pveMode: "snapshot" } })).toContain(
      "  mode     snapshot\n",
    );
  });
});
