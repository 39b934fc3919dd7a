import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runBackup } from "../../agent/backup/backup-run.ts";
import type { BackupDeps } from "../../agent/backup/backup-types.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { writeRestoreRecord } from "../../agent/identity/restore-record.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import type { PveClient } from "../../agent/pve/client.ts";
import { createSnapshot, deleteSnapshot, rollbackSnapshot } from "../../agent/snapshot/snapshot-service.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { simBackupConfig, simClient } from "../support/sim-client.ts";

/**
 * A restored copy whose live check verifies it as its original (same MAC and hostname: rows 5 and 11 of
 * docs/restore.md) keeps its restore record until it is enrolled: every PVE write refuses on that record
 * alone, also from the CLI without a daemon, and nothing reaches PVE.
 */
describe("a restored copy with the original's token, against the PVE simulator", () => {
  const hwaddr = "bc:24:11:0a:0b:0c";
  let sim: PveSimulator;
  let pve: PveClient;
  let stateDir: string;
  let deps: BackupDeps;

  beforeAll(async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 50 });
    const self = await selfScopedGuest(sim, { vmid: 101, hostname: "web1", hwaddr });
    pve = simClient(sim, self);
    stateDir = await mkdtemp(join(tmpdir(), "felhom-copy-"));
    await writeRestoreRecord(stateDir, {
      detectedAt: new Date().toISOString(),
      fromBackupId: "bk-original",
      takenAt: new Date().toISOString(),
      originalVmid: 101,
      signals: ["marker", "task-ended-before-boot"],
      originalUpid: null,
    });
    deps = {
      pve,
      // Never reached: the refusal comes first.
      engine: new DockerEngine({ socketPath: join(stateDir, "no-docker.sock") }),
      stateDir,
      backup: simBackupConfig(),
      localFacts: () => ({ hostname: "web1", macs: [hwaddr] }),
      emit: () => {},
      log: silentLogger(),
    };
  });

  afterAll(async () => {
    await pve?.close();
    await sim?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it("is verified by the live check alone, which is why the record must decide", async () => {
    const { resolveIdentity } = await import("../../agent/identity/identity-service.ts");
    expect(await resolveIdentity(pve, { local: deps.localFacts() })).toMatchObject({
      state: "verified",
      vmid: 101,
    });
  });

  it("refuses a backup, a snapshot, a snapshot delete and a rollback, and sends nothing to PVE", async () => {
    const before = sim.requests.length;
    const outcome = await runBackup(deps, {
      backupId: "bk-copy",
      mode: "snapshot",
      trigger: { source: "cli" },
    });
    expect(outcome).toMatchObject({
      ok: false,
      failure: {
        phase: "preflight",
        code: "identity_unverified",
        message: expect.stringMatching(/restored copy of CT 101/),
      },
    });
    expect(await createSnapshot(deps, "copy-snap")).toMatchObject({
      ok: false,
      failure: { code: "identity_unverified" },
    });
    expect(await deleteSnapshot(deps, "copy-snap")).toMatchObject({
      ok: false,
      failure: { code: "identity_unverified" },
    });
    await expect(rollbackSnapshot(deps, "copy-snap")).rejects.toMatchObject({ code: "identity_unverified" });
    expect(sim.requests.slice(before)).toEqual([]);
  });
});
