import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LinkDrop } from "../../agent/hub/reconnect-decision.ts";
import { agentDir, cleanup, clientForTest, hubForTest, phase } from "./support.ts";

afterEach(cleanup);

let pki: string;
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: pki, stdio: "pipe" });

/** Two CAs, and a server certificate for 127.0.0.1 signed by the first. */
beforeAll(async () => {
  pki = await mkdtemp(join(tmpdir(), "felhom-hub-pki-"));
  for (const ca of ["ca", "other-ca"]) {
    openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${ca}`,
      "-keyout",
      `${ca}.key`,
      "-out",
      `${ca}.pem`,
    );
  }
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=127.0.0.1",
    "-keyout",
    "hub.key",
    "-out",
    "hub.csr",
  );
  await writeFile(join(pki, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  openssl(
    "x509",
    "-req",
    "-in",
    "hub.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "san.ext",
    "-out",
    "hub.pem",
  );
});
afterAll(async () => {
  await rm(pki, { recursive: true, force: true });
});

async function tlsHub() {
  return hubForTest({
    tls: { key: await readFile(join(pki, "hub.key")), cert: await readFile(join(pki, "hub.pem")) },
  });
}

describe("wss:// to the hub", () => {
  it("connects and delivers when the hub's certificate chains to the configured CA file", async () => {
    const hub = await tlsHub();
    expect(hub.url.startsWith("wss://")).toBe(true);
    const client = await clientForTest(hub, await agentDir(), { caFile: join(pki, "ca.pem") });
    client.start();
    const seq = await client.emit(phase("b-tls", "quiesce"));
    await hub.waitFor("the event over TLS", () => hub.events.some((e) => e.seq === seq));
  });

  it.each([
    ["the system CAs", undefined],
    ["a different CA file", "other-ca.pem"],
  ])("refuses the hub's certificate with %s and never sends the upgrade", async (_what, caFile) => {
    const hub = await tlsHub();
    const client = await clientForTest(hub, await agentDir(), caFile ? { caFile: join(pki, caFile) } : {});
    const drops: LinkDrop[] = [];
    client.onStateChange((s) => {
      if (s.name === "waiting") drops.push(s.lastDrop);
    });
    client.start();
    await hub.waitFor("two failed attempts", () => drops.length >= 2);
    expect(drops[0]).toMatchObject({ kind: "network", message: expect.stringMatching(/certificate/i) });
    expect(hub.attempts).toEqual([]);
  });
});
