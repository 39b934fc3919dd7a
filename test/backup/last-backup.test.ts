import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { recordLastBackup, stopModeBlackoutSeconds } from "../../agent/backup/last-backup.ts";

describe("stop-mode blackout estimate", () => {
  it("is half an hour without history, and the last backup's time with margin after one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "felhom-blackout-"));
    try {
      expect(await stopModeBlackoutSeconds(dir)).toBe(1800);
      await recordLastBackup(dir, {
        ok: true,
        result: {
          backupId: "bk-20261127T073005Z-a1b2c3",
          mode: "stop",
          upid: "UPID:pve1:00000001:00000001:00000001:vzdump:101:a@pve!b:",
          volid: "bk:backup/vzdump-lxc-101-2026_11_27-07_30_05.tar.zst",
          sizeBytes: 1,
          totalMs: 200_000,
          downtime: [],
          exitStatus: "OK",
          warnings: [],
          consistency: "app",
          stacksResumed: true,
        },
      });
      expect(await stopModeBlackoutSeconds(dir)).toBe(420);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
