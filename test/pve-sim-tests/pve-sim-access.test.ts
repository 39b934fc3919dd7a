import { describe, expect, it } from "vitest";
import { AccessModel } from "../pve-sim/access-model.ts";

describe("pve sim: permission computation (roles, ACL inheritance, privsep)", () => {
  const model = () => {
    const m = new AccessModel();
    m.addRole("Guest", ["VM.Audit", "VM.Backup"]);
    m.addUser("u@pve");
    return m;
  };

  it("inherits propagated entries down the path tree and lets a deeper entry replace them", () => {
    const m = model();
    m.setAcl({ path: "/vms", role: "Guest", user: "u@pve" });
    m.setAcl({ path: "/vms/101", role: "PVEAuditor", user: "u@pve" });
    expect(m.permissions("u@pve", "/vms/100")).toEqual({ "VM.Audit": 1, "VM.Backup": 1 });
    expect(Object.keys(m.permissions("u@pve", "/vms/101"))).not.toContain("VM.Backup");
    expect(m.permissions("u@pve", "/storage/bk")).toEqual({});
  });

  it("applies a non-propagating entry only to its own path and reports the propagate flag", () => {
    const m = model();
    m.setAcl({ path: "/vms", role: "Guest", user: "u@pve", propagate: false });
    expect(m.permissions("u@pve", "/vms")).toEqual({ "VM.Audit": 0, "VM.Backup": 0 });
    expect(m.permissions("u@pve", "/vms/100")).toEqual({});
  });

  it("lets NoAccess win over other roles on the same path, and user entries override group entries", () => {
    const m = model();
    m.setAcl({ path: "/", role: "Administrator", user: "u@pve" });
    m.setAcl({ path: "/vms/100", role: "NoAccess", user: "u@pve" });
    m.setAcl({ path: "/vms/100", role: "Guest", user: "u@pve" });
    expect(m.permissions("u@pve", "/vms/100")).toEqual({});
    m.addUser("g@pve", { groups: ["ops"] });
    m.setAcl({ path: "/vms", role: "Guest", group: "ops" });
    expect(m.has("g@pve", "/vms/5", "VM.Backup")).toBe(true);
    m.setAcl({ path: "/vms", role: "PVEAuditor", user: "g@pve" });
    expect(m.has("g@pve", "/vms/5", "VM.Backup")).toBe(false);
  });

  it("intersects a privsep token with its user per path; a non-privsep token is its user", () => {
    const m = model();
    const sep = m.addToken("u@pve", "sep", { secret: "s" });
    const full = m.addToken("u@pve", "full", { secret: "s", privsep: false });
    m.setAcl({ path: "/vms/100", role: "Guest", token: sep });
    expect(m.permissions(sep, "/vms/100")).toEqual({});
    m.setAcl({ path: "/vms", role: "PVEAuditor", user: "u@pve" });
    expect(m.permissions(sep, "/vms/100")).toEqual({ "VM.Audit": 1 });
    expect(m.permissions(full, "/vms/100")).toEqual(m.permissions("u@pve", "/vms/100"));
    expect(() => m.check(sep, "/vms/100", ["VM.Audit", "VM.Backup"])).toThrow(
      "Permission check failed (/vms/100, VM.Backup)",
    );
    expect(() => m.checkAny(sep, "/storage/x", ["Datastore.Audit", "Datastore.AllocateSpace"])).toThrow(
      "Permission check failed (/storage/x, Datastore.Audit|Datastore.AllocateSpace)",
    );
  });

  it("gives a non-privsep root@pam token everything and a privsep one only what its own ACLs grant", () => {
    const m = model();
    const full = m.addToken("root@pam", "full", { secret: "s", privsep: false });
    const sep = m.addToken("root@pam", "sep", { secret: "s" });
    expect(m.has(full, "/vms/100", "VM.Backup")).toBe(true);
    expect(m.permissions(sep, "/vms/100")).toEqual({});
    m.setAcl({ path: "/vms/100", role: "Guest", token: sep });
    expect(m.permissions(sep, "/vms/100")).toEqual({ "VM.Audit": 1, "VM.Backup": 1 });
  });

  it("refuses tokens of disabled users, expired tokens and wrong secrets", () => {
    const m = model();
    const t = m.addToken("u@pve", "tok", { secret: "s3cr3t", expire: 2000 });
    expect(m.verifyToken(t, "s3cr3t", 1000)).toBe(true);
    expect(m.verifyToken(t, "s3cr3t", 3000)).toBe(false);
    expect(m.verifyToken(t, "wrong", 1000)).toBe(false);
    (m.users.get("u@pve") as { enable: boolean }).enable = false;
    expect(m.verifyToken(t, "s3cr3t", 1000)).toBe(false);
  });
});
