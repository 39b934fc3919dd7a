import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
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

const repoRoot = new URL("../../", import.meta.url).pathname;

/**
 * A config whose PVE (127.0.0.1:1, TLS unchecked) is never reached: for the CLI's checks that come before
 * or without PVE, and for runs that must end, or be judged, before anything is dialled. The hub section is
 * written when `hubUrl` is given; `state_dir` is created (`dir`/state) unless `stateDir` names another
 * path; `lines` adds top-level sections (not `state_dir`); `pveTls` replaces `pve.tls`;
 * `pveRequestTimeoutSeconds` sets `pve.request_timeout_seconds`. Its 0600 PVE token secret is
 * `dir`/pve.secret, the hub credential `dir`/hub.credential.
 */
export async function writeOfflineConfig(
  dir: string,
  o: {
    pveTls?: string;
    hubUrl?: string;
    hubCredential?: string;
    hubCredentialMode?: number;
    stateDir?: string;
    lines?: string[];
    pveRequestTimeoutSeconds?: number;
  } = {},
): Promise<string> {
  const pveSecret = join(dir, "pve.secret");
  await writeFile(pveSecret, "00000000-0000-0000-0000-000000000000\n", { mode: 0o600 });
  const credential = join(dir, "hub.credential");
  await writeFile(credential, `${o.hubCredential ?? "hub-secret"}\n`, { mode: o.hubCredentialMode ?? 0o600 });
  const stateDir = o.stateDir ?? join(dir, "state");
  if (o.stateDir === undefined) await mkdir(stateDir, { mode: 0o700 });
  const config = join(dir, "agent.yaml");
  await writeFile(
    config,
    [
      "pve:",
      "  url: https://127.0.0.1:1",
      '  token_id: "agent-101@pve!backup"',
      `  token_secret_file: ${pveSecret}`,
      `  tls: ${o.pveTls ?? "{ insecure: true }"}`,
      ...(o.pveRequestTimeoutSeconds ? [`  request_timeout_seconds: ${o.pveRequestTimeoutSeconds}`] : []),
      "backup:",
      "  storage: bk",
      ...(o.lines ?? []),
      ...(o.hubUrl ? ["hub:", `  url: ${o.hubUrl}`, `  credential_file: ${credential}`] : []),
      `state_dir: ${stateDir}`,
      "",
    ].join("\n"),
  );
  return config;
}

/** Runs `felhom-guest ARGS…` to its end (killed after 30 s: then `code` is null). */
export function runCli(
  args: string[],
  o: { uid?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "agent/cli/main.ts", ...args],
      { cwd: repoRoot, timeout: 30_000, ...(o.uid === undefined ? {} : { uid: o.uid, gid: o.uid }) },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: unknown }).code ?? null) : 0;
        resolve({ code: typeof code === "number" ? code : null, stdout, stderr });
      },
    );
  });
}

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
