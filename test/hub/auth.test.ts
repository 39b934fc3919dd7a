import { chmod, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../agent/log/logger.ts";
import { agentDir, cleanup, clientForTest, hubForTest } from "./support.ts";

afterEach(cleanup);

/** A pino logger whose JSON lines land in `lines`. */
function capturingLogger() {
  const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: "debug", destination }), lines };
}

const WINDOW_MS = 3_000;
const AUTH_BACKOFF_MS = 2_000;

describe.each(["close", "http"] as const)("a credential the hub rejects (by %s)", (authRejection) => {
  it("causes no reconnect storm, is logged once, and recovers without a restart once the credential file is fixed", async () => {
    const hub = await hubForTest({ credentials: ["the-right-one"], authRejection });
    const dir = await agentDir("a-wrong-one");
    const { logger, lines } = capturingLogger();
    // Normal retries would come every few milliseconds; only the auth rule can keep the count small.
    const client = await clientForTest(hub, dir, {
      logger,
      tuning: { backoff: { baseMs: 5, maxMs: 20 }, authRejectedMs: AUTH_BACKOFF_MS },
    });
    client.start();
    await new Promise((r) => setTimeout(r, WINDOW_MS));

    const rejected = hub.attempts.filter((a) => a.outcome === "auth-rejected");
    expect(rejected.length).toBeGreaterThanOrEqual(1);
    // At least AUTH_BACKOFF_MS / 2 between attempts: at most 1 + WINDOW / (AUTH / 2) attempts in the window.
    expect(rejected.length).toBeLessThanOrEqual(1 + WINDOW_MS / (AUTH_BACKOFF_MS / 2));
    const loud = lines.filter((l) => l.level >= 50 && l.msg.includes("rejected this agent's credential"));
    expect(loud).toHaveLength(1);
    expect(JSON.stringify(lines)).not.toContain("a-wrong-one");

    await writeFile(dir.credentialFile, "the-right-one\n");
    await hub.waitFor(
      "a connection with the fixed credential",
      () => hub.connections() === 1,
      AUTH_BACKOFF_MS * 3,
    );
    await hub.waitFor("the recovery log line", () =>
      lines.find((l) => l.msg.includes("accepts this agent again")),
    );
  });
});

describe("the credential and CA files at start", () => {
  it("refuse the start when the credential file is readable by group or others, before anything is dialled", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    await chmod(dir.credentialFile, 0o644);
    await expect(clientForTest(hub, dir)).rejects.toMatchObject({
      code: "secret_file_unsafe",
      message: expect.stringContaining(dir.credentialFile),
    });
    await chmod(dir.credentialFile, 0o640);
    await expect(clientForTest(hub, dir)).rejects.toMatchObject({ code: "secret_file_unsafe" });
    expect(hub.attempts).toEqual([]);
  });

  it("refuse the start when the credential file is missing or the CA file cannot be read", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    await expect(
      clientForTest(hub, dir, { caFile: join(dir.stateDir, "no-such-ca.pem") }),
    ).rejects.toMatchObject({ code: "hub_ca_unreadable" });
    await rm(dir.credentialFile);
    await expect(clientForTest(hub, dir)).rejects.toMatchObject({ code: "secret_file_missing" });
    expect(hub.attempts).toEqual([]);
  });

  it("still reads the credential on every attempt, so one that becomes readable by others later only fails the dial", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    const client = await clientForTest(hub, dir);
    await chmod(dir.credentialFile, 0o644);
    client.start();
    await hub.waitFor("a failed local attempt", () =>
      client.state.name === "waiting" && client.state.lastDrop.kind === "local"
        ? client.state.lastDrop
        : undefined,
    );
    expect(hub.attempts).toEqual([]);
    await chmod(dir.credentialFile, 0o600);
    await hub.waitFor("a connection once the mode is fixed", () => hub.connections() === 1);
  });
});
