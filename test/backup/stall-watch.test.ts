import { describe, expect, it } from "vitest";
import { StallWatch, stallBound } from "../../agent/backup/stall-watch.ts";

describe("stall watch", () => {
  it("calls a task stalled after its bound: log silence outside the archive, an idle storage during it", async () => {
    let now = 0;
    let used = 100;
    const stalls: string[] = [];
    const watch = new StallWatch({
      bounds: { logSilenceMs: 10_000, archiveIdleMs: 30_000, checkEveryMs: 3_600_000 },
      storage: async () => ({ used }),
      onStall: (reason) => stalls.push(reason),
      now: () => now,
    });
    try {
      now = 9_000;
      await watch.check();
      watch.line();
      watch.step("archive-file");
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
      storage: async () => ({ used: 100, type: "pbs" }),
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

  const bounds = {
    logSilenceMs: 10_000,
    archiveIdleMs: 30_000,
    pbsUploadIdleMs: 300_000,
    checkEveryMs: 3_600_000,
  };
  const suspendFallback = (watch: StallWatch): void => {
    watch.see({ type: "line", n: 1, text: "INFO: trying 'suspend' mode instead" });
    watch.see({ type: "phase", phase: { phase: "suspend" } });
    watch.see({ type: "phase", phase: { phase: "backup-mode", mode: "suspend" } });
  };

  it("bounds suspend mode's silent first sync by where the copy lands", () => {
    const sync = (storageType: string | undefined, syncGrewStorage: boolean) =>
      stallBound("sync", { storageType, syncGrewStorage }, bounds).ms;
    // PBS: vzdump's tmpdir is the PVE host's /var/tmp, whatever the datastore's used does (other clients)
    expect(sync("pbs", false)).toBe(300_000);
    expect(sync("pbs", true)).toBe(300_000);
    // a file storage: the short bound only once the copy was seen landing on it
    expect(sync("dir", false)).toBe(300_000);
    expect(sync(undefined, false)).toBe(300_000);
    expect(sync("dir", true)).toBe(30_000);
    expect(sync("nfs", true)).toBe(30_000);
    expect(stallBound("log", { storageType: "pbs", syncGrewStorage: false }, bounds).ms).toBe(10_000);
    expect(stallBound("archive-file", { storageType: "dir", syncGrewStorage: false }, bounds).ms).toBe(
      30_000,
    );
  });

  it("does not stop a PBS backup whose suspend-mode first sync outlasts the file bound", async () => {
    let now = 0;
    const stalls: string[] = [];
    const watch = new StallWatch({
      bounds,
      storageType: "pbs",
      // another guest's upload to the same datastore must not shorten the bound
      storage: async () => ({ used: now, type: "pbs" }),
      onStall: (reason) => stalls.push(reason),
      now: () => now,
    });
    try {
      suspendFallback(watch);
      for (now = 20_000; now < 300_000; now += 20_000) await watch.check();
      expect(stalls).toEqual([]);
      watch.see({ type: "line", n: 1, text: "INFO: first sync finished - transferred 9.1G in 280s" });
      now = 590_000;
      await watch.check();
      expect(stalls).toEqual([]);
      now = 600_001;
      await watch.check();
      expect(stalls).toEqual([
        "no log line for 300 s while suspend mode copied the guest to the PVE host's temporary directory",
      ]);
    } finally {
      watch.stop();
    }
  });

  it("gives a file storage's suspend sync the file bound once the copy is seen growing the storage", async () => {
    let now = 0;
    let used = 100;
    const stalls: string[] = [];
    const watch = new StallWatch({
      bounds,
      storage: async () => ({ used, type: "dir" }),
      onStall: (reason) => stalls.push(reason),
      now: () => now,
    });
    try {
      suspendFallback(watch);
      now = 100_000; // used has not moved: the tmpdir may be elsewhere (zfs, vzdump.conf tmpdir)
      await watch.check();
      now = 200_000;
      await watch.check();
      expect(stalls).toEqual([]);
      used = 5000;
      now = 210_000;
      await watch.check(); // the copy lands on the storage: from now on its bytes are the progress
      now = 241_000;
      await watch.check();
      expect(stalls).toEqual([
        "no new byte on the backup storage for 31 s while suspend mode copied the guest",
      ]);
    } finally {
      watch.stop();
    }
  });
});
