import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { rawClient } from "./pve-client.ts";

/**
 * Where vzdump freezes the CT (pve-manager VZDump.pm `exec_backup_task`; pve-container VZDump/LXC.pm
 * `snapshot`/`suspend_vm`/`resume_vm`; pve-guest-common AbstractConfig.pm `snapshot_create`): each hook call
 * is recorded with the task log's last line at that moment and whether the snapshot existed.
 */
describe("pve sim: the CT frozen around the snapshot", () => {
  let sim: PveSimulator;
  const calls: Array<{ hook: "freeze" | "thaw"; vmid: number; lastLine: string; snapshot: boolean }> = [];
  const record = (hook: "freeze" | "thaw") => async (vmid: number, info: { upid: string }) => {
    calls.push({
      hook,
      vmid,
      lastLine: sim.tasks.get(info.upid)?.lines.at(-1) ?? "",
      snapshot: sim.getGuest(vmid).snapshots.has("vzdump"),
    });
    if (hook === "freeze") await onFreeze?.(info.upid);
  };
  let onFreeze: ((upid: string) => Promise<void>) | undefined;
  beforeAll(async () => {
    sim = await startPveSimulator({
      authFailureDelayMs: 0,
      archiveBytesPerSecond: 50e6,
      onGuestFreeze: record("freeze"),
      onGuestThaw: record("thaw"),
    });
  });
  afterAll(async () => {
    await sim?.close();
  });
  const of = (vmid: number) => calls.filter((c) => c.vmid === vmid);

  it("snapshot mode, one volume: frozen after `create storage snapshot 'vzdump'`, thawed with the snapshot taken, before the next line", async () => {
    const self = await selfScopedGuest(sim, { vmid: 301 });
    const c = rawClient(sim, self.authorization);
    const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 301, storage: "bk" })).json.data as string;
    expect((await c.waitTask("pve1", upid)).exitstatus).toBe("OK");
    expect(of(301)).toEqual([
      { hook: "freeze", vmid: 301, lastLine: "INFO: create storage snapshot 'vzdump'", snapshot: false },
      // lvcreate prints its line while the CT is still frozen
      {
        hook: "thaw",
        vmid: 301,
        lastLine: '  Logical volume "snap_vm-301-disk-0_vzdump" created.',
        snapshot: true,
      },
    ]);
    const log = await c.taskLog("pve1", upid);
    const at = log.indexOf('  Logical volume "snap_vm-301-disk-0_vzdump" created.');
    expect(log[at + 1]).toMatch(/^INFO: creating vzdump archive /);
    const run = sim.vzdumpRuns.find((r) => r.upid === upid)!;
    expect(run.freezes).toHaveLength(1);
    expect(run.freezes![0]!.thawedAt).toBeGreaterThanOrEqual(run.snapshotTakenAt!);
    await c.close();
  });

  it("snapshot mode, several volumes: frozen from `suspend vm to make snapshot`, thawed by snapshot_create before `resume vm`", async () => {
    const self = await selfScopedGuest(sim, { vmid: 302 });
    Object.assign(self.guest.config, { mp0: "local-lvm:vm-302-disk-1,mp=/mnt/data,backup=1,size=4G" });
    await mkdir(join(self.guest.rootDir, "mnt/data"), { recursive: true });
    await writeFile(join(self.guest.rootDir, "mnt/data/file.txt"), "data");
    const c = rawClient(sim, self.authorization);
    const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 302, storage: "bk" })).json.data as string;
    expect((await c.waitTask("pve1", upid)).exitstatus).toBe("OK");
    expect(of(302)).toEqual([
      { hook: "freeze", vmid: 302, lastLine: "INFO: suspend vm to make snapshot", snapshot: false },
      {
        hook: "thaw",
        vmid: 302,
        lastLine: '  Logical volume "snap_vm-302-disk-0_vzdump" created.',
        snapshot: true,
      },
    ]);
    const log = await c.taskLog("pve1", upid);
    const from = log.indexOf("INFO: suspend vm to make snapshot");
    expect(log.slice(from, from + 4)).toEqual([
      "INFO: suspend vm to make snapshot",
      "INFO: create storage snapshot 'vzdump'",
      '  Logical volume "snap_vm-302-disk-0_vzdump" created.',
      "INFO: resume vm",
    ]);
    await c.close();
  });

  it("snapshot mode, a failed snapshot: thawed before `snapshot create failed: starting cleanup`", async () => {
    const self = await selfScopedGuest(sim, { vmid: 303 });
    sim.faults.failSnapshot({ type: "vzdump", vmid: 303 }, "lvcreate failed");
    const c = rawClient(sim, self.authorization);
    const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 303, storage: "bk" })).json.data as string;
    expect((await c.waitTask("pve1", upid)).exitstatus).toBe("job errors");
    expect(of(303)).toEqual([
      { hook: "freeze", vmid: 303, lastLine: "INFO: create storage snapshot 'vzdump'", snapshot: false },
      { hook: "thaw", vmid: 303, lastLine: "INFO: create storage snapshot 'vzdump'", snapshot: false },
    ]);
    expect(await c.taskLog("pve1", upid)).toContain("snapshot create failed: starting cleanup");
    await c.close();
  });

  it("suspend mode: frozen from `suspending guest` through the final sync, thawed after `resuming guest`", async () => {
    const self = await selfScopedGuest(sim, { vmid: 304 });
    const c = rawClient(sim, self.authorization);
    const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 304, storage: "bk", mode: "suspend" })).json
      .data as string;
    expect((await c.waitTask("pve1", upid)).exitstatus).toBe("OK");
    expect(of(304)).toEqual([
      { hook: "freeze", vmid: 304, lastLine: "INFO: suspending guest", snapshot: false },
      { hook: "thaw", vmid: 304, lastLine: "INFO: resuming guest", snapshot: false },
    ]);
    const log = await c.taskLog("pve1", upid);
    expect(log[log.indexOf("INFO: resuming guest") + 1]).toMatch(/^INFO: guest is online again after /);
    await c.close();
  });

  it("a task stopped while the CT is frozen still thaws it", async () => {
    const self = await selfScopedGuest(sim, { vmid: 305 });
    const c = rawClient(sim, self.authorization);
    onFreeze = async (upid) => {
      await c.del(`/nodes/pve1/tasks/${encodeURIComponent(upid)}`);
    };
    try {
      const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 305, storage: "bk" })).json.data as string;
      expect((await c.waitTask("pve1", upid)).exitstatus).toBe("interrupted by signal");
      expect(of(305).map((x) => x.hook)).toEqual(["freeze", "thaw"]);
      const run = sim.vzdumpRuns.find((r) => r.upid === upid)!;
      expect(run.freezes?.every((f) => f.thawedAt !== undefined)).toBe(true);
    } finally {
      onFreeze = undefined;
      await c.close();
    }
  });
});
