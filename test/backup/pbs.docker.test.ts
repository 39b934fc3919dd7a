import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import { decideStart } from "../../agent/boot/decide-start.ts";
import { gatherStartFacts } from "../../agent/boot/start-facts.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { guestFacts, viewFromCopy } from "../restore/support.ts";
import { capturedStdout, exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

let h: GuestHarness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = dir = undefined;
});

const PBS_VOLID = /^bk:backup\/ct\/101\/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

describeDocker("backup to a Proxmox Backup Server storage (pve sim + real docker)", () => {
  it("runs the whole cycle against PBS: backup with progress, verification by notes, `backups`, retention, and a restored copy that knows it is one", {
    timeout: 180_000,
  }, async () => {
    h = await startGuestHarness({ storageType: "pbs", backup: { retention: { keep_last: 1 } } });
    const sim = h.sim;
    sim.getGuest(101).startedAt = Date.now() - 3_600_000; // the original has been up for an hour
    const backup = () =>
      runBackup(h!.deps({ localFacts: guestFacts(sim, 101) }), {
        backupId: newBackupId(),
        mode: "snapshot",
        trigger: { source: "cli" },
      });
    const first = await backup();
    expect(first).toMatchObject({ ok: true, result: { mode: "snapshot", consistency: "app", pruned: [] } });
    if (!first.ok) return;
    expect(first.result.volid).toMatch(PBS_VOLID);
    expect(first.result.volid).toBe(sim.vzdumpRuns.at(-1)!.volid);
    expect(first.result.sizeBytes).toBeGreaterThan(0);
    // progress: the PBS client's total stands in for tar's (there is no `Total bytes written` on PBS)
    const bytes = h.events.flatMap((e) =>
      e.kind === "backup.progress" && e.bytes !== undefined ? [e.bytes] : [],
    );
    expect(bytes).toHaveLength(1);
    expect(bytes[0]).toBeGreaterThan(0);
    const phases = h.events.flatMap((e) => (e.kind === "backup.phase" ? [e.phase] : []));
    expect(phases).toEqual(
      expect.arrayContaining(["snapshot-wait", "resume", "follow", "verify", "retention"]),
    );

    await new Promise((r) => setTimeout(r, 1100)); // PBS snapshots are named by the second
    const second = await backup();
    expect(second).toMatchObject({ ok: true, result: { pruned: [first.result.volid] } });
    if (!second.ok) return;
    expect((await sim.listBackups("bk")).map((b) => b.volid)).toEqual([second.result.volid]);

    // `felhom-guest backups` lists the PBS snapshot with its backup id
    dir = await mkdtemp(join(tmpdir(), "felhom-pbs-"));
    const config = await writeAgentConfig(h, dir);
    const agent = spawnAgent(config, ["backups", "--json"]);
    const out = capturedStdout(agent);
    expect(await exited(agent)).toBe(0);
    expect(JSON.parse(out())).toEqual([
      expect.objectContaining({
        volid: second.result.volid,
        format: "pbs-ct",
        backupId: second.result.backupId,
        size: second.result.sizeBytes,
      }),
    ]);

    // doctor names the storage's type
    const doctor = spawnAgent(config, ["doctor", "--json"]);
    const report = capturedStdout(doctor);
    await exited(doctor);
    expect((JSON.parse(report()) as { message: string }[]).map((f) => f.message)).toContainEqual(
      expect.stringMatching(/^backup storage bk: active \(Proxmox Backup Server\), [\d.]+ GiB free$/),
    );

    // pct restore from the PBS snapshot: the copy boots with the marker and knows it is a restored copy
    const restored = await sim.restoreGuest(second.result.volid, 201);
    sim.setGuestRunning(201, true);
    const copy = await viewFromCopy(h, restored.rootDir);
    await stat(statePaths(copy.stateDir).backupMarker);
    const facts = await gatherStartFacts({
      pve: h.pve,
      stateDir: copy.stateDir,
      localFacts: guestFacts(sim, 201),
      log: h.deps().log,
    });
    expect(facts.marker?.backupId).toBe(second.result.backupId);
    expect(decideStart(facts)).toMatchObject({ kind: "restored-copy", originalVmid: 101 });
  });
});
