import { describe, expect, it } from "vitest";
import { describeDowntime } from "../../agent/cli/output.ts";

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
