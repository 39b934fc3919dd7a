import { describe, expect, it } from "vitest";
import { assessProtectedBackups } from "../../agent/doctor/assess-protected.ts";

const protectedArchives = (n: number, vmid = 101) =>
  Array.from({ length: n }, () => ({ vmid, protected: true }));

describe("doctor: protected backups against the per-guest limit", () => {
  it("is content while more than one slot is free, counting only this guest's protected archives", () => {
    const archives = [...protectedArchives(2), ...protectedArchives(4, 102), { vmid: 101, protected: false }];
    expect(assessProtectedBackups(archives, 101, 5)).toEqual({
      level: "ok",
      message: "protected backups: 2 of 5 per guest used on the backup storage",
    });
  });

  it("warns when one slot is left, since the backup after the next one will be refused", () => {
    const f = assessProtectedBackups(protectedArchives(4), 101, 5);
    expect(f).toMatchObject({ level: "warn", message: /4 of 5 .* the one after is refused/ });
    expect(f.hint).toMatch(/backup\.protected: false/);
  });

  it("fails when the guest already has the limit's number of protected archives", () => {
    const f = assessProtectedBackups(protectedArchives(5), 101, 5);
    expect(f).toMatchObject({ level: "error", message: /CT 101 already has 5 protected backups/ });
  });
});
