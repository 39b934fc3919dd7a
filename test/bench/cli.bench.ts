/**
 * The CLI's start-up as the package runs it (its bundle on plain node, with packaging/node-flags): wall time
 * and peak RSS of `felhom-guest version`, and of `backup` up to its first I/O (its code and the config
 * loader imported, the config parsed and checked; it ends there on a missing state_dir, so no daemon, PVE
 * or engine is needed): the part of every command that talks to the daemon before it does. The baseline is
 * `node -e 0` with the same flags, measured in the same run. Medians of FELHOM_BENCH_CLI_RUNS (default 15).
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeOfflineConfig } from "../support/agent-cli.ts";
import { bundledAgent } from "./process-stats.ts";
import { type BenchReport, median } from "./report.ts";

const runs = Number(process.env.FELHOM_BENCH_CLI_RUNS ?? 15);
/** Preloaded in every measured process alike: reports the peak RSS on fd 3 as the process exits. */
const PEAK_RSS =
  'data:text/javascript,import{writeSync}from"node:fs";process.on("exit",()=>writeSync(3,String(process.resourceUsage().maxRSS)))';

async function once(args: string[]): Promise<{ ms: number; rssKiB: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, ["--import", PEAK_RSS, ...args], {
    stdio: ["ignore", "ignore", "ignore", "pipe"],
  });
  let rss = "";
  child.stdio[3]!.on("data", (d: Buffer) => {
    rss += d;
  });
  await new Promise((r) => child.once("close", r));
  return { ms: performance.now() - started, rssKiB: Number(rss) };
}

type Measured = { ms: number; rssMiB: number };

/** The commands' samples interleaved round by round, so that a busy machine weighs on each alike. */
async function measure(commands: string[][]): Promise<Measured[]> {
  const samples = commands.map(() => [] as { ms: number; rssKiB: number }[]);
  for (let i = 0; i < runs; i++)
    for (const [c, args] of commands.entries()) samples[c]!.push(await once(args));
  return samples.map((s) => ({
    ms: median(s.map((x) => x.ms)),
    rssMiB: median(s.map((x) => x.rssKiB)) / 1024,
  }));
}

export default async function (report: BenchReport): Promise<void> {
  const main = await bundledAgent();
  const flags = (await readFile(new URL("../../packaging/node-flags", import.meta.url), "utf8"))
    .trim()
    .split(/\s+/);
  const dir = await mkdtemp(join(tmpdir(), "felhom-cli-bench-"));
  try {
    const config = await writeOfflineConfig(dir, { stateDir: join(dir, "missing") });
    const [bare, version, backup] = (await measure([
      [...flags, "-e", "0"],
      [...flags, main, "version"],
      [...flags, main, "--config", config, "backup"],
    ])) as [Measured, Measured, Measured];
    report({ metric: "version_time", value: version.ms, unit: "ms", baseline: bare.ms });
    report({ metric: "version_rss_peak", value: version.rssMiB, unit: "MiB", baseline: bare.rssMiB });
    report({ metric: "backup_startup_time", value: backup.ms, unit: "ms", baseline: bare.ms });
    report({ metric: "backup_startup_rss_peak", value: backup.rssMiB, unit: "MiB", baseline: bare.rssMiB });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
