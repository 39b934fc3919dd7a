import { describe, expect, it } from "vitest";
import { parsePermissionFailure, permissionHint } from "../../agent/pve/permission-error.ts";

describe("pve permission failure parser", () => {
  it("reads the path and the privilege of a single check", () => {
    expect(parsePermissionFailure("Permission check failed (/vms/100, VM.Backup)")).toEqual({
      path: "/vms/100",
      privileges: ["VM.Backup"],
      any: false,
    });
  });

  it("reads the any-of form A|B", () => {
    expect(
      parsePermissionFailure(
        "Permission check failed (/storage/bk, Datastore.Audit|Datastore.AllocateSpace)",
      ),
    ).toEqual({ path: "/storage/bk", privileges: ["Datastore.Audit", "Datastore.AllocateSpace"], any: true });
  });

  it("reads the bare form as naming nothing", () => {
    expect(parsePermissionFailure("Permission check failed")).toEqual({ privileges: [], any: false });
  });

  it("reads a task exit status with the 403 prefix and a message with a trailing newline", () => {
    expect(parsePermissionFailure("403 Permission check failed (/vms/101, VM.Backup)")?.path).toBe(
      "/vms/101",
    );
    expect(parsePermissionFailure("Permission check failed (/vms/101, VM.Backup)\n")?.privileges).toEqual([
      "VM.Backup",
    ]);
  });

  it("returns undefined for other texts", () => {
    expect(parsePermissionFailure("job errors")).toBeUndefined();
  });

  it("hints to grant the privilege to both the user and the token", () => {
    expect(permissionHint(parsePermissionFailure("Permission check failed (/vms/100, VM.Backup)"))).toBe(
      "grant VM.Backup on /vms/100 to BOTH the user and the token (privilege separation intersects them)",
    );
    expect(permissionHint({ privileges: [], any: false })).toContain("user AND the token");
  });
});
