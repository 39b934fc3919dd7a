import type { ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { readLastBackup } from "../../agent/backup/last-backup.ts";
import { FROZEN_AFTER_MS } from "../../agent/lib/late-timer.ts";
import { sh } from "../pve-sim/exec.ts";
import { capturedStdout, exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { docker } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { GuestFreezer } from "../support/guest-freeze.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

/**
 * PVE freezes the whole CT, the agent included, while it takes the storage snapshot (pve-guest-common
 * AbstractConfig.pm `snapshot_create`). Here the agent runs as a child process that the simulator stops
 * with SIGSTOP where vzdump freezes the guest and continues with SIGCONT where it thaws it; its downtime
 * deadline falls due inside the freeze, or passes before it.
 */
let h: GuestHarness | undefined;
let dir: string | undefined;
let freezer: GuestFreezer | undefined;
let agent: ChildProcess | undefined;
afterEach(async () => {
  freezer?.release();
  // A test that failed half-way leaves no agent behind (the stacks are the harness's to take down).
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    agent.kill("SIGKILL");
    await exited(agent);
  }
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = dir = freezer = agent = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const resumes = (out: string) => out.match(/▸ resume\b/g)?.length ?? 0;

/** When the db container last started (ms since the epoch; Docker gives nanoseconds). */
async function dbStartedAt(g: GuestHarness): Promise<number> {
  const at = (await docker("inspect", "-f", "{{.State.StartedAt}}", g.dbContainer)).trim();
  return Date.parse(at.replace(/(\.\d{3})\d*/, "$1"));
}

/**
 * The backup the agent reported, and when the stacks came back against the snapshot: resumed once, and the
 * db container started after the snapshot existed (`after`) or before (`before`).
 */
async function expectReported(
  g: GuestHarness,
  out: string,
  consistency: "app" | "crash",
  resumedSnapshot: "after" | "before",
  running: string[],
): Promise<void> {
  const last = await readLastBackup(g.stateDir);
  expect(last?.outcome).toMatchObject({ ok: true, result: { consistency, stacksResumed: true } });
  expect(resumes(out)).toBe(1);
  const snapshotTakenAt = g.sim.vzdumpRuns.at(-1)!.snapshotTakenAt!;
  if (resumedSnapshot === "after") expect(await dbStartedAt(g)).toBeGreaterThan(snapshotTakenAt);
  else expect(await dbStartedAt(g)).toBeLessThan(snapshotTakenAt);
  expect(await g.running()).toHaveLength(running.length);
}

/**
 * A freezer whose first freeze lasts until `boundSeconds` after the agent said it quiesces, overdue by more
 * than a busy event loop could explain; it records how far into the downtime it began and whether the agent
 * had resumed by then. Made before the harness (which takes its hooks); `backupThroughFreeze` runs the backup.
 */
function freezeOverdue(boundSeconds: number) {
  const at = {
    quiescedAt: 0,
    out: () => "",
    freeze: undefined as { sinceQuiesceMs: number; resumedBefore: number } | undefined,
  };
  freezer = new GuestFreezer(async () => {
    at.freeze = { sinceQuiesceMs: Date.now() - at.quiescedAt, resumedBefore: resumes(at.out()) };
    while (Date.now() < at.quiescedAt + boundSeconds * 1000 + FROZEN_AFTER_MS + 2_000) await sleep(100);
  });
  return {
    hooks: freezer.hooks(),
    /**
     * `felhom-guest backup` with `config` lines, to its exit; the one freeze began before the bound, with the
     * stacks still down. Returns what the agent printed.
     */
    async backupThroughFreeze(g: GuestHarness, config: string[]): Promise<string> {
      dir = await mkdtemp(join(tmpdir(), "felhom-freeze-"));
      agent = spawnAgent(await writeAgentConfig(g, dir, config), ["backup"]);
      freezer!.target(agent);
      at.out = capturedStdout(agent);
      // The bound is due at most boundSeconds after the agent said it quiesces.
      await expect.poll(() => at.out().includes("▸ quiesce"), { timeout: 60_000, interval: 20 }).toBe(true);
      at.quiescedAt = Date.now();
      expect(await exited(agent)).toBe(0);
      expect(at.freeze).toMatchObject({ resumedBefore: 0 });
      expect(at.freeze!.sinceQuiesceMs).toBeLessThan(boundSeconds * 1000);
      expect(freezer!.freezes).toHaveLength(1);
      return at.out();
    },
  };
}

describeDocker("the CT frozen around the snapshot (pve sim + real docker, the agent under SIGSTOP)", () => {
  it.each([
    ["its root only", "after `create storage snapshot 'vzdump'`", false],
    [
      "a second volume",
      "from `suspend vm to make snapshot`, before the agent saw `create storage snapshot`",
      true,
    ],
  ])(
    "a deadline due during the freeze (%s: frozen %s): the stacks resume once, after the snapshot, and the backup is app-consistent",
    async (_volumes, _where, secondVolume) => {
      const maxDowntimeSeconds = 10;
      const frozen = freezeOverdue(maxDowntimeSeconds);
      h = await startGuestHarness({ archiveBytesPerSecond: 20e6, ...frozen.hooks });
      if (secondVolume) {
        const vmid = h.self.guest.vmid;
        Object.assign(h.self.guest.config, {
          mp0: `local-lvm:vm-${vmid}-disk-1,mp=/mnt/data,backup=1,size=4G`,
        });
        await mkdir(join(h.self.guest.rootDir, "mnt/data"), { recursive: true });
      }
      const before = await h.running();
      const out = await frozen.backupThroughFreeze(h, [`  max_downtime_seconds: ${maxDowntimeSeconds}`]);
      if (secondVolume) expect(h.sim.vzdumpRuns.at(-1)?.freezes).toHaveLength(1);
      await expectReported(h, out, "app", "after", before);
    },
  );

  it("the reverse, a deadline that passed before the freeze: the stacks resume once, before the snapshot, and the backup is crash-consistent", async () => {
    freezer = new GuestFreezer();
    // A 3 s snapshot, frozen throughout: long enough for every timer of the agent to fall due.
    h = await startGuestHarness({ archiveBytesPerSecond: 20e6, snapshotDelayMs: 3_000, ...freezer.hooks() });
    dir = await mkdtemp(join(tmpdir(), "felhom-freeze-"));
    const before = await h.running();
    // The task waits before its snapshot step until the deadline has resumed the stacks.
    const paused = h.sim.faults.pauseTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    agent = spawnAgent(await writeAgentConfig(h, dir, ["  max_downtime_seconds: 3"]), ["backup"]);
    freezer.target(agent);
    const out = capturedStdout(agent);
    await paused.reached;
    await expect.poll(() => resumes(out()), { timeout: 60_000, interval: 50 }).toBe(1);
    // Back up before PVE goes on (a freeze in the middle of the resume would hold the rest of it).
    await expect.poll(() => h!.running(), { timeout: 60_000, interval: 100 }).toEqual(before);
    paused.resume();
    expect(await exited(agent)).toBe(0);

    expect(freezer.freezes).toHaveLength(1);
    await expectReported(h, out(), "crash", "before", before);
  });

  it("a hold through suspend mode whose bound falls due in the final-sync freeze: the stacks resume once, after `resuming guest`, and the backup is app-consistent", async () => {
    const holdSeconds = 8;
    const frozen = freezeOverdue(holdSeconds);
    h = await startGuestHarness({ archiveBytesPerSecond: 20e6, ...frozen.hooks });
    // A root on the dir storage: PVE falls back to suspend mode, the preflight knew (hold bound from the start).
    h.self.guest.config.rootfs = "local:101/vm-101-disk-0.raw,size=8G";
    const rootBytes = Number((await sh("du", ["-sb", h.self.guest.rootDir])).split("\t")[0]);
    h.sim.opts.syncBytesPerSecond = rootBytes / 3; // a first rsync of about 3 s, longer than max_downtime
    const before = await h.running();
    // Frozen from `suspending guest` until the hold's bound is overdue.
    const out = await frozen.backupThroughFreeze(h, [
      "  max_downtime_seconds: 2",
      "  no_snapshot:",
      "    policy: hold",
      `    max_hold_seconds: ${holdSeconds}`,
    ]);
    const last = await readLastBackup(h.stateDir);
    expect(last?.outcome).toMatchObject({
      ok: true,
      result: { pveMode: "suspend", consistency: "app", stacksResumed: true },
    });
    expect(resumes(out)).toBe(1);
    expect(await dbStartedAt(h)).toBeGreaterThanOrEqual(h.sim.vzdumpRuns.at(-1)!.guestStartedAt!);
    expect(await h.running()).toHaveLength(before.length);
  });
});
