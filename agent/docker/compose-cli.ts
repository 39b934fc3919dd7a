import { spawn } from "node:child_process";
import { isAbsolute, resolve } from "node:path";
import { ComposeFailedError, ComposeUnavailableError } from "./errors.ts";
import { TailBuffer } from "./tail-buffer.ts";

/**
 * Runs the compose CLI for a remembered stack (restore, stop-mode reboot). Always an argv array and never
 * a shell: project names, paths and service names come from container labels, which the agent does not
 * control.
 */

export interface ComposeTool {
  kind: "v2" | "v1";
  /** argv prefix: ["docker", "compose"] or ["docker-compose"]. */
  argv: string[];
  version: string;
  /** What every compose child gets on top of the agent's environment: DOCKER_HOST naming the agent's engine. */
  env: Record<string, string>;
}

export interface ComposeProject {
  project: string;
  workingDir: string;
  /** As recorded in the label; relative entries (compose v1 writes them) are resolved against workingDir. */
  configFiles: string[];
  /** `--env-file` each (compose v2 records them; v1 reads the project's `.env` only). */
  environmentFiles?: string[];
}

export interface ComposeRunOptions {
  timeoutMs?: number;
  maxOutputBytes?: number;
  /** Only these services (and what compose pulls in through depends_on). */
  services?: string[];
  /** Extra environment for variable interpolation in the compose files (compose also reads the project's .env). */
  env?: Record<string, string>;
}

export interface ComposeRunResult {
  output: string;
  truncated: boolean;
  durationMs: number;
}

const DEFAULT_TIMEOUT_MS = 300_000;
const DEFAULT_MAX_OUTPUT = 64 * 1024;
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Prefers the v2 plugin (`docker compose`), falls back to v1 (`docker-compose`). The `kind` comes from the
 * version the tool prints, not from how it was invoked: a `docker compose` shim can front v1.
 */
export async function detectCompose(
  options: {
    dockerBin?: string;
    composeV1Bin?: string;
    /** The engine's socket (config docker.socket): compose must talk to the engine the agent talks to. */
    dockerSocket?: string | undefined;
  } = {},
): Promise<ComposeTool> {
  const candidates = [[options.dockerBin ?? "docker", "compose"], [options.composeV1Bin ?? "docker-compose"]];
  const env: Record<string, string> = options.dockerSocket
    ? { DOCKER_HOST: `unix://${options.dockerSocket}` }
    : {};
  const failures: string[] = [];
  for (const argv of candidates) {
    try {
      const { output } = await run([...argv, "version", "--short"], process.cwd(), 20_000, 4096, env);
      const version = output.trim().replace(/^v/, "").split("\n")[0] ?? "";
      if (!/^\d+\.\d+/.test(version))
        throw new Error(`unexpected version output ${JSON.stringify(output.slice(0, 200))}`);
      return { kind: version.startsWith("1.") ? "v1" : "v2", argv, version, env };
    } catch (err) {
      failures.push(`${argv.join(" ")}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new ComposeUnavailableError(failures.join("; "));
}

/** The argv for `up -d` of a project; pure so that the exact command is unit-testable. */
export function composeUpArgv(tool: ComposeTool, project: ComposeProject, services: string[] = []): string[] {
  for (const s of services) {
    // compose v1 does not honour `--`, so a name that looks like an option must never reach argv.
    if (!SERVICE_NAME.test(s))
      throw new ComposeFailedError(`invalid compose service name ${JSON.stringify(s)}`, null, "");
  }
  const path = (f: string) => (isAbsolute(f) ? f : resolve(project.workingDir, f));
  return [
    ...tool.argv,
    "-p",
    project.project,
    ...project.configFiles.flatMap((f) => ["-f", path(f)]),
    ...(project.environmentFiles ?? []).flatMap((f) => ["--env-file", path(f)]),
    "up",
    "-d",
    ...services,
  ];
}

export async function composeUp(
  tool: ComposeTool,
  project: ComposeProject,
  options: ComposeRunOptions = {},
): Promise<ComposeRunResult> {
  const argv = composeUpArgv(tool, project, options.services);
  try {
    return await run(
      argv,
      project.workingDir,
      options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
      { ...tool.env, ...options.env },
    );
  } catch (err) {
    if (err instanceof RunError) {
      throw new ComposeFailedError(
        `\`compose up -d\` of project ${project.project} in ${project.workingDir} ${err.reason}`,
        err.exitCode,
        err.output,
        "the captured output says why; check that the compose files still exist at the recorded paths",
      );
    }
    throw err;
  }
}

class RunError extends Error {
  constructor(
    readonly reason: string,
    readonly exitCode: number | null,
    readonly output: string,
  ) {
    super(`${reason}${output ? `: ${output.slice(-500)}` : ""}`);
  }
}

function run(
  argv: string[],
  cwd: string,
  timeoutMs: number,
  maxOutputBytes: number,
  env: Record<string, string> = {},
): Promise<ComposeRunResult> {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const [cmd, ...args] = argv;
    // Its own process group: on timeout the whole tree goes (`docker compose` runs a plugin process that
    // would otherwise keep the pipes, and this promise, open).
    const child = spawn(cmd!, args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
      detached: true,
    });
    const killTree = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    const tail = new TailBuffer(maxOutputBytes);
    child.stdout.on("data", (c: Buffer) => tail.push(c));
    child.stderr.on("data", (c: Buffer) => tail.push(c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killTree("SIGTERM");
      setTimeout(() => killTree("SIGKILL"), 5_000).unref();
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new RunError(`could not be started (${err.message})`, null, tail.toString()));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const output = tail.toString();
      if (timedOut) reject(new RunError(`did not finish within ${timeoutMs} ms`, code, output));
      else if (code !== 0) reject(new RunError(`exited with ${code ?? signal}`, code, output));
      else resolvePromise({ output, truncated: tail.truncated, durationMs: Date.now() - started });
    });
  });
}
