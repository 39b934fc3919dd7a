import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { recoverAtStart } from "../../agent/backup/recover-at-start.ts";
import { startUp } from "../../agent/boot/start-up.ts";
import { acquireOperationLock } from "../../agent/operation/operation-lock.ts";
import { QuiesceJournal } from "../../agent/quiesce/journal.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { exited, spawnAgent, waitForLine, writeAgentConfig } from "../support/agent-cli.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, type HarnessOptions, startGuestHarness } from "../support/guest-harness.ts";

/**
 * The agent SIGKILLed at each phase of a snapshot-mode backup (the real CLI in its own process), then
 * "the next start" (recoverAtStart, as the daemon runs it): the stacks run again and the outcome reported
 * is the true one.
 */
let h: GuestHarness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = undefined;
  dir = undefined;
});

async function killAt(
  line: RegExp,
  thenWait?: (g: GuestHarness) => Promise<unknown>,
  options: HarnessOptions = {},
) {
  h = await startGuestHarness({ archiveBytesPerSecond: 4e6, ...options });
  dir = await mkdtemp(join(tmpdir(), "felhom-crash-"));
  const before = await h.running();
  const agent = spawnAgent(await writeAgentConfig(h, dir), ["backup"]);
  await waitForLine(agent, line);
  await thenWait?.(h);
  agent.kill("SIGKILL");
  const killedAt = Date.now();
  await exited(agent);
  const vzdump = h.sim.tasks.list().find((t) => t.type === "vzdump");
  // The agent stays dead while PVE works on: let the task finish before the "next start".
  if (vzdump) await h.sim.tasks.wait(vzdump.upid);
  const recovery = await recoverAtStart(h.deps());
  expect(await h.running()).toEqual(before);
  return { recovery, vzdump, g: h, killedAt };
}

describeDocker("agent killed mid-backup (pve sim + real docker)", () => {
  it("killed with the stacks quiesced, before the POST: the next start resumes them and reports the backup as interrupted", async () => {
    const { recovery, vzdump } = await killAt(/▸ marker/);
    expect(recovery.resumed?.resumed.length).toBeGreaterThan(0);
    if (vzdump) {
      // The kill raced the POST: then the task is adopted from the node's list and followed to its end.
      expect(recovery.outcome).toMatchObject({ ok: true });
    } else {
      expect(recovery.outcome).toMatchObject({
        ok: false,
        failure: { code: "interrupted", stacksResumed: true },
      });
    }
  });

  it("killed right after the POST: the next start resumes the stacks, follows the task and reports it completed", async () => {
    const { recovery, vzdump } = await killAt(/starting new backup job/);
    expect(vzdump).toBeDefined();
    expect(recovery.resumed?.resumed.length).toBeGreaterThan(0);
    expect(recovery.outcome).toMatchObject({ ok: true, result: { upid: vzdump!.upid, exitStatus: "OK" } });
  });

  it("killed just after the storage snapshot: the next start finishes the resume and reports an app-consistent backup", async () => {
    const { recovery } = await killAt(/create storage snapshot 'vzdump'/);
    expect(recovery.outcome).toMatchObject({ ok: true, result: { consistency: "app" } });
  });

  it("killed just after the storage snapshot of a bare-paused database: the next start keeps the journalled crash-consistency", async () => {
    const { recovery } = await killAt(/create storage snapshot 'vzdump'/, undefined, { dbStrategy: "pause" });
    expect(recovery.outcome).toMatchObject({ ok: true, result: { consistency: "crash" } });
  });

  it("killed after the snapshot while an operator's stacks up holds the lock: the start-up still recovers and reports that backup (the journal is not the holder's)", async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 4e6 });
    dir = await mkdtemp(join(tmpdir(), "felhom-crash-"));
    const before = await h.running();
    const agent = spawnAgent(await writeAgentConfig(h, dir), ["backup"]);
    await waitForLine(agent, /create storage snapshot 'vzdump'/);
    agent.kill("SIGKILL");
    await exited(agent);
    const vzdump = h.sim.tasks.list().find((t) => t.type === "vzdump")!;
    await h.sim.tasks.wait(vzdump.upid);
    const lock = await acquireOperationLock(h.stateDir, {
      pid: process.pid,
      kind: "stacks-up",
      operationId: "stacks-up-1",
    });
    try {
      const s = await startUp(h.deps(), { configuredProjects: [h.project] });
      expect(s.recovery?.outcome).toMatchObject({
        ok: true,
        result: { upid: vzdump.upid, consistency: "app" },
      });
      expect(await h.running()).toEqual(before);
    } finally {
      if (lock.acquired) await lock.release();
    }
  });

  it("a daemon stopped while its start-up follows the in-flight task exits at once, and the task is reported by the next start", async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 4e6 });
    dir = await mkdtemp(join(tmpdir(), "felhom-crash-"));
    const before = await h.running();
    const config = await writeAgentConfig(h, dir);
    h.sim.faults.hangTask({ type: "vzdump" }, { afterLine: /create storage snapshot 'vzdump'/ });
    const agent = spawnAgent(config, ["backup"]);
    await waitForLine(agent, /▸ snapshot-wait/);
    agent.kill("SIGKILL");
    await exited(agent);
    // systemd starts the daemon; its start-up resumes the stacks and follows the hung task…
    const daemon = spawnAgent(config, ["run"]);
    daemon.stderr?.resume();
    await waitForLine(daemon, /resumed stacks left quiesced by an earlier run/);
    expect(await h.running()).toEqual(before);
    // …and `systemctl stop` must not wait for that task.
    daemon.kill("SIGTERM");
    expect(await exited(daemon)).toBe(0);
    const journal = await QuiesceJournal.open(statePaths(h.stateDir).quiesceJournal);
    expect(journal?.data.backup.reported).not.toBe(true);
    const task = h.sim.tasks.list().find((t) => t.type === "vzdump")!;
    await h.pve.stopTask("pve1", task.upid);
    await h.sim.tasks.wait(task.upid);
    const recovery = await recoverAtStart(h.deps());
    expect(recovery.outcome).toMatchObject({
      ok: false,
      failure: { code: "vzdump_failed", upid: task.upid },
    });
  });

  it("killed while archiving, after the resume: nothing to resume, the next start reports the backup completed", async () => {
    const resumeFinished = (g: GuestHarness) =>
      expect
        .poll(async () => (await QuiesceJournal.open(statePaths(g.stateDir).quiesceJournal))?.finished, {
          timeout: 30_000,
          interval: 100,
        })
        .toBe(true);
    const { recovery, g, killedAt } = await killAt(/▸ follow/, resumeFinished);
    expect(killedAt).toBeLessThan(g.sim.vzdumpRuns.at(-1)!.archiveFinishedAt!);
    expect(recovery.resumed).toBeUndefined();
    expect(recovery.outcome).toMatchObject({ ok: true, result: { consistency: "app", exitStatus: "OK" } });
    // Reported once: a second start has nothing left to report.
    expect((await recoverAtStart(g.deps())).outcome).toBeUndefined();
  });
});
