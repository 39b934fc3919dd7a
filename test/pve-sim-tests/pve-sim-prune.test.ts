import { describe, expect, it } from "vitest";
import { type PruneEntry, parseKeep, pruneMarkBackupGroup } from "../pve-sim/prune.ts";
import { decodeUpid, encodeUpid } from "../pve-sim/upid.ts";

const at = (y: number, m: number, d: number, h = 10) => Math.floor(new Date(y, m - 1, d, h).getTime() / 1000);
const group = (...ctimes: number[]): PruneEntry[] =>
  ctimes.map((ctime, i) => ({ volid: `v${i}`, ctime, type: "lxc", vmid: 100 }));
const marks = (g: PruneEntry[]) => g.map((e) => e.mark);

describe("pve sim: prune_mark_backup_group semantics", () => {
  it("does not count days already covered by keep-last towards keep-daily", () => {
    const g = group(at(2026, 3, 1, 10), at(2026, 3, 1, 12), at(2026, 3, 2), at(2026, 3, 3));
    pruneMarkBackupGroup(g, { "keep-last": 1, "keep-daily": 2 });
    expect(marks(g)).toEqual(["remove", "keep", "keep", "keep"]);
  });

  it("keeps everything when every keep option is zero or keep-all is set, but never un-protects", () => {
    const g = group(at(2026, 1, 1), at(2026, 1, 2));
    (g[0] as PruneEntry).mark = "protected";
    pruneMarkBackupGroup(g, {});
    expect(marks(g)).toEqual(["protected", "keep"]);
    const h = group(at(2026, 1, 1), at(2026, 1, 2));
    pruneMarkBackupGroup(h, { "keep-all": 1, "keep-last": 1 });
    expect(marks(h)).toEqual(["keep", "keep"]);
  });

  it("groups weeks by ISO week across a year boundary and keeps the newest backup of each", () => {
    // 2026-12-31 (Thu) and 2027-01-03 (Sun) are both in ISO week 53 of 2026; 2027-01-04 starts week 1 of 2027
    const g = group(at(2026, 12, 31), at(2027, 1, 3), at(2027, 1, 4));
    pruneMarkBackupGroup(g, { "keep-weekly": 5 });
    expect(marks(g)).toEqual(["remove", "keep", "keep"]);
  });

  it("does not count protected backups towards keep-last", () => {
    const g = group(at(2026, 1, 1), at(2026, 1, 2), at(2026, 1, 3));
    (g[2] as PruneEntry).mark = "protected";
    pruneMarkBackupGroup(g, { "keep-last": 1 });
    expect(marks(g)).toEqual(["remove", "keep", "protected"]);
  });

  it("rejects unknown retention keys and non-integers like the property-string parser", () => {
    expect(parseKeep("keep-last=3,keep-daily=7")).toEqual({ "keep-last": 3, "keep-daily": 7 });
    expect(parseKeep("keep-forever=1")).toMatch(/property 'keep-forever' not defined/);
    expect(parseKeep("keep-last=x")).toMatch(/type check \('integer'\) failed/);
  });
});

describe("pve sim: UPID encoding", () => {
  it("round-trips PVE's format with upper-case hex, a token user and a 9-digit pstart", () => {
    const parts = {
      node: "pve1",
      pid: 0x12ab34,
      pstart: 0x1_0456_cd78,
      starttime: 0x66f1a2b3,
      type: "vzdump",
      id: "100",
      user: "agent@pve!backup",
    };
    const upid = encodeUpid(parts);
    expect(upid).toBe("UPID:pve1:0012AB34:10456CD78:66F1A2B3:vzdump:100:agent@pve!backup:");
    expect(decodeUpid(upid)).toEqual(parts);
    expect(decodeUpid("UPID:pve1:0012AB34:0456CD78:66F1A2B3:vzdump:100:agent@pve")).toBeUndefined();
  });
});
