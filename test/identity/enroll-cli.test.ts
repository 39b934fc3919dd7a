import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readLocalFacts } from "../../agent/identity/identity-service.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";

/** `felhom-guest enroll` as an operator types it, against the PVE simulator (no Docker needed). */
let sim: PveSimulator | undefined;
let dir: string | undefined;
afterEach(async () => {
  await sim?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  sim = dir = undefined;
});

const repoRoot = new URL("../../", import.meta.url).pathname;

function cli(args: string[], stdin = ""): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "agent/cli/main.ts", ...args], {
      cwd: repoRoot,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stdin.end(stdin);
    child.on("exit", (code) => resolve({ code, out }));
  });
}

async function setup() {
  sim = await startPveSimulator({ authFailureDelayMs: 50 });
  const local = readLocalFacts();
  const old = await selfScopedGuest(sim, { vmid: 101, hostname: local.hostname, hwaddr: local.macs[0]! });
  const own = await selfScopedGuest(sim, { vmid: 101, tokenName: "enrolled" });
  dir = await mkdtemp(join(tmpdir(), "felhom-enroll-cli-"));
  const stateDir = join(dir, "state");
  await mkdir(stateDir, { mode: 0o700 }); // as the package creates it
  const oldSecret = join(dir, "old.secret");
  await writeFile(oldSecret, old.secret, { mode: 0o600 });
  const config = join(dir, "agent.yaml");
  await writeFile(
    config,
    [
      "pve:",
      `  url: ${sim.url}`,
      `  token_id: "${old.tokenId}"`,
      `  token_secret_file: ${oldSecret}`,
      `  tls: { fingerprint: "${sim.fingerprint}" }`,
      "backup:",
      "  storage: bk",
      `state_dir: ${stateDir}`,
      "",
    ].join("\n"),
  );
  return { config, stateDir, own };
}

describe("felhom-guest enroll", () => {
  it("reads the secret from stdin, verifies it against PVE, and writes it 0600 where enrollment.json points", {
    timeout: 60_000,
  }, async () => {
    const { config, stateDir, own } = await setup();
    const r = await cli(
      ["--config", config, "enroll", "--vmid", "101", "--token-id", own.tokenId, "--token-secret-file", "-"],
      `${own.secret}\n`,
    );
    expect(r).toMatchObject({ code: 0, out: expect.stringMatching(/enrolled as CT 101 on pve1/) });
    expect(r.out).not.toContain(own.secret);
    const enrollment = JSON.parse(await readFile(statePaths(stateDir).enrollment, "utf8"));
    expect(enrollment).toMatchObject({ vmid: 101, tokenId: own.tokenId });
    expect((await stat(enrollment.tokenSecretFile)).mode & 0o777).toBe(0o600);
    expect((await readFile(enrollment.tokenSecretFile, "utf8")).trim()).toBe(own.secret);
  });

  it("prompts for the secret without echo at a terminal (nothing for the shell history)", {
    timeout: 60_000,
  }, async () => {
    const { config, stateDir, own } = await setup();
    const cmd = [process.execPath, "--import", "tsx", "agent/cli/main.ts", "--config", config, "enroll"]
      .concat(["--vmid", "101", "--token-id", `'${own.tokenId}'`, "--token-secret-file", "-"])
      .join(" ");
    // util-linux script(1) gives the CLI a pty, as an operator's terminal.
    const child = spawn("script", ["-qec", cmd, "/dev/null"], {
      cwd: repoRoot,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await expect.poll(() => out, { timeout: 30_000 }).toContain("PVE token secret (not shown): ");
    child.stdin.write(`${own.secret}\r`);
    expect(await exited).toBe(0);
    expect(out).toMatch(/enrolled as CT 101 on pve1/);
    expect(out).not.toContain(own.secret);
    const enrollment = JSON.parse(await readFile(statePaths(stateDir).enrollment, "utf8"));
    expect((await readFile(enrollment.tokenSecretFile, "utf8")).trim()).toBe(own.secret);
  });

  it("refuses a wrong secret, a secret file others can read, and missing arguments, writing nothing", {
    timeout: 60_000,
  }, async () => {
    const { config, stateDir, own } = await setup();
    const base = ["--config", config, "enroll", "--vmid", "101", "--token-id", own.tokenId];
    const wrong = await cli([...base, "--token-secret-file", "-"], "not-the-secret");
    expect(wrong.code).toBe(1);
    expect(wrong.out).toMatch(/401|refused the API token/);

    const readable = join(dir!, "readable.secret");
    await writeFile(readable, own.secret);
    await chmod(readable, 0o644);
    const loose = await cli([...base, "--token-secret-file", readable]);
    expect(loose.code).toBe(78);
    expect(loose.out).toMatch(/must not be readable by group or others/);

    expect(
      (await cli(["--config", config, "enroll", "--token-id", own.tokenId, "--token-secret-file", "-"])).code,
    ).toBe(2);
    await expect(stat(statePaths(stateDir).enrollment)).rejects.toThrow();
  });
});
