import { Agent, fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { rawClient } from "./pve-client.ts";

describe("pve sim: request faults, task visibility and UPIDs", () => {
  let sim: PveSimulator;
  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 0, ninePstartDigits: true });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it("fails the next matching requests with the given status, then answers normally again", async () => {
    const self = await selfScopedGuest(sim, { vmid: 100 });
    const c = rawClient(sim, self.authorization);
    sim.faults.failNext(2, 503, "/status/current");
    expect((await c.get("/version")).status).toBe(200);
    expect((await c.get("/nodes/pve1/lxc/100/status/current")).status).toBe(503);
    expect((await c.get("/nodes/pve1/lxc/100/status/current")).status).toBe(503);
    expect((await c.get("/nodes/pve1/lxc/100/status/current")).status).toBe(200);
    expect(
      sim.requests.filter((r) => r.path === "/nodes/pve1/lxc/100/status/current").map((r) => r.status),
    ).toEqual([503, 503, 200]);
    await c.close();
  });

  it("hangs a request until the client gives up, and drops a connection mid-response", async () => {
    const self = await selfScopedGuest(sim, { vmid: 100, tokenName: "faults" });
    const agent = new Agent({ connect: { ca: sim.caPem } });
    const get = (signal?: AbortSignal) =>
      fetch(`${sim.url}/api2/json/version`, {
        dispatcher: agent,
        headers: { authorization: self.authorization },
        ...(signal ? { signal } : {}),
      });
    sim.faults.hangNext(1, "/version");
    await expect(get(AbortSignal.timeout(300))).rejects.toThrow();
    sim.faults.dropConnections(1, "/version");
    await expect(get().then((r) => r.text())).rejects.toThrow();
    expect((await get()).status).toBe(200);
    await agent.close();
  });

  it("lets a token read only its own tasks; another guest's token gets 403 on Sys.Audit and an empty list", async () => {
    const a = await selfScopedGuest(sim, { vmid: 200 });
    const b = await selfScopedGuest(sim, { vmid: 201 });
    const ca = rawClient(sim, a.authorization);
    const cb = rawClient(sim, b.authorization);
    const post = await ca.post("/nodes/pve1/lxc/200/snapshot", { snapname: "s1" });
    const upid: string = post.json.data;
    await ca.waitTask("pve1", upid);
    // pstart beyond 0xFFFFFFFF prints as 9 hex digits
    expect(upid.split(":")[3]).toMatch(/^[0-9A-F]{9}$/);
    expect((await ca.get(`/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`)).json.data).toMatchObject({
      upid,
      status: "stopped",
      exitstatus: "OK",
      type: "vzsnapshot",
      id: "200",
      user: "agent-200@pve",
      tokenid: "backup",
      pstart: Number.parseInt(upid.split(":")[3] as string, 16),
    });
    const other = await cb.get(`/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`);
    expect(other.status).toBe(403);
    expect(other.reason).toBe("Permission check failed (/nodes/pve1, Sys.Audit)");
    expect((await cb.del(`/nodes/pve1/tasks/${encodeURIComponent(upid)}`)).reason).toBe(
      "Permission check failed (/nodes/pve1, Sys.Modify)",
    );
    const own = await ca.get("/nodes/pve1/tasks", { typefilter: "vzsnapshot" });
    expect(own.json.data.map((t: { upid: string }) => t.upid)).toEqual([upid]);
    expect(own.json.total).toBe(1);
    expect((await cb.get("/nodes/pve1/tasks")).json.data).toEqual([]);
    await ca.close();
    await cb.close();
  });
});

describe("pve sim: defaults that cost time", () => {
  it("delays a 401 by PVE's 3 seconds by default", async () => {
    const sim = await startPveSimulator();
    try {
      const c = rawClient(sim, "PVEAPIToken=nobody@pve!tok=00000000-0000-0000-0000-000000000000");
      const started = Date.now();
      const r = await c.get("/version");
      expect(r.status).toBe(401);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2990);
      await c.close();
    } finally {
      await sim.close();
    }
  });

  it("says so when it has to fall back to copies instead of btrfs snapshots", async () => {
    const sim = await startPveSimulator({ authFailureDelayMs: 0, forceCopySnapshots: true });
    try {
      expect(sim.snapshotMethod).toBe("copy");
      const self = await selfScopedGuest(sim, { vmid: 100 });
      const c = rawClient(sim, self.authorization);
      const post = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", compress: "zstd" });
      expect((await c.waitTask("pve1", post.json.data)).exitstatus).toBe("OK");
      expect(sim.vzdumpRuns[0]?.snapshotMethod).toBe("copy");
      await c.close();
    } finally {
      await sim.close();
    }
  });
});
