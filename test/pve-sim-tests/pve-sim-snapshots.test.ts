import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { rawClient } from "./pve-client.ts";

describe("pve sim: LXC snapshots", () => {
  let sim: PveSimulator;
  const stops: Array<{ vmid: number; kill: boolean }> = [];
  beforeAll(async () => {
    sim = await startPveSimulator({
      authFailureDelayMs: 0,
      onGuestStop: async (vmid, { kill }) => {
        stops.push({ vmid, kill });
      },
    });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it("creates, lists, rolls back (killing the running CT) and deletes snapshots of the guest's root", async () => {
    const self = await selfScopedGuest(sim, { vmid: 100 });
    const file = join(self.guest.rootDir, "app.conf");
    await writeFile(file, "v1");
    const c = rawClient(sim, self.authorization);

    const create = await c.post("/nodes/pve1/lxc/100/snapshot", {
      snapname: "pre_upgrade",
      description: "before v2",
    });
    expect(create.json.data).toMatch(/:vzsnapshot:100:agent-100@pve!backup:$/);
    expect((await c.waitTask("pve1", create.json.data)).exitstatus).toBe("OK");
    await writeFile(file, "v2");
    const second = await c.post("/nodes/pve1/lxc/100/snapshot", { snapname: "after-v2" });
    await c.waitTask("pve1", second.json.data);

    const list = await c.get("/nodes/pve1/lxc/100/snapshot");
    expect(list.json.data).toEqual([
      { name: "pre_upgrade", description: "before v2", snaptime: expect.any(Number) },
      { name: "after-v2", description: "", snaptime: expect.any(Number), parent: "pre_upgrade" },
      {
        name: "current",
        description: "You are here!",
        running: 1,
        digest: expect.stringMatching(/^[0-9a-f]{40}$/),
        parent: "after-v2",
      },
    ]);

    const again = await c.post("/nodes/pve1/lxc/100/snapshot", { snapname: "pre_upgrade" });
    expect((await c.waitTask("pve1", again.json.data)).exitstatus).toBe(
      "snapshot name 'pre_upgrade' already used",
    );
    const reserved = await c.post("/nodes/pve1/lxc/100/snapshot", { snapname: "vzdump" });
    expect(reserved.status).toBe(500);
    expect(reserved.reason).toBe("unable to use snapshot name 'vzdump' (reserved name)");
    const badName = await c.post("/nodes/pve1/lxc/100/snapshot", { snapname: "1abc" });
    expect(badName.status).toBe(400);
    expect(badName.json.errors.snapname).toContain("invalid configuration ID '1abc'");

    await writeFile(file, "v3");
    const rollback = await c.post("/nodes/pve1/lxc/100/snapshot/pre_upgrade/rollback");
    expect(rollback.json.data).toMatch(/:vzrollback:100:/);
    expect((await c.waitTask("pve1", rollback.json.data)).exitstatus).toBe("OK");
    expect(stops).toEqual([{ vmid: 100, kill: true }]);
    expect(await readFile(file, "utf8")).toBe("v1");
    const status = await c.get("/nodes/pve1/lxc/100/status/current");
    expect(status.json.data.status).toBe("stopped");
    expect((await c.get("/nodes/pve1/lxc/100/config")).json.data.parent).toBe("pre_upgrade");

    const del = await c.del("/nodes/pve1/lxc/100/snapshot/pre_upgrade");
    expect(del.json.data).toMatch(/:vzdelsnapshot:100:/);
    expect((await c.waitTask("pve1", del.json.data)).exitstatus).toBe("OK");
    const after = await c.get("/nodes/pve1/lxc/100/snapshot");
    expect(after.json.data.map((s: { name: string; parent?: string }) => [s.name, s.parent])).toEqual([
      ["after-v2", undefined],
      ["current", undefined],
    ]);
    await c.close();
  });

  it("allows rollback with VM.Snapshot.Rollback alone and names both privileges when neither is held", async () => {
    await sim.addGuest({ vmid: 110 });
    sim.addRole("RollbackOnly", ["VM.Snapshot.Rollback", "VM.Audit"]);
    sim.addRole("AuditOnly", ["VM.Audit"]);
    const a = sim.addToken("rb@pve", "tok", { privsep: false });
    sim.setAcl({ path: "/vms/110", role: "RollbackOnly", user: "rb@pve" });
    const b = sim.addToken("ro@pve", "tok", { privsep: false });
    sim.setAcl({ path: "/vms/110", role: "AuditOnly", user: "ro@pve" });
    const ca = rawClient(sim, `PVEAPIToken=${a.tokenId}=${a.secret}`);
    const cb = rawClient(sim, `PVEAPIToken=${b.tokenId}=${b.secret}`);
    const ok = await ca.post("/nodes/pve1/lxc/110/snapshot/none/rollback");
    expect(ok.status).toBe(200);
    expect((await ca.waitTask("pve1", ok.json.data)).exitstatus).toBe("snapshot 'none' does not exist");
    const denied = await cb.post("/nodes/pve1/lxc/110/snapshot/none/rollback");
    expect(denied.status).toBe(403);
    expect(denied.reason).toBe("Permission check failed (/vms/110, VM.Snapshot|VM.Snapshot.Rollback)");
    await ca.close();
    await cb.close();
  });
});
