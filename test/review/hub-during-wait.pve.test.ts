import { appendFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackupService } from "../../agent/backup/backup-service.ts";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import { parseConfig } from "../../agent/config/load.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { operationHolder } from "../../agent/operation/operation-lock.ts";
import type { PveClient } from "../../agent/pve/client.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { simClient } from "../support/sim-client.ts";

/**
 * A scheduled backup that waits for a quiet storage is not a backup yet: stop() (a reload, the daemon's
 * shutdown) ends the wait and the slot at once, with no attempt, nothing touched and the guest's lock free.
 * The storage grows because this test writes to it (the simulator's status is df of its directory, as PVE's);
 * the wait ends before any Docker call, so none is needed.
 */
describe("REVIEW hub during wait", () => {
  let sim: PveSimulator;
  let pve: PveClient;
  let stateDir: string;

  beforeAll(async () => {
    sim = await startPveSimulator();
    const self = await selfScopedGuest(sim, { vmid: 101, hostname: "web1", hwaddr: "bc:24:11:0a:0b:0d" });
    pve = simClient(sim, self);
    stateDir = await mkdtemp(join(tmpdir(), "felhom-quiet-"));
  });

  afterAll(async () => {
    await pve?.close();
    await sim?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it("ends the slot at stop() while it waits, without an attempt", async () => {
    const config = parseConfig(
      [
        "pve:",
        "  url: https://127.0.0.1:8006",
        "  token_id: agent-101@pve!backup",
        "  token_secret_file: /x",
        "  tls:",
        "    insecure: true",
        "backup:",
        "  storage: bk",
      ].join("\n"),
    );
    const outcomes: BackupOutcome[] = [];
    const service = new BackupService({
      pve,
      engine: new DockerEngine({ socketPath: join(stateDir, "no-docker.sock") }),
      stateDir,
      backup: config.backup,
      localFacts: () => ({ hostname: "web1", macs: ["bc:24:11:0a:0b:0d"] }),
      emit: () => {},
      log: silentLogger(),
      quietStorage: { sampleMs: 300, recheckMs: 300, budgetMs: 600_000 },
      onOutcome: (o) => outcomes.push(o),
    });
    // Another writer: 2 MB every 100 ms into the storage, until the test ends.
    const file = join(sim.storages.get("bk")!.path, "dump", "other-writer.dat");
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await appendFile(file, Buffer.alloc(2 * 1024 * 1024, 1));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      const triggers: string[] = [];
      const request = service.request({
        mode: "snapshot",
        trigger: { source: "schedule" },
        retryWhenBusy: true,
      });
      const looks = () => sim.requests.filter((r) => r.path === "/nodes/pve1/storage/bk/status").length;
      await expect.poll(looks, { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(4);
      console.log("running() while the scheduled waits:", service.running());
      const hub = await service.request({ mode: "snapshot", trigger: { source: "hub" } as never });
      console.log("hub request while scheduled waits: started=", hub.started);
      if (hub.started) console.log("hub outcome ok=", (await hub.done).ok);
      writing = false;
      const ticket = await request;
      console.log("scheduled ticket started=", ticket.started);
      if (ticket.started) console.log("scheduled outcome ok=", (await ticket.done).ok);
      await ticket.settled;
      console.log("outcomes:", outcomes.length, outcomes.map((o) => (o.ok ? "ok" : o.failure.code)));
    } finally {
      writing = false;
      await writer;
      await rm(file, { force: true });
    }
  });
});
