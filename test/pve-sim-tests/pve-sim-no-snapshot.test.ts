import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { rsyncHuman } from "../pve-sim/vzdump-task.ts";
import { readTarZstMember } from "./archive-listing.ts";
import { rawClient } from "./pve-client.ts";

/**
 * A CT whose volumes cannot be snapshotted, against pve-manager PVE/VZDump.pm `exec_backup_task` (the
 * `mode failure` caught, `trying 'suspend' mode instead`, the suspend branch), pve-container
 * src/PVE/VZDump/LXC.pm `prepare` (has_feature with $backup_only = 1), `rsync_vm`, and
 * src/PVE/API2/LXC.pm `vm_feature` (has_feature without it).
 */
describe("pve sim: a CT that cannot be snapshotted", () => {
  let sim: PveSimulator;
  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 0, archiveBytesPerSecond: 20e6 });
    sim.setVolumeStorage("nfs-images", "nfs");
    sim.setVolumeStorage("thick", "lvm");
    sim.setVolumeStorage("tank", "zfspool");
  });
  afterAll(async () => {
    await sim?.close();
  });

  const feature = async (vmid: number, config: Record<string, string>) => {
    const self = await selfScopedGuest(sim, { vmid });
    Object.assign(self.guest.config, config);
    const c = rawClient(sim, self.authorization);
    const r = await c.get(`/nodes/pve1/lxc/${vmid}/feature`, { feature: "snapshot" });
    await c.close();
    return r;
  };

  it("answers the feature check as vm_feature does: VM.Audit, only hasFeature, a perl boolean judged over every mount point", async () => {
    // the default install's local-lvm (lvmthin) and a zfspool snapshot; dir, nfs and thick lvm do not
    expect((await feature(120, {})).json).toEqual({ data: { hasFeature: 1 } });
    expect((await feature(121, { rootfs: "tank:subvol-121-disk-0,size=8G" })).json.data.hasFeature).toBe(1);
    for (const [vmid, rootfs] of [
      [122, "local:122/vm-122-disk-0.raw,size=8G"],
      [123, "nfs-images:123/vm-123-disk-0.raw,size=8G"],
      [124, "thick:vm-124-disk-0,size=8G"],
    ] as const)
      expect((await feature(vmid, { rootfs })).json.data.hasFeature).toBe(0);
    // a bind mount and a backup=0 volume on dir storage: vm_feature passes no $backup_only, so "no"
    expect((await feature(125, { mp0: "/srv/bulk,mp=/mnt/bulk" })).json.data.hasFeature).toBe(0);
    expect(
      (await feature(126, { mp0: "local:126/vm-126-disk-1.raw,mp=/srv,size=1G" })).json.data.hasFeature,
    ).toBe(0);
    // without VM.Audit on the guest: 403
    const t = sim.addToken("nobody@pve", "audit");
    const nobody = rawClient(sim, `PVEAPIToken=${t.tokenId}=${t.secret}`);
    const denied = await nobody.get("/nodes/pve1/lxc/120/feature", { feature: "snapshot" });
    expect(denied.status).toBe(403);
    expect(denied.reason).toBe("Permission check failed (/vms/120, VM.Audit)");
    await nobody.close();
  });

  it("falls back to suspend mode with vzdump's lines in vzdump's order: mode failure, trying 'suspend', prepare again, two syncs around the freeze", async () => {
    const self = await selfScopedGuest(sim, { vmid: 130, hostname: "nosnap" });
    self.guest.config.rootfs = "local:130/vm-130-disk-0.raw,size=8G";
    await writeFile(join(self.guest.rootDir, "data"), "synced");
    const c = rawClient(sim, self.authorization);
    const post = await c.post("/nodes/pve1/vzdump", {
      vmid: 130,
      storage: "bk",
      mode: "snapshot",
      compress: "zstd",
    });
    const upid = post.json.data as string;
    expect((await c.waitTask("pve1", upid)).exitstatus).toBe("OK");
    const log = await c.taskLog("pve1", upid);
    const from = log.indexOf("INFO: status = running");
    const tmpdir = `${join(self.storage.path, "dump")}/vzdump-lxc-130-\\d{4}_\\d\\d_\\d\\d-\\d\\d_\\d\\d_\\d\\d\\.tmp`;
    expect(log.slice(from, from + 19)).toEqual([
      "INFO: status = running",
      // the first prepare (snapshot mode) prints its lines, then dies at has_feature
      "INFO: CT Name: nosnap",
      "INFO: including mount point rootfs ('/') in backup",
      "INFO: mode failure - some volumes do not support snapshots",
      "INFO: trying 'suspend' mode instead",
      "INFO: backup mode: suspend",
      "INFO: ionice priority: 7",
      // the suspend branch calls prepare again
      "INFO: CT Name: nosnap",
      "INFO: including mount point rootfs ('/') in backup",
      expect.stringMatching(new RegExp(`^INFO: starting first sync /proc/\\d+/root/ to ${tmpdir}$`)),
      expect.stringMatching(/^INFO: first sync finished - transferred [\d.]+[KMGTP]? bytes in \d+s$/),
      "INFO: suspending guest",
      expect.stringMatching(new RegExp(`^INFO: starting final sync /proc/\\d+/root/ to ${tmpdir}$`)),
      expect.stringMatching(/^INFO: final sync finished - transferred [\d.]+[KMGTP]? bytes in \d+s$/),
      "INFO: resuming guest",
      expect.stringMatching(/^INFO: guest is online again after (\d+|<1) seconds$/),
      expect.stringMatching(/^INFO: creating vzdump archive '.*\.tar\.zst'$/),
      expect.stringMatching(/^INFO: Total bytes written: /),
      expect.stringMatching(/^INFO: archive file size: /),
    ]);
    // no storage snapshot was made or cleaned up
    expect(log.some((l) => l.includes("snapshot 'vzdump'"))).toBe(false);
    const run = sim.vzdumpRuns.find((r) => r.upid === upid);
    expect(run?.mode).toBe("suspend");
    expect(run?.snapshotTakenAt).toBeUndefined();
    expect(await readTarZstMember(run?.archivePath as string, "./data")).toBe("synced");
    await c.close();
  });

  it("syncs into the host's /var/tmp for a PBS target", async () => {
    const self = await selfScopedGuest(sim, { vmid: 131, storage: "pbs1", storageType: "pbs" });
    self.guest.config.rootfs = "thick:vm-131-disk-0,size=8G";
    const c = rawClient(sim, self.authorization);
    const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 131, storage: "pbs1", mode: "snapshot" })).json
      .data as string;
    expect((await c.waitTask("pve1", upid)).exitstatus).toBe("OK");
    const log = await c.taskLog("pve1", upid);
    expect(log).toContain("INFO: trying 'suspend' mode instead");
    expect(log.find((l) => l.startsWith("INFO: starting first sync"))).toMatch(
      /^INFO: starting first sync \/proc\/\d+\/root\/ to \/var\/tmp\/vzdumptmp\d+_131$/,
    );
    await c.close();
  });

  it("snapshots a CT whose only volume without snapshots is out of the backup: vzdump judges backup volumes only, vm_feature all", async () => {
    const self = await selfScopedGuest(sim, { vmid: 132 });
    Object.assign(self.guest.config, {
      mp0: "/srv/bulk,mp=/mnt/bulk",
      mp1: "local:132/vm-132-disk-1.raw,mp=/srv/scratch,size=1G",
    });
    const c = rawClient(sim, self.authorization);
    expect((await c.get("/nodes/pve1/lxc/132/feature", { feature: "snapshot" })).json.data.hasFeature).toBe(
      0,
    );
    const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 132, storage: "bk", mode: "snapshot" })).json
      .data as string;
    expect((await c.waitTask("pve1", upid)).exitstatus).toBe("OK");
    const log = await c.taskLog("pve1", upid);
    expect(log).toContain("INFO: backup mode: snapshot");
    expect(log).toContain("INFO: create storage snapshot 'vzdump'");
    expect(log.some((l) => l.includes("mode failure"))).toBe(false);
    // an mp1 with backup=1 on the dir storage: now it counts, and vzdump falls back
    self.guest.config.mp1 = `${self.guest.config.mp1},backup=1`;
    const again = (await c.post("/nodes/pve1/vzdump", { vmid: 132, storage: "bk", mode: "snapshot" })).json
      .data as string;
    expect((await c.waitTask("pve1", again)).exitstatus).toBe("OK");
    expect(await c.taskLog("pve1", again)).toContain(
      "INFO: mode failure - some volumes do not support snapshots",
    );
    await c.close();
  });

  it("prints rsync -h's sizes: units of 1000 with two decimals", () => {
    expect(rsyncHuman(999)).toBe("999");
    expect(rsyncHuman(27_610_000)).toBe("27.61M");
    expect(rsyncHuman(1_500)).toBe("1.50K");
  });
});
