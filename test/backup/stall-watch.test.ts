import { describe, expect, it } from "vitest";
import { StallWatch } from "../../agent/backup/stall-watch.ts";

describe("stall watch", () => {
  it("calls a task stalled after its bound: log silence outside the archive, an idle storage during it", async () => {
    let now = 0;
    let used = 100;
    const stalls: string[] = [];
    const watch = new StallWatch({
      bounds: { logSilenceMs: 10_000, archiveIdleMs: 30_000, checkEveryMs: 3_600_000 },
      storageUsed: async () => used,
      onStall: (reason) => stalls.push(reason),
      now: () => now,
    });
    try {
      now = 9_000;
      await watch.check();
      watch.line();
      watch.archiving(true);
      now = 30_000; // 21 s of log silence, but the archive is being written
      await watch.check();
      used = 200;
      now = 50_000;
      await watch.check(); // the storage grew: progress
      now = 79_000;
      await watch.check();
      expect(stalls).toEqual([]);
      now = 81_000;
      await watch.check();
      expect(stalls).toEqual(["no new byte on the backup storage for 31 s while the archive was written"]);
      now = 200_000;
      await watch.check();
      expect(stalls).toHaveLength(1);
    } finally {
      watch.stop();
    }
  });
});
