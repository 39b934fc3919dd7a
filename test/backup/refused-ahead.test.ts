import { describe, expect, it } from "vitest";
import { backupRefusedAhead } from "../../agent/backup/refused-ahead.ts";

describe("refused ahead", () => {
  it("names what PVE would refuse after the quiesce: no backup content, a missing privilege on the storage or the guest", () => {
    const perms = { "/storage/bk": { "Datastore.AllocateSpace": 1 }, "/vms/101": { "VM.Backup": 1 } };
    const ask = (o: { storageContent?: string; perms?: Record<string, Record<string, number>> }) =>
      backupRefusedAhead({
        vmid: 101,
        storage: "bk",
        storageContent: o.storageContent,
        perms: o.perms ?? perms,
      });
    expect(ask({ storageContent: "backup,iso" })).toBeUndefined();
    expect(ask({ storageContent: "iso" })).toMatchObject({ code: "storage_unavailable" });
    expect(
      ask({ perms: { "/vms/101": { "VM.Backup": 1 }, "/storage/bk": { "Datastore.Audit": 1 } } }),
    ).toMatchObject({
      code: "pve_permission_denied",
      message: expect.stringMatching(/^the token lacks Datastore\.AllocateSpace on \/storage\/bk;/),
    });
  });
});
