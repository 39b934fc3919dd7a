import { describe, expect, it } from "vitest";
import { classifyExitStatus, isSuccess } from "../../agent/pve/exit-status.ts";

describe("pve task exit status classifier", () => {
  it("classifies OK, WARNINGS, unexpected status and error text", () => {
    expect(classifyExitStatus("OK")).toEqual({ kind: "ok" });
    expect(classifyExitStatus("WARNINGS: 3")).toEqual({ kind: "warnings", count: 3 });
    expect(classifyExitStatus("unexpected status")).toEqual({ kind: "unexpected" });
    expect(classifyExitStatus("job errors")).toEqual({ kind: "error", text: "job errors" });
    expect(classifyExitStatus("403 Permission check failed (/vms/101, VM.Backup)")).toEqual({
      kind: "error",
      text: "403 Permission check failed (/vms/101, VM.Backup)",
    });
  });

  it("counts only OK and WARNINGS as success", () => {
    expect(isSuccess(classifyExitStatus("OK"))).toBe(true);
    expect(isSuccess(classifyExitStatus("WARNINGS: 1"))).toBe(true);
    expect(isSuccess(classifyExitStatus("unexpected status"))).toBe(false);
    expect(isSuccess(classifyExitStatus("WARNINGS: x"))).toBe(false);
  });
});
