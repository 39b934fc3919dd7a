import { describe, expect, it } from "vitest";
import { countProtected, protectedLimitProblem } from "../../agent/backup/protected-limit.ts";

const archive = (vmid: number | undefined, isProtected: boolean) => ({
  ...(vmid !== undefined ? { vmid } : {}),
  protected: isProtected,
});

describe("the protected-backup limit, checked before a protected backup", () => {
  it("has no objection while this guest has fewer protected archives than the limit", () => {
    const archives = [archive(101, true), archive(101, true), archive(101, true), archive(101, true)];
    expect(protectedLimitProblem(archives, 101, 5)).toBeUndefined();
    expect(protectedLimitProblem([], 101, 1)).toBeUndefined();
  });

  it("objects once this guest already has the limit's number of protected archives, saying what to do", () => {
    const archives = Array.from({ length: 5 }, () => archive(101, true));
    const problem = protectedLimitProblem(archives, 101, 5);
    expect(problem).toMatch(/CT 101 already has 5 protected backups/);
    expect(problem).toMatch(/allows 5 per guest/);
    expect(problem).toMatch(/Unprotect or delete old protected backups/);
    expect(problem).toMatch(/max-protected-backups and set backup\.max_protected_backups/);
    expect(problem).toMatch(/backup\.protected: false/);
    expect(protectedLimitProblem([...archives, archive(101, true)], 101, 5)).toMatch(/already has 6/);
  });

  it("counts only this guest's protected archives, not unprotected ones or other guests'", () => {
    const archives = [
      archive(101, true),
      archive(101, false),
      archive(101, false),
      archive(102, true),
      archive(102, true),
      archive(undefined, true),
    ];
    expect(countProtected(archives, 101)).toBe(1);
    expect(protectedLimitProblem(archives, 101, 2)).toBeUndefined();
    expect(protectedLimitProblem(archives, 101, 1)).toMatch(/CT 101 already has 1 protected backup on/);
    expect(protectedLimitProblem(archives, 102, 2)).toMatch(/CT 102 already has 2/);
  });
});
