import { chmod, chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
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
  configMode?: number;
  /** chown the config / the PVE secret to this uid (the test runs as root). */
  configOwner?: number;
  pveSecretOwner?: number;
}): Promise<{ code: number | null; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), "felhom-run-"));
  dirs.push(dir);
  const { configMode, configOwner, pveSecretOwner, ...config } = options;
  const file = await writeOfflineConfig(dir, { hubUrl: "ws://127.0.0.1:1/agent", ...config });
  if (configMode !== undefined) await chmod(file, configMode);
  if (configOwner !== undefined) await chown(file, configOwner, configOwner);
  if (pveSecretOwner !== undefined) await chown(join(dir, "pve.secret"), pveSecretOwner, pveSecretOwner);
  return runCli(["--config", file, "run"]);
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

  it("exits 78 when others can write pve.tls.ca_file (it decides which server gets the token)", async () => {
    const ca = join(await mkdtemp(join(tmpdir(), "felhom-ca-")), "pve-root-ca.pem");
    dirs.push(dirname(ca));
    await writeFile(ca, "-----BEGIN CERTIFICATE-----\n", { mode: 0o666 });
    await chmod(ca, 0o666);
    const r = await runDaemon({ pveTls: `{ ca_file: ${ca} }` });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`pve.tls.ca_file ${ca} has mode 0666`);
    expect(r.stderr).toContain(`run: chmod go-w ${ca}`);
  });

  it("exits 78 with the chmod to run when others can write the config file", async () => {
    const r = await runDaemon({ configMode: 0o666 });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/config file (\S+agent\.yaml) has mode 0666; .*run: chmod go-w \1/);
  });

  const asRoot = process.geteuid?.() === 0;
  it.skipIf(!asRoot)(
    "exits 78 with the chown to run when the config file belongs to another user",
    async () => {
      const r = await runDaemon({ configOwner: 65534 });
      expect(r.code).toBe(78);
      expect(r.stderr).toMatch(
        /config file (\S+agent\.yaml) is owned by uid 65534, not root.*run: chown root:root \1/,
      );
    },
  );

  it.skipIf(!asRoot)("exits 78 when the PVE token secret is 0600 but belongs to another user", async () => {
    const r = await runDaemon({ pveSecretOwner: 65534 });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(
      /PVE token secret file (\S+pve\.secret) is owned by uid 65534, not root.*run: chown root:root \1/,
    );
    expect(r.stderr).not.toContain("00000000-0000");
  });
});
