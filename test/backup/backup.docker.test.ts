import { readFile } from "node:fs/promises";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import { markerPath } from "../../agent/backup/marker.ts";
import { journalPath } from "../../agent/quiesce/quiesce-stacks.ts";
import { docker } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

let h: GuestHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const startedAt = async (container: string) =>
  Date.parse(await docker("inspect", "-f", "{{.State.StartedAt}}", container));

describeDocker("backup, snapshot mode (pve sim + real docker)", () => {
  it("quiesces, resumes as soon as the storage snapshot exists, verifies the archive and leaves every container running", async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 5e6 });
    const before = await h.running();
    const backupId = newBackupId();
    const outcome = await runBackup(h.deps(), { backupId, mode: "snapshot", trigger: { source: "cli" } });
    expect(outcome).toMatchObject({
      ok: true,
      result: { backupId, mode: "snapshot", consistency: "app", exitStatus: "OK", stacksResumed: true },
    });
    if (!outcome.ok) return;
    const run = h.sim.vzdumpRuns.at(-1)!;
    expect(run.snapshotMethod).toBe("btrfs");
    expect(outcome.result.volid).toBe(run.volid);
    expect(outcome.result.sizeBytes).toBeGreaterThan(0);
    // The db came back after the snapshot existed and before the archive was finished.
    const dbStarted = await startedAt(h.dbContainer);
    expect(dbStarted).toBeGreaterThan(run.snapshotTakenAt!);
    expect(dbStarted).toBeLessThan(run.archiveFinishedAt!);
    expect(outcome.result.downtime.map((d) => d.service).sort()).toEqual(["app", "db"]);
    expect(await h.running()).toEqual(before);
    // The journal is finished and reported, the marker cleared on the live system.
    const journal = JSON.parse(await readFile(journalPath(h.stateDir), "utf8"));
    expect(journal.finishedAt).not.toBeNull();
    expect(journal.backup).toMatchObject({ upid: outcome.result.upid, reported: true, consistency: "app" });
    await expect(readFile(markerPath(h.stateDir))).rejects.toThrow(/ENOENT/);
    const phases = h.events.filter((e) => e.kind === "backup.phase").map((e) => e.phase);
    expect(phases).toEqual([
      "lock",
      "preflight",
      "announce",
      "journal",
      "quiesce",
      "marker",
      "submit",
      "snapshot-wait",
      "resume",
      "follow",
      "verify",
      "report",
    ]);
  });

  it("keeps backing up a guest at its storage's keep-limit, and applies its own retention after each verified backup", async () => {
    h = await startGuestHarness({
      storagePruneBackups: "keep-last=2",
      backup: { retention: { keep_last: 2 } },
    });
    const volids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const outcome = await runBackup(h.deps(), {
        backupId: newBackupId(),
        mode: "snapshot",
        trigger: { source: "cli" },
      });
      expect(outcome).toMatchObject({ ok: true });
      if (outcome.ok) volids.push(outcome.result.volid);
      // vzdump names archives by the second; keep them apart.
      await new Promise((r) => setTimeout(r, 1100));
    }
    const listed = (await h.sim.listBackups("bk")).map((b) => b.volid).sort();
    expect(listed).toEqual(volids.slice(1).sort());
  });
});
