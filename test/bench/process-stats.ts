/**
 * Measuring an agent process from outside, as it ships (the package's bundle, packaging/bundle.mjs) or
 * compiled with tsc where a bench needs its modules one by one, run on plain node (no tsx loader), its RSS
 * and CPU read from /proc, side by side with a bare node process that only holds one WebSocket to the same
 * hub (the baseline of the idle figures).
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { bundleAgent } from "../../packaging/bundle.mjs";
import type { BenchFigure } from "./report.ts";

const root = resolve(import.meta.dirname, "../..");
const buildDir = join(root, "node_modules/.cache/felhom-bench-build");
const CLK_TCK = 100;
const MB = 1024 * 1024;
export const idleSeconds = Number(process.env.FELHOM_BENCH_IDLE_SECONDS ?? 60);

/** The agent as the package ships it (packaging/bundle.mjs), fresh; returns its main.js. */
export async function bundledAgent(): Promise<string> {
  const dir = join(buildDir, "bundle");
  await rm(dir, { recursive: true, force: true });
  await bundleAgent(dir);
  return join(dir, "main.js");
}

/**
 * Compiles agent/, protocol/ and an extra entry (relative to the repo) to plain JS under
 * node_modules/.cache, where packages resolve; returns the path of a compiled file by its source path.
 */
export async function compileAgent(...extra: string[]): Promise<(source: string) => string> {
  await mkdir(buildDir, { recursive: true });
  const tsconfig = join(buildDir, "tsconfig.json");
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(root, "tsconfig.json"),
      compilerOptions: { noEmit: false, outDir: buildDir, rootDir: root, sourceMap: false },
      include: [join(root, "agent"), join(root, "protocol"), ...extra.map((e) => join(root, e))],
    }),
  );
  // The compiled agent imports @felhom/protocol by name, which resolves through node_modules to protocol/dist.
  execFileSync("npm", ["run", "build", "-w", "@felhom/protocol"], { cwd: root, stdio: "pipe" });
  try {
    execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", tsconfig], { stdio: "pipe" });
  } catch (err) {
    // Type errors elsewhere in the tree (work in progress) still emit JavaScript; only a missing file is fatal.
    process.stderr.write(
      `bench: tsc reported problems (emitted anyway): ${(err as { stdout?: Buffer }).stdout?.toString().slice(0, 500)}\n`,
    );
  }
  return (source) => {
    const compiled = join(buildDir, source.replace(/\.ts$/, ".js"));
    readFileSync(compiled);
    return compiled;
  };
}

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/**
 * A node process holding one WebSocket to the hub: upgrade, hello, answer pings. Nothing else. `nodeFlags`:
 * V8 flags it runs with (none unless given); `preload`: packages it imports first and holds (a floor);
 * `agentId`: its hello's (the hub keeps one link per agent: two baselines side by side need two).
 */
export function spawnBare(
  url: string,
  credential: string,
  options: { nodeFlags?: string[]; preload?: string[]; agentId?: string } = {},
): { pid: number; ready: Promise<void>; kill: () => void } {
  const held = (options.preload ?? []).map((p, i) => `import * as held${i} from ${JSON.stringify(p)};`);
  const script = `
    ${held.join("\n    ")}
    globalThis.held = [${held.map((_, i) => `held${i}`).join(", ")}];
    import WebSocket from "ws";
    const ws = new WebSocket(${JSON.stringify(url)}, "felhom-guest.v1", { headers: { Authorization: "Bearer ${credential}" } });
    ws.on("open", () => ws.send(JSON.stringify({ type: "hello", protocolVersion: 1,
      agent: { id: ${JSON.stringify(options.agentId ?? "bare-baseline")}, version: "0" },
      identity: { state: "verified", vmid: 102, node: "pve1", hostname: "bare" },
      capabilities: [], lastAckedSeq: 0, session: { runId: "bare-run", resume: false } })));
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === "welcome") console.log("ready");
      if (m.type === "ping") ws.send(JSON.stringify({ type: "pong", id: m.id, at: new Date().toISOString() }));
    });
  `;
  const file = join(
    buildDir,
    `bare-websocket-${createHash("sha256").update(script).digest("hex").slice(0, 8)}.mjs`,
  );
  writeFileSync(file, script);
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), file], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const ready = new Promise<void>((res) =>
    child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && res()),
  );
  return { pid: child.pid!, ready, kill: () => child.kill("SIGKILL") };
}

/** RSS (mean and max) and CPU of `pid` against `basePid` over the same idle window. */
export async function idleSideBySide(pid: number, basePid: number, prefix = ""): Promise<BenchFigure[]> {
  await new Promise((r) => setTimeout(r, 2_000)); // let startup garbage settle
  const cpu0 = { agent: cpuTicks(pid), bare: cpuTicks(basePid) };
  const rss = { agent: [] as number[], bare: [] as number[] };
  for (let s = 0; s < idleSeconds; s++) {
    rss.agent.push(rssBytes(pid));
    rss.bare.push(rssBytes(basePid));
    await new Promise((r) => setTimeout(r, 1_000));
  }
  const cpuPercent = (ticks: number) => (ticks / CLK_TCK / idleSeconds) * 100;
  const agentCpu = cpuPercent(cpuTicks(pid) - cpu0.agent);
  const bareCpu = cpuPercent(cpuTicks(basePid) - cpu0.bare);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return [
    { metric: `${prefix}idle_rss`, value: mean(rss.agent) / MB, unit: "MiB", baseline: mean(rss.bare) / MB },
    {
      metric: `${prefix}idle_rss_max`,
      value: Math.max(...rss.agent) / MB,
      unit: "MiB",
      baseline: Math.max(...rss.bare) / MB,
    },
    {
      metric: `${prefix}idle_cpu`,
      value: agentCpu,
      unit: "%",
      baseline: bareCpu,
      ratio: bareCpu > 0 ? agentCpu / bareCpu : null,
    },
  ];
}
