import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { prepareQuiesce, quiesceStacks } from "../../agent/quiesce/quiesce-stacks.ts";

/**
 * Quiesce + resume of a ten-service, four-level stack: the agent (discovery, plan, fsync'd journal, stop
 * level by level in parallel, start in reverse) against `docker compose stop` followed by
 * `docker compose start` on the same stack in the same run. The services have no healthcheck, because
 * `compose start` does not wait for one either. Medians over several alternating rounds.
 *
 * A third figure is the engine's own floor: all ten containers stopped in one burst and started in one
 * burst with bare API calls (no order, no journal, no inspect). Nothing that keeps the dependency order
 * can be faster, so it tells how much of the gap to compose is left to the agent and how much is Docker.
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
  try {
    compose("up", "-d");
    const ids = (await engine.listComposeContainers([project])).map((c) => c.id);
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
    }
  } finally {
    spawnSync("/usr/bin/docker", ["compose", "-p", project, "-f", FILE, "down", "-t", "1"], {
      timeout: 300_000,
    });
    await rm(stateDir, { recursive: true, force: true });
  }
  const agent = median(agentMs);
  const baseline = median(composeMs);
  const floor = median(floorMs);
  report({
    metric: "quiesce+resume",
    value: round(agent),
    unit: "ms",
    baseline: round(baseline),
    ratio: round(agent / baseline, 3),
  });
  report({ metric: "agent quiesce+resume (10 services)", value: round(agent), unit: "ms" });
  report({ metric: "compose stop+start (10 services)", value: round(baseline), unit: "ms" });
  report({
    metric: "engine floor: stop all + start all, no order (against compose)",
    value: round(floor),
    unit: "ms",
    baseline: round(baseline),
    ratio: round(floor / baseline, 3),
  });
  report({
    metric: "agent against the engine floor",
    value: round(agent),
    unit: "ms",
    baseline: round(floor),
    ratio: round(agent / floor, 3),
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
