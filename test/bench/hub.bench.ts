/**
 * The hub link's cost. (1) 10,000 events queued while the hub is down, drained after it comes back:
 * time to drain (until the hub has acked the last one) and the agent's peak RSS meanwhile. (2) Idle while
 * connected, over FELHOM_BENCH_IDLE_SECONDS (default 60): the agent's RSS and CPU against a bare node
 * process that only holds one WebSocket open to the same hub, measured side by side in the same window.
 *
 * The agent side runs in its own process, compiled with tsc (as it ships: plain node, no tsx loader), and
 * is measured from outside through /proc, so the figures are its own. What the agent adds over the bare
 * process at idle is mostly module code and the zod schemas of protocol/ (built at import).
 */
import { AGENT_ID, agentDir, cleanup, hubForTest, spawnChildAgent } from "../hub/support.ts";
import { compileAgent, idleSideBySide, rssBytes, spawnBare } from "./process-stats.ts";
import type { BenchReport } from "./report.ts";

const EVENTS = 10_000;
const MB = 1024 * 1024;

export default async function (report: BenchReport): Promise<void> {
  const entry = (await compileAgent("test/hub/agent-child.ts"))("test/hub/agent-child.ts");
  try {
    // (1) Drain after a reconnect.
    const hub = await hubForTest();
    const dir = await agentDir();
    await hub.stop();
    const agent = spawnChildAgent({ url: hub.url, ...dir, agentId: AGENT_ID, emit: EVENTS }, entry);
    const queued = await agent.waitForLine("10,000 durable events", (l) => l.emitted === EVENTS, 300_000);
    const lastSeq = queued.lastSeq as number;
    // Separates the cost of holding the queue from the cost of draining it.
    report({ metric: "queued_10k_rss", value: rssBytes(agent.pid) / MB, unit: "MiB", baseline: null });
    let peak = rssBytes(agent.pid);
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssBytes(agent.pid));
    }, 5);
    const t0 = performance.now();
    await hub.restart();
    await hub.waitFor(
      "the hub to ack every queued event",
      () => hub.lastAckedSeq(AGENT_ID) >= lastSeq,
      300_000,
    );
    const drainMs = performance.now() - t0;
    clearInterval(sampler);
    peak = Math.max(peak, rssBytes(agent.pid));
    report({ metric: "drain_10k_events", value: drainMs, unit: "ms", baseline: null });
    report({
      metric: "drain_10k_events_rate",
      value: EVENTS / (drainMs / 1000),
      unit: "events/s",
      baseline: null,
    });
    report({ metric: "drain_peak_rss", value: peak / MB, unit: "MiB", baseline: null });
    await agent.kill("SIGKILL");

    // (2) Idle while connected, side by side with the bare WebSocket process.
    const idleDir = await agentDir();
    const idle = spawnChildAgent(
      { url: hub.url, ...idleDir, agentId: "agent-idle", statusIntervalSeconds: 60 },
      entry,
    );
    await idle.waitForLine("connected", (l) => l.state === "connected");
    const bare = spawnBare(hub.url, "test-credential");
    await bare.ready;
    for (const figure of await idleSideBySide(idle.pid, bare.pid)) report(figure);
    bare.kill();
  } finally {
    await cleanup();
  }
}
