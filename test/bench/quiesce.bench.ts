import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { prepareQuiesce, quiesceStacks } from "../../agent/quiesce/quiesce-stacks.ts";

/**
 * Quiesce + resume of a ten-service, four-level stack on the guests' platform (Debian 13's engine and the
 * compose v2 plugin, see test/docker/setup.sh): the agent (discovery, plan, fsync'd journal, stop level by
 * level in parallel, start in reverse) against two same-run baselines. Medians over alternating rounds.
 *
 * - The engine's floor, the goal's baseline: all ten containers stopped in one burst and started in one
 *   burst with bare API calls (no order, no journal, no inspect). Nothing that keeps the dependency order
 *   can be faster; the agent's target is at most 1.10x this.
 * - The ordered floor: the same bare API calls, level by level in the plan's dependency order (stop
 *   dependents first, start dependencies first), without discovery, journal or inspect. The agent over this
 *   is what the agent itself costs; this over the engine's floor is what keeping the order costs.
 * - Its peer, `docker compose stop` followed by `docker compose start` (v2). The services have no
 *   healthcheck, because `compose start` does not wait for one either.
 */

type Report = (r: { metric: string; value: number; unit: string; baseline?: number; ratio?: number }) => void;

const FILE = resolve(dirname(fileURLToPath(import.meta.url)), "../fixtures/compose/bench/docker-compose.yml");
const ROUNDS = 5;

export default async function (report: Report): Promise<void> {
  const project = `fqbench${randomBytes(3).toString("hex")}`;
  const stateDir = await mkdtemp(join(tmpdir(), "felhom-bench-"));
  const compose = (...args: string[]) => {
    const r = spawnSync("/usr/bin/docker", ["compose", "-p", project, "-f", FILE, ...args], {
      encoding: "utf8",
      timeout: 300_000,
    });
    if (r.status !== 0) throw new Error(`docker compose ${args.join(" ")}: ${r.stderr}`);
  };
  const engine = new DockerEngine();
  const deps = { engine, stateDir };
  const agentMs: number[] = [];
  const composeMs: number[] = [];
  const floorMs: number[] = [];
  const orderedMs: number[] = [];
  try {
    compose("up", "-d");
    const ids = (await engine.listComposeContainers([project])).map((c) => c.id);
    const levels = (await prepareQuiesce(deps, { projects: [project] })).plan.levels.map((l) =>
      l.flatMap((s) => s.containers.map((c) => c.id)),
    );
    for (let i = 0; i < ROUNDS; i++) {
      let t0 = performance.now();
      const { plan } = await prepareQuiesce(deps, { projects: [project] });
      const { handle } = await quiesceStacks(deps, { backupId: `bench-${i}`, plan });
      const resumed = await handle.resume();
      agentMs.push(performance.now() - t0);
      if (handle.quiesced.length !== 10 || resumed.resumed.length !== 10 || resumed.failures.length > 0) {
        throw new Error(
          `agent round ${i} did not quiesce and resume all ten services: ${JSON.stringify(resumed.failures)}`,
        );
      }

      t0 = performance.now();
      compose("stop");
      compose("start");
      composeMs.push(performance.now() - t0);

      t0 = performance.now();
      await Promise.all(ids.map((id) => engine.stop(id, id, 10)));
      await Promise.all(ids.map((id) => engine.start(id, id)));
      floorMs.push(performance.now() - t0);

      t0 = performance.now();
      for (const level of levels) await Promise.all(level.map((id) => engine.stop(id, id, 10)));
      for (const level of [...levels].reverse()) await Promise.all(level.map((id) => engine.start(id, id)));
      orderedMs.push(performance.now() - t0);
    }
  } finally {
    spawnSync("/usr/bin/docker", ["compose", "-p", project, "-f", FILE, "down", "-t", "1"], {
      timeout: 300_000,
    });
    await rm(stateDir, { recursive: true, force: true });
  }
  const agent = median(agentMs);
  const peer = median(composeMs);
  const floor = median(floorMs);
  const ordered = median(orderedMs);
  const version = spawnSync("/usr/bin/docker", ["compose", "version", "--short"], { encoding: "utf8" });
  const composeName = `docker compose ${version.stdout.trim()} stop+start`;
  report({
    metric: "agent quiesce+resume against the engine floor (10 services, 4 levels)",
    value: round(agent),
    unit: "ms",
    baseline: round(floor),
    ratio: round(agent / floor, 3),
  });
  report({
    metric: "agent quiesce+resume against the ordered floor (same order, bare API calls)",
    value: round(agent),
    unit: "ms",
    baseline: round(ordered),
    ratio: round(agent / ordered, 3),
  });
  report({
    metric: "ordered floor against the engine floor (what the dependency order costs)",
    value: round(ordered),
    unit: "ms",
    baseline: round(floor),
    ratio: round(ordered / floor, 3),
  });
  report({
    metric: `agent quiesce+resume against ${composeName}`,
    value: round(agent),
    unit: "ms",
    baseline: round(peer),
    ratio: round(agent / peer, 3),
  });
  report({
    metric: `engine floor against ${composeName}`,
    value: round(floor),
    unit: "ms",
    baseline: round(peer),
    ratio: round(floor / peer, 3),
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
