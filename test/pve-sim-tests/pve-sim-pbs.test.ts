import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { listTarZst } from "./archive-listing.ts";
import { rawClient } from "./pve-client.ts";

/** The lines after `from`, with each expected pattern matched in order (other lines may lie between). */
function expectInOrder(lines: string[], patterns: RegExp[]): void {
  let at = 0;
  for (const re of patterns) {
    const i = lines.findIndex((l, n) => n >= at && re.test(l));
    expect(i, `${re} after line ${at} in:\n${lines.join("\n")}`).toBeGreaterThanOrEqual(0);
    at = i + 1;
  }
}

/** POST vzdump, wait for the task, expect it OK, return the task log and the simulator's record of it. */
async function vzdumpOk(
  sim: PveSimulator,
  c: ReturnType<typeof rawClient>,
  params: Record<string, string | number>,
) {
  const upid = (await c.post("/nodes/pve1/vzdump", params)).json.data as string;
  expect((await c.waitTask("pve1", upid)).exitstatus).toBe("OK");
  return { lines: await c.taskLog("pve1", upid), run: sim.vzdumpRuns.at(-1)! };
}

describe("pve sim: a Proxmox Backup Server storage", () => {
  let sim: PveSimulator;
  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 0, archiveBytesPerSecond: 50e6 });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it("backs up as vzdump does to PBS: the real log lines in order, a ct/<vmid>/<time>Z volid, notes as the comment, protected, prune by group, restore", async () => {
    const self = await selfScopedGuest(sim, {
      vmid: 101,
      storage: "pbs1",
      storageType: "pbs",
      hostname: "web1",
    });
    await mkdir(join(self.guest.rootDir, "srv"), { recursive: true });
    await writeFile(join(self.guest.rootDir, "srv", "data.txt"), "in the archive");
    const c = rawClient(sim, self.authorization);
    const root = sim.rootToken();
    const admin = rawClient(sim, `PVEAPIToken=${root.tokenId}=${root.secret}`);
    try {
      const status = await c.get("/nodes/pve1/storage/pbs1/status");
      expect(status.json.data).toMatchObject({ type: "pbs", active: 1 });

      const first = await vzdumpOk(sim, c, {
        vmid: 101,
        storage: "pbs1",
        mode: "snapshot",
        "notes-template": "felhom-backup=bk-1 {{guestname}}",
      });
      const iso = /^pbs1:backup\/ct\/101\/(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$/.exec(first.run.volid!)?.[1];
      expect(iso, first.run.volid).toBeDefined();
      const epoch = Date.parse(iso!) / 1000;
      expectInOrder(first.lines, [
        /^INFO: Starting Backup of VM 101 \(lxc\)$/,
        /^INFO: CT Name: web1$/,
        /^INFO: including mount point rootfs \('\/'\) in backup$/,
        /^INFO: backup mode: snapshot$/,
        /^INFO: create storage snapshot 'vzdump'$/,
        new RegExp(`^INFO: creating Proxmox Backup Server archive 'ct/101/${iso}'$`),
        new RegExp(
          `^INFO: run: lxc-usernsexec -m u:0:100000:65536 -m g:0:100000:65536 -- /usr/bin/proxmox-backup-client backup --crypt-mode=none pct\\.conf:/var/tmp/vzdumptmp\\d+_101/etc/vzdump/pct\\.conf root\\.pxar:/mnt/vzsnap0 --include-dev /mnt/vzsnap0/\\./ --skip-lost-and-found --exclude=/tmp/\\?\\* --exclude=/var/tmp/\\?\\* --exclude=/var/run/\\?\\*\\.pid --backup-type ct --backup-id 101 --backup-time ${epoch} --repository root@pam@192\\.0\\.2\\.10:pbs1$`,
        ),
        new RegExp(`^INFO: Starting backup: ct/101/${iso}$`),
        /^INFO: Client name: pve1$/,
        /^INFO: Starting backup protocol: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/,
        /^INFO: No previous manifest available\.$/,
        /^INFO: Upload config file '\/var\/tmp\/vzdumptmp\d+_101\/etc\/vzdump\/pct\.conf' to 'root@pam@192\.0\.2\.10:8007:pbs1' as pct\.conf\.blob$/,
        /^INFO: Upload directory '\/mnt\/vzsnap0' to 'root@pam@192\.0\.2\.10:8007:pbs1' as root\.pxar\.didx$/,
        /^INFO: root\.pxar: had to backup [\d.]+ \w?i?B of [\d.]+ \w?i?B \(compressed [\d.]+ \w?i?B\) in \d+\.\d\ds$/,
        /^INFO: root\.pxar: average backup speed: [\d.]+ \w?i?B\/s$/,
        /^INFO: Uploaded backup catalog \([\d.]+ \w?i?B\)$/,
        /^INFO: Duration: \d+\.\d\ds$/,
        /^INFO: End Time: /,
        /^INFO: adding notes to backup$/,
        /^INFO: cleanup temporary 'vzdump' snapshot$/,
        /^INFO: Finished Backup of VM 101 /,
        /^TASK OK$/,
      ]);
      // VZDump.pm: no tar totals and no archive file size on PBS, and no log file in a dump directory
      expect(
        first.lines.filter((l) => /Total bytes written|archive file size|creating vzdump archive/.test(l)),
      ).toEqual([]);

      // PBSPlugin.pm list_volumes: format pbs-ct, ctime the backup time, notes the comment (first line)
      const listed = (await c.get("/nodes/pve1/storage/pbs1/content", { vmid: 101 })).json.data;
      expect(listed).toEqual([
        {
          volid: first.run.volid,
          content: "backup",
          format: "pbs-ct",
          size: expect.any(Number),
          ctime: epoch,
          subtype: "lxc",
          vmid: 101,
          notes: "felhom-backup=bk-1 web1",
        },
      ]);
      expect(listed[0].size).toBeGreaterThan(0);
      const volume = encodeURIComponent(first.run.volid!);
      const info = (await c.get(`/nodes/pve1/storage/pbs1/content/${volume}`)).json.data;
      expect(info).toMatchObject({ path: `pbs://root@pam@192.0.2.10:pbs1/ct/101/${iso}`, format: "pbs-ct" });
      // notes: the comment is the first line of the notes
      await c.call("PUT", `/nodes/pve1/storage/pbs1/content/${volume}`, { notes: "line one\nline two" });
      expect((await c.get(`/nodes/pve1/storage/pbs1/content/${volume}`)).json.data.notes).toBe(
        "line one\nline two",
      );
      expect((await c.get("/nodes/pve1/storage/pbs1/content")).json.data[0].notes).toBe("line one");

      // protected: listed, and a protected snapshot cannot be deleted
      await c.call("PUT", `/nodes/pve1/storage/pbs1/content/${volume}`, { protected: 1 });
      expect((await c.get("/nodes/pve1/storage/pbs1/content")).json.data[0].protected).toBe(1);
      const refused = await c.waitTask(
        "pve1",
        (await c.del(`/nodes/pve1/storage/pbs1/content/${volume}`)).json.data,
      );
      expect(refused.exitstatus).toBe(`cannot remove protected volume 'backup/ct/101/${iso}' on 'pbs1'`);
      await c.call("PUT", `/nodes/pve1/storage/pbs1/content/${volume}`, { protected: 0 });

      // A second backup with retention: the client found the previous manifest; prune runs for the group
      await new Promise((r) => setTimeout(r, 1100));
      const second = await vzdumpOk(sim, admin, {
        vmid: 101,
        storage: "pbs1",
        "prune-backups": "keep-last=1",
        remove: 1,
      });
      expectInOrder(second.lines, [
        /^INFO: Downloading previous manifest \(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\)$/,
        /^INFO: prune older backups with retention: keep-last=1$/,
        /^INFO: running 'proxmox-backup-client prune' for 'ct\/101'$/,
        /^INFO: pruned 1 backup\(s\) not covered by keep-retention policy$/,
      ]);
      expect(second.lines.some((l) => l.includes("removing backup"))).toBe(false);
      expect((await sim.listBackups("pbs1")).map((b) => b.volid)).toEqual([second.run.volid]);

      // pct restore from the PBS volid: the root and the config come back
      const restored = await sim.restoreGuest(second.run.volid!, 901);
      expect(await readFile(join(restored.rootDir, "srv", "data.txt"), "utf8")).toBe("in the archive");
      expect(restored.config.hostname).toBe("web1");

      // DELETE forgets the snapshot
      const del = await c.del(`/nodes/pve1/storage/pbs1/content/${encodeURIComponent(second.run.volid!)}`);
      expect((await c.waitTask("pve1", del.json.data)).exitstatus).toBe("OK");
      expect(await sim.listBackups("pbs1")).toEqual([]);
    } finally {
      await c.close();
      await admin.close();
    }
  });
});

describe("pve sim: PBS in suspend and stop mode", () => {
  let sim: PveSimulator;
  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 0, archiveBytesPerSecond: 50e6 });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it("uploads the rsync copy in /var/tmp in suspend mode and the mounted snapshot dir in stop mode (LXC.pm prepare/archive)", async () => {
    const self = await selfScopedGuest(sim, { vmid: 104, storage: "pbs2", storageType: "pbs" });
    Object.assign(self.guest.config, { mp0: "local-lvm:vm-104-disk-1,mp=/srv,backup=1,size=1G" });
    const c = rawClient(sim, self.authorization);
    try {
      const run = async (mode: string) => {
        const { lines } = await vzdumpOk(sim, c, { vmid: 104, storage: "pbs2", mode });
        await new Promise((r) => setTimeout(r, 1100)); // PBS snapshots are named by the second
        return lines;
      };
      const suspend = await run("suspend");
      expectInOrder(suspend, [
        /^INFO: backup mode: suspend$/,
        /^INFO: suspending guest$/,
        /^INFO: resuming guest$/,
        /^INFO: creating Proxmox Backup Server archive 'ct\/104\//,
        /^INFO: run: .* root\.pxar:\/var\/tmp\/vzdumptmp(\d+)_104 --include-dev \/var\/tmp\/vzdumptmp\1_104\/\. --skip-lost-and-found /,
        /^INFO: Upload directory '\/var\/tmp\/vzdumptmp\d+_104' to /,
      ]);
      const stop = await run("stop");
      expectInOrder(stop, [
        /^INFO: backup mode: stop$/,
        /^INFO: stopping virtual guest$/,
        /^INFO: run: .* root\.pxar:\/mnt\/vzsnap0 --include-dev \/mnt\/vzsnap0\/\.\/ --include-dev \/mnt\/vzsnap0\/\.\/srv --skip-lost-and-found /,
        /^INFO: restarting vm$/,
      ]);
      expect((await sim.listBackups("pbs2")).map((b) => b.format)).toEqual(["pbs-ct", "pbs-ct"]);
    } finally {
      await c.close();
    }
  });
  it("fails an upload with the guest's error line and keeps no snapshot (faults.failTask)", async () => {
    const self = await selfScopedGuest(sim, { vmid: 105, storage: "pbs3", storageType: "pbs" });
    const c = rawClient(sim, self.authorization);
    try {
      sim.faults.failTask({ type: "vzdump", vmid: 105 }, "upload failed: connection reset");
      const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 105, storage: "pbs3" })).json.data as string;
      expect((await c.waitTask("pve1", upid)).exitstatus).toBe("job errors");
      expect(await c.taskLog("pve1", upid)).toContain(
        "ERROR: Backup of VM 105 failed - upload failed: connection reset",
      );
      expect(await sim.listBackups("pbs3")).toEqual([]);
    } finally {
      await c.close();
    }
  });
});

describe("pve sim: mount points in vzdump", () => {
  let sim: PveSimulator;
  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 0, archiveBytesPerSecond: 50e6 });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it("excludes bind and backup=0 mount points with LXC.pm's lines, keeps their content out of the archive, and freezes the CT around the snapshots of several volumes", async () => {
    const self = await selfScopedGuest(sim, { vmid: 102, hostname: "files" });
    Object.assign(self.guest.config, {
      mp0: "/srv/bulk,mp=/mnt/bulk",
      mp1: "local-lvm:vm-102-disk-1,mp=/mnt/cache,size=4G",
      mp2: "local-lvm:vm-102-disk-2,mp=/mnt/data,backup=1,size=4G",
    });
    for (const d of ["mnt/bulk", "mnt/cache", "mnt/data"]) {
      await mkdir(join(self.guest.rootDir, d), { recursive: true });
      await writeFile(join(self.guest.rootDir, d, "file.txt"), d);
    }
    const c = rawClient(sim, self.authorization);
    try {
      const { lines, run } = await vzdumpOk(sim, c, {
        vmid: 102,
        storage: "bk",
        mode: "snapshot",
        compress: "zstd",
      });
      expectInOrder(lines, [
        /^INFO: CT Name: files$/,
        /^INFO: including mount point rootfs \('\/'\) in backup$/,
        /^INFO: excluding bind mount point mp0 \('\/mnt\/bulk'\) from backup \(not a volume\)$/,
        /^INFO: excluding volume mount point mp1 \('\/mnt\/cache'\) from backup \(disabled\)$/,
        /^INFO: including mount point mp2 \('\/mnt\/data'\) in backup$/,
        /^INFO: backup mode: snapshot$/,
        /^INFO: suspend vm to make snapshot$/,
        /^INFO: create storage snapshot 'vzdump'$/,
        /^INFO: resume vm$/,
        /^INFO: guest is online again after (<1|\d+) seconds$/,
        /^INFO: creating vzdump archive /,
      ]);
      const paths = (await listTarZst(run.archivePath!)).map((e) => e.path);
      expect(paths).toContain("./mnt/data/file.txt");
      expect(paths).toContain("./mnt/bulk/");
      expect(paths).not.toContain("./mnt/bulk/file.txt");
      expect(paths).not.toContain("./mnt/cache/file.txt");
    } finally {
      await c.close();
    }
  });

  it("does not freeze a CT whose only backed-up volume is its root", async () => {
    const self = await selfScopedGuest(sim, { vmid: 103 });
    Object.assign(self.guest.config, { mp0: "/srv/bulk,mp=/mnt/bulk" });
    const c = rawClient(sim, self.authorization);
    try {
      const { lines } = await vzdumpOk(sim, c, { vmid: 103, storage: "bk", mode: "snapshot" });
      expect(lines).toContain(
        "INFO: excluding bind mount point mp0 ('/mnt/bulk') from backup (not a volume)",
      );
      expect(lines.filter((l) => /suspend vm|resume vm/.test(l))).toEqual([]);
    } finally {
      await c.close();
    }
  });
});
