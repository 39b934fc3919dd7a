import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AGENT_VERSION } from "../../agent/version.ts";
import { runCli, writeOfflineConfig } from "../support/agent-cli.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function offlineConfig(o: Parameters<typeof writeOfflineConfig>[1] = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "felhom-cli-"));
  dirs.push(dir);
  return writeOfflineConfig(dir, o);
}

/** A user that is not root: nobody. */
const NOBODY = 65534;

describe("the felhom-guest command line", { timeout: 60_000 }, () => {
  it("prints the version for --version, as for `version`", async () => {
    for (const args of [["--version"], ["version"]]) {
      const r = await runCli(args);
      expect(r).toMatchObject({ code: 0, stdout: `${AGENT_VERSION}\n`, stderr: "" });
    }
  });

  it("shows the usage for -h and --help on stdout, and a command's help for <command> -h", async () => {
    for (const args of [["-h"], ["--help"]]) {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^felhom-guest .*\n\nusage: felhom-guest/);
    }
    const r = await runCli(["backup", "-h"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: felhom-guest \[--config PATH\] backup \[--mode/);
  });

  it("writes usage errors to stderr and exits 2, leaving stdout empty", async () => {
    for (const args of [[], ["frobnicate"], ["status", "--no-such-option"]]) {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).not.toBe("");
    }
  });

  it.runIf(process.getuid?.() === 0)(
    "refuses a command that reads the config to another user with 77 (EX_NOPERM), before reading it",
    async () => {
      const r = await runCli(["--config", "/nonexistent/agent.yaml", "status"], { uid: NOBODY });
      expect(r.code).toBe(77);
      expect(r.stderr).toMatch(/must run as root/);
      expect(await runCli(["version"], { uid: NOBODY })).toMatchObject({
        code: 0,
        stdout: `${AGENT_VERSION}\n`,
      });
    },
  );

  it("exits 78 naming state_dir when the state directory does not exist", async () => {
    const config = await offlineConfig({ stateDir: "/nonexistent/felhom-state" });
    for (const command of ["run", "status"]) {
      const r = await runCli(["--config", config, command]);
      expect(r.code).toBe(78);
      expect(r.stderr).toMatch(/state_dir: \/nonexistent\/felhom-state does not exist/);
      expect(r.stderr).not.toMatch(/a bug/);
    }
  });

  it("names the example config where the package installs it", async () => {
    const r = await runCli(["--config", await offlineConfig({ pveTls: "{}" }), "status"]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain("/usr/share/doc/felhom-guest/examples/agent.yaml");
  });
});
