import { afterEach, describe, expect, it } from "vitest";
import { AGENT_ID, agentDir, cleanup, clientForTest, hubForTest, phase, progress } from "./support.ts";
import type { TestHub } from "./test-hub.ts";

afterEach(cleanup);

const backupEvents = (hub: TestHub) =>
  hub.events.filter((e) => e.event.kind === "backup.phase" || e.event.kind === "backup.progress");

describe("the hub link", () => {
  it("handshakes, delivers emitted events in order and has them acknowledged", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir());
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    for (let i = 0; i < 20; i++) await client.emit(progress("b-1", i * 5));
    await hub.waitFor("20 events", () => backupEvents(hub).length === 20);
    await hub.waitFor("the outbox to empty", () => client.outboxDepth === 0);
    expect(backupEvents(hub).map((e) => (e.event as { percent: number }).percent)).toEqual(
      Array.from({ length: 20 }, (_, i) => i * 5),
    );
    expect(hub.hellos[0]!.agent.id).toBe(AGENT_ID);
    expect(hub.invalidFromAgent).toEqual([]);
  });

  it("sends a status event with the outbox depth once connected", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir());
    client.start();
    const status = await hub.waitFor("a status event", () =>
      hub.events.find((e) => e.event.kind === "status"),
    );
    expect(status.event).toMatchObject({
      kind: "status",
      identity: { vmid: 101 },
      outboxDepth: expect.any(Number),
    });
  });

  it("announces a blackout as an event the hub stores", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir());
    client.start();
    await client.announceBlackout(42.5, "snapshot-freeze", "b-20261127-0001");
    const ev = await hub.waitFor("the blackout", () => hub.events.find((e) => e.event.kind === "blackout"));
    expect(ev.event).toEqual({
      kind: "blackout",
      reason: "snapshot-freeze",
      expectedSeconds: 43,
      operationId: "b-20261127-0001",
    });
  });

  it("rejects an event that does not match the protocol before it is stored", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir());
    await expect(client.emit({ kind: "backup.phase", backupId: "b 1" } as never)).rejects.toMatchObject({
      code: "hub_event_invalid",
    });
    expect(client.outboxDepth).toBe(0);
  });

  it("resends unacknowledged events after the hub drops the connection, and the hub dedupes them", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir());
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    hub.setAcking(false);
    for (let i = 0; i < 10; i++) await client.emit(phase("b-2", "quiesce"));
    await hub.waitFor("10 events", () => backupEvents(hub).length === 10);
    hub.dropConnections();
    hub.setAcking(true);
    await hub.waitFor("the outbox to empty", () => client.outboxDepth === 0);
    expect(backupEvents(hub)).toHaveLength(10);
    expect(hub.duplicates).toBeGreaterThanOrEqual(10);
    expect(hub.attempts.filter((a) => a.outcome === "accepted").length).toBeGreaterThanOrEqual(2);
  });
});
