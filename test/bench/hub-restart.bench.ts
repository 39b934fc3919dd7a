/**
 * A hub restart with thousands of agents (issue 15, section 3). FELHOM_BENCH_LINKS (default 2,000) real
 * hub links (HubClient with its default tuning, so the shipped backoff; each with its own state dir, outbox
 * and credential file) run in one child process, compiled as they ship, against the test hub in this
 * process. The hub is stopped, every link queues FELHOM_BENCH_EVENTS_WHILE_DOWN events (default 2), and
 * the hub comes back after each downtime of FELHOM_BENCH_HUB_DOWN_SECONDS (default "2,10,30": a process
 * restart, a redeploy; the backoff window tops out at 60 s, so longer outages look like 30 s). Per downtime:
 * - time from the restart until 99 % of the links are welcomed again, against the same links dialling all
 *   at once on a running hub (the hub's own accept rate: the floor);
 * - the peak upgrade attempts the hub sees in any one second of that time, against the mean over it;
 * - events lost (queued while the hub was down, not stored and acked afterwards) and duplicates (resent
 *   copies the hub dropped);
 * - what the outage cost: connection attempts per link from the stop until 99 % were back and counted (most of them
 *   refused while the hub was down).
 * Memory per idle connected link (RSS and heap after a full GC, delta over the process before any link,
 * divided by the links) against the same number of bare WebSockets that only say hello and answer pings.
 *
 * File descriptors: one socket per link here and one in the hub; the bench needs about 2 × links + 100
 * (raise `ulimit -n` before `npm run bench` where the soft limit is lower).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { agentDir, cleanup, hubForTest, spawnChildAgent } from "../hub/support.ts";
import type { TestHub } from "../hub/test-hub.ts";
import { compileAgent } from "./process-stats.ts";
import { type BenchReport, peakInWindow } from "./report.ts";

const LINKS = Number(process.env.FELHOM_BENCH_LINKS ?? 2_000);
const PER_EMIT = Number(process.env.FELHOM_BENCH_EVENTS_WHILE_DOWN ?? 2);
const DOWNTIMES_S = (process.env.FELHOM_BENCH_HUB_DOWN_SECONDS ?? "2,10,30").split(",").map(Number);
const TARGET = Math.ceil(LINKS * 0.99);
const WAIT_MS = 300_000;

type Child = ReturnType<typeof spawnChildAgent>;
type Mem = { rss: number; heapUsed: number };

/** Sends a command to the fleet child and returns its answer (the first line with `key` after it). */
async function ask(child: Child, command: string, key: string): Promise<Record<string, unknown>> {
  const from = child.lines.length;
  child.send(command);
  return child.waitForLine(command, (l) => key in l && child.lines.indexOf(l) >= from, WAIT_MS);
}

/** Resolves with the time at which `count` distinct agents (ids starting with `prefix`) said hello since hello #`from`. */
async function welcomedAt(hub: TestHub, from: number, prefix: string, count: number): Promise<number> {
  const seen = new Set<string>();
  let scanned = from;
  return hub.waitFor(
    `${count} links to say hello`,
    () => {
      for (; scanned < hub.hellos.length; scanned++) {
        const id = hub.hellos[scanned]!.agent.id;
        if (id.startsWith(prefix)) seen.add(id);
      }
      return seen.size >= count ? Date.now() : undefined;
    },
    WAIT_MS,
  );
}

export default async function (report: BenchReport): Promise<void> {
  const entry = (await compileAgent("test/bench/hub-fleet-child.ts"))("test/bench/hub-fleet-child.ts");
  try {
    const hub = await hubForTest();
    const fleet = (mode: "agent" | "bare", root: string) =>
      spawnChildAgent(
        { url: hub.url, root, count: LINKS, mode, credential: "test-credential", perEmit: PER_EMIT },
        entry,
        ["--expose-gc"],
      );

    // The fleet comes up: every link dials a running hub at once.
    const agents = fleet("agent", (await agentDir()).stateDir);
    const empty = (await ask(agents, "mem", "mem")).mem as Mem;
    await ask(agents, "open", "opened");
    const coldFrom = hub.hellos.length;
    const coldStart = Date.now();
    await ask(agents, "start", "started");
    const coldMs = (await welcomedAt(hub, coldFrom, "agent-", TARGET)) - coldStart;
    await welcomedAt(hub, coldFrom, "agent-", LINKS);
    await sleep(3_000); // the first status events are acked, startup garbage settles
    const idle = (await ask(agents, "mem", "mem")).mem as Mem;

    for (const downS of DOWNTIMES_S) {
      const prefix = `down_${downS}s_`;
      const tag = `hub-down-${downS}s`;
      const duplicatesBefore = hub.duplicates;
      const dialsBefore = (await ask(agents, "dials", "dials")).dials as number;
      const stoppedAt = Date.now();
      await hub.stop();
      const lastSeqs = (await ask(agents, `emit ${tag}`, "emitted")).lastSeqs as Record<string, number>;
      if (Object.keys(lastSeqs).length !== LINKS)
        throw new Error(`only ${Object.keys(lastSeqs).length} of ${LINKS} links queued events`);
      await sleep(Math.max(0, stoppedAt + downS * 1000 - Date.now()));
      const helloFrom = hub.hellos.length;
      const attemptsFrom = hub.attempts.length;
      const restartedAt = Date.now();
      await hub.restart();
      const t99 = (await welcomedAt(hub, helloFrom, "agent-", TARGET)) - restartedAt;
      const times = hub.attempts
        .slice(attemptsFrom)
        .map((a) => a.at)
        .filter((at) => at <= restartedAt + t99);
      const windowMs = Math.min(1_000, t99);
      const mean = times.length / (t99 / 1000);
      const peak = peakInWindow(times, windowMs) / (windowMs / 1000);
      report({ metric: `${prefix}reconnect_99pct`, value: t99, unit: "ms", baseline: coldMs });
      report({ metric: `${prefix}attempts_peak_per_s`, value: peak, unit: "attempts/s", baseline: mean });
      const dials = ((await ask(agents, "dials", "dials")).dials as number) - dialsBefore;
      report({ metric: `${prefix}dials_per_link`, value: dials / LINKS, unit: "attempts", baseline: null });

      // Every queued event must be stored and acked, once.
      await hub
        .waitFor(
          "every queued event acked",
          () => Object.entries(lastSeqs).every(([id, seq]) => hub.lastAckedSeq(id) >= seq),
          WAIT_MS,
        )
        .catch(() => undefined); // what is missing is counted below
      const stored = new Map<string, number>();
      for (const e of hub.events) {
        if (e.event.kind === "backup.progress" && e.event.backupId === tag)
          stored.set(e.agentId, (stored.get(e.agentId) ?? 0) + 1);
      }
      let lost = 0;
      for (const id of Object.keys(lastSeqs)) {
        const acked = hub.lastAckedSeq(id) >= lastSeqs[id]! ? (stored.get(id) ?? 0) : 0;
        lost += Math.max(0, PER_EMIT - acked);
      }
      report({ metric: `${prefix}events_lost`, value: lost, unit: "events", baseline: null });
      report({
        metric: `${prefix}events_duplicated`,
        value: hub.duplicates - duplicatesBefore,
        unit: "events",
        baseline: null,
      });
      await welcomedAt(hub, helloFrom, "agent-", LINKS);
    }
    await agents.kill("SIGKILL");

    // The floor for memory: bare WebSockets that hold a welcomed socket and nothing else.
    const bare = fleet("bare", (await agentDir()).stateDir);
    const bareEmpty = (await ask(bare, "mem", "mem")).mem as Mem;
    const bareFrom = hub.hellos.length;
    await ask(bare, "start", "started");
    await welcomedAt(hub, bareFrom, "bare-", LINKS);
    await sleep(3_000);
    const bareIdle = (await ask(bare, "mem", "mem")).mem as Mem;
    const perLink = (a: Mem, b: Mem, k: keyof Mem) => (b[k] - a[k]) / LINKS / 1024;
    report({
      metric: "idle_link_rss",
      value: perLink(empty, idle, "rss"),
      unit: "KiB/link",
      baseline: perLink(bareEmpty, bareIdle, "rss"),
    });
    report({
      metric: "idle_link_heap",
      value: perLink(empty, idle, "heapUsed"),
      unit: "KiB/link",
      baseline: perLink(bareEmpty, bareIdle, "heapUsed"),
    });
  } finally {
    await cleanup();
  }
}
