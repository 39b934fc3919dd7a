import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { backupViaDaemon } from "../../agent/app/control-socket.ts";
import { acquireDaemonLock, DaemonRunningError, daemonRunning } from "../../agent/app/daemon-lock.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { exited, waitForLine, writeOfflineConfig } from "../support/agent-cli.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;
const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill("SIGKILL");
    await exited(c);
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "felhom-daemon-lock-"));
  dirs.push(d);
  return d;
}

/** A process other than this one that takes the lock and says so, then waits to be killed. */
function holderProcess(stateDir: string): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "-e",
      `const { acquireDaemonLock } = await import("./agent/app/daemon-lock.ts");
       await acquireDaemonLock(${JSON.stringify(stateDir)});
       console.log("locked");
       setInterval(() => {}, 1000);`,
    ],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] },
  );
  children.push(child);
  return child;
}

describe("one daemon per state dir", { timeout: 60_000 }, () => {
  it("refuses a second holder while the first lives, and the kernel frees the lock when the first is killed", async () => {
    const stateDir = await tempDir();
    const holder = holderProcess(stateDir);
    await waitForLine(holder, /locked/);
    expect(await daemonRunning(stateDir)).toEqual({ pid: String(holder.pid) });
    const refused = await acquireDaemonLock(stateDir).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DaemonRunningError);
    expect((refused as Error).message).toContain(`pid ${holder.pid}`);

    holder.kill("SIGKILL"); // no clean-up code runs: only the kernel can let go
    await exited(holder);
    expect(await daemonRunning(stateDir)).toBeUndefined();
    const lock = await acquireDaemonLock(stateDir);
    expect(await daemonRunning(stateDir)).toEqual({ pid: String(process.pid) });
    await lock.release();
    expect(await daemonRunning(stateDir)).toBeUndefined();
  });

  it("makes the CLI refuse to run a backup itself when a daemon holds the state dir but its socket is gone", async () => {
    const stateDir = await tempDir();
    expect(await backupViaDaemon(stateDir, "snapshot", () => {})).toEqual({ kind: "no-daemon" });
    const holder = holderProcess(stateDir);
    await waitForLine(holder, /locked/);
    await expect(backupViaDaemon(stateDir, "snapshot", () => {})).rejects.toMatchObject({
      code: "daemon_unreachable",
      message: expect.stringContaining(`pid ${holder.pid}`),
    });
  });

  it("a second `felhom-guest run` exits 79 at once and leaves the first daemon's control socket alone", async () => {
    const dir = await tempDir();
    const stateDir = join(dir, "state");
    const config = await writeOfflineConfig(dir, {
      lines: ["docker:", `  socket: ${join(dir, "no-engine.sock")}`],
      stateDir,
      pveRequestTimeoutSeconds: 1,
    });
    await chmod(dir, 0o700);
    await mkdir(stateDir, { mode: 0o700 });
    const cli = ["--import", "tsx", "agent/cli/main.ts", "--config", config, "run"];
    const first = spawn(process.execPath, cli, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    children.push(first);
    // The control socket is bound before the start-up decision (which waits on PVE and Docker here).
    await expect
      .poll(
        () =>
          stat(statePaths(stateDir).controlSocket).then(
            () => true,
            () => false,
          ),
        {
          timeout: 30_000,
        },
      )
      .toBe(true);

    const second = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, cli, { cwd: repoRoot, timeout: 30_000 }, (err, _o, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ code: typeof code === "number" ? code : null, stderr });
      });
    });
    expect(second.code).toBe(79);
    expect(second.stderr).toContain(
      `another felhom-guest daemon (pid ${first.pid}) already runs for ${stateDir}`,
    );
    expect((await stat(statePaths(stateDir).controlSocket)).isSocket()).toBe(true);
    expect(first.exitCode).toBe(null);
  });
});
