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
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { AGENT_ID, agentDir, cleanup, hubForTest, spawnChildAgent } from "../hub/support.ts";
import type { BenchReport } from "./report.ts";

const root = resolve(import.meta.dirname, "../..");
const buildDir = join(root, "node_modules/.cache/felhom-hub-bench");
const EVENTS = 10_000;
const idleSeconds = Number(process.env.FELHOM_BENCH_IDLE_SECONDS ?? 60);
const CLK_TCK = 100;
const MB = 1024 * 1024;

/** Compiles agent/, protocol/ and the child entry to plain JS under node_modules/.cache (packages resolve from there). */
async function compileChild(): Promise<string> {
  await mkdir(buildDir, { recursive: true });
  const tsconfig = join(buildDir, "tsconfig.json");
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(root, "tsconfig.json"),
      compilerOptions: { noEmit: false, outDir: buildDir, rootDir: root, sourceMap: false },
      include: [join(root, "agent"), join(root, "protocol"), join(root, "test/hub/agent-child.ts")],
    }),
  );
  try {
    execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", tsconfig], { stdio: "pipe" });
  } catch (err) {
    // Type errors elsewhere in the tree (work in progress) still emit JavaScript; only a missing file is fatal.
    process.stderr.write(
      `hub bench: tsc reported problems (emitted anyway): ${(err as { stdout?: Buffer }).stdout?.toString().slice(0, 500)}\n`,
    );
  }
  const entry = join(buildDir, "test/hub/agent-child.js");
  readFileSync(entry);
  return entry;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/** A node process holding one WebSocket to the hub: upgrade, hello, answer pings. Nothing else. */
function spawnBare(url: string, credential: string): { pid: number; ready: Promise<void>; kill: () => void } {
  const script = `
    import WebSocket from "ws";
    const ws = new WebSocket(${JSON.stringify(url)}, "felhom-guest.v1", { headers: { Authorization: "Bearer ${credential}" } });
    ws.on("open", () => ws.send(JSON.stringify({ type: "hello", protocolVersion: 1,
      agent: { id: "bare-baseline", version: "0" },
      identity: { state: "verified", vmid: 102, node: "pve1", hostname: "bare" },
      capabilities: [], lastAckedSeq: 0, session: { runId: "bare-run", resume: false } })));
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === "welcome") console.log("ready");
      if (m.type === "ping") ws.send(JSON.stringify({ type: "pong", id: m.id, at: new Date().toISOString() }));
    });
  `;
  const file = join(buildDir, "bare-websocket.mjs");
  writeFileSync(file, script);
  const child = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "inherit"] });
  const ready = new Promise<void>((res) =>
    child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && res()),
  );
  return { pid: child.pid!, ready, kill: () => child.kill("SIGKILL") };
}

export default async function (report: BenchReport): Promise<void> {
  const entry = await compileChild();
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
    await new Promise((r) => setTimeout(r, 2_000)); // let startup garbage settle
    const cpu0 = { agent: cpuTicks(idle.pid), bare: cpuTicks(bare.pid) };
    const rss = { agent: [] as number[], bare: [] as number[] };
    for (let s = 0; s < idleSeconds; s++) {
      rss.agent.push(rssBytes(idle.pid));
      rss.bare.push(rssBytes(bare.pid));
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const cpuPercent = (ticks: number) => (ticks / CLK_TCK / idleSeconds) * 100;
    const agentCpu = cpuPercent(cpuTicks(idle.pid) - cpu0.agent);
    const bareCpu = cpuPercent(cpuTicks(bare.pid) - cpu0.bare);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    report({ metric: "idle_rss", value: mean(rss.agent) / MB, unit: "MiB", baseline: mean(rss.bare) / MB });
    report({
      metric: "idle_rss_max",
      value: Math.max(...rss.agent) / MB,
      unit: "MiB",
      baseline: Math.max(...rss.bare) / MB,
    });
    report({
      metric: "idle_cpu",
      value: agentCpu,
      unit: "%",
      baseline: bareCpu,
      ratio: bareCpu > 0 ? agentCpu / bareCpu : null,
    });
    bare.kill();
  } finally {
    await cleanup();
  }
}
