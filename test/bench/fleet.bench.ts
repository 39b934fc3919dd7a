/**
 * A node full of agents (issue 15, section 2). One PVE simulator node hosts N guests (FELHOM_BENCH_FLEET_SIZES,
 * default "10,30"), each with its own vmid, its own privsep token (the role on its own guest and the storage
 * only), its own root of a few hundred MB (200-400 MB of real, allocated bytes; the simulator archives at the
 * measured 110 MB/s, so the archive time is that of a real host; the lock is held a scaled 1.5 s before the
 * archive's first bytes and after its last, HAND_OVER_WINDOW_MS) and its own tiny compose stack (one busybox
 * service) on the one Docker engine. The root's bytes are half random, half zeros per MiB, so that zstd halves
 * them as it does a typical root and the archive grows the backup storage's `used` as a real one does (the
 * agent looks at that growth before it quiesces, agent/backup/quiet-storage.ts; all zeros compressed to
 * nothing and hid it). Each guest runs its own agent process (fleet-agent-child.ts: the real
 * BackupService + Scheduler, own state dir, quiescing only its own project) with a daily slot and the
 * default 900 s jitter and busy_retry, all three scaled by 1/FELHOM_BENCH_FLEET_SCALE (default 6), so that
 * their ratios hold while the night fits in a few minutes. The archive rate is not scaled: the bench's night is
 * a node whose guests are SCALE times larger (1-2 GB), the harder, contended case.
 *
 * Every agent's schedule runs the slot FELHOM_BENCH_FLEET_NIGHTS times (default 2: the first night, with
 * nothing learned, and the second, where each schedule comes back to where the node was free for it), once
 * per FELHOM_BENCH_FLEET_LOOK (default "off,on": without and with the look at the storage before quiescing,
 * quiet-storage.ts), interleaved night by night on the same guests, each kind with its own learned delays and
 * the same seeded draws (the delays in the slot of a first night are the same for both), so that both meet
 * the same sizes and the same machine load; then every guest is backed up alone, one after the other (the
 * same-run baseline of downtime, shared by both). Per N, kind and night:
 * - makespan (the first agent's start of the slot to the last backup's end) against the serial floor (the sum
 *   of the archive times), and the jitter window it cannot beat;
 * - the node lock's utilisation: the share of the time in which some guest wanted a backup (from its run's
 *   time, its delay in the slot over, or its first attempt if earlier, to the end of its backup: a guest
 *   waiting for a quiet storage wants the node as much as one waiting for a retry) that the lock was held;
 *   and the lock held over the makespan;
 * - each guest's stack downtime from Docker's own events (die to start of its container): the longest
 *   single outage (p50, p99) and all outages of the slot summed (p99), against the guests backed up alone;
 * - vzdump tasks refused (lock busy) or stopped (each is a failed job the PVE admin is notified of), against
 *   the goal's N/2; backups missed (no completed backup of the slot).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { busyRetryDelayMs } from "../../agent/backup/busy-retry.ts";
import { configSchema } from "../../agent/config/schema.ts";
import { cleanup, spawnChildAgent } from "../hub/support.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { decodeUpid } from "../pve-sim/upid.ts";
import { compose } from "../support/compose.ts";
import type { FleetAgentConfig } from "./fleet-agent-child.ts";
import { compileAgent } from "./process-stats.ts";
import type { BenchReport } from "./report.ts";

const run = promisify(execFile);
const SIZES = (process.env.FELHOM_BENCH_FLEET_SIZES ?? "10,30").split(",").map(Number);
const SCALE = Number(process.env.FELHOM_BENCH_FLEET_SCALE ?? 6);
const JITTER_S = 900 / SCALE;
/** The shipped busy_retry defaults, the delay scaled like the jitter. */
const DEFAULT_RETRY = configSchema.shape.backup.shape.busy_retry.parse(undefined);
const RETRY = { attempts: DEFAULT_RETRY.attempts, delay_seconds: DEFAULT_RETRY.delay_seconds / SCALE };
const NIGHTS = Number(process.env.FELHOM_BENCH_FLEET_NIGHTS ?? 2);
const LOOKS = (process.env.FELHOM_BENCH_FLEET_LOOK ?? "off,on").split(",").map((l) => {
  if (l !== "off" && l !== "on") throw new Error(`FELHOM_BENCH_FLEET_LOOK: "${l}" is neither off nor on`);
  return l;
});
const ARCHIVE_RATE = 110e6;
/**
 * A real node's lock is held for seconds around the archive: before its first bytes, the snapshot's volumes are
 * activated and mounted, and after it, unmounted and the snapshot deleted (pve-container src/PVE/VZDump/LXC.pm
 * `snapshot`, `cleanup`; on LVM-thin, the default install, an `lvchange -ay -K` and an `lvremove`). Assumed
 * 1.5 s each on a real node (not measured there), scaled like the looks that must see across them: a guest
 * that has just taken the lock writes nothing yet, and one whose archive has ended still holds it. The
 * simulator's own 30 ms snapshot (its default) made that window invisible to the bench.
 */
const HAND_OVER_WINDOW_MS = 1_500 / SCALE;
/**
 * A path prefix (FELHOM_BENCH_FLEET_TRACE): each night's raw timeline (lock tenures, refusals, archives, the
 * agents' lines) is written to `<prefix>-<night>json`, to see where a night's utilisation went.
 */
const TRACE = process.env.FELHOM_BENCH_FLEET_TRACE;
const MB = 1024 * 1024;
const first = 200;

type Child = ReturnType<typeof spawnChildAgent>;
interface Guest {
  vmid: number;
  project: string;
  stackDir: string;
  child: Child;
}

/** Nearest-rank percentile of a non-empty list. */
function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Runs `work` over `items`, `limit` at a time. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
    }),
  );
}

/** Container outages per guest from the engine's own events: [die, start] intervals in ms. */
class OutageWatch {
  readonly #proc: ChildProcess;
  readonly #down = new Map<number, number>();
  readonly outages = new Map<number, Array<[number, number]>>();

  constructor(label: string) {
    this.#proc = spawn(
      "/usr/bin/docker",
      ["events", "--format", "{{json .}}", "--filter", `label=${label}`, "--filter", "type=container"],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    createInterface({ input: this.#proc.stdout! }).on("line", (line) => {
      const e = JSON.parse(line) as {
        Action: string;
        timeNano: number;
        Actor: { Attributes: Record<string, string> };
      };
      const vmid = Number(e.Actor.Attributes[label]);
      const at = e.timeNano / 1e6;
      if (e.Action === "die" || e.Action === "pause") this.#down.set(vmid, at);
      else if ((e.Action === "start" || e.Action === "unpause") && this.#down.has(vmid)) {
        const list = this.outages.get(vmid) ?? [];
        list.push([this.#down.get(vmid)!, at]);
        this.outages.set(vmid, list);
        this.#down.delete(vmid);
      }
    });
  }

  /** Outages of `vmid` that began in [from, to], as [down, up]. */
  spans(vmid: number, from: number, to: number): Array<[number, number]> {
    return (this.outages.get(vmid) ?? []).filter(([d]) => d >= from && d <= to);
  }

  /** Outage durations of `vmid` that began in [from, to]. */
  within(vmid: number, from: number, to: number): number[] {
    return this.spans(vmid, from, to).map(([d, s]) => s - d);
  }

  stop(): void {
    this.#proc.kill();
  }
}

async function setUpGuest(sim: PveSimulator, entry: string, i: number, blob: string): Promise<Guest> {
  const vmid = first + i;
  const mac = `bc:24:11:00:${String(Math.floor(i / 100)).padStart(2, "0")}:${String(i % 100).padStart(2, "0")}`;
  const hostname = `fleet${vmid}`;
  const self = await selfScopedGuest(sim, { vmid, storage: "bk", hostname, hwaddr: mac });
  const root = self.guest.rootDir;
  const stateDir = join(root, "var/lib/felhom-guest");
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  // A few hundred MB of real bytes, sharing extents with the first guest's (btrfs reflinks): tar reads them all.
  await mkdir(join(root, "data"), { recursive: true });
  const size = 200 + ((i * 67) % 201);
  await run("cp", ["--reflink=auto", blob, join(root, "data/blob")]);
  await run("truncate", ["-s", String(size * MB), join(root, "data/blob")]);
  const stackDir = join(root, "srv/app");
  await mkdir(stackDir, { recursive: true });
  await writeFile(
    join(stackDir, "docker-compose.yml"),
    `services:
  app:
    image: local/busybox:1.35
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    network_mode: none
    labels:
      felhom.fleet: "${vmid}"
    restart: unless-stopped
`,
  );
  const project = `felhom-fleet-${process.pid}-${vmid}`;
  const config: FleetAgentConfig = {
    pveUrl: sim.url,
    fingerprint: sim.fingerprint,
    tokenId: self.tokenId,
    secret: self.secret,
    stateDir,
    project,
    hostname,
    mac,
    jitterSeconds: JITTER_S,
    busyRetry: RETRY,
    seed: i + 1,
  };
  return { vmid, project, stackDir, child: spawnChildAgent({ ...config }, entry) };
}

interface Alone {
  longest: number[];
  summed: number[];
}

/** One slot of every agent's schedule, measured; reports once the alone baseline is known. */
async function runNight(
  p: string,
  sim: PveSimulator,
  guests: Guest[],
  watch: OutageWatch,
  slot: { look: "off" | "on"; night: number },
): Promise<(report: BenchReport, alone: Alone) => void> {
  const n = guests.length;
  const lock = sim.nodeLock(sim.opts.node);
  const holdsBefore = lock.holds.length;
  const refusalsBefore = lock.refusals.length;
  const stoppedBefore = sim.taskRegistry.stopped.length;
  const runsBefore = sim.vzdumpRuns.length;

  // The night: every agent's schedule runs one slot, live, at the next minute boundary at least 10 s ahead
  // (the learned delay counts from a slot's time; a catch-up neither uses nor teaches it).
  const slotAt = Math.ceil((Date.now() + 10_000) / 60_000) * 60_000;
  const from = new Map(guests.map((g) => [g.vmid, g.child.lines.length]));
  for (const g of guests)
    g.child.send(`slot ${slotAt} ${slot.look === "on" ? "look" : "nolook"} ${slot.night}`);
  // Until the slot, the jitter, every retry at its longest (busy-retry.ts), and a backup's time per guest.
  let retriesMs = 0;
  for (let attempt = 1; attempt < RETRY.attempts; attempt++)
    retriesMs += busyRetryDelayMs(RETRY.delay_seconds, attempt, () => 1);
  const horizonS = (slotAt - Date.now() + retriesMs) / 1000 + JITTER_S + n * 15;
  const finals = new Map<number, { ok: boolean }>();
  await Promise.all(
    guests.map(async (g) => {
      const line = await g.child
        .waitForLine(
          "the slot's result",
          (l) => "final" in l && g.child.lines.indexOf(l) >= from.get(g.vmid)!,
          horizonS * 1000,
        )
        .catch(() => undefined);
      if (line) finals.set(g.vmid, line.final as { ok: boolean });
    }),
  );
  await new Promise((r) => setTimeout(r, 1_000)); // the last start events

  const vmidOf = (upid: string) => Number(decodeUpid(upid)?.id);
  const holds = lock.holds.slice(holdsBefore).filter((h) => h.to !== undefined) as Array<{
    owner: string;
    from: number;
    to: number;
  }>;
  const runs = sim.vzdumpRuns.slice(runsBefore).filter((r) => r.archiveFinishedAt && r.volid);
  const floorMs = runs.reduce((a, r) => a + (r.archiveFinishedAt! - r.archiveStartedAt!), 0);
  const attempts = [...holds.map((h) => ({ vmid: vmidOf(h.owner), at: h.from }))];
  for (const r of lock.refusals.slice(refusalsBefore)) attempts.push({ vmid: vmidOf(r.owner), at: r.at });
  const start = Math.min(...attempts.map((a) => a.at));
  const end = Math.max(...holds.map((h) => h.to));
  const heldMs = holds.reduce((a, h) => a + (h.to - h.from), 0);
  // Demand: per guest from when its run was due (its delay over; a look at the storage begun ahead of that is
  // not demand, a wait after it is) or its first attempt, whichever came first, to the end of its last tenure;
  // their union.
  const demand = guests
    .map((g) => {
      const mine = attempts.filter((a) => a.vmid === g.vmid).map((a) => a.at);
      const wants = g.child.lines.slice(from.get(g.vmid)!).find((l) => typeof l.wants === "number")?.wants as
        | number
        | undefined;
      if (wants !== undefined) mine.push(wants);
      const tenures = holds.filter((h) => vmidOf(h.owner) === g.vmid).map((h) => h.to);
      return mine.length && tenures.length ? [Math.min(...mine), Math.max(...tenures)] : undefined;
    })
    .filter((d): d is number[] => d !== undefined)
    .sort((a, b) => a[0]! - b[0]!);
  let demandMs = 0;
  let cursor = 0;
  for (const [from, to] of demand) {
    const lo = Math.max(from!, cursor);
    if (to! > lo) demandMs += to! - lo;
    cursor = Math.max(cursor, to!);
  }
  // The hand-overs: the lock idle from one tenure's end to the next one's start while some guest wanted it
  // (what looking, quiescing and submitting cost between two backups, and what the utilisation loses).
  const tenures = [...holds].sort((a, b) => a.from - b.from);
  const handOvers = tenures
    .slice(1)
    .map((h, i) => ({ idle: h.from - tenures[i]!.to, at: tenures[i]!.to }))
    .filter(({ idle, at }) => idle >= 0 && demand.some(([from, to]) => from! <= at && to! > at))
    .map(({ idle }) => idle);
  const longest: number[] = [];
  const summed: number[] = [];
  // The diagnosis of long outages: a refused attempt's (a refusal of this guest inside it) or a backup's,
  // and whether another guest's archive was being written meanwhile (the one machine's CPU and disk).
  const refusedOutages: number[] = [];
  const backupOutages: number[] = [];
  let besideArchive = 0;
  let outageCount = 0;
  const refusals = lock.refusals.slice(refusalsBefore);
  for (const g of guests) {
    const spans = watch.spans(g.vmid, slotAt, Date.now());
    const outages = spans.map(([d, u]) => u - d);
    longest.push(Math.max(0, ...outages));
    summed.push(outages.reduce((a, b) => a + b, 0));
    for (const [d, u] of spans) {
      outageCount++;
      const refused = refusals.some((r) => vmidOf(r.owner) === g.vmid && r.at >= d && r.at <= u);
      (refused ? refusedOutages : backupOutages).push(u - d);
      if (runs.some((r) => r.vmid !== g.vmid && r.archiveStartedAt! < u && r.archiveFinishedAt! > d))
        besideArchive++;
    }
  }
  const refused = lock.refusals.length - refusalsBefore;
  if (TRACE)
    await writeFile(
      `${TRACE}-${p.replace(/[^a-z0-9]+/gi, "_")}json`,
      JSON.stringify({
        slotAt,
        holds,
        refusals,
        runs: runs.map((r) => ({ vmid: r.vmid, a0: r.archiveStartedAt, a1: r.archiveFinishedAt })),
        lines: Object.fromEntries(guests.map((g) => [g.vmid, g.child.lines.slice(from.get(g.vmid)!)])),
        outages: Object.fromEntries(guests.map((g) => [g.vmid, watch.spans(g.vmid, slotAt, Date.now())])),
      }),
    );
  const stopped = sim.taskRegistry.stopped.length - stoppedBefore;
  const missed = guests.filter((g) => !finals.get(g.vmid)?.ok).length;
  return (report, alone) => {
    report({
      metric: `${p}makespan (baseline: serial floor, the sum of archive times)`,
      value: end - start,
      unit: "ms",
      baseline: floorMs,
    });
    report({ metric: `${p}jitter window (scaled 1/${SCALE})`, value: JITTER_S * 1000, unit: "ms" });
    report({
      metric: `${p}lock utilisation while a guest waits (goal 0.7)`,
      value: heldMs / demandMs,
      unit: "ratio",
    });
    report({ metric: `${p}lock held over the makespan`, value: heldMs / (end - start), unit: "ratio" });
    if (handOvers.length > 0) {
      report({
        metric: `${p}diagnosis: hand-over p50, the lock idle between two backups while a guest wanted it`,
        value: percentile(handOvers, 50),
        unit: "ms",
      });
      report({
        metric: `${p}diagnosis: hand-over p90`,
        value: percentile(handOvers, 90),
        unit: "ms",
      });
    }
    report({
      metric: `${p}downtime p50, longest outage (baseline: alone p50)`,
      value: percentile(longest, 50),
      unit: "ms",
      baseline: percentile(alone.longest, 50),
    });
    report({
      metric: `${p}downtime p99, longest outage (baseline: alone p99)`,
      value: percentile(longest, 99),
      unit: "ms",
      baseline: percentile(alone.longest, 99),
    });
    report({
      metric: `${p}downtime p99, all outages of the slot summed (baseline: alone p99)`,
      value: percentile(summed, 99),
      unit: "ms",
      baseline: percentile(alone.summed, 99),
    });
    report({
      metric: `${p}vzdump tasks refused or stopped (baseline: the goal N/2)`,
      value: refused + stopped,
      unit: "tasks",
      baseline: n / 2,
    });
    report({ metric: `${p}backups missed`, value: missed, unit: "guests" });
    if (backupOutages.length > 0)
      report({
        metric: `${p}diagnosis: outage p99 of backups that got the lock (baseline: alone p99)`,
        value: percentile(backupOutages, 99),
        unit: "ms",
        baseline: percentile(alone.longest, 99),
      });
    if (refusedOutages.length > 0)
      report({
        metric: `${p}diagnosis: outage p99 of refused attempts (baseline: alone p99)`,
        value: percentile(refusedOutages, 99),
        unit: "ms",
        baseline: percentile(alone.longest, 99),
      });
    report({
      metric: `${p}diagnosis: share of outages while another guest's archive was written`,
      value: besideArchive / Math.max(1, outageCount),
      unit: "ratio",
    });
  };
}

async function measure(n: number, entry: string, report: BenchReport): Promise<void> {
  const sim = await startPveSimulator({
    authFailureDelayMs: 50,
    archiveBytesPerSecond: ARCHIVE_RATE,
    snapshotMountDelayMs: HAND_OVER_WINDOW_MS,
    snapshotRemoveDelayMs: HAND_OVER_WINDOW_MS,
    btrfsSizeBytes: 8 * 1024 ** 3,
  });
  const watch = new OutageWatch("felhom.fleet");
  const guests: Guest[] = [];
  try {
    if (sim.volumes.method !== "btrfs")
      throw new Error("the simulator has no btrfs: snapshots would be copies");
    const blob = join(sim.volumes.rootPath("fleet-blob"));
    // Half random, half zeros per MiB: zstd halves it, as it does a typical root, so the archive lands on the
    // storage at about half the read rate and grows its `used` as a real one does (all zeros would not).
    const half = Buffer.alloc(512 * 1024);
    await writeFile(
      blob,
      (function* () {
        for (let i = 0; i < 400; i++) yield Buffer.concat([randomBytes(512 * 1024), half]);
      })(),
    );
    for (let i = 0; i < n; i++) guests.push(await setUpGuest(sim, entry, i, blob));
    await pool(guests, 3, async (g) => {
      await compose(g.project, g.stackDir, "up", "-d", "--quiet-pull");
    });

    const nights: Array<(report: BenchReport, alone: Alone) => void> = [];
    for (let night = 1; night <= NIGHTS; night++)
      for (const look of LOOKS)
        nights.push(
          await runNight(`N=${n}, look ${look}, night ${night}: `, sim, guests, watch, { look, night }),
        );
    const aloneLongest: number[] = [];
    const aloneSum: number[] = [];
    // The baseline: a sample of the guests, each backed up alone, after the nights (every agent warm).
    for (const g of guests) {
      const from = Date.now();
      g.child.send("alone");
      const line = await g.child.waitForLine("alone backup", (l) => "alone" in l, 120_000);
      if (!(line.alone as { ok: boolean }).ok)
        throw new Error(`guest ${g.vmid} alone: ${JSON.stringify(line)}`);
      await new Promise((r) => setTimeout(r, 500)); // the start event
      const outages = watch.within(g.vmid, from, Date.now());
      aloneLongest.push(Math.max(0, ...outages));
      aloneSum.push(outages.reduce((a, b) => a + b, 0));
    }
    for (const reportNight of nights) reportNight(report, { longest: aloneLongest, summed: aloneSum });
  } finally {
    watch.stop();
    for (const g of guests) await g.child.kill();
    await pool(guests, 3, async (g) => {
      await compose(g.project, g.stackDir, "down", "--timeout", "2").catch(() => undefined);
    });
    await sim.close();
  }
}

export default async function (report: BenchReport): Promise<void> {
  const entry = (await compileAgent("test/bench/fleet-agent-child.ts"))("test/bench/fleet-agent-child.ts");
  try {
    for (const n of SIZES) await measure(n, entry, report);
  } finally {
    await cleanup();
  }
}
