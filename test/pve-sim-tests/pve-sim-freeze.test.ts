import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SelfScopedGuest, selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { rawClient } from "./pve-client.ts";

type HookCall = { hook: "freeze" | "thaw"; lastLine: string; snapshot: boolean };

/**
 * Where vzdump freezes the CT (pve-manager VZDump.pm `exec_backup_task`; pve-container VZDump/LXC.pm
 * `snapshot`/`suspend_vm`/`resume_vm`; pve-guest-common AbstractConfig.pm `snapshot_create`): each hook call
 * is recorded with the task log's last line at that moment and whether the `vzdump` snapshot existed.
 */
describe("pve sim: the CT frozen around the snapshot", () => {
  let sim: PveSimulator;
  const calls = new Map<number, HookCall[]>();
  let onFreeze: ((upid: string) => Promise<void>) | undefined;
  const record = (hook: "freeze" | "thaw") => async (vmid: number, info: { upid: string }) => {
    const lastLine = sim.tasks.get(info.upid)?.lines.at(-1) ?? "";
    const snapshot = sim.getGuest(vmid).snapshots.has("vzdump");
    calls.set(vmid, [...(calls.get(vmid) ?? []), { hook, lastLine, snapshot }]);
    if (hook === "freeze") await onFreeze?.(info.upid);
  };
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

  /** Backs `self`'s guest up with `params`, expects `exitstatus`; the task log and the hook calls. */
  async function backup(
    self: SelfScopedGuest,
    params: Record<string, string | number>,
    exitstatus: string,
  ): Promise<{ log: string[]; hooks: HookCall[]; upid: string }> {
    const vmid = self.guest.vmid;
    const c = rawClient(sim, self.authorization);
    try {
      const upid = (await c.post("/nodes/pve1/vzdump", { vmid, storage: "bk", ...params })).json
        .data as string;
      expect((await c.waitTask("pve1", upid)).exitstatus).toBe(exitstatus);
      return { log: await c.taskLog("pve1", upid), hooks: calls.get(vmid) ?? [], upid };
    } finally {
      await c.close();
    }
  }
  const lvcreated = (vmid: number) => `  Logical volume "snap_vm-${vmid}-disk-0_vzdump" created.`;

  it("snapshot mode, one volume: frozen after `create storage snapshot 'vzdump'`, thawed with the snapshot taken, before the next line", async () => {
    const { log, hooks, upid } = await backup(await selfScopedGuest(sim, { vmid: 301 }), {}, "OK");
    expect(hooks).toEqual([
      { hook: "freeze", lastLine: "INFO: create storage snapshot 'vzdump'", snapshot: false },
      // lvcreate prints its line while the CT is still frozen
      { hook: "thaw", lastLine: lvcreated(301), snapshot: true },
    ]);
    expect(log[log.indexOf(lvcreated(301)) + 1]).toMatch(/^INFO: creating vzdump archive /);
    const run = sim.vzdumpRuns.find((r) => r.upid === upid)!;
    expect(run.freezes).toHaveLength(1);
    expect(run.freezes![0]!.thawedAt).toBeGreaterThanOrEqual(run.snapshotTakenAt!);
  });

  it("snapshot mode, several volumes: frozen from `suspend vm to make snapshot`, thawed by snapshot_create before `resume vm`", async () => {
    const self = await selfScopedGuest(sim, { vmid: 302 });
    Object.assign(self.guest.config, { mp0: "local-lvm:vm-302-disk-1,mp=/mnt/data,backup=1,size=4G" });
    await mkdir(join(self.guest.rootDir, "mnt/data"), { recursive: true });
    await writeFile(join(self.guest.rootDir, "mnt/data/file.txt"), "data");
    const { log, hooks } = await backup(self, {}, "OK");
    expect(hooks).toEqual([
      { hook: "freeze", lastLine: "INFO: suspend vm to make snapshot", snapshot: false },
      { hook: "thaw", lastLine: lvcreated(302), snapshot: true },
    ]);
    const from = log.indexOf("INFO: suspend vm to make snapshot");
    expect(log.slice(from, from + 4)).toEqual([
      "INFO: suspend vm to make snapshot",
      "INFO: create storage snapshot 'vzdump'",
      lvcreated(302),
      "INFO: resume vm",
    ]);
  });

  it("snapshot mode, a failed snapshot: thawed before `snapshot create failed: starting cleanup`", async () => {
    sim.faults.failSnapshot({ type: "vzdump", vmid: 303 }, "lvcreate failed");
    const { log, hooks } = await backup(await selfScopedGuest(sim, { vmid: 303 }), {}, "job errors");
    expect(hooks).toEqual([
      { hook: "freeze", lastLine: "INFO: create storage snapshot 'vzdump'", snapshot: false },
      { hook: "thaw", lastLine: "INFO: create storage snapshot 'vzdump'", snapshot: false },
    ]);
    expect(log).toContain("snapshot create failed: starting cleanup");
  });

  it("suspend mode: frozen from `suspending guest` through the final sync, thawed after `resuming guest`", async () => {
    const self = await selfScopedGuest(sim, { vmid: 304 });
    const { log, hooks } = await backup(self, { mode: "suspend" }, "OK");
    expect(hooks).toEqual([
      { hook: "freeze", lastLine: "INFO: suspending guest", snapshot: false },
      { hook: "thaw", lastLine: "INFO: resuming guest", snapshot: false },
    ]);
    expect(log[log.indexOf("INFO: resuming guest") + 1]).toMatch(/^INFO: guest is online again after /);
  });

  it("a task stopped while the CT is frozen still thaws it", async () => {
    const self = await selfScopedGuest(sim, { vmid: 305 });
    const c = rawClient(sim, self.authorization);
    onFreeze = async (upid) => {
      await c.del(`/nodes/pve1/tasks/${encodeURIComponent(upid)}`);
    };
    try {
      const { hooks, upid } = await backup(self, {}, "interrupted by signal");
      expect(hooks.map((x) => x.hook)).toEqual(["freeze", "thaw"]);
      const run = sim.vzdumpRuns.find((r) => r.upid === upid)!;
      expect(run.freezes?.every((f) => f.thawedAt !== undefined)).toBe(true);
    } finally {
      onFreeze = undefined;
      await c.close();
    }
  });

  it("suspend mode stopped in the final sync: the CT stays frozen through vzdump's clean-up, thawed after `resume vm`", async () => {
    const self = await selfScopedGuest(sim, { vmid: 306 });
    const c = rawClient(sim, self.authorization);
    onFreeze = async (upid) => {
      await c.del(`/nodes/pve1/tasks/${encodeURIComponent(upid)}`);
    };
    try {
      const { log, hooks } = await backup(self, { mode: "suspend" }, "interrupted by signal");
      expect(hooks).toEqual([
        { hook: "freeze", lastLine: "INFO: suspending guest", snapshot: false },
        { hook: "thaw", lastLine: "INFO: resume vm", snapshot: false },
      ]);
      expect(log).not.toContain("INFO: resuming guest");
      expect(log.indexOf("INFO: resume vm")).toBeGreaterThan(
        log.findIndex((l) => /starting final sync/.test(l)),
      );
    } finally {
      onFreeze = undefined;
      await c.close();
    }
  });
});
