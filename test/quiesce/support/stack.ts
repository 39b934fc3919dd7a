import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { composeArgv } from "../../support/compose.ts";

/**
 * Runs the fixture stack (test/fixtures/compose/stack) under a unique compose v1 project, with a per-test
 * override file for labels and data under a temp dir, and tears it all down again.
 */

export const FIXTURE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../fixtures/compose/stack/docker-compose.yml",
);
export const docker = new Docker();

export interface TestStack {
  project: string;
  dir: string;
  stateDir: string;
  files: string[];
  env: NodeJS.ProcessEnv;
  compose(...args: string[]): string;
  /** Container name → id for every container of the project. */
  containers(): Promise<Map<string, StackContainer>>;
  /** A service's (first) container, whatever the compose version names it. */
  service(name: string): Promise<StackContainer & { name: string }>;
  down(): Promise<void>;
}

export interface StackContainer {
  id: string;
  service: string;
  state: string;
}

export async function startStack(override: string): Promise<TestStack> {
  const project = `fq${randomBytes(4).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), `felhom-${project}-`));
  const stateDir = join(dir, "state");
  await mkdir(join(dir, "app"), { recursive: true });
  const overrideFile = join(dir, "override.yml");
  await writeFile(overrideFile, override);
  const files = [FIXTURE, overrideFile];
  const env = { ...process.env, FELHOM_DATA: dir };
  const compose = (...args: string[]): string => {
    const [cmd, ...pre] = composeArgv;
    const r = spawnSync(cmd!, [...pre, "-p", project, ...files.flatMap((f) => ["-f", f]), ...args], {
      env,
      encoding: "utf8",
      timeout: 180_000,
    });
    if (r.status !== 0)
      throw new Error(`${composeArgv.join(" ")} ${args.join(" ")} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const stack: TestStack = {
    project,
    dir,
    stateDir,
    files,
    env,
    compose,
    async containers() {
      const list = await docker.listContainers({
        all: true,
        filters: { label: [`com.docker.compose.project=${project}`] },
      });
      return new Map(
        list.map((c) => [
          c.Names[0]!.replace(/^\//, ""),
          { id: c.Id, service: c.Labels["com.docker.compose.service"]!, state: c.State },
        ]),
      );
    },
    async service(name) {
      const all = [...(await stack.containers())].filter(([, c]) => c.service === name).sort();
      const first = all[0];
      if (!first) throw new Error(`no container of service ${name} in compose project ${project}`);
      return { name: first[0], ...first[1] };
    },
    async down() {
      try {
        compose("down", "-v", "--remove-orphans", "-t", "1");
      } catch {
        // compose can trip over an engine that is still settling (after the dockerd restart test); whatever
        // it left behind is removed by label so that no test leaks a container.
        await forceRemoveProject(project);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    compose("up", "-d");
    await waitFor(async () => {
      const db = await stack.service("db");
      const info = await docker.getContainer(db.id).inspect();
      return info.State.Health?.Status === "healthy";
    }, "db healthy");
  } catch (err) {
    await stack.down().catch(() => undefined);
    throw err;
  }
  return stack;
}

/** Every container (one-offs too) and network of a compose project, removed through the engine. */
export async function forceRemoveProject(project: string): Promise<void> {
  const label = [`com.docker.compose.project=${project}`];
  const list = await docker.listContainers({ all: true, filters: { label } });
  await Promise.allSettled(list.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  const nets = await docker.listNetworks({ filters: { label } });
  await Promise.allSettled(nets.map((n) => docker.getNetwork(n.Id).remove()));
}

export async function waitFor(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 120_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface ContainerEvent {
  action: string;
  service: string;
  name: string;
  /** For kill events: the signal number as a string. */
  signal: string | undefined;
}

/** Subscribes to the engine's container events of one project; `stop()` ends the stream. */
export async function recordEvents(project: string): Promise<{ events: ContainerEvent[]; stop(): void }> {
  const events: ContainerEvent[] = [];
  const stream = (await docker.getEvents({
    filters: { type: ["container"], label: [`com.docker.compose.project=${project}`] },
  })) as NodeJS.ReadableStream & { destroy(): void };
  let buf = "";
  stream.on("data", (chunk: Buffer) => {
    buf += chunk.toString("utf8");
    let nl = buf.indexOf("\n");
    while (nl >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      nl = buf.indexOf("\n");
      if (!line) continue;
      const e = JSON.parse(line) as { Action: string; Actor: { Attributes: Record<string, string> } };
      events.push({
        action: e.Action.split(":")[0]!,
        service: e.Actor.Attributes["com.docker.compose.service"] ?? "",
        name: e.Actor.Attributes.name ?? "",
        signal: e.Actor.Attributes.signal,
      });
    }
  });
  stream.on("error", () => undefined);
  return { events, stop: () => stream.destroy() };
}

/** Services in the order of their first `action` event. */
export function orderOf(events: ContainerEvent[], action: string): string[] {
  const seen: string[] = [];
  for (const e of events) if (e.action === action && !seen.includes(e.service)) seen.push(e.service);
  return seen;
}

export async function execIn(id: string, cmd: string[]): Promise<number> {
  const exec = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise<void>((r) => {
    stream.on("end", () => r());
    stream.on("close", () => r());
    stream.resume();
  });
  return (await exec.inspect()).ExitCode ?? -1;
}
