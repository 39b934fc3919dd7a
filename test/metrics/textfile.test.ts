import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import { parseConfig } from "../../agent/config/load.ts";
import { publishBackupHealth, recordBackupHealth } from "../../agent/metrics/textfile.ts";
import { configIssues, minimalConfig } from "../config/support.ts";

let dir: string;
let stateDir: string;
let collector: string;
let umask: number;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "felhom-textfile-"));
  stateDir = join(dir, "state");
  collector = join(dir, "node-exporter");
  await mkdir(stateDir);
  await mkdir(collector);
  umask = process.umask(0o077); // the systemd unit's UMask
});
afterEach(async () => {
  process.umask(umask);
  await rm(dir, { recursive: true, force: true });
});

const failed = {
  ok: false,
  failure: {
    backupId: "b1",
    mode: "snapshot",
    phase: "submit",
    code: "pve_unreachable",
    message: "x",
    exitStatus: null,
    upid: null,
    logTail: [],
    stacksResumed: true,
  },
} as BackupOutcome;

describe("metrics.textfile", () => {
  it("is written whole, readable by node_exporter's user under the daemon's umask, with the history kept in the state dir", async () => {
    const textfile = join(collector, "felhom_guest.prom");
    await recordBackupHealth(stateDir, textfile, failed, new Date("2026-12-03T02:31:00Z"));
    await recordBackupHealth(stateDir, textfile, failed, new Date("2026-12-04T02:31:00Z"));
    const text = await readFile(textfile, "utf8");
    expect(text).toMatch(/^felhom_guest_backup_consecutive_failures 2$/m);
    expect(text).toMatch(/^felhom_guest_backup_last_success_timestamp_seconds 0$/m);
    expect((await stat(textfile)).mode & 0o777).toBe(0o644);
    expect(await readdir(collector)).toEqual(["felhom_guest.prom"]); // no temporary file left behind
  });

  it("keeps the history while no textfile is configured, and publishes it once one is", async () => {
    await recordBackupHealth(stateDir, undefined, failed);
    expect(await readdir(collector)).toEqual([]);
    const textfile = join(collector, "felhom_guest.prom");
    await publishBackupHealth(stateDir, textfile);
    expect(await readFile(textfile, "utf8")).toMatch(/^felhom_guest_backup_consecutive_failures 1$/m);
  });

  it("refuses a directory that does not exist rather than create one the collector cannot read", async () => {
    await expect(publishBackupHealth(stateDir, join(dir, "missing", "felhom_guest.prom"))).rejects.toThrow(
      /does not exist/,
    );
  });

  it("is one config key, off by default, that must name an absolute *.prom path", () => {
    expect(parseConfig(minimalConfig).metrics).toBeUndefined();
    expect(
      parseConfig(
        `${minimalConfig}\nmetrics: { textfile: /var/lib/prometheus/node-exporter/felhom_guest.prom }\n`,
      ).metrics,
    ).toEqual({
      textfile: "/var/lib/prometheus/node-exporter/felhom_guest.prom",
    });
    for (const bad of ["felhom_guest.prom", "/var/lib/prometheus/node-exporter/felhom_guest.txt"])
      expect(configIssues(`${minimalConfig}\nmetrics: { textfile: ${bad} }\n`)).toEqual([
        { key: "metrics.textfile", problem: expect.stringMatching(/\.prom/) },
      ]);
  });
});
