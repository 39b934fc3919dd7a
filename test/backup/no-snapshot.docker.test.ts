import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import type { NoSnapshotPolicy } from "../../agent/backup/snapshot-plan.ts";
import { createLogger } from "../../agent/log/logger.ts";
import { sh } from "../pve-sim/exec.ts";
import { docker } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { inProcessReboot } from "../support/guest-reboot.ts";

/**
 * A CT whose root file system cannot be snapshotted (a raw image on the dir storage `local`): PVE's
 * snapshot mode falls back to suspend mode (test/pve-sim-tests/pve-sim-no-snapshot.test.ts). Each
 * backup.no_snapshot.policy against the simulator and real Docker: when the PostgreSQL container (strategy
 * stop) was down, what the result says, and the mode PVE ran. "When" is read as order, not speed: the
 * container's StartedAt (Docker) against the instant vzdump logged `resuming guest` (the simulator).
 */
let h: GuestHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const NO_SNAPSHOT_ROOTFS = "local:101/vm-101-disk-0.raw,size=8G";

async function harness(
  policy: NoSnapshotPolicy,
  extra: Parameters<typeof startGuestHarness>[0] = {},
  maxHoldSeconds = 1800,
) {
  h = await startGuestHarness({
    archiveBytesPerSecond: 20e6,
    ...extra,
    backup: { ...extra.backup, no_snapshot: { policy, max_hold_seconds: maxHoldSeconds } },
  });
  h.sim.getGuest(101).config.rootfs = NO_SNAPSHOT_ROOTFS;
  return h;
}

const startedAt = async (container: string) =>
  Date.parse(await docker("inspect", "-f", "{{.State.StartedAt}}", container));

const backup = (hh: GuestHarness) =>
  runBackup(hh.deps(), { backupId: newBackupId(), mode: "snapshot", trigger: { source: "cli" } });

describeDocker("backup of a CT that cannot be snapshotted (pve sim + real docker)", () => {
  it("hold: the stacks stay down through both syncs until `resuming guest`; app-consistent, PVE ran suspend, the hold announced", {
    timeout: 120_000,
  }, async () => {
    // The first rsync copies the whole root (the demo stack's PostgreSQL data included) in about 4 s, longer
    // than max_downtime_seconds, whose deadline (snapshot mode's) would bring the stacks back mid-copy.
    const hh = await harness("hold", { backup: { max_downtime_seconds: 1 } });
    const rootBytes = Number((await sh("du", ["-sb", hh.self.guest.rootDir])).split("\t")[0]);
    hh.sim.opts.syncBytesPerSecond = rootBytes / 4;
    const before = await hh.running();
    const outcome = await backup(hh);
    expect(outcome).toMatchObject({
      ok: true,
      result: { mode: "snapshot", pveMode: "suspend", consistency: "app", stacksResumed: true },
    });
    const run = hh.sim.vzdumpRuns.at(-1)!;
    expect(run.mode).toBe("suspend");
    if (outcome.ok)
      expect(outcome.result.warnings).not.toContainEqual(expect.stringMatching(/suspend mode|deadline/));
    // started again only after PVE thawed the CT: down through the first sync, the freeze and the final sync
    expect(await startedAt(hh.dbContainer)).toBeGreaterThanOrEqual(run.guestStartedAt!);
    expect(hh.events).toContainEqual(
      expect.objectContaining({ kind: "blackout", reason: "snapshot-freeze", expectedSeconds: 1800 }),
    );
    expect(await hh.running()).toEqual(before);
  });

  it("hold: a first rsync longer than max_hold_seconds brings the stacks back at the hold's deadline, during that rsync; crash-consistent", {
    timeout: 120_000,
  }, async () => {
    const lines: string[] = [];
    const log = createLogger({ level: "info", destination: { write: (l: string) => void lines.push(l) } });
    const hh = await harness("hold", { log }, 1);
    // PVE not answering the feature check: the hold is learned from `trying 'suspend' mode instead`, the
    // deadline until then is max_downtime_seconds (120 s); the 1 s hold is overdue once the line is read.
    hh.sim.faults.failNext(1, 403, "/feature");
    const rootBytes = Number((await sh("du", ["-sb", hh.self.guest.rootDir])).split("\t")[0]);
    hh.sim.opts.syncBytesPerSecond = rootBytes / 8; // a first rsync of about 8 s
    const outcome = await backup(hh);
    expect(outcome).toMatchObject({
      ok: true,
      result: { pveMode: "suspend", consistency: "crash", stacksResumed: true },
    });
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; seconds?: number });
    expect(logged).toContainEqual(
      expect.objectContaining({
        msg: expect.stringMatching(/^hold deadline .*final sync ended/),
        seconds: 1,
      }),
    );
    // back before PVE froze the CT for the final sync: the hold's deadline, in the first rsync
    expect(await startedAt(hh.dbContainer)).toBeLessThan(hh.sim.vzdumpRuns.at(-1)!.guestStoppedAt!);
  });

  it("crash: nothing is quiesced; crash-consistent, PVE ran suspend, the result says why", {
    timeout: 120_000,
  }, async () => {
    const hh = await harness("crash");
    const dbStarted = await startedAt(hh.dbContainer);
    const outcome = await backup(hh);
    expect(outcome).toMatchObject({
      ok: true,
      result: { mode: "snapshot", pveMode: "suspend", consistency: "crash", stacksResumed: true },
    });
    expect(await startedAt(hh.dbContainer)).toBe(dbStarted); // never stopped
    if (outcome.ok) {
      expect(outcome.result.downtime).toEqual([]);
      expect(outcome.result.warnings).toContainEqual(expect.stringMatching(/policy crash/));
    }
  });

  it("refuse: fails before anything is quiesced or submitted, saying how to fix the storage", {
    timeout: 120_000,
  }, async () => {
    const hh = await harness("refuse");
    const dbStarted = await startedAt(hh.dbContainer);
    const outcome = await backup(hh);
    expect(outcome).toMatchObject({
      ok: false,
      failure: {
        code: "snapshot_unsupported",
        phase: "preflight",
        upid: null,
        message: expect.stringMatching(/rootfs \(local:101\/vm-101-disk-0\.raw\)/),
      },
    });
    expect(hh.sim.vzdumpRuns).toEqual([]);
    expect(await startedAt(hh.dbContainer)).toBe(dbStarted);
  });

  it("stop: a snapshot request becomes a stop-mode backup (the guest shut down and booted); app-consistent, PVE ran stop", {
    timeout: 150_000,
  }, async () => {
    const reboot = inProcessReboot(() => h!);
    const hh = await harness("stop", reboot.hooks);
    const before = await hh.running();
    const outcome = await reboot.stopModeBackup(newBackupId(), "snapshot");
    expect(outcome).toMatchObject({
      ok: true,
      result: { mode: "stop", pveMode: "stop", consistency: "app", stacksResumed: true },
    });
    // said after the boot too: the plan is journalled with the backup
    if (outcome?.ok)
      expect(outcome.result.warnings).toContainEqual(expect.stringMatching(/backed up in stop mode/));
    expect(hh.sim.vzdumpRuns.at(-1)!.mode).toBe("stop");
    expect(hh.events).toContainEqual(expect.objectContaining({ kind: "blackout", reason: "stop-mode" }));
    await expect.poll(() => hh.running(), { timeout: 30_000, interval: 250 }).toEqual(before);
  });

  it("PVE not answering the feature check: the backup goes on, a hold learns the fallback from the log (app), the result says how to get an answer", {
    timeout: 120_000,
  }, async () => {
    const hh = await harness("hold");
    hh.sim.faults.failNext(1, 403, "/feature");
    const outcome = await backup(hh);
    expect(outcome).toMatchObject({ ok: true, result: { pveMode: "suspend", consistency: "app" } });
    // announced: the downtime deadline (120 s) while it may still snapshot, then the rest of the hold's
    // 1800 s once the log said it falls back, for the same operation (it replaces the first)
    const blackouts = hh.events.flatMap((e) => (e.kind === "blackout" ? [e] : []));
    expect(blackouts.map((e) => e.operationId)).toEqual([
      blackouts[0]!.operationId,
      blackouts[0]!.operationId,
    ]);
    expect(blackouts[0]!.expectedSeconds).toBe(120);
    expect(blackouts[1]!.expectedSeconds).toBeGreaterThan(1700);
    expect(blackouts[1]!.expectedSeconds).toBeLessThanOrEqual(1800);
    if (outcome.ok)
      expect(outcome.result.warnings).toContainEqual(
        expect.stringMatching(/^PVE did not say whether the CT can be snapshotted .*grant VM\.Audit/),
      );
    expect(await startedAt(hh.dbContainer)).toBeGreaterThanOrEqual(hh.sim.vzdumpRuns.at(-1)!.guestStartedAt!);
  });

  it("PVE's answer unsure (a bind mount it judges too): under hold the fallback is held; under another policy the stacks come back at once, crash, said in the result", {
    timeout: 150_000,
  }, async () => {
    for (const policy of ["hold", "refuse"] as const) {
      const hh = await harness(policy);
      hh.sim.getGuest(101).config.mp0 = "/srv/bulk,mp=/mnt/bulk";
      const outcome = await backup(hh);
      const run = hh.sim.vzdumpRuns.at(-1)!;
      expect(run.mode).toBe("suspend");
      if (policy === "hold") {
        expect(outcome).toMatchObject({ ok: true, result: { pveMode: "suspend", consistency: "app" } });
        expect(await startedAt(hh.dbContainer)).toBeGreaterThanOrEqual(run.guestStartedAt!);
      } else {
        expect(outcome).toMatchObject({ ok: true, result: { pveMode: "suspend", consistency: "crash" } });
        if (outcome.ok)
          expect(outcome.result.warnings).toContainEqual(expect.stringMatching(/fell back to suspend mode/));
      }
      await hh.close();
      h = undefined;
    }
  });
});
