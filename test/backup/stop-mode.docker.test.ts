import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import { readLastBackup } from "../../agent/backup/last-backup.ts";
import { exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { docker } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { inProcessReboot } from "../support/guest-reboot.ts";

/**
 * Stop mode across a simulated guest shutdown and boot: vzdump stops the guest (the agent gets SIGTERM,
 * the engine stops every container), archives, starts it again (the agent starts as a daemon), and the
 * booted agent follows its journalled task to the end, brings the stacks back and reports.
 */
let h: GuestHarness | undefined;
let dir: string | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill("SIGKILL");
    await exited(c);
  }
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = undefined;
});

describeDocker("backup, stop mode (pve sim + real docker)", () => {
  it.each<{ db: "stop" | "exec" | "none"; labels: Record<string, string> }>([
    { db: "stop", labels: {} },
    // Not quiesced by stopping, but the guest's shutdown stopped them too: they must come back as well.
    { db: "exec", labels: { "felhom.quiesce.pre": '["sync"]' } },
    { db: "none", labels: {} },
  ])(
    "survives its own guest's shutdown (db strategy $db): after the boot it resumes every container that ran, follows the task and reports it completed",
    {
      timeout: 150_000,
    },
    async ({ db, labels }) => {
      let agent: ChildProcess | undefined;
      let configFile = "";
      const timeline: string[] = [];
      h = await startGuestHarness({
        dbStrategy: db,
        dbLabels: labels,
        archiveBytesPerSecond: 20e6,
        onGuestStop: async () => {
          timeline.push("guest stopping");
          agent?.kill("SIGTERM"); // systemd stops the agent as the guest shuts down
          if (agent) timeline.push(`agent exited ${await exited(agent)}`);
          // …and the shutdown stops the engine and every container with it.
          for (const id of await h!.running()) await docker("stop", "-t", "10", id);
        },
        onGuestStart: async () => {
          timeline.push("guest started");
          const daemon = spawnAgent(configFile, ["run"]);
          daemon.stdout?.resume();
          daemon.stderr?.resume();
          children.push(daemon);
        },
      });
      dir = await mkdtemp(join(tmpdir(), "felhom-stop-"));
      configFile = await writeAgentConfig(h, dir);
      const before = await h.running();
      agent = spawnAgent(configFile, ["backup", "--mode", "stop"]);
      agent.stdout?.resume();
      agent.stderr?.resume();
      children.push(agent);

      await expect.poll(() => readLastBackup(h!.stateDir), { timeout: 90_000, interval: 500 }).toBeDefined();
      const last = (await readLastBackup(h.stateDir))!;
      expect(last.outcome).toMatchObject({
        ok: true,
        result: { mode: "stop", exitStatus: "OK", consistency: "app", stacksResumed: true },
      });
      expect(timeline).toEqual(["guest stopping", "agent exited 1", "guest started"]);
      await expect.poll(() => h!.running(), { timeout: 30_000, interval: 250 }).toEqual(before);
      const run = h.sim.vzdumpRuns.at(-1)!;
      expect(run.mode).toBe("stop");
      expect(last.outcome.ok && last.outcome.result.volid).toBe(run.volid);
      // Finished by the process that booted: of where the downtime went, only the resume is known.
      const downtime = last.outcome.ok ? last.outcome.result.downtime : [];
      expect(downtime.length).toBeGreaterThan(0);
      for (const d of downtime) {
        expect(Object.keys(d.breakdown ?? {})).toEqual(["resumeMs"]);
        expect(d.breakdown!.resumeMs).toBeLessThanOrEqual(d.downtimeMs);
      }
    },
  );

  it("finishes a stop-mode backup after the boot the way a live one finishes: verify, retention (it prunes) and report, with the same events", {
    timeout: 150_000,
  }, async () => {
    const reboot = inProcessReboot(() => h!);
    h = await startGuestHarness({
      archiveBytesPerSecond: 20e6,
      backup: { retention: { keep_last: 1 } },
      ...reboot.hooks,
    });
    const before = await h.running();
    const live = await runBackup(h.deps(), {
      backupId: newBackupId(),
      mode: "snapshot",
      trigger: { source: "cli" },
    });
    expect(live).toMatchObject({ ok: true, result: { pruned: [] } });
    await new Promise((r) => setTimeout(r, 1100)); // archive names go by the second

    const stopId = newBackupId();
    const outcome = await reboot.stopModeBackup(stopId);
    expect(outcome).toMatchObject({
      ok: true,
      result: {
        backupId: stopId,
        mode: "stop",
        exitStatus: "OK",
        pruned: [live.ok ? live.result.volid : ""],
      },
    });
    expect((await h.sim.listBackups("bk")).map((b) => b.volid)).toEqual([
      outcome?.ok ? outcome.result.volid : "",
    ]);
    await expect.poll(() => h!.running(), { timeout: 30_000, interval: 250 }).toEqual(before);

    const phasesOf = (id: string) =>
      h!.events.flatMap((e) => (e.kind === "backup.phase" && e.backupId === id ? [e.phase] : []));
    const after = (phases: string[]) => phases.slice(phases.lastIndexOf("follow"));
    expect(after(phasesOf(stopId))).toEqual(["follow", "verify", "retention", "report"]);
    expect(after(phasesOf(live.ok ? live.result.backupId : ""))).toEqual(after(phasesOf(stopId)));
  });
});
