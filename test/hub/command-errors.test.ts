import { afterEach, describe, expect, it } from "vitest";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { DockerUnreachableError } from "../../agent/docker/errors.ts";
import { commandFailureOf } from "../../agent/hub/command-errors.ts";
import { AgentError } from "../../agent/lib/errors.ts";
import {
  PveAuthenticationError,
  PveNetworkError,
  PvePermissionError,
  PveResponseError,
  PveServerError,
  PveTimeoutError,
} from "../../agent/pve/errors.ts";
import { agentDir, cleanup, clientForTest, hubForTest } from "./support.ts";

afterEach(cleanup);

describe("what the hub hears for a handler's error", () => {
  it.each([
    ["a 401 from PVE", new PveAuthenticationError("GET /cluster/resources", "no ticket"), "pve_auth"],
    [
      "a refused connection",
      new PveNetworkError("GET /version", "ECONNREFUSED", false, null),
      "pve_unreachable",
    ],
    ["a timeout", new PveTimeoutError("GET /version", "no answer in 10 s", true, null), "pve_unreachable"],
    ["a 5xx", new PveServerError("GET /version", 503, "busy"), "pve_unreachable"],
    ["an unreachable Docker engine", new DockerUnreachableError("ping"), "docker_unreachable"],
    ["a body PVE should not send", new PveResponseError("GET /version", "not JSON"), "internal"],
    ["an agent error the hub cannot act on", new AgentError("archive_missing", "gone"), "internal"],
    ["a bug", new TypeError("x is undefined"), "internal"],
  ] as const)("%s is %s", (_, err, code) => {
    expect(commandFailureOf(err)).toMatchObject({ code });
  });

  it("a 403 names PVE's path and privilege in details", () => {
    const err = new PvePermissionError(
      "GET /nodes/pve1/storage/bk/content",
      "Permission check failed (/storage/bk, Datastore.Audit|Datastore.AllocateSpace)",
    );
    expect(commandFailureOf(err)).toEqual({
      code: "pve_permission",
      message: err.describe(),
      details: { path: "/storage/bk", privilege: "Datastore.Audit|Datastore.AllocateSpace" },
    });
  });
});

describe("commands over the link", () => {
  it("answers a handler's PVE error with its protocol code, not internal", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir(), {
      handlers: {
        "backups.list": async () => {
          throw new PvePermissionError("GET /x", "Permission check failed (/storage/bk, Datastore.Audit)");
        },
      },
    });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    expect(await hub.sendCommand({ name: "backups.list", params: {} })).toMatchObject({
      ok: false,
      error: {
        code: "pve_permission",
        retryable: false,
        details: { path: "/storage/bk", privilege: "Datastore.Audit" },
      },
    });
  });

  it("answers docker_unreachable when the engine does not answer (a real engine client on a socket nobody serves)", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    const engine = new DockerEngine({ socketPath: `${dir.stateDir}/no-docker.sock` });
    const client = await clientForTest(hub, dir, {
      handlers: {
        "stacks.up": async () => {
          await engine.ping();
          return { stacks: [] };
        },
      },
    });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    expect(await hub.sendCommand({ name: "stacks.up", params: {} })).toMatchObject({
      ok: false,
      error: { code: "docker_unreachable", retryable: true },
    });
  });

  it("answers shutting_down once the agent is stopping, runs nothing, and runs the same id when asked again later", async () => {
    const hub = await hubForTest();
    let runs = 0;
    const dir = await agentDir();
    const handlers = {
      "status.get": async () => {
        runs++;
        throw new AgentError("x", "not needed");
      },
    };
    const client = await clientForTest(hub, dir, { handlers });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    client.refuseCommands();
    const refused = await hub.sendCommand({ name: "status.get", params: {} }, { id: "cmd-late" });
    expect(refused).toMatchObject({ ok: false, error: { code: "shutting_down", retryable: true } });
    expect(runs).toBe(0);
    await client.stop();

    // The next run of the agent (same state dir) has no record of the id: it runs it.
    const next = await clientForTest(hub, dir, { handlers });
    next.start();
    await hub.waitFor("the next run", () => hub.connections() === 1 && hub.hellos.length === 2);
    const answered = await hub.sendCommand({ name: "status.get", params: {} }, { id: "cmd-late" });
    expect(answered).toMatchObject({ ok: false, error: { code: "internal" } });
    expect(runs).toBe(1);
  });
});
