import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * The compose the Docker suites run on: the guests' v2 plugin, or v1 on the older platform's leg
 * (test/docker/leg.sh debian12 sets FELHOM_COMPOSE_LEG=v1 there).
 */
export const composeLeg: "v1" | "v2" = process.env.FELHOM_COMPOSE_LEG === "v1" ? "v1" : "v2";

/** How test setup runs compose: the plugin (a machine may have no `docker-compose` binary), or v1's binary. */
export const composeArgv: readonly string[] =
  composeLeg === "v1" ? ["docker-compose"] : ["/usr/bin/docker", "compose"];

/** Test setup talks to Docker through the CLI, independent of the agent's own adapters under test. */
export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run("/usr/bin/docker", args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

export async function compose(project: string, dir: string, ...args: string[]): Promise<string> {
  const [cmd, ...pre] = composeArgv;
  const { stdout } = await run(cmd!, [...pre, "-p", project, ...args], {
    cwd: dir,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.trim();
}

/**
 * `docker ps -a --format FORMAT` over a project's containers that are not one-offs (`compose run`), one line
 * each; `extra` narrows it further (e.g. one service).
 */
export async function projectContainerLines(
  project: string,
  format: string,
  ...extra: string[]
): Promise<string[]> {
  const out = await docker(
    "ps",
    "-a",
    "--filter",
    `label=com.docker.compose.project=${project}`,
    "--filter",
    "label=com.docker.compose.oneoff=False",
    ...extra.flatMap((label) => ["--filter", `label=${label}`]),
    "--format",
    format,
  );
  return out ? out.split("\n") : [];
}

/**
 * The name of a service's container: `<project>-<service>-1` under compose v2, `<project>_<service>_1` under
 * v1, so it is looked up by the labels both write.
 */
export async function serviceContainer(project: string, service: string): Promise<string> {
  const names = (
    await projectContainerLines(project, "{{.Names}}", `com.docker.compose.service=${service}`)
  ).sort();
  if (names.length === 0) throw new Error(`no container of service ${service} in compose project ${project}`);
  return names[0]!;
}

/** Ids of the project's containers that are running now. */
export async function runningContainers(project: string): Promise<string[]> {
  const out = await docker(
    "ps",
    "-q",
    "--no-trunc",
    "--filter",
    `label=com.docker.compose.project=${project}`,
  );
  return out ? out.split("\n").sort() : [];
}

export async function waitHealthy(container: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const status = await docker("inspect", "-f", "{{.State.Health.Status}}", container).catch(() => "");
    if (status === "healthy") return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`container ${container} did not become healthy in ${timeoutMs} ms`);
}

/** A container's output, stdout and stderr together (PostgreSQL logs to stderr). */
export async function containerLogs(container: string): Promise<string> {
  const { stdout, stderr } = await run("/usr/bin/docker", ["logs", container], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return `${stdout}${stderr}`;
}
