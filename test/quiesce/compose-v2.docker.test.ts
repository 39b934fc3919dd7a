import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { detectCompose } from "../../agent/docker/compose-cli.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { prepareQuiesce, quiesceStacks } from "../../agent/quiesce/quiesce-stacks.ts";
import { bringStacksUp } from "../../agent/restore/stacks-up.ts";
import { docker, projectContainerLines } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { forceRemoveProject, orderOf, recordEvents } from "./support/stack.ts";

/**
 * What real compose v2 stacks use, on the guests' compose v2 (Debian 13's 2.26): depends_on conditions
 * (`service_healthy` with `restart: true`, `service_completed_successfully`, `required: false`), profiles,
 * several `-f` files, `include:`, `.env` and `--env-file`, a one-off `compose run` container, an init
 * service that exited on purpose, and v2's `<project>-<service>-1` names. Quiesce must keep the order and
 * touch only what ran; the restore's `up -d` must bring back the stack it was started as.
 */
const run = promisify(execFile);
const SLEEPER = `["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]`;
const engine = new DockerEngine();
/** What the stack runs: the default services, `worker` (profile prod, active), `adminer` (named alone), a finished init. */
const RAN = {
  adminer: "running",
  app: "running",
  cache: "running",
  db: "running",
  migrate: "exited",
  proxy: "running",
  worker: "running",
};
let dir: string;
let project: string;
let files: string[];

const composeV2 = (...args: string[]) =>
  run("docker", ["compose", "-p", project, ...files.flatMap((f) => ["-f", f]), ...args], {
    cwd: dir,
  }).then((r) => r.stdout);

/** service → state, for the project's containers that are not one-offs. */
async function states(): Promise<Record<string, string>> {
  const lines = await projectContainerLines(project, '{{.Label "com.docker.compose.service"}} {{.State}}');
  return Object.fromEntries(lines.map((l) => l.split(" ") as [string, string]));
}

beforeAll(async () => {
  const tool = await detectCompose();
  // The guests' platform: this file needs the real v2 plugin (test/docker/setup.sh installs it).
  expect(tool.kind, `compose ${tool.version} found`).toBe("v2");
  project = `fv2${Math.random().toString(16).slice(2, 8)}`;
  dir = await mkdtemp(join(tmpdir(), "felhom-compose-v2-"));
  await mkdir(join(dir, "parts"));
  await writeFile(
    join(dir, "compose.yaml"),
    `include:
  - parts/cache.yaml
services:
  migrate:
    image: local/busybox:1.35
    command: ["true"]
  db:
    image: local/busybox:1.35
    command: ${SLEEPER}
    healthcheck: { test: ["CMD", "true"], interval: 1s, retries: 30 }
  app:
    image: local/busybox:1.35
    command: ${SLEEPER}
    environment: { GREETING: "\${GREETING}" }
    depends_on:
      db: { condition: service_healthy, restart: true }
      migrate: { condition: service_completed_successfully }
      loadgen: { condition: service_started, required: false }
  worker:
    image: local/busybox:1.35
    command: ${SLEEPER}
    profiles: [prod, debug]
  debugger:
    image: local/busybox:1.35
    command: ${SLEEPER}
    profiles: [debug]
  adminer:
    image: local/busybox:1.35
    command: ${SLEEPER}
    profiles: [tools]
  pgbouncer:
    image: local/busybox:1.35
    command: ${SLEEPER}
    profiles: [tools]
  oldjob:
    image: local/busybox:1.35
    command: ${SLEEPER}
    profiles: [maint]
  loadgen:
    image: local/busybox:1.35
    command: ${SLEEPER}
    profiles: [bench]
`,
  );
  await writeFile(
    join(dir, "parts/cache.yaml"),
    `services:\n  cache:\n    image: local/busybox:1.35\n    command: ${SLEEPER}\n`,
  );
  await writeFile(
    join(dir, "compose.override-prod.yaml"),
    `services:\n  proxy:\n    image: local/busybox:1.35\n    command: ${SLEEPER}\n    depends_on: [app]\n`,
  );
  await writeFile(join(dir, ".env"), "GREETING=from-dotenv\n");
  await writeFile(join(dir, "prod.env"), "GREETING=from-prod-env\n");
  files = [join(dir, "compose.yaml"), join(dir, "compose.override-prod.yaml")];
  await composeV2("--env-file", join(dir, "prod.env"), "--profile", "prod", "up", "-d", "--wait");
  // Named on its own: compose starts it without activating its profile (pgbouncer stays down).
  await composeV2("--env-file", join(dir, "prod.env"), "up", "-d", "adminer");
  // A one-off next to the stack: neither quiesced nor brought back.
  await composeV2("run", "-d", "--no-deps", "--name", `${project}-oneoff`, "cache");
}, 180_000);

afterAll(async () => {
  if (project) await forceRemoveProject(project).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describeDocker("compose v2 stacks (Debian 13's engine and compose plugin)", () => {
  it("are discovered with v2 names, label edges, every file and the env file, without the one-off", async () => {
    expect(await states()).toEqual(RAN);
    expect(
      await docker("ps", "--filter", `label=com.docker.compose.project=${project}`, "--format", "{{.Names}}"),
    ).toContain(`${project}-app-1`);
    const stateDir = join(dir, "state-discover");
    await mkdir(stateDir);
    const { stacks, plan } = await prepareQuiesce({ engine, stateDir }, { projects: [project] });
    const st = stacks[0]!;
    expect(st.dependsOnSource).toBe("label");
    expect(st.composeVersion).toMatch(/^2\./);
    expect(st.configFiles).toEqual(files);
    expect(st.environmentFiles).toEqual([join(dir, "prod.env")]);
    expect(Object.fromEntries(st.services.map((s) => [s.name, s.dependsOn]))).toEqual({
      adminer: [],
      app: ["db", "migrate"],
      cache: [],
      db: [],
      migrate: [],
      proxy: ["app"],
      worker: [],
    });
    // The one-off is no service's container; the exited init service is in the plan but left alone.
    const planned = plan.levels.flat();
    const names = planned.flatMap((s) => [...s.containers, ...s.leftAlone].map((c) => c.name));
    expect(names).toContain(`${project}-app-1`);
    expect(names).not.toContain(`${project}-oneoff`);
    expect(planned.find((s) => s.service === "migrate")?.containers ?? []).toEqual([]);
  });

  it("quiesce in dependency order and resume exactly what ran: not the finished init service, not the one-off", {
    timeout: 120_000,
  }, async () => {
    const stateDir = join(dir, "state-quiesce");
    await mkdir(stateDir);
    const before = await states();
    const rec = await recordEvents(project);
    try {
      const { plan } = await prepareQuiesce({ engine, stateDir }, { projects: [project] });
      const { handle } = await quiesceStacks({ engine, stateDir }, { backupId: "b-v2", plan });
      const down = await states();
      expect(Object.values(down).every((s) => s === "exited")).toBe(true);
      const report = await handle.resume();
      expect(report.finished).toBe(true);
      expect(report.resumed.map((r) => r.service).sort()).toEqual([
        "adminer",
        "app",
        "cache",
        "db",
        "proxy",
        "worker",
      ]);
    } finally {
      rec.stop();
    }
    expect(await states()).toEqual(before);
    expect(await docker("inspect", "-f", "{{.State.Status}}", `${project}-oneoff`)).toBe("running");
    const stops = orderOf(rec.events, "die");
    const starts = orderOf(rec.events, "start");
    expect(stops.indexOf("proxy")).toBeLessThan(stops.indexOf("app"));
    expect(stops.indexOf("app")).toBeLessThan(stops.indexOf("db"));
    expect(starts.indexOf("db")).toBeLessThan(starts.indexOf("app"));
    expect(starts.indexOf("app")).toBeLessThan(starts.indexOf("proxy"));
    expect(starts).not.toContain("migrate");
  });

  it("come back after a restore with the same files and env file, and exactly the profiled services that ran", {
    timeout: 180_000,
  }, async () => {
    const stateDir = join(dir, "state-restore");
    await mkdir(stateDir);
    // A maintenance job that ran once and is gone by the time of the backup: not brought back.
    await composeV2("--env-file", join(dir, "prod.env"), "up", "-d", "oldjob");
    await prepareQuiesce({ engine, stateDir }, { projects: [project] });
    await docker("rm", "-f", `${project}-oldjob-1`);
    await prepareQuiesce({ engine, stateDir }, { projects: [project] }); // the registry a backup leaves
    // A restored copy whose engine starts empty: only the registry and the files are left.
    await forceRemoveProject(project);
    const outcomes = await bringStacksUp({ engine, stateDir, log: silentLogger() });
    expect(outcomes).toEqual([{ project, outcome: "started" }]);
    expect(await states()).toEqual(RAN);
    expect(await docker("exec", `${project}-app-1`, "sh", "-c", "echo $GREETING")).toBe("from-prod-env");
    expect(await docker("inspect", "-f", "{{.State.ExitCode}}", `${project}-migrate-1`)).toBe("0");
  });

  it("do not come back misconfigured when an env file they were started with is gone", {
    timeout: 120_000,
  }, async () => {
    const stateDir = join(dir, "state-envfile");
    await mkdir(stateDir);
    await prepareQuiesce({ engine, stateDir }, { projects: [project] });
    await forceRemoveProject(project);
    await rm(join(dir, "prod.env"));
    const outcomes = await bringStacksUp({ engine, stateDir, log: silentLogger() });
    expect(outcomes).toEqual([
      {
        project,
        outcome: "failed",
        message: `env file ${join(dir, "prod.env")} does not exist (the stack was started with it)`,
      },
    ]);
    expect(await states()).toEqual({});
  });
});
