import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BACKUP_ID_PATTERN, newBackupId } from "../../agent/backup/backup-id.ts";
import { VzdumpLockBusyError } from "../../agent/backup/backup-run.ts";
import { busyRetryDelayMs } from "../../agent/backup/busy-retry.ts";
import { recordLastBackup, stopModeBlackoutSeconds } from "../../agent/backup/last-backup.ts";
import {
  archiveVolidFromLog,
  backupIdFromNotes,
  findArchive,
  notesTemplate,
} from "../../agent/backup/notes.ts";
import { backupRefusedAhead } from "../../agent/backup/refused-ahead.ts";
import { archivesToRemove, madeByAgent } from "../../agent/backup/retention.ts";
import { StallWatch } from "../../agent/backup/stall-watch.ts";

describe("backup ids and notes", () => {
  const id = newBackupId(new Date("2026-11-27T07:30:05.123Z"));

  it("makes time-sortable ids that fit a notes template", () => {
    expect(id).toMatch(/^bk-20261127T073005Z-[0-9a-f]{6}$/);
    expect(id).toMatch(BACKUP_ID_PATTERN);
    expect(newBackupId()).not.toBe(newBackupId());
  });

  it("writes a one-line notes template with only PVE's variables and reads the id back", () => {
    const template = notesTemplate(id);
    expect(template).not.toMatch(/\n/);
    expect([...template.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1])).toEqual(["guestname", "vmid", "node"]);
    const rendered = template
      .replace("{{guestname}}", "web")
      .replace("{{vmid}}", "101")
      .replace("{{node}}", "pve1");
    expect(backupIdFromNotes(rendered)).toBe(id);
    expect(backupIdFromNotes("made by hand")).toBeUndefined();
    expect(backupIdFromNotes(undefined)).toBeUndefined();
  });

  it("verifies the archive by id, owner and size", () => {
    const notes = `felhom-backup=${id} web (CT 101 on pve1)`;
    const good = {
      volid: "bk:backup/vzdump-lxc-101-2026_11_27-07_30_05.tar.zst",
      size: 1234,
      notes,
      vmid: 101,
    };
    expect(findArchive([good], id, 101)).toEqual({ ok: true, volume: good });
    expect(findArchive([{ ...good, notes: "other" }], id, 101)).toMatchObject({ ok: false });
    expect(findArchive([{ ...good, size: 0 }], id, 101)).toMatchObject({ ok: false, reason: /size 0/ });
    expect(findArchive([{ ...good, vmid: 102 }], id, 101)).toMatchObject({ ok: false, reason: /vmid 102/ });
  });

  it("falls back to the archive the task log names when no notes carry the id, but never to another backup's", () => {
    const bare = { volid: "bk:backup/vzdump-lxc-101-2025_01_01-02_00_00.tar.zst", size: 10, vmid: 101 };
    const lines = [
      "INFO: creating vzdump archive '/mnt/pve/bk/dump/vzdump-lxc-101-2025_01_01-02_00_00.tar.zst'",
    ];
    const found = findArchive([bare], id, 101, { storage: "bk", lines });
    expect(found).toMatchObject({ ok: true, volume: bare, warning: expect.stringMatching(/task log/) });
    expect(findArchive([bare], id, 101)).toMatchObject({ ok: false });
    const other = { ...bare, notes: `felhom-backup=${newBackupId()} web1` };
    expect(findArchive([other], id, 101, { storage: "bk", lines })).toMatchObject({ ok: false });
    expect(
      archiveVolidFromLog({
        storage: "pbs",
        lines: ["INFO: creating Proxmox Backup Server archive 'ct/101/2025-01-01T02:00:00Z'"],
      }),
    ).toBe("pbs:backup/ct/101/2025-01-01T02:00:00Z");
  });
});

describe("busy retry", () => {
  it("waits the base ± 50 %, the same spread for every attempt (no growth)", () => {
    expect(busyRetryDelayMs(60, () => 0)).toBe(30_000);
    expect(busyRetryDelayMs(60, () => 0.5)).toBe(60_000);
    expect(busyRetryDelayMs(60, () => 1)).toBe(90_000);
  });
});

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

  it("says what happens after a busy node for each trigger: a retry, no retry left, or none for this request", () => {
    expect(new VzdumpLockBusyError({ retriesLeft: 2 }).message).toMatch(
      /tries again later \(up to 2 more times\)$/,
    );
    expect(new VzdumpLockBusyError({ retriesLeft: 0 }).message).toMatch(/no retry is left/);
    const once = new VzdumpLockBusyError(undefined);
    expect(once.message).toMatch(/this request is not retried$/);
    expect(once.hint).toMatch(/run the backup again/);
  });

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
