import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { startUp } from "../../agent/boot/start-up.ts";
import { QuiesceJournal } from "../../agent/quiesce/journal.ts";
import { createSnapshot, deleteSnapshot, listSnapshots } from "../../agent/snapshot/snapshot-service.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { capturedStdout, exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

let h: GuestHarness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = undefined;
  dir = undefined;
});

/** `felhom-guest snapshot create` in its own process, held by PVE once it has quiesced the stacks and submitted. */
async function cliSnapshotHeldByPve(g: GuestHarness) {
  dir = await mkdtemp(join(tmpdir(), "felhom-snap-"));
  const paused = g.sim.faults.pauseTask({ type: "vzsnapshot" });
  const agent = spawnAgent(await writeAgentConfig(g, dir), ["snapshot", "create", "before-upgrade"]);
  const out = capturedStdout(agent);
  await paused.reached;
  return { paused, agent, out };
}

describeDocker("snapshots (pve sim + real docker)", () => {
  it("creates a snapshot with the stacks quiesced, lists it, and deletes it", async () => {
    h = await startGuestHarness();
    const before = await h.running();
    const created = await createSnapshot(h.deps(), "before-upgrade", { description: "pg 15 → 16" });
    expect(created).toMatchObject({
      ok: true,
      result: { name: "before-upgrade", consistency: "app", stacksResumed: true },
    });
    expect(created.ok && "downtime" in created.result && created.result.downtime.length).toBe(2);
    expect(await h.running()).toEqual(before);
    expect((await listSnapshots(h.deps())).map((s) => s.name)).toEqual(["before-upgrade"]);
    const task = h.sim.tasks.list().find((t) => t.type === "vzsnapshot")!;
    expect(task.exitstatus).toBe("OK");
    expect(await deleteSnapshot(h.deps(), "before-upgrade")).toMatchObject({ ok: true });
    expect(await listSnapshots(h.deps())).toEqual([]);
  });

  it("refuses a reserved name before anything is quiesced or sent", async () => {
    h = await startGuestHarness();
    const requests = h.sim.requests.length;
    await expect(createSnapshot(h.deps(), "vzdump")).rejects.toMatchObject({ code: "invalid_params" });
    expect(h.sim.requests.length).toBe(requests);
  });

  it("reports a snapshot refused by PVE while a backup holds the guest's lock, with the stacks running", async () => {
    h = await startGuestHarness();
    const before = await h.running();
    h.sim.setGuestLock(101, "backup");
    const outcome = await createSnapshot(h.deps(), "during-backup");
    expect(outcome).toMatchObject({
      ok: false,
      failure: { stacksResumed: true, message: expect.stringMatching(/locked \(backup\)/) },
    });
    expect(await h.running()).toEqual(before);
    h.sim.setGuestLock(101, undefined);
  });

  it("refuses before any downtime a snapshot PVE would refuse in its task: no snapshot feature, a name already used", async () => {
    h = await startGuestHarness();
    const journal = () => QuiesceJournal.open(statePaths(h!.stateDir).quiesceJournal);
    const rootfs = h.sim.getGuest(101)!.config.rootfs!;
    // a raw image on a dir storage: no snapshot (pve-storage Plugin.pm volume_has_feature)
    h.sim.getGuest(101)!.config.rootfs = "local:101/vm-101-disk-0.raw,size=8G";
    expect(await createSnapshot(h.deps(), "no-feature")).toMatchObject({
      ok: false,
      failure: { code: "snapshot_unsupported", stacksResumed: true },
    });
    expect(await journal()).toBeUndefined();
    h.sim.getGuest(101)!.config.rootfs = rootfs;
    expect(await createSnapshot(h.deps(), "twice")).toMatchObject({ ok: true });
    const quiesces = (await journal())?.data.backupId;
    expect(await createSnapshot(h.deps(), "twice")).toMatchObject({
      ok: false,
      failure: { code: "snapshot_exists", stacksResumed: true },
    });
    // Nothing was quiesced for either refusal: the journal is still the one good snapshot's.
    expect((await journal())?.data.backupId).toBe(quiesces);
    expect(h.sim.tasks.list().filter((t) => t.type === "vzsnapshot")).toHaveLength(1);
  });

  it("resumes the stacks when the CLI is interrupted (Ctrl-C, twice) while the snapshot is being taken, and says so", async () => {
    h = await startGuestHarness();
    const before = await h.running();
    const { paused, agent, out } = await cliSnapshotHeldByPve(h);
    expect(await h.running()).not.toEqual(before);
    // Twice, as an impatient operator does: the second must not kill it while it resumes.
    agent.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 50));
    agent.kill("SIGINT");
    expect(await exited(agent)).toBe(1);
    expect(out()).toMatch(/FAILED: the agent stopped while the snapshot was being taken; stacks resumed/);
    expect(await h.running()).toEqual(before);
    expect((await QuiesceJournal.open(statePaths(h.stateDir).quiesceJournal))?.finished).toBe(true);
    paused.resume();
  });

  it("leaves a running CLI snapshot's quiesced stacks alone when the daemon starts meanwhile (the lock holder owns the journal)", async () => {
    h = await startGuestHarness();
    const before = await h.running();
    const { paused, agent, out } = await cliSnapshotHeldByPve(h);
    const down = await h.running();
    expect(down).not.toEqual(before);
    // The daemon's start-up decision, as after `systemctl restart` while the operator's snapshot runs.
    const s = await startUp(h.deps(), { configuredProjects: [h.project] });
    expect(s.decision.kind).toBe("own");
    expect(s.recovery).toBeUndefined();
    expect(await h.running()).toEqual(down);
    paused.resume();
    expect(await exited(agent)).toBe(0);
    expect(out()).toMatch(/snapshot before-upgrade created/);
    expect(await h.running()).toEqual(before);
  });

  it("rolls back only with the explicit confirmation: without it the CLI exits 2 and sends nothing", async () => {
    h = await startGuestHarness();
    dir = await mkdtemp(join(tmpdir(), "felhom-snap-"));
    const config = await writeAgentConfig(h, dir);
    const agent = spawnAgent(config, ["snapshot", "rollback", "before-upgrade"]);
    agent.stdout?.resume();
    expect(await exited(agent)).toBe(2);
    expect(h.sim.requests.some((r) => r.path.includes("/rollback"))).toBe(false);
  });
});
