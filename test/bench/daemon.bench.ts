/**
 * The whole agent at rest: `felhom-guest run` as it ships (the package's bundle on plain node, with its V8
 * flags) with everything it loads in production (PVE client, Docker adapter, scheduler, hub link), with the
 * example config's daily schedule in the guest's zone, connected to the test hub, with a PVE simulator guest
 * and a real compose stack. Measured once the daemon has started and its scheduler has ticked (the first
 * minute boundary after its first status), RSS sampled every second for FELHOM_BENCH_IDLE_SECONDS (default
 * 30), side by side with three processes started for the same window:
 *   - a bare node holding one WebSocket to the same hub, without flags (the goal's baseline, `daemon_idle_rss`),
 *   - the same with the package's flags (`daemon_idle_rss_same_flags`: what the flags do not explain),
 *   - the same with the flags, holding the npm packages the daemon loads (`daemon_idle_rss_over_floor`: what
 *     the agent's own code and state cost on top of its dependencies; the floor makes no PVE request, so
 *     llhttp's WebAssembly that the daemon's first PVE call compiles is on the daemon's side).
 * Then one backup (`felhom-guest backup`, which the daemon runs) and, once the daemon's collections after it
 * are over (35 s), the same window again: the daemon's resident set once it has done its work
 * (`daemon_rss_after_backup`, against the same bare process), which a flag or a lazy import that only defers a
 * cost would show. In the first run, FELHOM_BENCH_DAEMON_MORE_BACKUPS (default 4) more backups, each followed
 * by the same wait, then the window again (`daemon_rss_after_5_backups`): whether the daemon grows night after
 * night. Each other figure is the median over FELHOM_BENCH_DAEMON_RUNS runs (default 3, a fresh daemon each)
 * of the median of its samples.
 */

import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startTestHub } from "../hub/test-hub.ts";
import { writeAgentConfig } from "../support/agent-cli.ts";
import { startGuestHarness } from "../support/guest-harness.ts";
import { bundledAgent, cpuTicks, rssBytes, spawnBare } from "./process-stats.ts";
import { type BenchReport, median } from "./report.ts";

const runs = Number(process.env.FELHOM_BENCH_DAEMON_RUNS ?? 3);
const windowSeconds = Number(process.env.FELHOM_BENCH_IDLE_SECONDS ?? 30);
const MB = 1024 * 1024;
const CLK_TCK = 100;
/** What the daemon imports from npm (agent/pve/undici-core.ts: undici by its files). */
const DEPENDENCIES = [
  "zod",
  "yaml",
  "pino",
  "node-cron",
  "dockerode",
  "undici/lib/dispatcher/pool.js",
  "undici/lib/core/connect.js",
  "undici/lib/api/api-request.js",
];
/** Backups more in the first run, each followed by the settle: does the daemon grow night after night? */
const MORE_BACKUPS = Number(process.env.FELHOM_BENCH_DAEMON_MORE_BACKUPS ?? 4);
/** The daemon's collections after an operation (agent/lib/heap-settle.ts: 3, 10 s apart) and a margin. */
const SETTLE_MS = 35_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const run = promisify(execFile);

type Run = {
  daemon: number;
  max: number;
  bare: number;
  bareFlags: number;
  floor: number;
  cpu: number;
  afterBackup: number;
  bareAfterBackup: number;
  afterBackups?: number;
  bareAfterBackups?: number;
};

export default async function (report: BenchReport): Promise<void> {
  const main = await bundledAgent();
  const h = await startGuestHarness();
  const hub = await startTestHub({ credentials: ["bench-credential"] });
  const dir = await mkdtemp(join(tmpdir(), "felhom-daemon-bench-"));
  // As the package runs it: with the V8 flags of packaging/node-flags.
  const nodeFlags = (await readFile(new URL("../../packaging/node-flags", import.meta.url), "utf8"))
    .trim()
    .split(/\s+/);
  // The example config's schedule (packaging/agent.example.yaml), in the guest's zone.
  const config = await writeAgentConfig(h, dir, ["schedule:", '  cron: "30 2 * * *"'], {
    url: hub.url,
    credential: "bench-credential",
  });
  const results: Run[] = [];
  try {
    for (let i = 0; i < runs; i++)
      results.push(await oneRun(main, config, nodeFlags, hub, i === 0 ? MORE_BACKUPS : 0));
  } finally {
    await hub.close();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  }
  const med = (pick: (r: Run) => number) => median(results.map(pick));
  const daemon = med((r) => r.daemon);
  report({ metric: "daemon_idle_rss", value: daemon, unit: "MiB", baseline: med((r) => r.bare) });
  report({
    metric: "daemon_idle_rss_same_flags",
    value: daemon,
    unit: "MiB",
    baseline: med((r) => r.bareFlags),
  });
  report({ metric: "daemon_idle_rss_over_floor", value: daemon, unit: "MiB", baseline: med((r) => r.floor) });
  report({ metric: "daemon_idle_rss_max", value: Math.max(...results.map((r) => r.max)), unit: "MiB" });
  report({
    metric: "daemon_rss_after_backup",
    value: med((r) => r.afterBackup),
    unit: "MiB",
    baseline: med((r) => r.bareAfterBackup),
  });
  const first = results[0]!;
  if (first.afterBackups !== undefined)
    report({
      metric: `daemon_rss_after_${MORE_BACKUPS + 1}_backups`,
      value: first.afterBackups,
      unit: "MiB",
      baseline: first.bareAfterBackups!,
    });
  report({ metric: "daemon_idle_cpu", value: med((r) => r.cpu), unit: "%" });
}

async function oneRun(
  main: string,
  config: string,
  nodeFlags: string[],
  hub: Awaited<ReturnType<typeof startTestHub>>,
  moreBackups: number,
): Promise<Run> {
  const statuses = hub.events.filter((e) => e.event.kind === "status").length;
  const daemon = spawn(process.execPath, [...nodeFlags, main, "--config", config, "run"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise((r) => daemon.once("exit", r));
  const baselines = [
    spawnBare(hub.url, "bench-credential", { agentId: "bare" }),
    spawnBare(hub.url, "bench-credential", { agentId: "bare-flags", nodeFlags }),
    spawnBare(hub.url, "bench-credential", { agentId: "floor", nodeFlags, preload: DEPENDENCIES }),
  ];
  try {
    await hub.waitFor(
      "the daemon's first status",
      () => hub.events.filter((e) => e.event.kind === "status")[statuses],
      60_000,
    );
    await Promise.all(baselines.map((b) => b.ready));
    // The scheduler ticks at every minute boundary: measure after its first tick.
    await sleep(60_000 - (Date.now() % 60_000) + 2_000);
    const pids = [daemon.pid!, ...baselines.map((b) => b.pid)];
    const cpu0 = cpuTicks(daemon.pid!);
    const samples = await sampleRss(pids);
    const cpu = ((cpuTicks(daemon.pid!) - cpu0) / CLK_TCK / windowSeconds) * 100;
    const [d, bare, bareFlags, floor] = samples.map((x) => median(x)) as [number, number, number, number];
    // Relayed through the daemon's control socket: the daemon runs it.
    await run(process.execPath, [main, "--config", config, "backup"]);
    // Idle again: after the collections the daemon runs once an operation is over.
    await sleep(SETTLE_MS);
    const after = await sampleRss(pids.slice(0, 2));
    let afterMore: number[][] | undefined;
    if (moreBackups > 0) {
      for (let b = 0; b < moreBackups; b++) {
        await run(process.execPath, [main, "--config", config, "backup"]);
        await sleep(SETTLE_MS);
      }
      afterMore = await sampleRss(pids.slice(0, 2));
    }
    return {
      daemon: d,
      max: Math.max(...samples[0]!),
      bare,
      bareFlags,
      floor,
      cpu,
      afterBackup: median(after[0]!),
      bareAfterBackup: median(after[1]!),
      ...(afterMore ? { afterBackups: median(afterMore[0]!), bareAfterBackups: median(afterMore[1]!) } : {}),
    };
  } finally {
    for (const b of baselines) b.kill();
    daemon.kill("SIGTERM");
    await exited;
  }
}

/** RSS of each pid in MiB, once a second for the window. */
async function sampleRss(pids: number[]): Promise<number[][]> {
  const samples = pids.map(() => [] as number[]);
  for (let s = 0; s < windowSeconds; s++) {
    for (const [i, pid] of pids.entries()) samples[i]!.push(rssBytes(pid) / MB);
    await sleep(1_000);
  }
  return samples;
}
