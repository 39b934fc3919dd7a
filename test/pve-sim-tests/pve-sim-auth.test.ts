import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { rawClient } from "./pve-client.ts";

describe("pve sim: TLS, authentication and error shapes", () => {
  let sim: PveSimulator;
  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 300 });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it("serves a leaf certificate signed by its own CA whose SHA-256 matches the advertised fingerprint", async () => {
    const root = sim.rootToken();
    const c = rawClient(sim, `PVEAPIToken=${root.tokenId}=${root.secret}`);
    const r = await c.get("/nodes/pve1/certificates/info");
    expect(r.status).toBe(200);
    const leaf = r.json.data.find((x: { filename: string }) => x.filename === "pve-ssl.pem");
    expect(leaf.fingerprint).toBe(sim.fingerprint);
    expect(sim.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(leaf.san).toEqual(expect.arrayContaining(["127.0.0.1", "localhost"]));
    await c.close();
  });

  it("answers a bad token secret with 401 'Authentication failed!', an empty body and Connection: close, after the configured delay", async () => {
    const g = await selfScopedGuest(sim, { vmid: 100 });
    const c = rawClient(sim, `PVEAPIToken=${g.tokenId}=wrong-secret`);
    const started = Date.now();
    const r = await c.get("/version");
    const took = Date.now() - started;
    expect(r.status).toBe(401);
    expect(r.reason).toBe("Authentication failed!");
    expect(r.text).toBe("");
    expect(r.connection).toBe("close");
    expect(took).toBeGreaterThanOrEqual(290);
    await c.close();
  });

  it("answers a request without Authorization header with 401 'No ticket'", async () => {
    const c = rawClient(sim);
    const r = await c.get("/version");
    expect(r.status).toBe(401);
    expect(r.reason).toBe("No ticket");
    expect(r.text).toBe("");
    await c.close();
  });

  it("accepts a space instead of the first '=', URI-escaped values, and takes the secret after the last '='", async () => {
    const { tokenId, secret } = sim.addToken("weird@pve", "t1");
    for (const header of [
      `PVEAPIToken ${tokenId}=${secret}`,
      `PVEAPIToken=${encodeURIComponent(`${tokenId}=${secret}`)}`,
    ]) {
      const c = rawClient(sim, header);
      const r = await c.get("/version");
      expect(r.status, header).toBe(200);
      await c.close();
    }
    const c = rawClient(sim, `PVEAPIToken=${tokenId}=x=${secret}`);
    expect((await c.get("/version")).status).toBe(401);
    await c.close();
  });

  it("gives a privsep token whose role is granted only to the token a 403 even on its own guest (the intersection rule)", async () => {
    const g = await selfScopedGuest(sim, { vmid: 150, variant: "token-only", tokenName: "trap" });
    const c = rawClient(sim, g.authorization);
    const r = await c.get("/nodes/pve1/lxc/150/status/current");
    expect(r.status).toBe(403);
    expect(r.reason).toBe("Permission check failed (/vms/150, VM.Audit)");
    expect(r.json).toEqual({ data: null, message: "Permission check failed (/vms/150, VM.Audit)\n" });
    expect(r.connection).toBe("close");
    const perms = await c.get("/access/permissions");
    expect(perms.json.data).toEqual({});
    await c.close();
  });

  it("lets the production token see exactly its own guest and its effective permissions", async () => {
    const g = await selfScopedGuest(sim, { vmid: 101, hostname: "web1" });
    await sim.addGuest({ vmid: 102 });
    const c = rawClient(sim, g.authorization);
    const res = await c.get("/cluster/resources", { type: "vm" });
    expect(res.json.data.map((x: { id: string }) => x.id)).toEqual(["lxc/101"]);
    expect(res.json.data[0]).toMatchObject({
      vmid: 101,
      node: "pve1",
      type: "lxc",
      status: "running",
      name: "web1",
    });
    const other = await c.get("/nodes/pve1/lxc/102/config");
    expect(other.status).toBe(403);
    const cfg = await c.get("/nodes/pve1/lxc/101/config");
    expect(cfg.json.data.net0).toContain(`hwaddr=${sim.hwaddrOf(g.guest)}`);
    expect(cfg.json.data.digest).toMatch(/^[0-9a-f]{40}$/);
    const perms = await c.get("/access/permissions", { path: "/vms/101" });
    expect(perms.json.data).toEqual({
      "/vms/101": {
        "VM.Audit": 1,
        "VM.Snapshot": 1,
        "VM.Backup": 1,
        "Datastore.AllocateSpace": 1,
        "Datastore.Audit": 1,
      },
    });
    const others = await c.get("/access/permissions", { userid: "root@pam" });
    expect(others.status).toBe(403);
    expect(others.reason).toBe("Permission check failed (/access, Sys.Audit)");
    const status = await c.get("/nodes/pve1/lxc/101/status/current");
    expect(status.json.data).toMatchObject({
      vmid: 101,
      status: "running",
      name: "web1",
      ha: { managed: 0 },
    });
    await c.close();
  });

  it("resolves a grant on a parent path for a permissions query with path, which the listing without path does not name", async () => {
    // pve-api-facts §7: the listing holds fixed paths and ACL paths only; `path` walks down from `/`.
    const g = await selfScopedGuest(sim, { vmid: 160, storage: "bk-parent", variant: "parent-paths" });
    const c = rawClient(sim, g.authorization);
    const role = {
      "VM.Audit": 1,
      "VM.Snapshot": 1,
      "VM.Backup": 1,
      "Datastore.AllocateSpace": 1,
      "Datastore.Audit": 1,
    };
    const listed = (await c.get("/access/permissions")).json.data;
    // Paths other grants name are listed too (with what propagates to them), but nothing names these two.
    expect(listed["/vms"]).toEqual(role);
    expect(Object.keys(listed)).not.toContain("/vms/160");
    expect(Object.keys(listed)).not.toContain("/storage/bk-parent");
    expect((await c.get("/access/permissions", { path: "/vms/160" })).json.data).toEqual({
      "/vms/160": role,
    });
    expect((await c.get("/access/permissions", { path: "/storage/bk-parent" })).json.data).toEqual({
      "/storage/bk-parent": role,
    });
    const admin = await selfScopedGuest(sim, { vmid: 161, variant: "over-privileged", tokenName: "admin" });
    const a = rawClient(sim, admin.authorization);
    expect(Object.keys((await a.get("/access/permissions")).json.data)).not.toContain("/vms/161");
    const onGuest = (await a.get("/access/permissions", { path: "/vms/161" })).json.data["/vms/161"];
    expect(onGuest).toMatchObject({ "VM.Backup": 1, "VM.Allocate": 1 });
    // A path nothing reaches is answered with an empty map, not left out.
    expect((await c.get("/access/permissions", { path: "/pool/none" })).json.data).toEqual({
      "/pool/none": {},
    });
    await c.close();
    await a.close();
  });

  it("gzips JSON bodies over 1 KiB for a client that accepts gzip, like pveproxy", async () => {
    const root = sim.rootToken();
    const c = rawClient(sim, `PVEAPIToken=${root.tokenId}=${root.secret}`);
    const big = await c.get("/access/permissions");
    expect(big.text.length).toBeGreaterThan(1024);
    expect(big.encoding).toBe("gzip");
    expect(big.json.data["/"]["Sys.Audit"]).toBe(1);
    expect((await c.get("/version")).encoding).toBeNull();
    await c.close();
  });

  it("answers unknown methods with 501 and unknown parameters with 400 naming the key", async () => {
    const g = await selfScopedGuest(sim, { vmid: 103 });
    const c = rawClient(sim, g.authorization);
    const r = await c.get("/nodes/pve1/nothing");
    expect(r.status).toBe(501);
    expect(r.reason).toBe("Method 'GET /nodes/pve1/nothing' not implemented");
    const bad = await c.get("/nodes/pve1/lxc/103/status/current", { foo: 1 });
    expect(bad.status).toBe(400);
    expect(bad.reason).toBe("Parameter verification failed.");
    expect(bad.json.errors).toEqual({
      foo: "property is not defined in schema and the schema does not allow additional properties",
    });
    await c.close();
  });
});

describe("pve sim: old-style error bodies", () => {
  it("puts the error text only in the reason phrase when errorStyle is 'old'", async () => {
    const sim = await startPveSimulator({ authFailureDelayMs: 0, errorStyle: "old" });
    try {
      const g = await selfScopedGuest(sim, { vmid: 100 });
      const c = rawClient(sim, g.authorization);
      const r = await c.get("/nodes/pve1/lxc/999/status/current");
      expect(r.status).toBe(403);
      expect(r.json).toEqual({ data: null });
      await c.close();
    } finally {
      await sim.close();
    }
  });
});
