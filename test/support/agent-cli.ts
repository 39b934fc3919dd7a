import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { LocalFactsOverride } from "./cli-with-local-facts.ts";
import type { GuestHarness } from "./guest-harness.ts";

/**
 * The agent as an operator runs it: the real CLI in its own process, with a config file that points at
 * the harness's simulator, token and guest.
 */
export async function writeAgentConfig(
  h: GuestHarness,
  dir: string,
  extra: string[] = [],
  hub?: { url: string; credential: string },
): Promise<string> {
  const secretFile = join(dir, "pve-token.secret");
  await writeFile(secretFile, h.self.secret, { mode: 0o600 });
  const hubLines: string[] = [];
  if (hub) {
    const credentialFile = join(dir, "hub.credential");
    await writeFile(credentialFile, hub.credential, { mode: 0o600 });
    hubLines.push("hub:", `  url: ${hub.url}`, `  credential_file: ${credentialFile}`);
  }
  const configFile = join(dir, "agent.yaml");
  await writeFile(
    configFile,
    [
      "pve:",
      `  url: ${h.sim.url}`,
      `  token_id: "${h.self.tokenId}"`,
      `  token_secret_file: ${secretFile}`,
      `  tls: { fingerprint: "${h.sim.fingerprint}" }`,
      "backup:",
      "  storage: bk",
      ...extra,
      "docker:",
      `  projects: [${h.project}]   # only the demo stack: other stacks on this machine are not the guest's`,
      ...hubLines,
      `state_dir: ${h.stateDir}`,
      "",
    ].join("\n"),
  );
  return configFile;
}

/**
 * A config whose PVE is never reached (127.0.0.1:1) with its 0600 token secret (`dir`/pve.secret), in
 * `dir`, for CLI runs that must end, or be judged, before anything is dialled; `lines` adds top-level
 * sections, `tls` replaces `pve.tls`.
 */
export async function writeOfflineConfig(
  dir: string,
  lines: string[],
  tls = "{ insecure: true }",
): Promise<string> {
  const secret = join(dir, "pve.secret");
  await writeFile(secret, "00000000-0000-0000-0000-000000000000\n", { mode: 0o600 });
  const config = join(dir, "agent.yaml");
  await writeFile(
    config,
    [
      "pve:",
      "  url: https://127.0.0.1:1",
      '  token_id: "agent-101@pve!backup"',
      `  token_secret_file: ${secret}`,
      `  tls: ${tls}`,
      "  request_timeout_seconds: 1",
      "backup:",
      "  storage: bk",
      ...lines,
      "",
    ].join("\n"),
  );
  return config;
}

const repoRoot = new URL("../../", import.meta.url).pathname;

/**
 * Starts `felhom-guest --config FILE ARGS…`; stdout is piped so a test can watch the progress. With
 * `localFacts`, the child stands for another guest on this machine (its own MACs, hostname or boot time),
 * through the test-only entry point.
 */
export function spawnAgent(
  configFile: string,
  args: string[],
  stdout: "pipe" | "inherit" = "pipe",
  localFacts?: LocalFactsOverride,
): ChildProcess {
  const entry =
    localFacts === undefined
      ? ["agent/cli/main.ts"]
      : ["test/support/cli-with-local-facts.ts", JSON.stringify(localFacts)];
  return spawn(process.execPath, ["--import", "tsx", ...entry, "--config", configFile, ...args], {
    cwd: repoRoot,
    stdio: ["ignore", stdout, stdout === "inherit" ? "inherit" : "pipe"],
  });
}

/** Collects the child's stdout from now on; the returned function gives what came so far. */
export function capturedStdout(child: ChildProcess): () => string {
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  return () => out;
}

/** Resolves when a line of the child's stdout matches. */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(
      () => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms:\n${buffered}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const line = buffered.split("\n").find((l) => pattern.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        resolve(line);
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited (${code}) before a line matched ${pattern}:\n${buffered}`));
    });
  });
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}
