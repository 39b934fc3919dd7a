import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { readLastBackup } from "../../agent/backup/last-backup.ts";
import { recoverAtStart } from "../../agent/backup/recover-at-start.ts";
import { QuiesceJournal } from "../../agent/quiesce/journal.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { capturedStdout, exited, spawnAgent, waitForLine, writeAgentConfig } from "../support/agent-cli.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

/**
 * SIGTERM (systemd stopping the agent, an operator's Ctrl-C) in the middle of a snapshot-mode backup: the
 * agent resumes the stacks before it exits, and the task PVE goes on with is reported by the next start.
 */
let h: GuestHarness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = dir = undefined;
});

describeDocker("agent stopped with SIGTERM mid-backup (pve sim + real docker)", () => {
  it("resumes the stacks before exiting while the snapshot is still pending, and the next start reports the task", async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 20e6 });
    dir = await mkdtemp(join(tmpdir(), "felhom-sigterm-"));
    const before = await h.running();
    const paused = h.sim.faults.pauseTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    const agent = spawnAgent(await writeAgentConfig(h, dir), ["backup"]);
    await paused.reached; // quiesced, POSTed, the snapshot not taken yet
    await waitForLine(agent, /▸ snapshot-wait/);
    agent.kill("SIGTERM");
    expect(await exited(agent)).toBe(1);
    // Back before the process was gone, without waiting for the snapshot.
    expect(await h.running()).toEqual(before);
    expect((await QuiesceJournal.open(statePaths(h.stateDir).quiesceJournal))?.finished).toBe(true);
    expect(await readLastBackup(h.stateDir)).toBeUndefined(); // not a result yet
    paused.resume();
    const task = h.sim.tasks.list().find((t) => t.type === "vzdump")!;
    await h.sim.tasks.wait(task.upid);
    const recovery = await recoverAtStart(h.deps());
    // The snapshot was taken after the stacks were back: the archive is only crash-consistent.
    expect(recovery.outcome).toMatchObject({ ok: true, result: { upid: task.upid, consistency: "crash" } });
  });

  it("answers on stdout with --json when stopped while it follows the task: interrupted, deferred, the task's upid", async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 20e6 });
    dir = await mkdtemp(join(tmpdir(), "felhom-sigterm-"));
    const paused = h.sim.faults.pauseTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    const agent = spawnAgent(await writeAgentConfig(h, dir), ["backup", "--json"]);
    const out = capturedStdout(agent);
    await paused.reached;
    const journalledUpid = async () =>
      (await QuiesceJournal.open(statePaths(h!.stateDir).quiesceJournal))?.data.backup.upid;
    await expect.poll(journalledUpid, { timeout: 30_000, interval: 100 }).toBeDefined();
    agent.kill("SIGTERM");
    expect(await exited(agent)).toBe(1);
    const task = h.sim.tasks.list().find((t) => t.type === "vzdump")!;
    expect(JSON.parse(out())).toMatchObject({
      ok: false,
      deferred: true,
      kind: "backup.failed",
      code: "interrupted",
      upid: task.upid,
    });
    paused.resume();
    await h.sim.tasks.wait(task.upid);
  });
});
