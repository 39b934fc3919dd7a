import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../hub/test-hub.ts";
import { runCli, writeOfflineConfig } from "../support/agent-cli.ts";

type Finding = { level: string; message: string; hint?: string };

let hub: TestHub | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await hub?.close();
  hub = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** `doctor --json` with an unreachable PVE (those findings are not the point here) and the test hub. */
async function doctor(o: Parameters<typeof writeOfflineConfig>[1] = {}) {
  const dir = await mkdtemp(join(tmpdir(), "felhom-doctor-hub-"));
  dirs.push(dir);
  const r = await runCli(["--config", await writeOfflineConfig(dir, o), "doctor", "--json"]);
  const findings = JSON.parse(r.stdout) as Finding[];
  return { code: r.code, findings, about: (what: RegExp) => findings.filter((f) => what.test(f.message)) };
}

describe("felhom-guest doctor: the hub and TLS", { timeout: 60_000 }, () => {
  it("dials the hub with the credential up to the upgrade and says it was accepted, without a hello", async () => {
    hub = await startTestHub({ credentials: ["doctor-credential"] });
    const { about } = await doctor({ hubUrl: hub.url, hubCredential: "doctor-credential" });
    expect(about(/^hub credential/)).toMatchObject([{ level: "ok" }]);
    expect(about(/^hub ws:/)).toMatchObject([{ level: "ok", message: /credential accepted/ }]);
    expect(hub.attempts.map((a) => a.outcome)).toEqual(["accepted"]);
    // A hello would make the hub replace the running daemon's socket (4409).
    expect(hub.hellos).toEqual([]);
  });

  it("fails when the hub refuses the credential, on the upgrade or with 4401 after it", async () => {
    for (const authRejection of ["http", "close"] as const) {
      hub = await startTestHub({ credentials: ["the-right-one"], authRejection });
      const { code, about } = await doctor({ hubUrl: hub.url, hubCredential: "a-wrong-one" });
      expect(code).toBe(1);
      expect(about(/^hub ws:/)).toMatchObject([
        { level: "error", message: /refused the credential|4401/, hint: /hub\.credential_file/ },
      ]);
      await hub.close();
      hub = undefined;
    }
  });

  it("fails a hub credential that run would refuse (mode 0644), without dialling", async () => {
    hub = await startTestHub({ credentials: ["doctor-credential"] });
    const { code, about } = await doctor({
      hubUrl: hub.url,
      hubCredential: "doctor-credential",
      hubCredentialMode: 0o644,
    });
    expect(code).toBe(1);
    expect(about(/^hub credential/)).toMatchObject([{ level: "error", message: /mode 0644/ }]);
    expect(JSON.stringify(about(/^hub/))).not.toContain("doctor-credential");
    expect(hub.attempts).toEqual([]);
  });

  it("warns about pve.tls.insecure", async () => {
    const { about } = await doctor();
    expect(about(/tls\.insecure/)).toMatchObject([{ level: "warn", hint: /fingerprint/ }]);
  });

  it("prints its report on stdout and exits 78 when the config is invalid", async () => {
    const { code, findings } = await doctor({ pveTls: "{}" });
    expect(code).toBe(78);
    expect(findings).toMatchObject([{ level: "error", message: /^config: .*pve\.tls/ }]);
  });
});
