import { chmod, chown, mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { rawClient } from "./pve-client.ts";

describe("pve sim: storage content, pruning and restore", () => {
  let sim: PveSimulator;
  let root: ReturnType<typeof rawClient>;
  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 0, archiveBytesPerSecond: 50e6 });
    const t = sim.rootToken();
    root = rawClient(sim, `PVEAPIToken=${t.tokenId}=${t.secret}`);
  });
  afterAll(async () => {
    await root?.close();
    await sim?.close();
  });

  /** A backup file with a standard name written straight into the storage, as an older backup would be. */
  const oldBackup = async (vmid: number, at: string, opts: { protected?: boolean; notes?: string } = {}) => {
    const file = `vzdump-lxc-${vmid}-${at}.tar.zst`;
    const path = join(sim.storages.get("bk")?.path as string, "dump", file);
    await writeFile(path, "x");
    if (opts.protected) await writeFile(`${path}.protected`, "");
    if (opts.notes) await writeFile(`${path}.notes`, opts.notes);
    return `bk:backup/${file}`;
  };

  it("shows each token only the backups it may see: own guest with AllocateSpace+VM.Backup, all with Datastore.Allocate, none with Audit alone", async () => {
    const self = await selfScopedGuest(sim, { vmid: 100 });
    await sim.addGuest({ vmid: 200 });
    const mine = await oldBackup(100, "2026_01_01-02_00_00", {
      protected: true,
      notes: "first line\nsecond line",
    });
    const theirs = await oldBackup(200, "2026_01_01-03_00_00");
    const renamed = await oldBackup(100, "2026_01_02-02_00_00");
    await writeFile(
      join(sim.storages.get("bk")?.path as string, "dump", "vzdump-lxc-100-2026_01_02-02_00_00.tar.dat"),
      "partial",
    );

    const c = rawClient(sim, self.authorization);
    const own = await c.get("/nodes/pve1/storage/bk/content", { content: "backup" });
    expect(own.json.data.map((x: { volid: string }) => x.volid)).toEqual([mine, renamed]);
    expect(own.json.data[0]).toMatchObject({
      protected: 1,
      notes: "first line",
      vmid: 100,
      subtype: "lxc",
      format: "tar.zst",
      size: 1,
    });
    expect(own.json.data[0].ctime).toBe(Math.floor(new Date(2026, 0, 1, 2, 0, 0).getTime() / 1000));

    const { tokenId: auditor, secret: s1 } = sim.addToken("auditor@pve", "tok");
    sim.setAcl({ path: "/storage/bk", role: "PVEAuditor", user: "auditor@pve" });
    sim.setAcl({ path: "/storage/bk", role: "PVEAuditor", token: auditor });
    const a = rawClient(sim, `PVEAPIToken=${auditor}=${s1}`);
    const auditView = await a.get("/nodes/pve1/storage/bk/content");
    expect(auditView.status).toBe(200);
    expect(auditView.json.data).toEqual([]);
    expect((await a.get("/nodes/pve1/storage/bk/status")).json.data).toMatchObject({
      type: "dir",
      active: 1,
      enabled: 1,
      total: expect.any(Number),
    });

    const { tokenId: admin, secret: s2 } = sim.addToken("dsadmin@pve", "tok", { privsep: false });
    sim.setAcl({ path: "/storage", role: "PVEDatastoreAdmin", user: "dsadmin@pve" });
    const d = rawClient(sim, `PVEAPIToken=${admin}=${s2}`);
    expect(
      (await d.get("/nodes/pve1/storage/bk/content")).json.data.map((x: { volid: string }) => x.volid),
    ).toEqual([mine, renamed, theirs]);

    const { tokenId: nobody, secret: s3 } = sim.addToken("nobody@pve", "tok");
    const n = rawClient(sim, `PVEAPIToken=${nobody}=${s3}`);
    const denied = await n.get("/nodes/pve1/storage/bk/content");
    expect(denied.status).toBe(403);
    expect(denied.reason).toBe(
      "Permission check failed (/storage/bk, Datastore.Audit|Datastore.AllocateSpace)",
    );
    for (const x of [c, a, d, n]) await x.close();
  });

  it("deletes an own backup through an imgdel task and refuses a protected one inside the task", async () => {
    const self = await selfScopedGuest(sim, { vmid: 110 });
    const plain = await oldBackup(110, "2026_02_01-02_00_00", { notes: "n" });
    const prot = await oldBackup(110, "2026_02_02-02_00_00", { protected: true });
    const c = rawClient(sim, self.authorization);
    const vol = `/nodes/pve1/storage/bk/content/${encodeURIComponent(plain)}`;
    expect((await c.get(vol)).json.data).toMatchObject({ size: 1, format: "tar.zst", notes: "n" });
    expect((await c.call("PUT", vol, { protected: 1, notes: "kept for audit" })).status).toBe(200);
    expect((await c.get("/nodes/pve1/storage/bk/content", { vmid: 110 })).json.data[0]).toMatchObject({
      protected: 1,
      notes: "kept for audit",
    });
    await c.call("PUT", vol, { protected: 0 });
    const foreign = await c.get(
      `/nodes/pve1/storage/bk/content/${encodeURIComponent("bk:backup/vzdump-lxc-200-2026_01_01-03_00_00.tar.zst")}`,
    );
    expect(foreign.reason).toBe("Permission check failed (/vms/200, VM.Backup)");
    const del = await c.del(vol);
    expect(del.json.data).toMatch(/:imgdel:110@bk:agent-110@pve!backup:$/);
    expect((await c.waitTask("pve1", del.json.data)).exitstatus).toBe("OK");
    expect((await sim.listBackups("bk")).map((b) => b.volid)).not.toContain(plain);
    const delProt = await c.del(`/nodes/pve1/storage/bk/content/${encodeURIComponent(prot)}`);
    expect((await c.waitTask("pve1", delProt.json.data)).exitstatus).toBe(
      "cannot remove protected volume 'backup/vzdump-lxc-110-2026_02_02-02_00_00.tar.zst' on 'bk'",
    );
    const other = await c.del(
      `/nodes/pve1/storage/bk/content/${encodeURIComponent("bk:backup/vzdump-lxc-200-2026_01_01-03_00_00.tar.zst")}`,
    );
    expect(other.status).toBe(403);
    expect(other.reason).toBe("Permission check failed (/vms/200, VM.Backup)");
    await c.close();
  });

  it("prunes with Storage.pm semantics: dry run lists every guest, DELETE with vmid removes only that guest's unprotected surplus", async () => {
    const self = await selfScopedGuest(sim, { vmid: 120 });
    const v = [
      await oldBackup(120, "2026_03_01-10_00_00"),
      await oldBackup(120, "2026_03_01-12_00_00"),
      await oldBackup(120, "2026_03_02-10_00_00"),
      await oldBackup(120, "2026_03_03-10_00_00"),
      await oldBackup(120, "2026_02_15-10_00_00", { protected: true }),
    ];
    const c = rawClient(sim, self.authorization);
    const dry = await c.get("/nodes/pve1/storage/bk/prunebackups", {
      "prune-backups": "keep-last=1,keep-daily=2",
    });
    expect(dry.status).toBe(200);
    const marks = Object.fromEntries(
      dry.json.data.map((e: { volid: string; mark: string }) => [e.volid, e.mark]),
    );
    expect(marks[v[3] as string]).toBe("keep");
    expect(marks[v[2] as string]).toBe("keep");
    expect(marks[v[1] as string]).toBe("keep");
    expect(marks[v[0] as string]).toBe("remove");
    expect(marks[v[4] as string]).toBe("protected");
    expect(Object.keys(marks)).toContain("bk:backup/vzdump-lxc-200-2026_01_01-03_00_00.tar.zst"); // not filtered per VM

    const noVmid = await c.del("/nodes/pve1/storage/bk/prunebackups", { "prune-backups": "keep-last=1" });
    expect(noVmid.status).toBe(403);
    expect(noVmid.reason).toBe("Permission check failed (/storage/bk, Datastore.Allocate)");

    const del = await c.del("/nodes/pve1/storage/bk/prunebackups", {
      "prune-backups": "keep-last=2",
      vmid: 120,
    });
    expect(del.json.data).toMatch(/:prunebackups:120@bk:agent-120@pve!backup:$/);
    expect((await c.waitTask("pve1", del.json.data)).exitstatus).toBe("OK");
    const log = await c.taskLog("pve1", del.json.data);
    expect(log).toEqual([`removing backup '${v[0]}'`, `removing backup '${v[1]}'`, "TASK OK"]); // in volid order
    const left = (await sim.listBackups("bk")).map((b) => b.volid);
    expect(left).toEqual(
      expect.arrayContaining([v[2], v[3], v[4], "bk:backup/vzdump-lxc-200-2026_01_01-03_00_00.tar.zst"]),
    );
    expect(left).not.toContain(v[0]);

    const noPolicy = await c.del("/nodes/pve1/storage/bk/prunebackups", { vmid: 120 });
    expect((await c.waitTask("pve1", noPolicy.json.data)).exitstatus).toBe(
      "no prune-backups options configured for storage 'bk'",
    );
    await c.close();
  });

  it("applies the storage retention inside vzdump and marks protected backups", async () => {
    await sim.addStorage({ id: "bk2", pruneBackups: "keep-last=1" });
    const self = await selfScopedGuest(sim, { vmid: 130, storage: "bk2" });
    const c = rawClient(sim, self.authorization);
    const first = await c.post("/nodes/pve1/vzdump", { vmid: 130, storage: "bk2", compress: "zstd" });
    await c.waitTask("pve1", first.json.data);
    const firstVolid = sim.vzdumpRuns.find((r) => r.upid === first.json.data)?.volid;
    const second = await c.post("/nodes/pve1/vzdump", { vmid: 130, storage: "bk2", compress: "zstd" });
    expect((await c.waitTask("pve1", second.json.data)).exitstatus).toBe("OK");
    const log = await c.taskLog("pve1", second.json.data);
    expect(log).toContain("INFO: prune older backups with retention: keep-last=1");
    expect(log).toContain(`INFO: removing backup '${firstVolid}'`);
    expect(log).toContain("INFO: pruned 1 backup(s) not covered by keep-retention policy");
    // a protected backup does not count towards keep-last, so the previous one stays
    const third = await c.post("/nodes/pve1/vzdump", {
      vmid: 130,
      storage: "bk2",
      compress: "zstd",
      protected: 1,
    });
    expect((await c.waitTask("pve1", third.json.data)).exitstatus).toBe("OK");
    const thirdLog = await c.taskLog("pve1", third.json.data);
    expect(thirdLog).toContain("INFO: marking backup as protected");
    expect(thirdLog).toContain("INFO: pruned 0 backup(s)");
    // remove=0 with a keep limit the guest already reaches: refused per guest
    const full = await c.post("/nodes/pve1/vzdump", { vmid: 130, storage: "bk2", remove: 0 });
    expect((await c.waitTask("pve1", full.json.data)).exitstatus).toBe("job errors");
    expect(await c.taskLog("pve1", full.json.data)).toContain(
      "ERROR: Backup of VM 130 failed - There is a max backup limit of 1 enforced by the target storage or the vzdump parameters. Either increase the limit or delete old backups.",
    );
    const content = await c.get("/nodes/pve1/storage/bk2/content", { vmid: 130 });
    expect(content.json.data.map((b: { protected?: number }) => b.protected)).toEqual([undefined, 1]);
    await c.close();
  });

  it("restores an archive into a new guest with the same hostname and MAC, numeric owners and modes", async () => {
    const self = await selfScopedGuest(sim, { vmid: 140, hostname: "app1", hwaddr: "BC:24:11:AA:BB:CC" });
    const rootDir = self.guest.rootDir;
    await mkdir(join(rootDir, "var", "lib", "app"), { recursive: true });
    await writeFile(join(rootDir, "var", "lib", "app", "state.json"), '{"n":42}');
    await chown(join(rootDir, "var", "lib", "app", "state.json"), 100999, 100998);
    await chmod(join(rootDir, "var", "lib", "app", "state.json"), 0o600);
    await mkdir(join(rootDir, "tmp"), { recursive: true });
    await writeFile(join(rootDir, "tmp", "scratch"), "excluded by stdexcludes");
    const c = rawClient(sim, self.authorization);
    const post = await c.post("/nodes/pve1/vzdump", { vmid: 140, storage: "bk", compress: "zstd" });
    await c.waitTask("pve1", post.json.data);
    const volid = sim.vzdumpRuns.find((r) => r.upid === post.json.data)?.volid as string;

    const conf = await c.get("/nodes/pve1/vzdump/extractconfig", { volume: volid });
    expect(conf.json.data).toContain("hostname: app1\n");
    expect(conf.json.data).toContain("hwaddr=BC:24:11:AA:BB:CC");
    const defaults = await c.get("/nodes/pve1/vzdump/defaults", { storage: "bk" });
    expect(defaults.json.data).toMatchObject({
      storage: "bk",
      mode: "snapshot",
      "prune-backups": "keep-all=1",
    });
    expect(defaults.json.data.ionice).toBeUndefined(); // hidden without Sys.Audit on the node

    const restored = await sim.restoreGuest(volid, 340);
    expect(restored.rootDir).not.toBe(rootDir);
    expect(sim.hostnameOf(restored)).toBe("app1");
    expect(sim.hwaddrOf(restored)).toBe("BC:24:11:AA:BB:CC");
    expect(restored.running).toBe(false);
    const st = await stat(join(restored.rootDir, "var", "lib", "app", "state.json"));
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([100999, 100998, 0o600]);
    expect(await readdir(join(restored.rootDir, "tmp"))).toEqual([]);
    await expect(stat(join(restored.rootDir, "etc", "vzdump"))).rejects.toThrow(); // pct.conf/pct.fw consumed

    const rootView = await root.get("/nodes/pve1/lxc/340/config");
    expect(rootView.json.data).toMatchObject({
      hostname: "app1",
      net0: expect.stringContaining("hwaddr=BC:24:11:AA:BB:CC"),
    });
    // the original token is scoped to vmid 140 and cannot see the copy
    expect((await c.get("/nodes/pve1/lxc/340/status/current")).status).toBe(403);
    await c.close();
  });
});
