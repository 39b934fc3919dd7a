import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveIdentity } from "../../agent/identity/identity-service.ts";
import type { PveClient } from "../../agent/pve/client.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { simClient } from "../support/sim-client.ts";

/**
 * The simulator holds the CT config (hostname `web1.example.com`); what the guest sees of itself is
 * given as local facts, as PVE's set_hostname leaves it: `web1` in /etc/hostname.
 */
describe("pve identity of a CT configured with a dotted hostname, against the PVE simulator", () => {
  const hwaddr = "bc:24:11:0a:0b:0c";
  let sim: PveSimulator;
  let pve: PveClient;

  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 50 });
    const self = await selfScopedGuest(sim, { vmid: 101, hostname: "web1.example.com", hwaddr });
    pve = simClient(sim, self);
  });

  afterAll(async () => {
    await pve?.close();
    await sim?.close();
  });

  it("verifies the guest whose local hostname is the config name's first label", async () => {
    const identity = await resolveIdentity(pve, { local: { hostname: "web1", macs: [hwaddr] } });
    expect(identity).toEqual({ state: "verified", vmid: 101, node: "pve1", hostname: "web1" });
  });

  it("does not verify a guest whose local hostname is another name", async () => {
    const identity = await resolveIdentity(pve, { local: { hostname: "web2", macs: [hwaddr] } });
    expect(identity).toMatchObject({ state: "unverified", signal: "hostname-mismatch", vmid: 101 });
  });
});
