import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli, writeOfflineConfig } from "../support/agent-cli.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/**
 * `felhom-guest run` with a config whose PVE and hub are never contacted: every case here must end before
 * anything is dialled. A daemon that does not exit is killed after a while and reported as `null`.
 */
async function runDaemon(options: {
  pveTls?: string;
  hubUrl?: string;
  hubCredentialMode?: number;
}): Promise<{ code: number | null; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), "felhom-run-"));
  dirs.push(dir);
  const config = await writeOfflineConfig(dir, { hubUrl: "ws://127.0.0.1:1/agent", ...options });
  return runCli(["--config", config, "run"]);
}

describe("felhom-guest run with a configuration only an edit can fix", { timeout: 60_000 }, () => {
  it("exits 78 naming hub.url when the hub URL is plain ws:// to another host", async () => {
    const r = await runDaemon({ hubUrl: "ws://192.0.2.10:8765/agent" });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/hub\.url: .*plain ws:\/\//);
  });

  it("exits 78 when pve.tls.ca_file cannot be read", async () => {
    const r = await runDaemon({ pveTls: "{ ca_file: /nonexistent/pve-root-ca.pem }" });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain("/nonexistent/pve-root-ca.pem");
  });

  it("exits 78 before dialling when the hub credential file is readable by group or others", async () => {
    const r = await runDaemon({ hubCredentialMode: 0o644 });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/hub credential file .* has mode 0644/);
    expect(r.stderr).not.toContain("hub-secret");
  });
});
