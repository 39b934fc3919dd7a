import { spawn } from "node:child_process";
import { type FileHandle, mkdir, open, readFile } from "node:fs/promises";
import { AgentError } from "../lib/errors.ts";
import { statePaths } from "../state/paths.ts";

/**
 * One daemon per state dir. A second `felhom-guest run` would unlink the first one's control socket and
 * share its outbox and journals; it must not get that far. The lock is a flock(2) on
 * `<state_dir>/daemon.lock`, which the kernel drops when the holder dies however it dies (SIGKILL, OOM),
 * so there is no stale lock to judge. Node has no flock binding and the agent ships no native addon: the
 * daemon opens the file and hands that open file to util-linux's flock(1) (Essential on Debian), which
 * locks it and exits. A flock belongs to the open file, not to a process, so the lock stays with the
 * daemon's descriptor until the daemon closes it or dies; Node opens files close-on-exec, so no child
 * (compose, hooks) inherits it.
 */

/** flock(1)'s exit code on a conflict (its -E): told apart from its own failures. */
const CONFLICT = 75;

/**
 * How long a starting daemon waits for the lock: a CLI that is checking for a daemon holds a shared lock
 * for a moment (daemonRunning), and must not make a daemon that starts at that instant give up.
 */
const ACQUIRE_TIMEOUT_SECONDS = 3;

/** Runs flock(1) on the open file `fh` (its fd 3); true when the lock was taken, false on a conflict. */
function flock(fh: FileHandle, args: string[]): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn("flock", ["--conflict-exit-code", String(CONFLICT), ...args, "3"], {
      stdio: ["ignore", "ignore", "pipe", fh.fd],
    });
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", (cause) =>
      reject(
        new AgentError("daemon_lock_failed", "cannot run flock(1) to lock the state dir", {
          hint: "install util-linux (it provides /usr/bin/flock)",
          cause,
        }),
      ),
    );
    child.on("exit", (code) => {
      if (code === 0) resolve(true);
      else if (code === CONFLICT) resolve(false);
      else
        reject(
          new AgentError("daemon_lock_failed", `flock(1) failed (${code}): ${stderr.trim()}`, {
            hint: "check that the state dir is on a local file system",
          }),
        );
    });
  });
}

/** The pid the holder wrote into the lock file, for the message; the lock itself does not depend on it. */
async function holderPid(path: string): Promise<string> {
  return (await readFile(path, "utf8").catch(() => "")).trim() || "?";
}

export class DaemonRunningError extends AgentError {
  constructor(stateDir: string, pid: string) {
    super("daemon_running", `another felhom-guest daemon (pid ${pid}) already runs for ${stateDir}`, {
      hint: "one daemon per guest: it is probably the systemd service (systemctl status felhom-guest); use the CLI commands beside it, or stop it first",
    });
  }
}

/**
 * Takes the daemon lock for the life of this process, or throws DaemonRunningError naming the holder.
 * `release()` (at a clean exit) closes the file, which drops the lock.
 */
export async function acquireDaemonLock(stateDir: string): Promise<{ release(): Promise<void> }> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const path = statePaths(stateDir).daemonLock;
  // Opened for writing without truncation: the pid is written only once the lock is ours.
  const fh = await open(path, "a+", 0o600);
  try {
    if (!(await flock(fh, ["--exclusive", "--timeout", String(ACQUIRE_TIMEOUT_SECONDS)]))) {
      throw new DaemonRunningError(stateDir, await holderPid(path));
    }
    await fh.truncate(0);
    await fh.write(`${process.pid}\n`, 0);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return { release: () => fh.close() };
}

/**
 * Whether a daemon holds the lock now, asked without waiting: a shared lock that cannot be had means an
 * exclusive holder. The CLI asks this when the control socket does not answer, so that a socket gone
 * missing beside a live daemon is never taken for "no daemon".
 */
export async function daemonRunning(stateDir: string): Promise<{ pid: string } | undefined> {
  const path = statePaths(stateDir).daemonLock;
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch {
    return undefined; // never locked: no daemon ever ran with this state dir
  }
  try {
    return (await flock(fh, ["--shared", "--nonblock"])) ? undefined : { pid: await holderPid(path) };
  } finally {
    await fh.close();
  }
}
