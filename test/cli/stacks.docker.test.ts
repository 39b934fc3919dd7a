import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { statePaths } from "../../agent/state/paths.ts";
import { capturedStdout, exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { docker } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

let h: GuestHarness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = dir = undefined;
});

async function cli(config: string, ...args: string[]) {
  const agent = spawnAgent(config, args);
  const out = capturedStdout(agent);
  return { code: await exited(agent), out: out() };
}

describeDocker("felhom-guest stacks (real docker)", () => {
  it("lists the stack with each service's strategy, and `stacks up` brings a stopped stack back", async () => {
    h = await startGuestHarness();
    dir = await mkdtemp(join(tmpdir(), "felhom-stacks-"));
    const config = await writeAgentConfig(h, dir);
    const before = await h.running();
    const listed = await cli(config, "stacks", "--json");
    expect(listed.code).toBe(0);
    const { stacks } = JSON.parse(listed.out) as {
      stacks: { project: string; services: { name: string; strategy: string }[] }[];
    };
    expect(stacks.map((s) => s.project)).toEqual([h.project]);
    expect(stacks[0]!.services.map((s) => `${s.name}:${s.strategy}`).sort()).toEqual(["app:stop", "db:stop"]);

    for (const id of before) await docker("stop", "-t", "5", id);
    expect(await h.running()).toEqual([]);
    const up = await cli(config, "stacks", "up", "--json");
    expect(up.code).toBe(0);
    expect(JSON.parse(up.out)).toEqual([{ project: h.project, outcome: "started" }]);
    expect(await h.running()).toEqual(before);
  });

  it("answers from Docker with the archive check unknown when PVE does not answer: one attempt, a short deadline, no retry noise", async () => {
    h = await startGuestHarness();
    dir = await mkdtemp(join(tmpdir(), "felhom-stacks-"));
    // a PVE that accepts the connection and never says a word
    const held: Socket[] = [];
    const silent = createServer((s) => held.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    try {
      const config = await writeAgentConfig(h, dir);
      const port = (silent.address() as { port: number }).port;
      await writeFile(
        config,
        (await readFile(config, "utf8")).replace(h.sim.url, `https://127.0.0.1:${port}`),
      );
      const agent = spawnAgent(config, ["stacks", "--json"]);
      const out = capturedStdout(agent);
      let err = "";
      agent.stderr?.on("data", (d) => {
        err += d;
      });
      const started = Date.now();
      expect(await exited(agent)).toBe(0);
      console.info(`stacks with a silent PVE took ${Date.now() - started} ms`);
      const listed = JSON.parse(out()) as {
        stacks: { project: string; services: { name: string; mounts?: unknown[] }[] }[];
        archiveCheck: { known: boolean; reason?: string };
      };
      expect(listed.stacks.map((s) => s.project)).toEqual([h.project]);
      expect(listed.stacks[0]!.services.every((s) => s.mounts === undefined)).toBe(true);
      expect(listed.archiveCheck).toEqual({
        known: false,
        reason: expect.stringMatching(/PVE|timeout|time/i),
      });
      expect(err).not.toMatch(/retrying/);
      expect(held.length).toBe(1); // one attempt: one connection
    } finally {
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  it("refuses `stacks up` (exit 75) while a backup holds the lock with the stacks quiesced, and runs once it is gone", async () => {
    h = await startGuestHarness();
    dir = await mkdtemp(join(tmpdir(), "felhom-stacks-"));
    const config = await writeAgentConfig(h, dir);
    const before = await h.running();
    expect((await cli(config, "stacks")).code).toBe(0); // the agent remembers the stacks it has seen
    for (const id of before) await docker("stop", "-t", "5", id);
    // Another process (an operator's `felhom-guest backup`) holds the lock.
    const holder = spawn("sleep", ["60"]);
    try {
      await writeFile(
        statePaths(h.stateDir).operationLock,
        JSON.stringify({ pid: holder.pid, backupId: "bk-running", mode: "snapshot" }),
        { mode: 0o600 },
      );
      const refused = await cli(config, "stacks", "up");
      expect(refused.code).toBe(75);
      expect(await h.running()).toEqual([]);
    } finally {
      holder.kill("SIGKILL");
      await exited(holder);
    }
    const up = await cli(config, "stacks", "up", "--json");
    expect(up.code).toBe(0);
    expect(await h.running()).toEqual(before);
  });
});
