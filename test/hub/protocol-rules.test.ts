import { appendFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CloseCode, MAX_HUB_SEQ } from "@felhom/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { OUTBOX_LOG } from "../../agent/hub/outbox.ts";
import type { LinkDrop } from "../../agent/hub/reconnect-decision.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { AGENT_ID, agentDir, cleanup, clientForTest, hubForTest, phase, storedSeqs } from "./support.ts";

afterEach(cleanup);

/** A connected link whose liveness deadlines pass within a few hundred ms; `drops` collects its drops. */
async function connectedWithFastHeartbeat() {
  const hub = await hubForTest();
  const client = await clientForTest(hub, await agentDir(), {
    tuning: { heartbeat: { intervalMs: 50, timeoutMs: 50 }, watchdogFactor: 2 },
  });
  const drops: LinkDrop[] = [];
  client.onStateChange((s) => {
    if (s.name === "waiting") drops.push(s.lastDrop);
  });
  client.start();
  await hub.waitFor("a connection", () => hub.connections() === 1);
  return { hub, client, drops };
}

describe("the link follows the protocol's rules", () => {
  it("continues numbering above the hub's position when the hub has seen seqs this agent never assigned", async () => {
    const hub = await hubForTest();
    hub.presetAgent(AGENT_ID, 500);
    const dir = await agentDir();
    await hub.stop();
    const client = await clientForTest(hub, dir);
    client.start();
    await client.emit(phase("b-copy", "quiesce"));
    await client.emit(phase("b-copy", "submit"));
    await hub.restart();
    await hub.waitFor(
      "both events",
      () => hub.events.filter((e) => e.event.kind === "backup.phase").length === 2,
    );
    expect(hub.events.filter((e) => e.event.kind === "backup.phase").map((e) => e.seq)).toEqual([501, 502]);
    expect(await client.emit(phase("b-copy", "resume"))).toBeGreaterThan(502);
    expect(hub.duplicates).toBe(0);
  });

  it("neither loses nor renumbers queued events when the hub's welcome names a position near 2^53, and delivers them once the hub is fixed", async () => {
    const hub = await hubForTest();
    hub.setWelcomeSeq(Number.MAX_SAFE_INTEGER - 1);
    const client = await clientForTest(hub, await agentDir(), { tuning: { handshakeTimeoutMs: 300 } });
    const drops: LinkDrop[] = [];
    client.onStateChange((s) => {
      if (s.name === "waiting") drops.push(s.lastDrop);
    });
    for (const p of ["quiesce", "submit", "resume"] as const) await client.emit(phase("b-far", p));
    client.start();
    await hub.waitFor("two refused welcomes", () => drops.length >= 2);
    // Refused by the agent (4400), and retried with backoff: the hub may be fixed meanwhile.
    expect(drops[0]).toMatchObject({ kind: "refused", code: 4400 });
    expect([client.lastSeq, client.outboxDepth]).toEqual([3, 3]);
    expect(hub.hellos.at(-1)?.lastAckedSeq).toBe(0);
    expect(hub.events).toEqual([]);

    hub.setWelcomeSeq(MAX_HUB_SEQ + 1);
    const refusedSoFar = drops.length;
    await hub.waitFor("a welcome just above MAX_HUB_SEQ refused too", () => drops.length >= refusedSoFar + 2);
    expect([client.lastSeq, client.outboxDepth]).toEqual([3, 3]);

    hub.setWelcomeSeq(undefined);
    await hub.waitFor("the three events", () => storedSeqs(hub).length === 3);
    expect(storedSeqs(hub)).toEqual([1, 2, 3]);
    await hub.waitFor("the outbox to drain", () => client.outboxDepth === 0);
    expect(await client.emit(phase("b-far", "report"))).toBeLessThan(10);
  });

  it("declares a gap for events the hub acknowledged and then lost", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir());
    client.start();
    for (let i = 0; i < 5; i++) await client.emit(phase("b-lost", "quiesce"));
    await hub.waitFor("everything acked", () => client.outboxDepth === 0 && hub.lastAckedSeq(AGENT_ID) >= 6);
    const acked = hub.lastAckedSeq(AGENT_ID);
    hub.forgetAgent(AGENT_ID, 2);
    hub.dropConnections();
    const gap = await hub.waitFor("an already-acked gap", () =>
      hub.events.find((e) => e.event.kind === "gap"),
    );
    expect(gap.event).toMatchObject({
      kind: "gap",
      fromSeq: 3,
      toSeq: acked,
      count: acked - 2,
      reason: "already-acked",
    });
    await hub.waitFor("the hub's position to be whole again", () => hub.lastAckedSeq(AGENT_ID) >= gap.seq);
  });

  it("closes with 4406 when the welcome names a protocol version it did not offer, and waits long before retrying", async () => {
    const hub = await hubForTest({ protocolVersion: 2 });
    const client = await clientForTest(hub, await agentDir(), { tuning: { fatalMs: 3_600_000 } });
    const drops: LinkDrop[] = [];
    client.onStateChange((s) => {
      if (s.name === "waiting") drops.push(s.lastDrop);
    });
    client.start();
    await hub.waitFor("the drop", () => drops.length === 1);
    expect(drops[0]).toMatchObject({ kind: "closed", code: CloseCode.UnsupportedProtocol });
    await new Promise((r) => setTimeout(r, 300));
    expect(hub.attempts).toHaveLength(1);
  });

  it("replaces a stored event that no longer validates with a gap instead of blocking the queue", async () => {
    const hub = await hubForTest();
    const dir = await agentDir();
    await mkdir(statePaths(dir.stateDir).hubOutbox, { recursive: true });
    const at = "2026-11-27T07:00:00.000Z";
    const lines = [
      { s: 1, t: at, e: phase("b-ok", "quiesce") },
      {
        s: 2,
        t: at,
        e: {
          kind: "backup.phase",
          backupId: "b-old",
          mode: "snapshot",
          phase: "no-such-phase",
          trigger: { source: "cli" },
        },
      },
      { s: 3, t: at, e: phase("b-ok", "submit") },
    ];
    await appendFile(
      join(statePaths(dir.stateDir).hubOutbox, OUTBOX_LOG),
      lines.map((l) => `${JSON.stringify(l)}\n`).join(""),
    );
    const client = await clientForTest(hub, dir);
    client.start();
    const gap = await hub.waitFor("the gap", () => hub.events.find((e) => e.event.kind === "gap"));
    expect(gap.event).toMatchObject({ fromSeq: 2, toSeq: 2, count: 1, kinds: ["backup.phase"] });
    expect(hub.events.filter((e) => e.event.kind === "backup.phase").map((e) => e.seq)).toEqual([1, 3]);
    await hub.waitFor("the outbox to drain", () => client.outboxDepth === 0);
    expect(hub.invalidFromAgent).toEqual([]);
  });

  it("suspends its liveness deadlines during an announced blackout", async () => {
    const { hub, client, drops } = await connectedWithFastHeartbeat();
    await client.announceBlackout(1, "snapshot-freeze", "b-freeze");
    hub.setMode("silent");
    await new Promise((r) => setTimeout(r, 600));
    expect(drops).toEqual([]);
    await hub.waitFor("a stall once the blackout is over", () => drops.find((d) => d.kind === "stalled"));
  });

  it("ends the blackout with its operation: a hub silent after it is noticed within the heartbeat, not at the end of the announced time, and hears blackout.ended", async () => {
    const { hub, client, drops } = await connectedWithFastHeartbeat();
    // 300 s: the default max_downtime_seconds a snapshot-mode backup announces.
    await client.announceBlackout(300, "snapshot-freeze", "b-done");
    await hub.waitFor("the blackout", () => hub.events.find((e) => e.event.kind === "blackout"));
    hub.setMode("silent");
    await client.endBlackout("snapshot-freeze", "b-done");
    // The default waitFor gives up after 30 s, well inside the announced 300 s.
    await hub.waitFor("a stall after the blackout ended", () => drops.find((d) => d.kind === "stalled"));
    hub.setMode("normal");
    const ended = await hub.waitFor("blackout.ended", () =>
      hub.events.find((e) => e.event.kind === "blackout.ended"),
    );
    expect(ended.event).toEqual({ kind: "blackout.ended", reason: "snapshot-freeze", operationId: "b-done" });
    const blackout = hub.events.find((e) => e.event.kind === "blackout")!;
    expect(ended.seq).toBeGreaterThan(blackout.seq);
  });

  it("keeps the deadlines suspended while another announced blackout is still running", async () => {
    const { hub, client, drops } = await connectedWithFastHeartbeat();
    await client.announceBlackout(300, "stop-mode", "b-long");
    await client.announceBlackout(300, "snapshot-freeze", "b-short");
    await hub.waitFor(
      "both blackouts",
      () => hub.events.filter((e) => e.event.kind === "blackout").length === 2,
    );
    hub.setMode("silent");
    await client.endBlackout("snapshot-freeze", "b-short");
    await new Promise((r) => setTimeout(r, 600));
    expect(drops).toEqual([]);
    await client.endBlackout("stop-mode", "b-long");
    await hub.waitFor("a stall once the last blackout ended", () => drops.find((d) => d.kind === "stalled"));
  });
});
