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
  it("gives an upload to a Proxmox Backup Server its own bound: deduplication leaves the datastore's used unchanged", async () => {
    let now = 0;
    const stalls: string[] = [];
    const watch = new StallWatch({
      bounds: {
        logSilenceMs: 10_000,
        archiveIdleMs: 30_000,
        pbsUploadIdleMs: 300_000,
        checkEveryMs: 3_600_000,
      },
      storageUsed: async () => 100,
      onStall: (reason) => stalls.push(reason),
      now: () => now,
    });
    try {
      watch.see({
        type: "phase",
        phase: { phase: "archive-started", path: "ct/101/2026-12-04T02:30:14Z", pbs: true },
      });
      now = 299_000; // far past archiveIdleMs, with neither a line nor a new byte
      await watch.check();
      expect(stalls).toEqual([]);
      now = 301_000;
      await watch.check();
      expect(stalls).toEqual([
        "no new chunk on the Proxmox Backup Server and no log line for 301 s while the archive was uploaded",
      ]);
    } finally {
      watch.stop();
    }
  });
});
