import { readFile } from "node:fs/promises";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { describeErrors, strictErrors } from "../protocol/strict-validator.ts";
import { rawClient } from "../pve-sim-tests/pve-client.ts";
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
    const journal = JSON.parse(await readFile(statePaths(h.stateDir).quiesceJournal, "utf8"));
    expect(journal.finishedAt).not.toBeNull();
    expect(journal.backup).toMatchObject({ upid: outcome.result.upid, reported: true, consistency: "app" });
    await expect(readFile(statePaths(h.stateDir).backupMarker)).rejects.toThrow(/ENOENT/);
    // Where the downtime went: a snapshot line released the stacks, so every part is there, none is
    // negative, and they add up to the service's downtime. The POST went out before the simulator took the
    // snapshot; the resume was decided only after (its line follows the snapshot).
    const entries = Object.values(journal.containers) as { service: string; quiescedAt: string }[];
    for (const d of outcome.result.downtime) {
      const b = d.breakdown;
      expect(Object.keys(b ?? {}).sort()).toEqual(["noticeMs", "pveMs", "quiesceMs", "resumeMs"]);
      if (b?.quiesceMs === undefined || b.pveMs === undefined || b.noticeMs === undefined) continue;
      expect([b.quiesceMs, b.pveMs, b.noticeMs, b.resumeMs].every((v) => v >= 0)).toBe(true);
      expect(b.quiesceMs + b.pveMs + b.noticeMs + b.resumeMs).toBe(d.downtimeMs);
      const down = Math.min(
        ...entries.filter((e) => e.service === d.service).map((e) => Date.parse(e.quiescedAt)),
      );
      expect(down + b.quiesceMs).toBeLessThan(run.snapshotTakenAt!);
      expect(down + b.quiesceMs + b.pveMs + b.noticeMs).toBeGreaterThanOrEqual(run.snapshotTakenAt!);
    }
    const event = {
      type: "event",
      seq: 1,
      at: new Date().toISOString(),
      event: { kind: "backup.completed", ...outcome.result },
    };
    expect(describeErrors(strictErrors("agent-to-hub", event))).toBe("");
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

  it("prunes only the archives it made: the PVE admin's own backup of the guest survives, and the result lists what was removed", async () => {
    h = await startGuestHarness({ backup: { retention: { keep_last: 1 } } });
    const backup = () =>
      runBackup(h!.deps(), { backupId: newBackupId(), mode: "snapshot", trigger: { source: "cli" } });
    const first = await backup();
    expect(first).toMatchObject({ ok: true, result: { pruned: [] } });
    // The admin backs the guest up by hand, with notes of their own.
    await new Promise((r) => setTimeout(r, 1100));
    const root = h.sim.rootToken();
    const admin = rawClient(h.sim, `PVEAPIToken=${root.tokenId}=${root.secret}`);
    try {
      const upid = (
        await admin.post("/nodes/pve1/vzdump", {
          vmid: 101,
          storage: "bk",
          "notes-template": "before the upgrade",
        })
      ).json.data;
      expect((await admin.waitTask("pve1", upid)).exitstatus).toBe("OK");
    } finally {
      await admin.close();
    }
    const adminVolid = h.sim.vzdumpRuns.at(-1)!.volid!;
    await new Promise((r) => setTimeout(r, 1100));
    const second = await backup();
    expect(second).toMatchObject({ ok: true, result: { pruned: [first.ok ? first.result.volid : ""] } });
    const listed = (await h.sim.listBackups("bk")).map((b) => b.volid).sort();
    expect(listed).toEqual([adminVolid, second.ok ? second.result.volid : ""].sort());
    const phases = h.events.flatMap((e) => (e.kind === "backup.phase" ? [e.phase] : []));
    expect(phases.filter((p) => p === "retention")).toHaveLength(2);

    // Told that it owns every backup of the guest, it removes the admin's too, and says so.
    await new Promise((r) => setTimeout(r, 1100));
    const all = {
      ...h.deps(),
      backup: { ...h.backupConfig, retention: { keep_last: 1, scope: "all" as const } },
    };
    const third = await runBackup(all, {
      backupId: newBackupId(),
      mode: "snapshot",
      trigger: { source: "cli" },
    });
    expect(third.ok && [...(third.result.pruned ?? [])].sort()).toEqual(
      [adminVolid, second.ok ? second.result.volid : ""].sort(),
    );
    expect((await h.sim.listBackups("bk")).map((b) => b.volid)).toEqual([third.ok ? third.result.volid : ""]);
  });
});
