import type { ChildProcess } from "node:child_process";
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { readLocalFacts } from "../../agent/identity/identity-service.ts";
import { operationHolder } from "../../agent/operation/operation-lock.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { exited, spawnAgent, waitForLine } from "../support/agent-cli.ts";
import { describeDocker } from "../support/docker.ts";

/**
 * `felhom-guest run` stopped by a real SIGTERM (systemd) while its scheduled backup waits for a quiet storage:
 * nothing was quiesced or asked of PVE, so the slot stays pending in the schedule's state file, and the next
 * start treats it as missed (README "Missed runs": under `missed: run` it runs once). The guest's identity is
 * this machine's; its compose project has no containers (the engine is asked, nothing is stopped), so the
 * backup after the restart is quick. The storage's `used` is the simulator's own files, which only this test
 * writes (a df of the shared disk moves with other work).
 */
let sim: PveSimulator | undefined;
let daemon: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (daemon) {
    daemon.kill("SIGTERM");
    await exited(daemon);
  }
  await sim?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  sim = daemon = dir = undefined;
});

describeDocker("the daemon stopped during the wait for a quiet storage (pve sim + real docker)", () => {
  it("leaves the slot pending in the state file at SIGTERM, and the restart runs it once (missed: run)", async () => {
    sim = await startPveSimulator({ authFailureDelayMs: 50, storageUsedFrom: "files" });
    const local = readLocalFacts();
    const self = await selfScopedGuest(sim, { vmid: 101, hostname: local.hostname, hwaddr: local.macs[0]! });
    dir = await mkdtemp(join(tmpdir(), "felhom-quiet-wait-"));
    const stateDir = join(self.guest.rootDir, "var/lib/felhom-guest");
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const secretFile = join(dir, "pve-token.secret");
    await writeFile(secretFile, self.secret, { mode: 0o600 });
    const config = join(dir, "agent.yaml");
    await writeFile(
      config,
      [
        "pve:",
        `  url: ${sim.url}`,
        `  token_id: "${self.tokenId}"`,
        `  token_secret_file: ${secretFile}`,
        `  tls: { fingerprint: "${sim.fingerprint}" }`,
        "backup:",
        "  storage: bk",
        // Looks scaled with the retry base (quiet-storage.ts): 0.1 s apart, re-checks every 0.4 s, 30 s budget.
        "  busy_retry: { attempts: 2, delay_seconds: 3 }",
        "schedule:",
        '  cron: "30 2 * * *"',
        "  timezone: UTC",
        "  jitter_seconds: 1",
        "docker:",
        `  projects: [felhom-quiet-wait-${process.pid}]   # no containers: nothing of this machine is stopped`,
        `state_dir: ${stateDir}`,
        "",
      ].join("\n"),
    );
    // The schedule last handled a slot two days ago: the start catches up once, at once (1 s of jitter).
    const statePath = join(stateDir, "schedule.json");
    await writeFile(
      statePath,
      JSON.stringify({ last_slot: new Date(Date.now() - 2 * 86_400_000).toISOString() }),
    );
    const schedule = async () => JSON.parse(await readFile(statePath, "utf8")) as Record<string, unknown>;

    // Another guest's archive grows the storage, 2 MB every 100 ms, until stopped.
    const file = join(sim.storages.get("bk")!.path, "dump", "other-writer.dat");
    let writing = true;
    let pending: unknown;
    const writer = (async () => {
      while (writing) {
        await appendFile(file, Buffer.alloc(2 * 1024 * 1024, 1));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      daemon = spawnAgent(config, ["run"]);
      await waitForLine(daemon, /the backup storage is growing/, 60_000);
      pending = (await schedule()).pending;
      expect(pending).toEqual(expect.any(String));
      daemon.kill("SIGTERM");
      expect(await exited(daemon)).toBe(0);
      daemon = undefined;
      // Nothing began: no task, the guest's lock free, and the slot still pending for the next start.
      expect(sim.requests.filter((r) => r.method === "POST" && r.path.endsWith("/vzdump"))).toEqual([]);
      expect(await operationHolder(stateDir)).toBeUndefined();
      expect((await schedule()).pending).toBe(pending);
    } finally {
      writing = false;
      await writer;
      await rm(file, { force: true });
    }

    // The restart: the pending slot is a missed one, and `missed: run` runs it once.
    daemon = spawnAgent(config, ["run"]);
    const catchUp = await waitForLine(
      daemon,
      /a scheduled backup was due when the schedule last stopped/,
      60_000,
    );
    expect(JSON.parse(catchUp)).toMatchObject({ slot: pending });
    await expect
      .poll(() => sim!.vzdumpRuns.filter((r) => r.volid !== undefined).length, {
        timeout: 60_000,
        interval: 200,
      })
      .toBe(1);
    await expect
      .poll(async () => (await schedule()).pending, { timeout: 10_000, interval: 100 })
      .toBeUndefined();
    expect(sim.vzdumpRuns).toHaveLength(1);
  });
});
