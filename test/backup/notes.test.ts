import { describe, expect, it } from "vitest";
import { BACKUP_ID_PATTERN, newBackupId } from "../../agent/backup/backup-id.ts";
import {
  archiveVolidFromLog,
  backupIdFromNotes,
  findArchive,
  notesTemplate,
} from "../../agent/backup/notes.ts";

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
