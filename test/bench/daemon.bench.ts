/**
 * The whole agent at rest: `felhom-guest run` as it ships (tsc build on plain node, with the package's V8
 * flags) with everything it
 * loads in production (PVE client, Docker adapter, scheduler, hub link), connected to the test hub, with
 * a PVE simulator guest and a real compose stack; RSS and CPU over FELHOM_BENCH_IDLE_SECONDS (default 60)
 * against a bare node process holding one WebSocket to the same hub.
 */

import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestHub } from "../hub/test-hub.ts";
import { writeAgentConfig } from "../support/agent-cli.ts";
import { startGuestHarness } from "../support/guest-harness.ts";
import { compileAgent, idleSideBySide, spawnBare } from "./process-stats.ts";
import type { BenchReport } from "./report.ts";

export default async function (report: BenchReport): Promise<void> {
  const compiled = await compileAgent();
  const h = await startGuestHarness();
  const hub = await startTestHub({ credentials: ["bench-credential"] });
  const dir = await mkdtemp(join(tmpdir(), "felhom-daemon-bench-"));
  // As the package runs it: with the V8 flags of packaging/node-flags.
  const nodeFlags = (await readFile(new URL("../../packaging/node-flags", import.meta.url), "utf8"))
    .trim()
    .split(/\s+/);
  const daemon = spawn(
    process.execPath,
    [
      ...nodeFlags,
      compiled("agent/cli/main.ts"),
      "--config",
      await writeAgentConfig(h, dir, [], { url: hub.url, credential: "bench-credential" }),
      "run",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  try {
    await hub.waitFor(
      "the daemon's first status",
      () => hub.events.find((e) => e.event.kind === "status"),
      60_000,
    );
    const bare = spawnBare(hub.url, "bench-credential");
    await bare.ready;
    for (const figure of await idleSideBySide(daemon.pid!, bare.pid, "daemon_")) report(figure);
    bare.kill();
  } finally {
    daemon.kill("SIGTERM");
    await new Promise((r) => daemon.once("exit", r));
    await hub.close();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  }
}
