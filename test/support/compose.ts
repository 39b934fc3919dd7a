import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Test setup talks to Docker through the CLI, independent of the agent's own adapters under test. */
export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run("/usr/bin/docker", args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

export async function compose(project: string, dir: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("docker-compose", ["-p", project, ...args], {
    cwd: dir,
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout.trim();
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
