import { describe, expect, it } from "vitest";
import { buildVzdumpParams } from "../../agent/pve/vzdump-params.ts";

describe("pve vzdump parameter builder", () => {
  it("builds the form body with PVE's parameter names", () => {
    expect(
      buildVzdumpParams({
        vmid: 100,
        storage: "bk",
        mode: "snapshot",
        compress: "zstd",
        lockwait: 1,
        notesTemplate: "felhom b-1 {{guestname}}",
        protected: false,
        remove: false,
        notificationMode: "legacy-sendmail",
        mailNotification: "failure",
      }),
    ).toEqual({
      vmid: "100",
      storage: "bk",
      mode: "snapshot",
      compress: "zstd",
      lockwait: "1",
      "notes-template": "felhom b-1 {{guestname}}",
      protected: "0",
      remove: "0",
      "notification-mode": "legacy-sendmail",
      mailnotification: "failure",
    });
  });

  it("refuses ionice, bwlimit, prune-backups, tmpdir, dumpdir and script at the type level and at run time", () => {
    // @ts-expect-error ionice needs Sys.Modify on /
    expect(() => buildVzdumpParams({ vmid: 100, storage: "bk", ionice: 8 })).toThrow(/not allowed.*ionice/);
    // @ts-expect-error bwlimit needs Sys.Modify on /
    expect(() => buildVzdumpParams({ vmid: 100, storage: "bk", bwlimit: 1 })).toThrow(/bwlimit/);
    // @ts-expect-error prune-backups needs Datastore.Allocate
    expect(() => buildVzdumpParams({ vmid: 100, storage: "bk", "prune-backups": "keep-last=1" })).toThrow(
      /prune-backups/,
    );
    for (const key of ["tmpdir", "dumpdir", "script"]) {
      const request = { vmid: 100, storage: "bk", [key]: "/tmp" } as never;
      expect(() => buildVzdumpParams(request)).toThrow(
        expect.objectContaining({ code: "pve_vzdump_param_refused", message: expect.stringContaining(key) }),
      );
    }
  });

  it("refuses bad values before anything is sent", () => {
    expect(() => buildVzdumpParams({ vmid: 99, storage: "bk" })).toThrow(/vmid/);
    expect(() => buildVzdumpParams({ vmid: 100, storage: "b k" })).toThrow(/storage/);
    expect(() => buildVzdumpParams({ vmid: 100, storage: "bk", mode: "fast" as never })).toThrow(/mode/);
    expect(() => buildVzdumpParams({ vmid: 100, storage: "bk", lockwait: -1 })).toThrow(/lockwait/);
    expect(() => buildVzdumpParams({ vmid: 100, storage: "bk", notesTemplate: "a\nb" })).toThrow(/line feed/);
    expect(() => buildVzdumpParams({ vmid: 100, storage: "bk", notesTemplate: "{{host}}" })).toThrow(
      /unknown/,
    );
  });
});
