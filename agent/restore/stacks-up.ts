import { access, readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import type { EventOf } from "@felhom/protocol";
import { type ComposeTool, composeUp, detectCompose } from "../docker/compose-cli.ts";
import type { DockerEngine } from "../docker/docker-engine.ts";
import { ComposeFailedError } from "../docker/errors.ts";
import { describeError } from "../lib/errors.ts";
import { outputTailForReport } from "../lib/report-text.ts";
import type { Logger } from "../log/logger.ts";
import { isOneOff } from "../quiesce/stack-facts.ts";
import { type RegisteredStack, StackRegistry } from "../quiesce/stack-registry.ts";
import { statePaths } from "../state/paths.ts";
import { profiledServices } from "./compose-profiles.ts";
import { stackResources, stackStartOrder } from "./stack-order.ts";

export type StackOutcome = EventOf<"restore.detected">["stacks"][number];

export interface StacksUpDeps {
  engine: Pick<DockerEngine, "listComposeContainers" | "inspect" | "socketPath">;
  stateDir: string;
  log: Logger;
  /** config docker.projects: only these stacks are the agent's (undefined: every remembered one). */
  configuredProjects?: string[] | undefined;
  /** How long to wait for healthchecks after each `up -d`. @default 120 s */
  healthTimeoutMs?: number;
  composeTimeoutMs?: number;
  /** Test seam for the tool; production detects it (v2 plugin first, v1 where that is what the guest has). */
  compose?: ComposeTool;
}

/**
 * `compose up -d` for every remembered stack (the registry in the state dir), stacks that others need
 * first, each waited for until its healthchecks pass. A stack already running is left alone; one that
 * fails does not stop the others. `only` limits it to named projects (the hub's `stacks.up`).
 */
export async function bringStacksUp(deps: StacksUpDeps, only?: string[]): Promise<StackOutcome[]> {
  const registry = await StackRegistry.load(statePaths(deps.stateDir).stackRegistry);
  const known = registry.stacks.filter(
    (s) => deps.configuredProjects === undefined || deps.configuredProjects.includes(s.project),
  );
  const outcomes: StackOutcome[] = [];
  for (const name of only ?? []) {
    if (!known.some((s) => s.project === name))
      outcomes.push({ project: name, outcome: "skipped", message: "not a stack this agent remembers" });
  }
  const wanted = known.filter((s) => only === undefined || only.includes(s.project));
  if (wanted.length === 0) return outcomes;

  let tool: ComposeTool;
  try {
    tool = deps.compose ?? (await detectCompose({ dockerSocket: deps.engine.socketPath }));
  } catch (err) {
    return [
      ...outcomes,
      ...wanted.map((s) => ({ project: s.project, outcome: "failed" as const, message: describeError(err) })),
    ];
  }
  const texts = new Map(
    await Promise.all(wanted.map(async (s) => [s.project, await readTexts(filesOf(s))] as const)),
  );
  const resources = wanted.map((s) => stackResources(s.project, texts.get(s.project)!));
  const byName = new Map(wanted.map((s) => [s.project, s]));
  for (const level of stackStartOrder(resources)) {
    for (const project of level) {
      const outcome = await upOne(deps, tool, byName.get(project)!, texts.get(project)!);
      deps.log[outcome.outcome === "failed" ? "error" : "info"](
        { project, outcome: outcome.outcome, message: outcome.message },
        "stack after restore",
      );
      outcomes.push(outcome);
    }
  }
  return outcomes;
}

async function upOne(
  deps: StacksUpDeps,
  tool: ComposeTool,
  stack: RegisteredStack,
  composeTexts: string[],
): Promise<StackOutcome> {
  const { project } = stack;
  try {
    if (await allRunning(deps, stack)) return { project, outcome: "already-running" };
    const files = filesOf(stack);
    if (files.length === 0)
      return { project, outcome: "failed", message: "the registry holds no compose file for it" };
    for (const f of files) {
      if (!(await exists(f)))
        return { project, outcome: "failed", message: `compose file ${f} does not exist` };
    }
    const envProblem = await environmentFileProblem(stack.environmentFiles);
    if (envProblem) return { project, outcome: "failed", message: envProblem };
    // The same files and env files the stack was started with: a plain `up -d` brings the services without
    // a profile; the profiled ones that ran are named in a second one (compose has no label for profiles).
    const composeProject = {
      project,
      workingDir: stack.workingDir,
      configFiles: stack.configFiles,
      environmentFiles: stack.environmentFiles,
    };
    const opts = { timeoutMs: deps.composeTimeoutMs ?? 300_000 };
    await composeUp(tool, composeProject, opts);
    const ran = Object.entries(stack.services)
      .filter(([, s]) => s.lastSeen !== null && s.lastSeen === stack.lastSeen)
      .map(([name]) => name);
    const profiled = profiledServices(composeTexts, ran);
    if (profiled.length > 0) await composeUp(tool, composeProject, { ...opts, services: profiled });
    const unhealthy = await waitHealthy(deps, project, deps.healthTimeoutMs ?? 120_000);
    return unhealthy ? { project, outcome: "failed", message: unhealthy } : { project, outcome: "started" };
  } catch (err) {
    // compose's own words say why (a missing image, a port taken…): the end of its output goes with it,
    // bounded and redacted like a hook's.
    const output = err instanceof ComposeFailedError ? outputTailForReport(err.output) : "";
    const message = output ? `${describeError(err)}: ${output}` : describeError(err);
    return { project, outcome: "failed", message: message.slice(0, 2000) };
  }
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * Env files are checked like the compose files: without one, compose would refuse, or worse, interpolate
 * empty values into a stack that then starts misconfigured. One that was a pipe (`--env-file <(sops -d …)`)
 * cannot be read again by anyone but the admin.
 */
async function environmentFileProblem(files: string[]): Promise<string | undefined> {
  for (const f of files) {
    if (f.startsWith("/dev/fd/") || f.startsWith("/proc/"))
      return `the stack was started with env file ${f}, a pipe that cannot be read again: bring it up by hand with the same --env-file`;
    if (!(await exists(f))) return `env file ${f} does not exist (the stack was started with it)`;
  }
  return undefined;
}

async function allRunning(deps: StacksUpDeps, stack: RegisteredStack): Promise<boolean> {
  const containers = (await deps.engine.listComposeContainers([stack.project])).filter(
    (c) => !isOneOff(c.labels),
  );
  const services = Object.keys(stack.services);
  return (
    services.length > 0 &&
    services.every((svc) =>
      containers.some((c) => c.labels["com.docker.compose.service"] === svc && c.state === "running"),
    )
  );
}

/** undefined once every container with a healthcheck is healthy; otherwise what was still wrong at the deadline. */
async function waitHealthy(
  deps: StacksUpDeps,
  project: string,
  timeoutMs: number,
): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = (await deps.engine.listComposeContainers([project])).filter((c) => !isOneOff(c.labels));
    const details = await Promise.all(list.map((c) => deps.engine.inspect(c.id)));
    // Only healthchecks are waited for: a one-shot service (migrations) may exit by design.
    const waiting = details.filter((d) => d.hasHealthcheck && d.health !== "healthy");
    if (waiting.length === 0) return undefined;
    if (Date.now() >= deadline) {
      return `not healthy after ${Math.round(timeoutMs / 1000)} s: ${waiting
        .map((d) => `${d.name} (${d.health ?? d.state})`)
        .join(", ")}`;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function filesOf(stack: RegisteredStack): string[] {
  return stack.configFiles.map((f) => (isAbsolute(f) ? f : resolve(stack.workingDir, f)));
}

async function readTexts(files: string[]): Promise<string[]> {
  const texts = await Promise.all(files.map((f) => readFile(f, "utf8").catch(() => undefined)));
  return texts.filter((t): t is string => t !== undefined);
}
