/**
 * The product's headline number: downtime as a client sees it (the longest gap between two acknowledged
 * commits of a writer running throughout) against the total backup time, for ~50 MB and ~500 MB of
 * PostgreSQL data, in snapshot mode and in stop mode. The simulator archives at the rate measured on
 * real PVE (product-brief §3: about 110 MB/s), so that downtime/total means what it would on a host.
 *
 * Figures: per size and mode, downtime (baseline: the total time, so ratio = downtime/total) and the
 * total; and snapshot-mode downtime at 500 MB against 50 MB (must not grow with data size).
 */
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import type { BackupDeps, BackupMode } from "../../agent/backup/backup-types.ts";
import { docker } from "../support/compose.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { longestGapMs, PgWriter } from "../support/pg-writer.ts";
import type { BenchReport } from "./report.ts";

const ARCHIVE_RATE = 110e6;
const SIZES_MB = [50, 500];
/** ~290 bytes per row on disk (8 × md5 hex padding, like consistency-facts.md). */
const ROWS_PER_MB = 3_500;

export async function fill(h: GuestHarness, mb: number): Promise<void> {
  const psql = (sql: string) => docker("exec", h.dbContainer, "psql", "-U", "postgres", "-qtA", "-c", sql);
  await psql("create table bulk(id int primary key, pad text)");
  const rows = mb * ROWS_PER_MB;
  for (let from = 1; from <= rows; from += 250_000) {
    const to = Math.min(rows, from + 249_999);
    await psql(`insert into bulk select g, repeat(md5(g::text), 8) from generate_series(${from}, ${to}) g`);
  }
  // As in the measured experiment: settle autovacuum's dirtying so the stop measures a normal shutdown.
  await psql("vacuum analyze");
  await psql("checkpoint");
  const size = await psql("select pg_size_pretty(pg_database_size('postgres'))");
  process.stderr.write(`[bench backup] database filled: ${size}\n`);
}

export async function measure(
  h: GuestHarness,
  writer: PgWriter,
  mode: BackupMode,
  deps: BackupDeps = h.deps(),
) {
  await writer.waitForAcks((await writer.acks()).length + 20);
  const start = Date.now();
  const outcome = await runBackup(deps, { backupId: newBackupId(), mode, trigger: { source: "cli" } });
  const end = Date.now();
  if (!outcome.ok) throw new Error(`${mode} backup failed: ${outcome.failure.message}`);
  await writer.waitForAcks((await writer.acks()).length + 20);
  const gap = longestGapMs(await writer.acks(), start, end + 60_000);
  return { downtimeMs: gap, totalMs: outcome.result.totalMs, downtime: outcome.result.downtime };
}

export default async function (report: BenchReport): Promise<void> {
  const snapshotDowntime = new Map<number, number>();
  for (const mb of SIZES_MB) {
    const h = await startGuestHarness({ archiveBytesPerSecond: ARCHIVE_RATE });
    const writer = await PgWriter.start(h.network);
    try {
      await fill(h, mb);
      for (const mode of ["snapshot", "stop"] as const) {
        const m = await measure(h, writer, mode);
        report({
          metric: `${mode} mode, ${mb} MB: downtime (baseline: total)`,
          value: m.downtimeMs,
          unit: "ms",
          baseline: m.totalMs,
        });
        report({ metric: `${mode} mode, ${mb} MB: total`, value: m.totalMs, unit: "ms" });
        if (mode === "snapshot") snapshotDowntime.set(mb, m.downtimeMs);
      }
    } finally {
      await writer.stop();
      await h.close();
    }
  }
  report({
    metric: "snapshot-mode downtime, 500 MB (baseline: 50 MB)",
    value: snapshotDowntime.get(500)!,
    unit: "ms",
    baseline: snapshotDowntime.get(50)!,
  });
}
