import type { CommandName } from "@felhom/protocol";
import { afterEach, describe, expect, it } from "vitest";
import type { CommandHandlers } from "../../agent/hub/command-runner.ts";
import { CommandError } from "../../agent/hub/command-runner.ts";
import { commands, events, resultData } from "../protocol/examples.ts";
import { invalidFrames } from "../protocol/strict-validator.ts";
import { AGENT_ID, agentDir, cleanup, clientForTest, hubForTest } from "./support.ts";

afterEach(cleanup);

/**
 * A whole connection as a hub written from PROTOCOL.md would see it — every command, every event kind,
 * failed results, rejected frames, a `1012` close with unacked events resent, a hub that lost data (a
 * `gap`) — recorded by the test hub and every frame, both directions, checked against the published JSON
 * Schema by the strict independent validator.
 */
describe("a recorded connection under the published JSON Schema", () => {
  it("holds only frames the strict validator accepts, in both directions", async () => {
    const hub = await hubForTest();
    const handlers: CommandHandlers = Object.fromEntries(
      (Object.keys(resultData) as CommandName[]).map((name) => [name, async () => resultData[name]]),
    );
    handlers["stacks.up"] = async () => {
      throw new CommandError("busy", "snapshot op-1 is running; try again after it", {
        details: { operation: "snapshot", operationId: "op-1" },
      });
    };
    const client = await clientForTest(hub, await agentDir(), { handlers });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);

    for (const command of Object.values(commands)) await hub.sendCommand(command);
    const garbage = [
      "{not json",
      JSON.stringify({ type: "command", id: "cmd-x", command: { name: "shell.exec", params: {} } }),
      JSON.stringify({ type: "subscribe", id: "s-1" }),
    ];
    for (const raw of garbage) hub.sendRaw(raw);
    await hub.waitFor("the answers to the garbage", () => hub.agentErrors.length >= 2);

    const kinds = Object.values(events).filter((e) => e.kind !== "gap");
    for (const event of kinds) await client.emit(event);
    await hub.waitFor("every event kind", () => hub.events.length >= kinds.length);

    // Unacked events across a service-restart close: resent after the next welcome.
    hub.setAcking(false);
    for (const event of kinds.slice(0, 3)) await client.emit(event);
    await hub.waitFor("the unacked events", () => hub.events.length >= kinds.length + 3);
    hub.dropConnections(1012);
    await hub.waitFor("the reconnect", () => hub.hellos.length === 2 && hub.connections() === 1);
    hub.setAcking(true);
    await hub.waitFor("the resends acked", () => hub.lastAckedSeq(AGENT_ID) >= kinds.length + 3);

    // A hub that lost what it had acknowledged: the agent declares the range as a gap.
    hub.forgetAgent(AGENT_ID, 2);
    hub.dropConnections(1012);
    await hub.waitFor("the gap", () => hub.events.find((e) => e.event.kind === "gap"));

    expect(hub.invalidFromAgent).toEqual([]);
    expect(invalidFrames(hub.frames, (text) => garbage.includes(text))).toEqual([]);
    const types = (direction: "in" | "out") =>
      new Set(
        hub.frames
          .filter((f) => f.direction === direction && !garbage.includes(f.text))
          .map((f) => (JSON.parse(f.text) as { type: string }).type),
      );
    expect([...types("in")].sort()).toEqual(["error", "event", "hello", "result"]);
    expect([...types("out")].sort()).toEqual(["ack", "command", "welcome"]);
    expect(hub.results.filter((r) => !r.ok).map((r) => r.error.code)).toEqual(
      expect.arrayContaining(["busy", "unknown_command"]),
    );
  });
});
