import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Event } from "@felhom/protocol";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { startTestHub, type TestHub } from "../hub/test-hub.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { compose, docker, runningContainers, serviceContainer, waitHealthy } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { simClient } from "../support/sim-client.ts";
import { type CopyView, guestFacts, isWrite, touches, viewFromCopy } from "./support.ts";

/**
 * The whole restore story with the daemon as systemd runs it: the original backs itself up, the archive
 * is restored into CT 201 (pct restore keeps hostname and MAC), and a second agent starts on the restored
 * root with the original's token. It must know it is a copy, bring the stack up from the restored files,
 * tell the hub, refuse to back up — while the original's backups keep working — and, once enrolled with
 * its own token, back itself up as CT 201. It never writes to PVE on the original's behalf.
 */
let h: GuestHarness | undefined;
let hub: TestHub | undefined;
let daemon: ChildProcess | undefined;
let copy: CopyView | undefined;
const dirs: string[] = [];
afterEach(async () => {
  if (daemon) {
    daemon.kill("SIGTERM");
    await exited(daemon);
  }
  if (copy)
    await compose(copy.project, copy.stackDir, "down", "-v", "--timeout", "5").catch((err) =>
      console.error("compose down of the copy failed", err),
    );
  await hub?.close();
  await h?.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  h = hub = daemon = copy = undefined;
});

const psql = (container: string, sql: string) =>
  docker("exec", container, "psql", "-U", "postgres", "-tAc", sql);

describeDocker("restore: a restored copy under the daemon (pve sim + real docker + test hub)", () => {
  it("detects the restore, brings the stack up from the restored files, reports it, refuses to back up until enrolled, then backs itself up as CT 201", {
    timeout: 240_000,
  }, async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 50e6 });
    const sim = h.sim;
    // The original has been up for an hour; its agent sees the same uptime PVE reports.
    sim.getGuest(101).startedAt = Date.now() - 3_600_000;
    await psql(
      h.dbContainer,
      "CREATE TABLE before_backup (v text); INSERT INTO before_backup VALUES ('kept')",
    );

    const backupId = newBackupId();
    const first = await runBackup(h.deps({ localFacts: guestFacts(sim, 101) }), {
      backupId,
      mode: "snapshot",
      trigger: { source: "cli" },
    });
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    // The live original cleared its marker; the archive still holds it.
    await expect(stat(statePaths(h.stateDir).backupMarker)).rejects.toThrow();

    const restored = await sim.restoreGuest(first.result.volid, 201);
    sim.setGuestRunning(201, true); // the operator starts the copy
    copy = await viewFromCopy(h, restored.rootDir);
    await stat(statePaths(copy.stateDir).backupMarker); // the copy boots with the marker

    hub = await startTestHub({ credentials: ["hub-secret"] });
    const dir = await mkdtemp(join(tmpdir(), "felhom-copy-"));
    dirs.push(dir);
    const config = await writeAgentConfig(
      { ...h, stateDir: copy.stateDir, project: copy.project },
      dir,
      ["  max_downtime_seconds: 120"],
      { url: hub.url, credential: "hub-secret" },
    );
    const copyStarted = Date.now();
    // The copy's own boot time: this machine stands for both guests (the test-only entry point).
    daemon = spawnAgent(config, ["run"], "pipe", { bootedAtMs: restored.startedAt });
    let output = "";
    daemon.stdout?.on("data", (c: Buffer) => {
      output += c.toString();
    });
    daemon.stderr?.on("data", (c: Buffer) => {
      output += c.toString();
    });

    const detected = (await hub.waitFor(
      "restore.detected",
      () => hub!.events.find((e) => e.event.kind === "restore.detected")?.event,
      120_000,
    )) as Extract<Event, { kind: "restore.detected" }>;
    expect(detected).toMatchObject({
      fromBackupId: backupId,
      takenAt: expect.any(String),
      stacks: [{ project: copy.project, outcome: "started" }],
    });
    expect(detected.signals).toEqual(expect.arrayContaining(["marker", "uptime", "duplicate-mac"]));
    // The warnings are queued right after restore.detected and may arrive in a later frame.
    const warningsNow = () =>
      hub!.events.flatMap((e) => (e.event.kind === "identity.warning" ? [e.event] : []));
    await hub.waitFor("both identity warnings", () => (warningsNow().length >= 2 ? true : undefined), 30_000);
    const warnings = warningsNow();
    expect(warnings.map((w) => w.signal).sort()).toEqual(["duplicate-mac", "restored-copy"]);
    expect(warnings[0]).toMatchObject({ state: "restored-copy", vmid: 101 });

    // The stack runs from the restored files: the copy's PostgreSQL has the row written before the backup.
    const copyDb = await serviceContainer(copy.project, "db");
    await waitHealthy(copyDb);
    expect(await runningContainers(copy.project)).toHaveLength(2);
    expect(await psql(copyDb, "SELECT v FROM before_backup")).toBe("kept");
    // The original's marker and journal are retired unreplayed; the decision is kept.
    await expect(stat(statePaths(copy.stateDir).backupMarker)).rejects.toThrow();
    expect(JSON.parse(await readFile(statePaths(copy.stateDir).restoredCopy, "utf8"))).toMatchObject({
      fromBackupId: backupId,
      originalVmid: 101,
    });

    const status = await hub.sendCommand({ name: "status.get", params: {} });
    // The CT the identity names is the one the warnings name: its original (PROTOCOL.md, hello).
    expect(status).toMatchObject({ ok: true, data: { identity: { state: "restored-copy", vmid: 101 } } });
    const refused = await hub.sendCommand({ name: "backup.run", params: { mode: "snapshot" } });
    expect(refused).toMatchObject({
      ok: false,
      error: { code: "identity_unverified", details: { identityState: "restored-copy" } },
    });
    const snapRefused = await hub.sendCommand({ name: "snapshot.create", params: { name: "copy-snap" } });
    expect(snapRefused).toMatchObject({ ok: false, error: { code: "identity_unverified" } });
    const stacksAgain = await hub.sendCommand({ name: "stacks.up", params: {} });
    expect(stacksAgain).toMatchObject({
      ok: true,
      data: { stacks: [{ project: copy.project, outcome: "already-running" }] },
    });

    // Meanwhile the original backs itself up as before (with a second token of its own, so that the
    // request log tells its calls from the copy's).
    const second = await selfScopedGuest(sim, { vmid: 101, tokenName: "second" });
    const origPve = simClient(sim, second);
    try {
      const again = await runBackup(h.deps({ pve: origPve, localFacts: guestFacts(sim, 101) }), {
        backupId: newBackupId(),
        mode: "snapshot",
        trigger: { source: "cli" },
      });
      expect(again).toMatchObject({ ok: true, result: { exitStatus: "OK" } });
    } finally {
      await origPve.close();
    }

    // Not one write with the original's token since the copy started; it did read (the filter is not empty).
    const byCopy = sim.requests.filter((r) => r.tokenId === h!.self.tokenId && r.at >= copyStarted);
    expect(byCopy.length).toBeGreaterThan(0);
    expect(byCopy.filter(isWrite)).toEqual([]);

    // A token that is not the copy's own (the original's, for CT 201) is refused and changes nothing.
    const wrong = await hub.sendCommand({
      name: "enroll",
      params: { vmid: 201, tokenId: h.self.tokenId, tokenSecret: h.self.secret },
    });
    expect(wrong).toMatchObject({
      ok: false,
      error: { code: "identity_unverified", message: expect.stringMatching(/does not verify as CT 201/) },
    });
    await expect(stat(statePaths(copy.stateDir).enrollment)).rejects.toThrow();
    expect(await hub.sendCommand({ name: "status.get", params: {} })).toMatchObject({
      data: { identity: { state: "restored-copy" } },
    });

    // Enrollment: the hub gives the copy a token scoped to CT 201.
    const own = await selfScopedGuest(sim, { vmid: 201, tokenName: "backup" });
    const enrolled = await hub.sendCommand({
      name: "enroll",
      params: { vmid: 201, tokenId: own.tokenId, tokenSecret: own.secret },
    });
    expect(enrolled).toMatchObject({
      ok: true,
      data: { vmid: 201, node: "pve1", identityState: "verified" },
    });
    const enrollment = JSON.parse(await readFile(statePaths(copy.stateDir).enrollment, "utf8"));
    expect(enrollment).toMatchObject({ vmid: 201, tokenId: own.tokenId });
    expect((await stat(enrollment.tokenSecretFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(enrollment.tokenSecretFile, "utf8")).toBe(`${own.secret}\n`);
    await expect(stat(statePaths(copy.stateDir).restoredCopy)).rejects.toThrow();
    expect(JSON.stringify(hub.events)).not.toContain(own.secret);
    expect(output).toContain("enrolled");
    expect(output).not.toContain(own.secret);

    const backup = await hub.sendCommand({ name: "backup.run", params: { mode: "snapshot" } });
    expect(backup).toMatchObject({ ok: true });
    const copyBackupId = (backup as { data: { backupId: string } }).data.backupId;
    const completed = (await hub.waitFor(
      "the copy's own backup.completed",
      () =>
        hub!.events.find((e) => e.event.kind === "backup.completed" && e.event.backupId === copyBackupId)
          ?.event,
      120_000,
    )) as Extract<Event, { kind: "backup.completed" }>;
    expect(completed.volid).toMatch(/vzdump-lxc-201-/);
    const status2 = await hub.sendCommand({ name: "status.get", params: {} });
    expect(status2).toMatchObject({ ok: true, data: { identity: { state: "verified", vmid: 201 } } });

    // Still never a write against the original, with either token; every write of the new one is CT 201's.
    const copyWrites = sim.requests.filter(
      (r) =>
        r.at >= copyStarted && (r.tokenId === h!.self.tokenId || r.tokenId === own.tokenId) && isWrite(r),
    );
    expect(copyWrites.length).toBeGreaterThan(0);
    expect(copyWrites.filter((r) => touches(r, 101))).toEqual([]);
    expect(copyWrites.every((r) => r.tokenId === own.tokenId && touches(r, 201))).toBe(true);
  });
});
