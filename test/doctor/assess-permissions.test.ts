import { describe, expect, it } from "vitest";
import { assessPermissions, assessUnscopedPermissions } from "../../agent/doctor/assess-permissions.ts";

const exact = {
  "/vms/101": { "VM.Audit": 1, "VM.Backup": 1, "VM.Snapshot": 1 },
  "/storage/bk": { "Datastore.AllocateSpace": 1, "Datastore.Audit": 1 },
};

describe("doctor: the token's permissions", () => {
  it("is content with exactly the FelhomGuest role on the guest and the storage", () => {
    expect(assessPermissions(exact, 101, "bk", 1)).toEqual([
      { level: "ok", message: "the token holds every privilege it needs on /vms/101 and /storage/bk" },
    ]);
  });

  it("names each missing privilege and its path", () => {
    const { "VM.Backup": _, ...vm } = exact["/vms/101"];
    const [f] = assessPermissions({ ...exact, "/vms/101": vm }, 101, "bk", 1);
    expect(f).toMatchObject({ level: "error", message: "the token lacks VM.Backup on /vms/101" });
  });

  it("recognises the privilege-separation trap: nothing at all on the guest or the storage", () => {
    const [f] = assessPermissions({ "/": {} }, 101, "bk", 0);
    expect(f?.hint).toMatch(/BOTH the user and the token/);
  });

  it("warns about an over-privileged token that sees other guests or can allocate", () => {
    const over = { ...exact, "/": { "Sys.Modify": 1, "VM.Allocate": 1 } };
    const findings = assessPermissions(over, 101, "bk", 3);
    expect(findings.map((f) => f.level)).toEqual(["ok", "warn", "warn"]);
    expect(findings[1]!.message).toMatch(/VM.Allocate on \//);
    expect(findings[2]!.message).toMatch(/sees 3 guests/);
  });
});

describe("doctor: the token's permissions when no vmid is known", () => {
  it("accepts VM.Audit on a guest, or propagated from / or /vms", () => {
    expect(assessUnscopedPermissions({ "/vms/101": { "VM.Audit": 0 } }).level).toBe("ok");
    expect(assessUnscopedPermissions({ "/vms": { "VM.Audit": 1 } }).level).toBe("ok");
    expect(assessUnscopedPermissions({ "/": { "VM.Audit": 1 } }).level).toBe("ok");
  });

  it("does not count VM.Audit on /vms that does not propagate down to any guest", () => {
    const f = assessUnscopedPermissions({
      "/vms": { "VM.Audit": 0 },
      "/storage/bk": { "Datastore.Audit": 1 },
    });
    expect(f).toMatchObject({ level: "error", hint: /BOTH the user and the token/ });
  });
});
