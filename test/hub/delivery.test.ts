import type { Event } from "@felhom/protocol";
import { afterEach, describe, expect, it } from "vitest";
import {
  AGENT_ID,
  agentDir,
  cleanup,
  clientForTest,
  hubForTest,
  phase,
  progress,
  spawnChildAgent,
} from "./support.ts";
import type { TestHub } from "./test-hub.ts";

afterEach(cleanup);

const tick = () => new Promise((r) => setTimeout(r, 1));

/** Seqs as the hub stored them, in arrival order. */
const arrived = (hub: TestHub) => hub.events.map((e) => e.seq);

/** Asserts that the hub holds every seq from 1 to `last` exactly once, in increasing arrival order. */
function expectComplete(hub: TestHub, last: number): void {
  const seqs = arrived(hub);
  expect(new Set(seqs).size).toBe(seqs.length);
  expect(seqs).toEqual(Array.from({ length: last }, (_, i) => i + 1));
}

describe("event delivery across failures", () => {
  it("loses nothing when the hub goes down in the middle of a backup's event stream and comes back on the same port", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir());
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);

    const emitted: number[] = [];
    const stream: Event[] = [
      phase("b-1", "quiesce"),
      phase("b-1", "submit"),
      ...Array.from({ length: 300 }, (_, i) => progress("b-1", i / 3)),
      phase("b-1", "resume"),
      ...Array.from({ length: 300 }, (_, i) => progress("b-1", 100 - i / 3)),
      phase("b-1", "report"),
    ];
    for (const [i, ev] of stream.entries()) {
      if (i === 100) hub.setAcking(false); // some events reach the hub but are never acked: they are resent
      if (i === 150) await hub.stop();
      if (i === 450) {
        await hub.restart();
        hub.setAcking(true);
      }
      emitted.push(await client.emit(ev));
      if (i % 10 === 0) await tick();
    }
    const last = Math.max(...emitted);
    await hub.waitFor("every event", () => hub.lastAckedSeq(AGENT_ID) >= last && client.outboxDepth === 0);

    expectComplete(hub, hub.events.at(-1)!.seq);
    expect(arrived(hub)).toEqual(expect.arrayContaining(emitted));
    const phases = hub.events
      .filter((e) => e.event.kind === "backup.phase")
      .map((e) => (e.event as { phase: string }).phase);
    expect(phases).toEqual(["quiesce", "submit", "resume", "report"]);
    // The hub saw resends of what it stored but had not acked, and stored none of them twice.
    expect(hub.duplicates).toBeGreaterThan(0);
    console.log(
      `hub stopped mid-stream: ${emitted.length} events emitted, ${hub.events.length} stored (in order, none missing), ${hub.duplicates} resends deduplicated`,
    );
    expect(hub.invalidFromAgent).toEqual([]);
  });

  it("delivers unacknowledged events after the agent process is SIGKILLed and started again", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    await hub.stop();
    const config = { url: hub.url, ...dir, agentId: AGENT_ID };
    const first = spawnChildAgent({ ...config, emit: 2_000 });
    const done = await first.waitForLine("2000 durable events", (l) => l.emitted === 2_000);
    await first.kill("SIGKILL");
    expect(hub.events).toHaveLength(0);

    await hub.restart();
    const second = spawnChildAgent(config);
    await second.waitForLine("the link to come up", (l) => l.state === "connected");
    await hub.waitFor(
      "all 2000 events",
      () => hub.events.filter((e) => e.event.kind === "backup.progress").length === 2_000,
    );
    const bytes = hub.events
      .filter((e) => e.event.kind === "backup.progress")
      .map((e) => (e.event as { bytes: number }).bytes);
    expect(bytes).toEqual(Array.from({ length: 2_000 }, (_, i) => i));
    expectComplete(hub, hub.events.at(-1)!.seq);
    expect(hub.events.at(-1)!.seq).toBeGreaterThanOrEqual(done.lastSeq as number);
  });

  it("continues the sequence after an agent restart instead of reusing seqs the hub already has", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    const first = await clientForTest(hub, dir);
    first.start();
    for (let i = 0; i < 5; i++) await first.emit(phase("b-1", "quiesce"));
    await hub.waitFor("5 events acked", () => first.outboxDepth === 0 && hub.events.length >= 6);
    await first.stop();
    const second = await clientForTest(hub, dir);
    second.start();
    const seq = await second.emit(phase("b-2", "quiesce"));
    await hub.waitFor("the new event", () => hub.events.some((e) => e.seq === seq));
    expectComplete(hub, hub.events.at(-1)!.seq);
    expect(hub.duplicates).toBe(0);
  });

  it("keeps unacknowledged events in the outbox when the client is closed and delivers them from a new client", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    await hub.stop();
    const first = await clientForTest(hub, dir);
    first.start();
    for (let i = 0; i < 50; i++) await first.emit(phase("b-3", "submit"));
    await first.stop();
    await hub.restart();
    const second = await clientForTest(hub, dir);
    expect(second.outboxDepth).toBe(50);
    second.start();
    await hub.waitFor(
      "50 events",
      () => hub.events.filter((e) => e.event.kind === "backup.phase").length === 50,
    );
    await hub.waitFor("the outbox to empty", () => second.outboxDepth === 0);
  });

  it("drops the oldest progress events when the outbox overflows during an outage and delivers a gap in their place", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir(), {
      outbox: { maxEvents: 100, maxBytes: 1024 * 1024 },
    });
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    await hub.stop();
    const phases: number[] = [];
    for (let i = 0; i < 400; i++) {
      if (i % 50 === 0) phases.push(await client.emit(phase("b-4", "submit")));
      else await client.emit(progress("b-4", i / 4));
    }
    expect(client.outboxDepth).toBeLessThanOrEqual(100);
    await hub.restart();
    await hub.waitFor("the outbox to drain", () => client.outboxDepth === 0);

    const gaps = hub.events.filter((e) => e.event.kind === "gap");
    expect(gaps).toHaveLength(1);
    expect(gaps[0]!.event).toMatchObject({
      kind: "gap",
      kinds: ["backup.progress"],
      reason: "outbox-overflow",
    });
    // Every phase event survived; the hub's ack reached the end because the gap covers the holes.
    expect(hub.events.map((e) => e.seq)).toEqual(expect.arrayContaining(phases));
    const lastSeq = Math.max(...hub.events.map((e) => e.seq));
    expect(hub.lastAckedSeq(AGENT_ID)).toBe(lastSeq);
    // Nothing is missing that the gap does not declare.
    const gap = gaps[0]!.event as { fromSeq: number; toSeq: number; count: number };
    const have = new Set(hub.events.map((e) => e.seq));
    for (let s = 1; s <= lastSeq; s++) {
      if (!have.has(s)) expect(s >= gap.fromSeq && s <= gap.toSeq).toBe(true);
    }
  });
});
