/**
 * The agent's snapshot-mode downtime against a hand-run floor that knows everything in advance (issue 15,
 * section 1): same stack, same simulator, same run. The floor stops the services in dependency order (the
 * app, then PostgreSQL) with the same Docker calls, POSTs the vzdump, learns the snapshot instant from the
 * simulator's own memory (an in-process check every millisecond, no task-log polling), then starts
 * PostgreSQL, waits for it to be healthy with the agent's health poll (250 ms), and starts the app. Both
 * are measured as a PostgreSQL writer sees them (the longest gap between acknowledged commits), at 50 MB
 * and 500 MB, alternating agent and floor three times; the figures are the medians. The agent runs with
 * the follower's production poll (250 ms while the stacks are down), not the tests' faster seam.
 *
 * Figures: per size, the agent's gap (baseline: the floor's gap; goal ratio ≤ 1.10), and the agent's
 * breakdown medians (quiesce, PVE, notice, resume of the db) to say where any difference goes.
 */
import type { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { followTaskToEnd } from "../../agent/pve/task-follower.ts";
import { serviceContainer } from "../support/compose.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { longestGapMs, PgWriter } from "../support/pg-writer.ts";
import { fill, measure } from "./backup.bench.ts";
import type { BenchReport } from "./report.ts";

const ARCHIVE_RATE = 110e6;
const SIZES_MB = [50, 500];
const ROUNDS = 3;
/** The agent's health poll (agent/quiesce/executor.ts HEALTH_POLL_MS): the floor waits the same way. */
const HEALTH_POLL_MS = 250;
/** Docker's default grace, as the demo stack sets none (the agent uses the same). */
const GRACE_S = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(probe: () => T | undefined, everyMs: number): Promise<T> {
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    await sleep(everyMs);
  }
}

async function healthy(engine: DockerEngine, id: string): Promise<void> {
  while ((await engine.inspect(id)).health !== "healthy") await sleep(HEALTH_POLL_MS);
}

async function floor(h: GuestHarness, writer: PgWriter): Promise<number> {
  const { engine, pve, self, dbContainer } = h;
  const app = await serviceContainer(h.project, "app");
  const node = self.guest.node;
  await writer.waitForAcks((await writer.acks()).length + 20);
  const start = Date.now();
  await engine.stop(app, app, GRACE_S);
  await engine.stop(dbContainer, dbContainer, GRACE_S);
  const sub = await pve.vzdump(node, {
    vmid: self.guest.vmid,
    storage: h.backupConfig.storage,
    mode: "snapshot",
    compress: "zstd",
    lockwait: 0,
  });
  if (sub.kind !== "task") throw new Error("the floor's vzdump started no task");
  await until(() => h.sim.vzdumpRuns.find((r) => r.upid === sub.upid)?.snapshotTakenAt, 1);
  await engine.start(dbContainer, dbContainer);
  await healthy(engine, dbContainer);
  await engine.start(app, app);
  const result = await followTaskToEnd(pve, node, sub.upid);
  if (result.classified.kind !== "ok") throw new Error(`the floor's vzdump ended ${result.exitstatus}`);
  const end = Date.now();
  await writer.waitForAcks((await writer.acks()).length + 20);
  return longestGapMs(await writer.acks(), start, end + 60_000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export default async function (report: BenchReport): Promise<void> {
  for (const mb of SIZES_MB) {
    const h = await startGuestHarness({ archiveBytesPerSecond: ARCHIVE_RATE });
    const writer = await PgWriter.start(h.network);
    try {
      await fill(h, mb);
      const agent: number[] = [];
      const floors: number[] = [];
      const parts: Record<"quiesceMs" | "pveMs" | "noticeMs" | "resumeMs", number[]> = {
        quiesceMs: [],
        pveMs: [],
        noticeMs: [],
        resumeMs: [],
      };
      for (let i = 0; i < ROUNDS; i++) {
        const m = await measure(h, writer, "snapshot", h.deps({ follow: {} }));
        agent.push(m.downtimeMs);
        const db = m.downtime.find((d) => d.service === "db")?.breakdown;
        for (const k of Object.keys(parts) as (keyof typeof parts)[]) parts[k].push(db?.[k] ?? 0);
        floors.push(await floor(h, writer));
      }
      process.stderr.write(
        `[bench downtime] ${mb} MB agent ${agent.join(", ")} floor ${floors.join(", ")}\n`,
      );
      report({
        metric: `snapshot mode, ${mb} MB: writer's gap, agent (baseline: hand-run floor; goal ≤ 1.10)`,
        value: median(agent),
        unit: "ms",
        baseline: median(floors),
      });
      for (const [k, xs] of Object.entries(parts))
        report({
          metric: `snapshot mode, ${mb} MB: agent's db ${k.replace("Ms", "")}`,
          value: median(xs),
          unit: "ms",
        });
    } finally {
      await writer.stop();
      await h.close();
    }
  }
}
