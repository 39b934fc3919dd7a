import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";

/**
 * The Docker platform the tests and `npm start` stand on: an engine that answers and the local images that
 * test/docker/setup.sh builds (no registry is reachable). A newcomer's `npm test` / `npm start` on a fresh
 * Debian machine, as root, runs that setup itself; anywhere else it gets the exact command to run.
 */

export const SETUP_SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), "../docker/setup.sh");
export const LOCAL_IMAGES = [
  "local/busybox:1.35",
  "local/debian:bookworm",
  "local/postgres:15",
  "local/node:20",
];

/** What is missing, or undefined when the engine answers and every local image is there. */
export async function dockerPlatformProblem(): Promise<string | undefined> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (err) {
    return `no Docker engine answers on ${process.env.DOCKER_HOST ?? "/var/run/docker.sock"} (${(err as Error).message})`;
  }
  for (const image of LOCAL_IMAGES) {
    const present = await docker
      .getImage(image)
      .inspect()
      .then(
        () => true,
        () => false,
      );
    if (!present) return `the local image ${image} is missing`;
  }
  return undefined;
}

/**
 * Root on Debian with apt, and the local engine meant (no DOCKER_HOST: whoever points at another engine
 * wants that one, not a local install): setup.sh can install the engine from Debian's packages.
 */
export function canSetUpHere(): boolean {
  return (
    process.env.DOCKER_HOST === undefined &&
    process.getuid?.() === 0 &&
    existsSync("/etc/debian_version") &&
    existsSync("/usr/bin/apt-get")
  );
}

/**
 * Undefined once the platform is ready; otherwise why not and the command that fixes it. Runs setup.sh
 * (its step lines on stderr) when it can, announcing that in one line first.
 */
export async function ensureDockerPlatform(say: (line: string) => void): Promise<string | undefined> {
  const problem = await dockerPlatformProblem();
  if (!problem) return undefined;
  const where = relative(process.cwd(), SETUP_SCRIPT);
  const command = `bash ${where.startsWith("..") ? SETUP_SCRIPT : where}`;
  if (!canSetUpHere()) return `${problem}; as root on Debian, run: ${command}`;
  say(
    `${problem}: running ${command} first (Debian 13's docker.io and compose v2, dockerd, the local images; a few minutes on a fresh machine)`,
  );
  const code = await new Promise<number | null>((done) => {
    const child = spawn("bash", [SETUP_SCRIPT], { stdio: ["ignore", process.stderr, process.stderr] });
    child.on("exit", (c) => done(c));
    child.on("error", () => done(null));
  });
  if (code !== 0) return `${command} failed (exit ${code}); its output above says why`;
  return dockerPlatformProblem();
}
