import { afterEach, describe, expect, it } from "vitest";
import type { HubClient } from "../../agent/hub/hub-client.ts";
import type { LinkDrop } from "../../agent/hub/reconnect-decision.ts";
import { AGENT_ID, agentDir, cleanup, clientForTest, hubForTest, phase, spawnChildAgent } from "./support.ts";

afterEach(cleanup);

/** The drops the client went through, in order. */
function recordDrops(client: HubClient): LinkDrop[] {
  const drops: LinkDrop[] = [];
  client.onStateChange((s) => {
    if (s.name === "waiting") drops.push(s.lastDrop);
  });
  return drops;
}

const HEARTBEAT = { intervalMs: 100, timeoutMs: 200 };

describe("the watchdog", () => {
  it("gives up on a hub that accepts TCP but never answers the upgrade, and connects once the hub is back to normal", async () => {
    const hub = await hubForTest();
    hub.setMode("black-hole");
    const client = await clientForTest(hub, await agentDir(), { tuning: { handshakeTimeoutMs: 300 } });
    const drops = recordDrops(client);
    client.start();
    await hub.waitFor(
      "three black-holed attempts",
      () => hub.attempts.filter((a) => a.outcome === "black-holed").length >= 3,
    );
    expect(drops.length).toBeGreaterThanOrEqual(2);
    expect(drops.every((d) => d.kind === "stalled" || d.kind === "network")).toBe(true);
    expect(drops.some((d) => d.kind === "stalled")).toBe(true);

    hub.setMode("normal");
    const seq = await client.emit(phase("b-1", "quiesce"));
    await hub.waitFor("the event after recovery", () => hub.events.some((e) => e.seq === seq));
  });

  it("tears down a socket whose hub stopped answering after the handshake, and delivers once the hub answers again", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir(), {
      tuning: { heartbeat: HEARTBEAT, watchdogFactor: 3 },
    });
    const drops = recordDrops(client);
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    hub.setMode("silent");
    const seq = await client.emit(phase("b-2", "submit"));
    await hub.waitFor("two stalled sockets", () => drops.filter((d) => d.kind === "stalled").length >= 2);
    expect(hub.events.some((e) => e.seq === seq)).toBe(false);

    hub.setMode("normal");
    await hub.waitFor("the event after recovery", () => hub.events.some((e) => e.seq === seq));
    await hub.waitFor("the outbox to drain", () => client.outboxDepth === 0);
  });

  it("tears down a socket that answers pings but never acknowledges outstanding events", async () => {
    const hub = await hubForTest();
    const client = await clientForTest(hub, await agentDir(), {
      tuning: { heartbeat: HEARTBEAT, ackTimeoutMs: 300 },
    });
    const drops = recordDrops(client);
    client.start();
    await hub.waitFor("a connection", () => hub.connections() === 1);
    hub.setAcking(false);
    await client.emit(phase("b-3", "resume"));
    const stalled = await hub.waitFor("an ack stall", () => drops.find((d) => d.kind === "stalled"));
    expect(stalled).toMatchObject({ kind: "stalled", what: expect.stringContaining("no ack") });
    hub.setAcking(true);
    await hub.waitFor("the outbox to drain", () => client.outboxDepth === 0);
  });
});

describe("the watchdog across a freeze of the agent (PVE freezes the CT for the storage snapshot)", () => {
  it("keeps the link: a tick that finds the process was frozen judges nothing and counts the deadlines from the thaw", async () => {
    const hub = await hubForTest();
    const agent = spawnChildAgent({
      url: hub.url,
      ...(await agentDir()),
      agentId: AGENT_ID,
      heartbeat: HEARTBEAT,
    });
    await agent.waitForLine("the link to come up", (l) => l.state === "connected");
    const hellos = hub.hellos.length;
    // Stopped far past the ping timeout and the watchdog; on SIGCONT its overdue timers run before it reads
    // the socket (epoll_wait returns EINTR after a stop), as after the cgroup freezer's thaw.
    process.kill(agent.pid, "SIGSTOP");
    await new Promise((r) => setTimeout(r, 1_500));
    const stateLines = agent.lines.filter((l) => l.state !== undefined).length;
    process.kill(agent.pid, "SIGCONT");
    const pings = () =>
      hub.frames.filter((f) => f.direction === "in" && f.text.includes('"type":"ping"')).length;
    const before = pings();
    await hub.waitFor("three pings after the thaw", () => pings() >= before + 3);
    expect(agent.lines.filter((l) => l.state !== undefined).slice(stateLines)).toEqual([]);
    expect(hub.hellos.length).toBe(hellos);
  });
});

describe("the reconnect policy in the running client", () => {
  it("keeps growing the backoff (one phase per streak) while sockets open but never get a welcome, and resets it with a new phase after a welcome", async () => {
    const hub = await hubForTest();
    hub.setMode("drop-on-open");
    const delays: number[] = [];
    const phases = [0.999, 0];
    const client = await clientForTest(hub, await agentDir(), {
      tuning: {
        backoff: { baseMs: 5, maxMs: 50 },
        random: () => phases.shift() ?? 0.5,
        retryWait: async (ms) => {
          delays.push(ms);
          await new Promise((r) => setTimeout(r, 1));
        },
      },
    });
    client.start();
    await hub.waitFor("six dropped sockets", () => delays.length >= 6);
    // Attempt k at 5 ms · 2^(k+0.999): the waits double from the first, then stop at the cap.
    expect(delays.slice(0, 6)).toEqual([9, 9, 19, 39, 50, 50]);

    hub.setMode("normal");
    await hub.waitFor("a welcomed connection", () => client.state.name === "connected");
    const before = delays.length;
    hub.dropConnections();
    await hub.waitFor("the next wait", () => delays.length > before);
    expect(delays[before]).toBe(5); // the new streak's phase is 0
  });
});
