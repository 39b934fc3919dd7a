import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PveClient, VzdumpSubmission } from "../../agent/pve/client.ts";
import { type FollowEvent, followTaskToEnd } from "../../agent/pve/task-follower.ts";
import type { VzdumpPhase } from "../../agent/pve/vzdump-log.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { simClient } from "../support/sim-client.ts";

/** The client's vzdump, followed to its end: the phases the backup flow would see for two refusals. */
describe("pve vzdump refusals as the task follower sees them, against the PVE simulator", () => {
  let sim: PveSimulator;
  let pve: PveClient;

  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 50 });
    await sim.addStorage({ id: "bk", maxProtectedBackups: 1 });
    const self = await selfScopedGuest(sim, { vmid: 101, storage: "bk" });
    pve = simClient(sim, self);
  });

  afterAll(async () => {
    await pve?.close();
    await sim?.close();
  });

  async function backup(request: { lockwait?: number; protected?: boolean }): Promise<VzdumpPhase[]> {
    const submitted: VzdumpSubmission = await pve.vzdump("pve1", { vmid: 101, storage: "bk", ...request });
    if (submitted.kind !== "task") throw new Error("expected a task");
    const phases: VzdumpPhase[] = [];
    await followTaskToEnd(
      pve,
      "pve1",
      submitted.upid,
      { minIntervalMs: 20, maxIntervalMs: 100 },
      (e: FollowEvent) => {
        if (e.type === "phase") phases.push(e.phase);
      },
    );
    return phases;
  }

  it("sees lockwait 0 on a busy node as a global-lock timeout, with no waiting phase", async () => {
    const held = sim.holdGlobalVzdumpLock();
    try {
      const phases = await backup({ lockwait: 0 });
      expect(phases.map((p) => p.phase)).toEqual(["global-lock-timeout"]);
    } finally {
      held.release();
    }
  });

  it("sees a protected backup over the storage's limit as a protected-limit phase naming the limit", async () => {
    expect((await backup({ protected: true })).map((p) => p.phase)).toContain("finished");
    const phases = await backup({ protected: true });
    expect(phases).toContainEqual({ phase: "protected-limit", vmid: 101, limit: 1, storage: "bk" });
  });
});
