/**
 * `npm start`: the agent's main job on an embedded default. Starts the PVE simulator with a guest whose
 * root directory holds a small demo compose stack's data (PostgreSQL + an app), the test hub, and the
 * real agent daemon (`felhom-guest run`) connected to both; then asks for a backup through the hub, the
 * way the platform does, and prints the events the hub receives as they arrive. Uses the local Docker
 * engine; without one it says what to do and exits 69.
 *
 *   npm start                              a backup with live progress, then the archive listing
 *   npm start --silent -- --once --json    only the result (the hub's backup.completed/failed) as JSON
 *   npm start -- --mode stop               a stop-mode backup (the stacks stay down until the archive is written)
 *   npm start -- --keep                    leave everything running until Ctrl-C
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { describeDowntime, printBackupEvent, printJson } from "../../agent/cli/output.ts";
import type { OperationEvent } from "../../agent/operation/operation-deps.ts";
import { startTestHub, type TestHub } from "../hub/test-hub.ts";
import { exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { ensureDockerPlatform } from "../support/docker-platform.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

const { values } = parseArgs({
  options: {
    once: { type: "boolean" },
    json: { type: "boolean" },
    mode: { type: "string", default: "snapshot" },
    keep: { type: "boolean" },
  },
});
const say = (s: string) => process.stderr.write(`[sandbox] ${s}\n`);
const HUB_CREDENTIAL = "sandbox-hub-credential";

/** Prints what the hub receives, as it arrives, until the backup's final event. */
async function followOnHub(hub: TestHub, backupId: string, quiet: boolean) {
  let printed = 0;
  for (;;) {
    for (const { event } of hub.events.slice(printed)) {
      printed++;
      if (quiet) continue;
      if (event.kind === "backup.phase" || event.kind === "backup.progress" || event.kind === "blackout") {
        printBackupEvent(event as OperationEvent);
      } else if (event.kind !== "status") {
        process.stdout.write(`  hub received ${event.kind}\n`);
      }
    }
    const end = hub.events.find(
      (e) =>
        (e.event.kind === "backup.completed" || e.event.kind === "backup.failed") &&
        e.event.backupId === backupId,
    );
    if (end) return end.event;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<number> {
  const problem = await ensureDockerPlatform(say);
  if (problem) {
    say(`the sandbox runs a real compose stack: ${problem}, then npm start again.`);
    return 69;
  }
  if (process.getuid?.() !== 0)
    say("not root: the simulator cannot mount btrfs and will copy instead of snapshotting");
  say(
    "starting the PVE simulator, a self-scoped token, a guest with a demo stack (PostgreSQL + app), the test hub …",
  );
  let h: GuestHarness | undefined;
  let hub: TestHub | undefined;
  const dir = await mkdtemp(join(tmpdir(), "felhom-sandbox-"));
  const daemon = { child: undefined as ReturnType<typeof spawnAgent> | undefined };
  try {
    h = await startGuestHarness({ archiveBytesPerSecond: 110e6 });
    hub = await startTestHub({ credentials: [HUB_CREDENTIAL] });
    const config = await writeAgentConfig(h, dir, ["  retention: { keep_last: 3 }"], {
      url: hub.url,
      credential: HUB_CREDENTIAL,
    });
    say(
      `PVE simulator ${h.sim.url} (snapshots: ${h.sim.snapshotMethod}), CT ${h.self.guest.vmid}, token ${h.self.tokenId}`,
    );
    say(`demo stack "${h.project}" in ${h.stackDir}`);
    say(`test hub ${hub.url}; agent config ${config}`);
    daemon.child = spawnAgent(config, ["run"]);
    daemon.child.stdout?.resume(); // the daemon's JSON log; the hub's events are what we show
    daemon.child.stderr?.resume();
    await hub.waitFor(
      "the agent to connect",
      () => hub!.events.find((e) => e.event.kind === "status"),
      30_000,
    );
    say("agent connected to the hub; the hub sends backup.run");
    const result = await hub.sendCommand({
      name: "backup.run",
      params: { mode: values.mode === "stop" ? "stop" : "snapshot" },
    });
    if (!result.ok) {
      say(`the agent refused: ${result.error.code}: ${result.error.message}`);
      return 1;
    }
    const backupId = (result.data as { backupId: string }).backupId;
    const end = await followOnHub(hub, backupId, values.json === true);
    const ok = end.kind === "backup.completed";
    if (values.json) printJson({ ok, ...end });
    else printEnd(end);
    if (!values.once && ok) {
      say("the storage now holds:");
      await exited(spawnAgent(config, ["backups"], "inherit"));
    }
    if (values.keep) {
      say("--keep: everything stays up until Ctrl-C");
      await new Promise((r) => process.once("SIGINT", r));
    }
    return ok ? 0 : 1;
  } finally {
    say("cleaning up (agent stopped, compose down, hub and simulator stopped)");
    if (daemon.child) {
      daemon.child.kill("SIGTERM");
      await exited(daemon.child);
    }
    await hub?.close();
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function printEnd(e: { kind: string } & Record<string, unknown>) {
  if (e.kind === "backup.completed") {
    const downtime = (e.downtime as Parameters<typeof describeDowntime>[0][])
      .map(describeDowntime)
      .join("\n           ");
    process.stdout.write(
      `backup ${e.backupId} completed (${e.consistency}-consistent)\n  archive  ${e.volid} (${((e.sizeBytes as number) / 1048576).toFixed(1)} MiB)\n  total    ${((e.totalMs as number) / 1000).toFixed(1)} s\n  downtime ${downtime}\n`,
    );
  } else {
    process.stdout.write(`backup ${e.backupId} FAILED in ${e.phase}: ${e.message}\n`);
  }
}

process.exitCode = await main();
