import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CommandError } from "../../agent/hub/command-runner.ts";
import {
  AGENT_ID,
  agentDir,
  cleanup,
  clientForTest,
  hubForTest,
  spawnChildAgent,
  statusPayload,
} from "./support.ts";

afterEach(cleanup);

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const backup = { name: "backup.run", params: { mode: "snapshot" } } as const;

async function executions(log: string): Promise<string[]> {
  return (await readFile(log, "utf8").catch(() => "")).split("\n").filter(Boolean);
}

describe("hub commands", () => {
  it("runs a command id once; a repeat gets the stored result and a repeat while running gets 'still running'", async () => {
    const hub = await hubForTest();
    let calls = 0;
    const release = deferred();
    const client = await clientForTest(hub, await agentDir(), {
      handlers: {
        "backup.run": async (params, ctx) => {
          calls++;
          await release.promise;
          return { backupId: `b-${ctx.id}`, mode: params.mode };
        },
      },
    });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);

    const first = hub.sendCommand(backup, { id: "cmd-1" });
    await hub.waitFor("the handler to start", () => calls === 1);
    const whileRunning = await hub.sendCommand(backup, { id: "cmd-1", accept: "first" });
    expect(whileRunning).toMatchObject({ ok: false, error: { code: "in_progress", retryable: true } });

    release.resolve();
    expect(await first).toEqual({
      type: "result",
      id: "cmd-1",
      ok: true,
      name: "backup.run",
      data: { backupId: "b-cmd-1", mode: "snapshot" },
    });
    expect(await hub.sendCommand(backup, { id: "cmd-1" })).toEqual(await first);

    hub.dropConnections();
    await hub.waitFor("a reconnect", () => hub.attempts.length === 2 && hub.connections() === 1);
    expect(await hub.sendCommand(backup, { id: "cmd-1" })).toEqual(await first);
    expect(calls).toBe(1);
  });

  it("answers an unknown command name and invalid params with failed results, without running anything", async () => {
    const hub = await hubForTest();
    let calls = 0;
    const client = await clientForTest(hub, await agentDir(), {
      handlers: {
        "backup.run": async (params) => {
          calls++;
          return { backupId: "b-1", mode: params.mode };
        },
      },
    });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    hub.sendRaw(
      JSON.stringify({
        type: "command",
        id: "x-1",
        command: { name: "shell.exec", params: { cmd: "rm -rf /" } },
      }),
    );
    hub.sendRaw(
      JSON.stringify({
        type: "command",
        id: "x-2",
        command: { name: "backup.run", params: { mode: "yolo" } },
      }),
    );
    const unknown = await hub.waitFor("x-1's result", () => hub.results.find((r) => r.id === "x-1"));
    const invalid = await hub.waitFor("x-2's result", () => hub.results.find((r) => r.id === "x-2"));
    expect(unknown).toMatchObject({ ok: false, error: { code: "unknown_command" } });
    expect(invalid).toMatchObject({ ok: false, error: { code: "invalid_params" } });
    // A valid command this agent has no handler for is refused the same way.
    expect(await hub.sendCommand({ name: "snapshot.list", params: {} })).toMatchObject({
      ok: false,
      error: { code: "unknown_command" },
    });
    expect(calls).toBe(0);
  });

  it("reports a handler's expected failure with its code and details, and an unexpected one as internal", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir(), {
      handlers: {
        "backup.run": async () => {
          throw new CommandError("already_running", "a backup is running", { details: { backupId: "b-0" } });
        },
        "status.get": async () => {
          throw new Error("docker socket gone");
        },
      },
    });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    expect(await hub.sendCommand(backup)).toMatchObject({
      ok: false,
      error: { code: "already_running", details: { backupId: "b-0" }, retryable: false },
    });
    expect(await hub.sendCommand({ name: "status.get", params: {} })).toMatchObject({
      ok: false,
      error: { code: "internal", message: "docker socket gone" },
    });
  });

  it("returns a result the handler built wrong as an internal failure instead of sending an invalid frame", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir(), {
      handlers: { "status.get": async () => ({ ...statusPayload(), outboxDepth: -1, lastSeq: 0 }) },
    });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    expect(await hub.sendCommand({ name: "status.get", params: {} })).toMatchObject({
      ok: false,
      error: { code: "internal" },
    });
    expect(hub.invalidFromAgent).toEqual([]);
  });

  it("keeps a command's result across an agent restart, and reports a command killed mid-run as interrupted", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    const commandLog = join(dir.stateDir, "executions.log");
    await writeFile(commandLog, "");
    const config = { url: hub.url, ...dir, agentId: AGENT_ID, commandLog };

    const first = spawnChildAgent({ ...config, handlerDelayMs: 0 });
    await first.waitForLine("connected", (l) => l.state === "connected");
    const done = await hub.sendCommand(backup, { id: "cmd-done" });
    expect(done).toMatchObject({ ok: true, data: { backupId: "b-cmd-done" } });
    await first.kill("SIGKILL");

    const second = spawnChildAgent({ ...config, handlerDelayMs: 600_000 });
    await second.waitForLine("connected", (l) => l.state === "connected");
    expect(await hub.sendCommand(backup, { id: "cmd-done" })).toEqual(done);
    void hub.sendCommand(backup, { id: "cmd-killed" });
    while (!(await executions(commandLog)).includes("cmd-killed"))
      await new Promise((r) => setTimeout(r, 10));
    await second.kill("SIGKILL");

    const third = spawnChildAgent({ ...config, handlerDelayMs: 0 });
    await third.waitForLine("connected", (l) => l.state === "connected");
    expect(await hub.sendCommand(backup, { id: "cmd-killed" })).toMatchObject({
      ok: false,
      error: { code: "internal", details: { interrupted: true } },
    });
    expect(await executions(commandLog)).toEqual(["cmd-done", "cmd-killed"]);
  });
});
