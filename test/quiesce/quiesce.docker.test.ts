import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { stringify } from "yaml";
import { composeUp, detectCompose } from "../../agent/docker/compose-cli.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import type { QuiesceFailedError } from "../../agent/quiesce/errors.ts";
import type { ResumeReport } from "../../agent/quiesce/executor.ts";
import { QuiesceJournal } from "../../agent/quiesce/journal.ts";
import { prepareQuiesce, quiesceStacks } from "../../agent/quiesce/quiesce-stacks.ts";
import { resumeFromJournal } from "../../agent/quiesce/resume-from-journal.ts";
import { StackRegistry } from "../../agent/quiesce/stack-registry.ts";
import { stackWarnings } from "../../agent/quiesce/stack-warnings.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { composeLeg } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import {
  docker,
  execIn,
  FIXTURE,
  orderOf,
  recordEvents,
  startStack,
  type TestStack,
  waitFor,
} from "./support/stack.ts";

const engine = new DockerEngine();
let stack: TestStack | undefined;
let runningBefore: string[] = [];

async function setup(
  services: Record<string, Record<string, unknown>> = {},
  extra: Record<string, unknown> = {},
): Promise<TestStack> {
  stack = await startStack(stringify({ version: "2.4", services, ...extra }));
  runningBefore = [...(await stack.containers())].filter(([, c]) => c.state === "running").map(([n]) => n);
  return stack;
}

const labels = (l: Record<string, string>) => ({ labels: l });

async function quiesceAll(s: TestStack, backupId = "b-test") {
  const deps = { engine, stateDir: s.stateDir };
  const prepared = await prepareQuiesce(deps, { projects: [s.project] });
  const { handle, journal } = await quiesceStacks(deps, { backupId, plan: prepared.plan });
  return { prepared, handle, journal };
}

async function stateOf(s: TestStack, service: string): Promise<string> {
  return (await s.service(service)).state;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const services = (r: { resumed: { service: string }[] }) => r.resumed.map((x) => x.service).sort();

afterEach(async () => {
  const s = stack;
  stack = undefined;
  if (!s) return;
  try {
    const now = await s.containers();
    for (const name of runningBefore)
      expect(now.get(name)?.state, `${name} must be running again`).toBe("running");
  } finally {
    await s.down();
  }
});

describeDocker("quiesce on the real engine", () => {
  it("discovers a compose stack with its edges (v1: from the compose files, v2: from the label), stop signal and healthcheck", async () => {
    const s = await setup();
    const { stacks, plan } = await prepareQuiesce(
      { engine, stateDir: s.stateDir },
      { projects: [s.project] },
    );
    expect(stacks).toHaveLength(1);
    const st = stacks[0]!;
    expect(st.dependsOnSource).toBe(composeLeg === "v1" ? "compose-file" : "label");
    expect(st.composeVersion).toMatch(composeLeg === "v1" ? /^1\.29\./ : /^2\./);
    expect(st.workingDir).toBe(join(FIXTURE, ".."));
    expect(st.configFiles).toHaveLength(2);
    expect(Object.fromEntries(st.services.map((x) => [x.name, x.dependsOn]))).toEqual({
      app: ["db"],
      db: [],
      proxy: ["app"],
    });
    const db = st.services.find((x) => x.name === "db")!.containers[0]!;
    expect(db).toMatchObject({ stopSignal: "SIGINT", hasHealthcheck: true, restartPolicy: "unless-stopped" });
    expect(plan.levels.map((l) => l.map((x) => x.service))).toEqual([["proxy"], ["app"], ["db"]]);
    const registry = await StackRegistry.load(statePaths(s.stateDir).stackRegistry);
    expect(registry.stack(s.project)?.services.app?.dependsOn).toEqual(["db"]);
  });

  it("measures named volume sizes and warns about a large named volume", async () => {
    const s = await setup({ app: { volumes: ["bulk:/bulk"] } }, { volumes: { bulk: {} } });
    const app = await s.service("app");
    expect(await execIn(app.id, ["dd", "if=/dev/zero", "of=/bulk/blob", "bs=1048576", "count=3"])).toBe(0);
    const sizes = await engine.volumeSizes();
    expect(sizes.get(`${s.project}_bulk`)).toBeGreaterThanOrEqual(3 * 1024 * 1024);
    const { stacks } = await prepareQuiesce({ engine, stateDir: s.stateDir }, { projects: [s.project] });
    const warnings = stackWarnings(stacks, { volumeSizes: sizes, largeVolumeBytes: 1024 * 1024 });
    expect(warnings.map((w) => `${w.code}:${w.service}`)).toEqual(["large_named_volume:app"]);
  });

  it("stops dependents first with each service's own stop signal and starts dependencies first, waiting for health", async () => {
    const s = await setup();
    const rec = await recordEvents(s.project);
    let report: ResumeReport;
    try {
      const { handle } = await quiesceAll(s);
      for (const svc of ["db", "app", "proxy"]) expect(await stateOf(s, svc)).toBe("exited");
      report = await handle.resume();
      await waitFor(async () => orderOf(rec.events, "start").length === 3, "three start events");
    } finally {
      rec.stop();
    }
    expect(orderOf(rec.events, "die")).toEqual(["proxy", "app", "db"]);
    expect(orderOf(rec.events, "start")).toEqual(["db", "app", "proxy"]);
    expect(rec.events.find((e) => e.service === "db" && e.action === "kill")?.signal).toBe("2");
    expect(report.failures).toEqual([]);
    expect(services(report)).toEqual(["app", "db", "proxy"]);
    expect(Object.keys(report.downtimeMs).sort()).toEqual(
      ["app", "db", "proxy"].map((x) => `${s.project}/${x}`),
    );
    const db = await s.service("db");
    expect((await docker.getContainer(db.id).inspect()).State.Health?.Status).toBe("healthy");
    expect((await QuiesceJournal.open(statePaths(s.stateDir).quiesceJournal))?.finished).toBe(true);
    const registry = await StackRegistry.load(statePaths(s.stateDir).stackRegistry);
    expect(registry.observedStopMs(s.project, "db")).toBeGreaterThan(0);
  });

  it("pauses and unpauses in dependency order and warns that a paused PostgreSQL is only crash-consistent", async () => {
    const pause = labels({ "felhom.quiesce": "pause" });
    const s = await setup({ db: pause, app: pause, proxy: pause });
    const rec = await recordEvents(s.project);
    try {
      const { handle, prepared } = await quiesceAll(s);
      expect(prepared.warnings.map((w) => `${w.code}:${w.service}`)).toContain(
        "crash_consistent_database:db",
      );
      for (const svc of ["db", "app", "proxy"]) expect(await stateOf(s, svc)).toBe("paused");
      const report = await handle.resume();
      expect(services(report)).toEqual(["app", "db", "proxy"]);
      await waitFor(async () => orderOf(rec.events, "unpause").length === 3, "three unpause events");
    } finally {
      rec.stop();
    }
    expect(orderOf(rec.events, "pause")).toEqual(["proxy", "app", "db"]);
    expect(orderOf(rec.events, "unpause")).toEqual(["db", "app", "proxy"]);
    expect(orderOf(rec.events, "die")).toEqual([]);
  });

  it("runs exec pre hooks inside the containers before the snapshot point and post hooks after, leaving them running", async () => {
    const s = await setup({
      db: labels({
        "felhom.quiesce": "exec",
        "felhom.quiesce.pre": '["psql", "-U", "postgres", "-c", "CHECKPOINT"]',
      }),
      app: labels({
        "felhom.quiesce": "exec",
        "felhom.quiesce.pre": "echo pre >> /data/hooks.log",
        "felhom.quiesce.post": "echo post >> /data/hooks.log",
      }),
      proxy: labels({ "felhom.quiesce": "none" }),
    });
    const { handle } = await quiesceAll(s);
    expect(await readFile(join(s.dir, "app", "hooks.log"), "utf8")).toBe("pre\n");
    for (const svc of ["db", "app", "proxy"]) expect(await stateOf(s, svc)).toBe("running");
    expect(handle.hooks.find((h) => h.service === "db")).toMatchObject({ phase: "pre", exitCode: 0 });
    expect(handle.hooks.find((h) => h.service === "db")!.output).toContain("CHECKPOINT");
    const report = await handle.resume();
    expect(await readFile(join(s.dir, "app", "hooks.log"), "utf8")).toBe("pre\npost\n");
    expect(report.hooks.map((h) => `${h.service}:${h.phase}:${h.exitCode}`)).toEqual(["app:post:0"]);
    expect(report.failures).toEqual([]);
  });

  it("leaves every service untouched with strategy none", async () => {
    const none = labels({ "felhom.quiesce": "none" });
    const s = await setup({ db: none, app: none, proxy: none });
    const rec = await recordEvents(s.project);
    try {
      const { handle, prepared } = await quiesceAll(s);
      expect(prepared.plan.levels).toEqual([]);
      expect(prepared.plan.untouched).toHaveLength(3);
      const report = await handle.resume();
      expect(report.resumed).toEqual([]);
    } finally {
      rec.stop();
    }
    expect(rec.events.filter((e) => ["kill", "die", "pause", "start"].includes(e.action))).toEqual([]);
  });

  it("aborts when a pre hook fails with on-error abort, resumes what was quiesced and still runs the post hooks", async () => {
    const s = await setup({
      proxy: labels({ "felhom.quiesce.post": "touch /tmp/proxy-post" }),
      app: labels({
        "felhom.quiesce.pre": "echo cannot flush; exit 3",
        "felhom.quiesce.post": "touch /tmp/app-post",
        "felhom.quiesce.on-error": "abort",
      }),
    });
    const rec = await recordEvents(s.project);
    let error: QuiesceFailedError | undefined;
    try {
      await quiesceAll(s).catch((err: QuiesceFailedError) => {
        error = err;
      });
      await waitFor(async () => orderOf(rec.events, "start").length === 1, "proxy restarted");
    } finally {
      rec.stop();
    }
    expect(error?.code).toBe("quiesce_failed");
    expect(error?.failures).toEqual([
      expect.objectContaining({ service: "app", action: "pre", code: "hook_failed" }),
    ]);
    expect(error?.failures[0]?.message).toContain("cannot flush");
    expect(services(error!.resumeReport as ResumeReport)).toEqual(["proxy"]);
    expect(orderOf(rec.events, "die")).toEqual(["proxy"]);
    expect(await execIn((await s.service("proxy")).id, ["test", "-f", "/tmp/proxy-post"])).toBe(0);
    expect(await execIn((await s.service("app")).id, ["test", "-f", "/tmp/app-post"])).toBe(0);
    expect((await QuiesceJournal.open(statePaths(s.stateDir).quiesceJournal))?.finished).toBe(true);
  });

  it("goes on when a pre hook fails with on-error continue and reports the failure", async () => {
    const s = await setup({
      app: labels({
        "felhom.quiesce.pre": "exit 3",
        "felhom.quiesce.post": "touch /tmp/app-post",
        "felhom.quiesce.on-error": "continue",
      }),
    });
    const { handle } = await quiesceAll(s);
    expect(handle.failures).toEqual([
      expect.objectContaining({ service: "app", action: "pre", code: "hook_failed" }),
    ]);
    for (const svc of ["db", "app", "proxy"]) expect(await stateOf(s, svc)).toBe("exited");
    const report = await handle.resume();
    expect(services(report)).toEqual(["app", "db", "proxy"]);
    expect(report.hooks.map((h) => `${h.service}:${h.phase}:${h.exitCode}`)).toEqual(["app:post:0"]);
  });

  it("kills a container that ignores SIGTERM after its grace period and starts it again", async () => {
    const s = await setup({
      proxy: { command: ["sh", "-c", "trap '' TERM; sleep 2147483647 & wait"], stop_grace_period: "2s" },
    });
    const rec = await recordEvents(s.project);
    try {
      const { handle, prepared } = await quiesceAll(s);
      expect(prepared.plan.levels[0]![0]).toMatchObject({ service: "proxy", stopGraceS: 2 });
      const proxy = await s.service("proxy");
      expect((await docker.getContainer(proxy.id).inspect()).State.ExitCode).toBe(137);
      await handle.resume();
    } finally {
      rec.stop();
    }
    const kills = rec.events.filter((e) => e.service === "proxy" && e.action === "kill").map((e) => e.signal);
    expect(kills).toEqual(["15", "9"]);
  });

  it("resumes by itself when the downtime deadline passes before the caller resumes", async () => {
    const s = await setup();
    const deps = { engine, stateDir: s.stateDir };
    const { plan } = await prepareQuiesce(deps, { projects: [s.project] });
    const { handle } = await quiesceStacks(deps, { backupId: "b-deadline", plan, downtimeDeadlineMs: 8_000 });
    await waitFor(
      async () =>
        (await s.containers()).size === 3 &&
        [...(await s.containers()).values()].every((c) => c.state === "running"),
      "the deadline to bring the stack back",
      120_000,
    );
    const report = await handle.resume();
    expect(report.trigger).toBe("deadline");
    expect(services(report)).toEqual(["app", "db", "proxy"]);
    expect((await QuiesceJournal.open(statePaths(s.stateDir).quiesceJournal))?.finished).toBe(true);
  });

  it("keeps the journal open when a container cannot be started again, so a later resumeFromJournal brings it back", async () => {
    const port = await freePort();
    const s = await setup({ proxy: { ports: [`127.0.0.1:${port}:8080`] } });
    const deps = { engine, stateDir: s.stateDir };
    const { plan } = await prepareQuiesce(deps, { projects: [s.project] });
    const { handle } = await quiesceStacks(deps, { backupId: "b-blocked", plan });
    // Something else takes the proxy's published port while it is down, so its start fails.
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, "127.0.0.1", r));
    let report: ResumeReport;
    try {
      report = await handle.resume();
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    expect(report.finished).toBe(false);
    expect(report.failures).toEqual([
      expect.objectContaining({ service: "proxy", action: "start", code: "docker_failed" }),
    ]);
    expect(services(report)).toEqual(["app", "db"]);
    expect((await QuiesceJournal.open(statePaths(s.stateDir).quiesceJournal))?.finished).toBe(false);

    const retried = await resumeFromJournal(statePaths(s.stateDir).quiesceJournal, engine);
    expect(retried?.finished).toBe(true);
    expect(retried?.resumed.map((r) => r.service)).toEqual(["proxy"]);
  });

  it("leaves a service that was stopped before the backup stopped", async () => {
    const s = await setup();
    s.compose("stop", "proxy");
    const proxy = (await s.service("proxy")).name;
    runningBefore = runningBefore.filter((n) => n !== proxy);
    const rec = await recordEvents(s.project);
    try {
      const { handle, prepared } = await quiesceAll(s);
      expect(prepared.plan.levels[0]![0]!.leftAlone.map((c) => c.priorState)).toEqual(["exited"]);
      const report = await handle.resume();
      expect(services(report)).toEqual(["app", "db"]);
      await waitFor(async () => orderOf(rec.events, "start").length === 2, "two start events");
    } finally {
      rec.stop();
    }
    expect(orderOf(rec.events, "start")).toEqual(["db", "app"]);
    expect(await stateOf(s, "proxy")).toBe("exited");
  });

  it("brings a removed stack back with compose up -d from the stack registry", async () => {
    const s = await setup();
    await prepareQuiesce({ engine, stateDir: s.stateDir }, { projects: [s.project] });
    s.compose("rm", "-s", "-f");
    expect((await s.containers()).size).toBe(0);
    const tool = await detectCompose({ dockerBin: "/usr/bin/docker" });
    expect(tool.kind).toBe(composeLeg);
    const registered = (await StackRegistry.load(statePaths(s.stateDir).stackRegistry)).stack(s.project)!;
    const result = await composeUp(tool, registered, { env: { FELHOM_DATA: s.dir }, timeoutMs: 120_000 });
    expect(result.output).toContain(s.project);
    const now = await s.containers();
    expect([...now.values()].map((c) => `${c.service}:${c.state}`).sort()).toEqual([
      "app:running",
      "db:running",
      "proxy:running",
    ]);
  });

  it("reports compose up -d of a stack whose files are gone as compose_failed with the output", async () => {
    const tool = await detectCompose({ dockerBin: "/usr/bin/docker" });
    await expect(
      composeUp(tool, {
        project: "fqmissing",
        workingDir: "/tmp",
        configFiles: ["/nonexistent/compose.yml"],
      }),
    ).rejects.toMatchObject({ code: "compose_failed", exitCode: expect.any(Number) });
  });
});
