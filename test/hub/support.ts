import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Event } from "@felhom/protocol";
import { HubClient, type HubClientOptions, type StatusPayload } from "../../agent/hub/hub-client.ts";
import { startTestHub, type TestHub, type TestHubOptions } from "./test-hub.ts";

export { prng } from "../support/prng.ts";

/** Disposers run in reverse order by `cleanup()` (call it from afterEach). */
const leftovers: Array<() => Promise<unknown>> = [];

export async function cleanup(): Promise<void> {
  for (const dispose of leftovers.splice(0).reverse()) await dispose().catch(() => undefined);
}

export async function hubForTest(options: TestHubOptions = {}): Promise<TestHub> {
  const hub = await startTestHub(options);
  leftovers.push(() => hub.close());
  return hub;
}

/** A state dir with a 0600 credential file. */
export async function agentDir(
  credential = "test-credential",
): Promise<{ stateDir: string; credentialFile: string }> {
  const stateDir = await mkdtemp(join(tmpdir(), "felhom-hub-"));
  leftovers.push(() => rm(stateDir, { recursive: true, force: true }));
  const credentialFile = join(stateDir, "hub.credential");
  await writeFile(credentialFile, `${credential}\n`);
  await chmod(credentialFile, 0o600);
  return { stateDir, credentialFile };
}

export const AGENT_ID = "agent-under-test";

export function statusPayload(): StatusPayload {
  return {
    identity: { state: "verified", vmid: 101, node: "pve1", hostname: "guest-101" },
    agentVersion: "0.1.0-test",
    uptimeSeconds: 1,
    stacks: [],
    lastBackup: null,
    nextScheduledRun: null,
    runningOperation: null,
  };
}

/** Reconnect at once (tests are about behaviour, not about waiting). */
export const FAST = {
  backoff: { baseMs: 5, maxMs: 50 },
  authRejectedMs: 300_000,
  handshakeTimeoutMs: 2_000,
} as const;

export async function clientForTest(
  hub: TestHub,
  dir: { stateDir: string; credentialFile: string },
  overrides: Partial<HubClientOptions> = {},
): Promise<HubClient> {
  const client = await HubClient.open({
    url: hub.url,
    credentialFile: dir.credentialFile,
    stateDir: dir.stateDir,
    agentId: AGENT_ID,
    agentVersion: "0.1.0-test",
    outbox: { maxEvents: 50_000, maxBytes: 32 * 1024 * 1024 },
    statusIntervalSeconds: 3_600,
    statusProvider: async () => statusPayload(),
    handlers: {},
    ...overrides,
    tuning: { ...FAST, ...overrides.tuning },
  });
  leftovers.push(() => client.stop());
  return client;
}

export function phase(backupId: string, phase: "quiesce" | "submit" | "resume" | "report"): Event {
  return { kind: "backup.phase", backupId, mode: "snapshot", phase, trigger: { source: "schedule" } };
}

export function progress(backupId: string, percent: number): Event {
  return { kind: "backup.progress", backupId, phase: "follow", percent };
}

/** Non-gap, non-status events the hub stored, as [seq, kind] in arrival order. */
export function storedSeqs(hub: TestHub): number[] {
  return hub.events.filter((e) => e.event.kind !== "status").map((e) => e.seq);
}

export interface ChildAgent {
  /** Every JSON line the child printed so far. */
  lines: Array<Record<string, unknown>>;
  waitForLine(
    what: string,
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Writes one line to the child's stdin. */
  send(line: string): void;
  pid: number;
}

/**
 * Runs test/hub/agent-child.ts under tsx with `config` (or `script`, e.g. a compiled copy for the
 * benchmark, under plain node with `nodeArgs`); killed in cleanup if still alive.
 */
export function spawnChildAgent(
  config: Record<string, unknown>,
  script?: string,
  nodeArgs: string[] = [],
): ChildAgent {
  const args = script
    ? [...nodeArgs, script]
    : ["--import", "tsx", join(import.meta.dirname, "agent-child.ts")];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, FELHOM_TEST_AGENT: JSON.stringify(config) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin.on("error", () => undefined); // a line sent to a child that just died is not the test's failure
  const lines: Array<Record<string, unknown>> = [];
  let stderr = "";
  let buffer = "";
  child.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("utf8");
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not ours (a stray log line)
      }
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  leftovers.push(() => kill());
  return {
    lines,
    pid: child.pid!,
    kill,
    send: (line) => void child.stdin.write(`${line}\n`),
    async waitForLine(what, match, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find(match);
        if (found) return found;
        if (child.exitCode !== null)
          throw new Error(`child agent exited (${child.exitCode}) before ${what}: ${stderr}`);
        if (Date.now() > deadline)
          throw new Error(`timed out waiting for the child agent: ${what}; stderr: ${stderr}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}
