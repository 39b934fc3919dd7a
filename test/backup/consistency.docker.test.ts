import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import type { OperationEvent } from "../../agent/operation/operation-deps.ts";
import { containerLogs, docker, waitHealthy } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { longestGapMs, PgWriter } from "../support/pg-writer.ts";

/**
 * product-brief §3 and platform-reference §4.2, reproduced: PostgreSQL under continuous write load,
 * backed up by the agent in snapshot mode, the archive restored into a new guest, PostgreSQL started on
 * the restored data. With the `stop` strategy the copy is app-consistent (no crash recovery, every row
 * committed before the quiesce); with `none` it is crash-consistent (recovery runs, no acked row lost).
 */
let h: GuestHarness | undefined;
let writer: PgWriter | undefined;
const extra: string[] = [];
afterEach(async () => {
  await writer?.stop();
  for (const c of extra.splice(0)) await docker("rm", "-f", "-v", c).catch(() => {});
  await h?.close();
  h = undefined;
  writer = undefined;
});

async function backupUnderLoad(dbStrategy: "stop" | "none") {
  h = await startGuestHarness({ dbStrategy, archiveBytesPerSecond: 30e6 });
  writer = await PgWriter.start(h.network);
  await writer.waitForAcks(30);
  const phaseAt = new Map<string, number>();
  const emit = (e: OperationEvent) => {
    if (e.kind === "backup.phase" && !phaseAt.has(e.phase)) phaseAt.set(e.phase, Date.now());
  };
  const outcome = await runBackup(h.deps({ emit }), {
    backupId: newBackupId(),
    mode: "snapshot",
    trigger: { source: "cli" },
  });
  if (!outcome.ok) throw new Error(`backup failed: ${outcome.failure.message}`);
  const after = (await writer.acks()).length;
  await writer.waitForAcks(after + 20); // the writer commits again after the resume
  const acks = await writer.acks();
  await writer.stop();
  const run = h.sim.vzdumpRuns.at(-1)!;

  // Restore the archive into a new guest (pct restore) and start PostgreSQL on the restored data.
  const restored = await h.sim.restoreGuest(outcome.result.volid, 201);
  const name = `felhom-restored-${Date.now()}`;
  extra.push(name);
  await docker(
    "run",
    "-d",
    "--name",
    name,
    "-e",
    "POSTGRES_PASSWORD=felhom",
    "-v",
    `${join(restored.rootDir, "srv/demo/pgdata")}:/var/lib/postgresql/data`,
    "local/postgres:15",
  );
  await waitHealthy(name);
  const log = await containerLogs(name);
  const [count, max] = (
    await docker(
      "exec",
      name,
      "psql",
      "-U",
      "postgres",
      "-qtA",
      "-F",
      " ",
      "-c",
      "select count(*), max(id) from ticks",
    )
  )
    .split(" ")
    .map(Number);
  return { outcome, acks, run, phaseAt, log, count: count!, max: max! };
}

describeDocker("backup consistency with real PostgreSQL (pve sim + real docker)", () => {
  it("with the stop strategy the restored copy starts without crash recovery and holds every row committed before the quiesce", async () => {
    const r = await backupUnderLoad("stop");
    expect(r.outcome.ok && r.outcome.result.consistency).toBe("app");
    expect(r.log).toMatch(/database system was shut down at/);
    expect(r.log).not.toMatch(/not properly shut down|automatic recovery/);
    const quiesceAt = r.phaseAt.get("quiesce")!;
    const lastBeforeQuiesce = Math.max(...r.acks.filter((a) => a.at < quiesceAt).map((a) => a.id));
    expect(r.max).toBeGreaterThanOrEqual(lastBeforeQuiesce);
    expect(r.count).toBe(r.max); // contiguous: nothing in the middle went missing
    // Nothing committed after the resume can be in a copy taken while the db was stopped.
    const resumedAt = r.phaseAt.get("resume")!;
    expect(r.acks.filter((a) => a.id <= r.max).every((a) => a.at <= resumedAt + 5_000)).toBe(true);
    console.log(
      `stop strategy: writer gap ${longestGapMs(r.acks)} ms, rows in copy ${r.count}, last acked before quiesce ${lastBeforeQuiesce}`,
    );
  });

  it("with strategy none the restored copy runs crash recovery and still holds every row acknowledged before the snapshot", async () => {
    const r = await backupUnderLoad("none");
    expect(r.log).toMatch(/database system was not properly shut down; automatic recovery in progress/);
    console.log(r.log.split("\n").find((l) => l.includes("automatic recovery")));
    const snapStart = r.run.snapshotTakenAt! - r.run.snapshotDurationMs! - 5;
    const lastBeforeSnapshot = Math.max(...r.acks.filter((a) => a.at < snapStart).map((a) => a.id));
    expect(r.max).toBeGreaterThanOrEqual(lastBeforeSnapshot);
    expect(r.count).toBe(r.max);
    console.log(`none strategy: writer gap ${longestGapMs(r.acks)} ms, rows in copy ${r.count}`);
  });
});
