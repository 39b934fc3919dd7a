import { execFileSync, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, expect, it } from "vitest";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { prepareQuiesce, quiesceStacks } from "../../agent/quiesce/quiesce-stacks.ts";
import { describeDocker } from "../support/docker.ts";
import { startStack, type TestStack, waitFor } from "./support/stack.ts";

/**
 * Restarts the shared engine: kills the running dockerd and brings it back with test/docker/setup.sh, the
 * same way CI starts it. afterAll runs setup.sh again so the daemon is up whatever happened here.
 */
const SETUP = join(dirname(fileURLToPath(import.meta.url)), "..", "docker", "setup.sh");
let stack: TestStack | undefined;

function dockerdPid(): number | undefined {
  try {
    // This network namespace's dockerd only: a side leg's (test/docker/leg.sh) runs in its own.
    const out = execFileSync("pgrep", ["--ns", String(process.pid), "--nslist", "net", "-x", "dockerd"], {
      encoding: "utf8",
    }).trim();
    return out ? Number(out.split("\n")[0]) : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Detached, so the new dockerd is not in the test worker's process group. */
function runSetup(): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn("bash", [SETUP], { stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    p.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    p.stderr!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`setup.sh exited ${code}: ${out}`))));
  });
}

afterAll(async () => {
  await runSetup();
}, 180_000);

afterEach(async () => {
  const s = stack;
  stack = undefined;
  if (!s) return;
  try {
    const now = await s.containers();
    expect([...now.values()].map((c) => `${c.service}:${c.state}`).sort()).toEqual([
      "app:running",
      "db:running",
      "proxy:running",
    ]);
  } finally {
    await s.down();
  }
});

describeDocker("dockerd restarted while stacks are quiesced", () => {
  it("keeps resuming until the engine is back and then starts every quiesced container", async () => {
    const s = await startStack("version: '2.4'\nservices: {}\n");
    stack = s;
    const engine = new DockerEngine();
    const deps = { engine, stateDir: s.stateDir };
    const { plan } = await prepareQuiesce(deps, { projects: [s.project] });
    const { handle } = await quiesceStacks(deps, { backupId: "b-dockerd", plan });

    const pid = dockerdPid();
    expect(pid).toBeDefined();
    process.kill(pid!, "SIGTERM");
    await waitFor(async () => !alive(pid!), "dockerd to exit", 60_000);

    // Resume starts while the engine is gone; it must wait for it instead of failing.
    const resumed = handle.resume();
    await runSetup();
    const report = await resumed;

    expect(report.failures).toEqual([]);
    expect(report.resumed.map((r) => r.service)).toEqual(["db", "app", "proxy"]);
  });
});
