import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { bringStacksUp } from "../../agent/restore/stacks-up.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { compose, docker, runningContainers } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";

/**
 * Stacks after a restore, with real compose: the registry is all that is left of them (containers and
 * networks gone, as in a copy whose engine starts empty, or after `compose down`).
 */
const projects: { name: string; dir: string }[] = [];
let root: string | undefined;
afterEach(async () => {
  for (const p of projects.splice(0).reverse())
    await compose(p.name, p.dir, "down", "-v", "--timeout", "5").catch((err) =>
      console.error("down failed", err),
    );
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

const stack = (id: string, project: string, dir: string, services: string[]) => ({
  project,
  workingDir: dir,
  configFiles: ["docker-compose.yml"],
  composeVersion: "1.29.2",
  services: Object.fromEntries(
    services.map((s) => [s, { dependsOn: [], image: null, stopGraceS: null, lastStopMs: null }]),
  ),
  firstSeen: id,
  lastSeen: id,
});

describeDocker("restore: remembered stacks brought back with compose (real docker)", () => {
  it("brings a stack up after the stack whose network it uses, waits for healthchecks, and goes on past a stack that cannot come up", {
    timeout: 180_000,
  }, async () => {
    root = await mkdtemp(join(tmpdir(), "felhom-stacks-up-"));
    const suffix = Math.random().toString(16).slice(2, 8);
    const base = `aaa-app-${suffix}`; // sorts first, but needs the network of the stack below
    const db = `zzz-db-${suffix}`;
    const broken = `mmm-gone-${suffix}`;
    const mk = async (name: string, text: string) => {
      const dir = join(root!, name);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, "docker-compose.yml"), text);
      projects.push({ name, dir });
      return dir;
    };
    const dbDir = await mk(
      db,
      `version: "2.4"
services:
  pg:
    image: local/postgres:15
    environment: { POSTGRES_PASSWORD: felhom }
`,
    );
    const appDir = await mk(
      base,
      `version: "2.4"
services:
  web:
    image: local/busybox:1.35
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
networks:
  default:
    external:
      name: ${db}_default
`,
    );
    const stateDir = join(root, "state");
    await mkdir(stateDir, { recursive: true });
    const now = new Date().toISOString();
    await writeFile(
      statePaths(stateDir).stackRegistry,
      JSON.stringify({
        version: 1,
        stacks: {
          [base]: stack(now, base, appDir, ["web"]),
          [db]: stack(now, db, dbDir, ["pg"]),
          [broken]: stack(now, broken, join(root, "nowhere"), ["x"]),
        },
      }),
    );
    const deps = { engine: new DockerEngine(), stateDir, log: silentLogger() };

    const outcomes = await bringStacksUp(deps);
    expect(outcomes).toEqual([
      { project: broken, outcome: "failed", message: expect.stringMatching(/does not exist/) },
      { project: db, outcome: "started" },
      { project: base, outcome: "started" },
    ]);
    // Waited for the healthcheck: the database is healthy by the time `started` is reported.
    const [pg] = await runningContainers(db);
    expect(await docker("inspect", "-f", "{{.State.Health.Status}}", pg!)).toBe("healthy");
    expect(await runningContainers(base)).toHaveLength(1);

    // Again: nothing to do; a project it does not remember is skipped; `only` limits it.
    expect(await bringStacksUp(deps, [db, "not-ours"])).toEqual([
      { project: "not-ours", outcome: "skipped", message: "not a stack this agent remembers" },
      { project: db, outcome: "already-running" },
    ]);
  });
});
