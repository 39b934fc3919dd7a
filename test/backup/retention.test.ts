import { describe, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { archivesToRemove, madeByAgent } from "../../agent/backup/retention.ts";

describe("retention", () => {
  it("marks only the given archives for removal by PVE's prune rules: keep-last, one per period, protected never", () => {
    const at = (iso: string) => Math.floor(new Date(iso).getTime() / 1000);
    const v = (name: string, iso: string, extra = {}) => ({
      volid: `bk:backup/${name}`,
      ctime: at(iso),
      ...extra,
    });
    const list = [
      v("a", "2026-11-20T10:00:00"),
      v("b", "2026-11-20T12:00:00"),
      v("c", "2026-11-21T09:00:00"),
      v("d", "2026-11-22T09:00:00", { protected: true }),
      v("e", "2026-11-22T11:00:00"),
    ];
    expect(archivesToRemove(list, { "keep-last": 2 })).toEqual(["bk:backup/b", "bk:backup/a"]);
    // keep-daily keeps the newest of each day; the 20th's earlier one goes.
    expect(archivesToRemove(list, { "keep-daily": 3 })).toEqual(["bk:backup/a"]);
    // keep-daily counts days beyond those keep-last already kept (the 22nd): the 21st and the 20th.
    expect(archivesToRemove(list, { "keep-last": 1, "keep-daily": 2 })).toEqual(["bk:backup/a"]);
    expect(archivesToRemove(list, { "keep-all": 1 })).toEqual([]);
    const mine = { volid: "bk:backup/x", notes: `felhom-backup=${newBackupId()} web1` };
    expect(
      madeByAgent([mine, { volid: "bk:backup/y", notes: "before the upgrade" }, { volid: "z" }]),
    ).toEqual([mine]);
  });
});
