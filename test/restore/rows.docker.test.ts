import type { ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import { TASK_BOOT_SLACK_S } from "../../agent/boot/decide-start.ts";
import { type StartUp, startUp } from "../../agent/boot/start-up.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { readLocalFacts, resolveIdentity } from "../../agent/identity/identity-service.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { createSnapshot, deleteSnapshot, rollbackSnapshot } from "../../agent/snapshot/snapshot-service.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";
import { exited, spawnAgent, waitForLine, writeAgentConfig } from "../support/agent-cli.ts";
import { compose, docker, runningContainers } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { simClient } from "../support/sim-client.ts";
import { type CopyView, guestFacts, isWrite, viewFromCopy } from "./support.ts";

/**
 * The start-up decision against the simulator and real stacks, row by row where a row needs more than the
 * pure table (test/boot/decide-start.test.ts): the original back from its stop-mode backup, a copy whose
 * original was destroyed, a copy with a reset MAC enrolled through the CLI, a migrated guest.
 */
let h: GuestHarness | undefined;
let copy: CopyView | undefined;
let sim: PveSimulator | undefined;
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill("SIGTERM");
    await exited(c);
  }
  if (copy)
    await compose(copy.project, copy.stackDir, "down", "-v", "--timeout", "5").catch((err) =>
      console.error("compose down of the copy failed", err),
    );
  await h?.close();
  await sim?.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  h = copy = sim = undefined;
});

async function backupAndRestore(g: GuestHarness, newVmid: number, name?: string) {
  const backupId = newBackupId();
  const outcome = await runBackup(g.deps({ localFacts: guestFacts(g.sim, 101) }), {
    backupId,
    mode: "snapshot",
    trigger: { source: "cli" },
  });
  if (!outcome.ok) throw new Error(`backup failed: ${outcome.failure.message}`);
  const restored = await g.sim.restoreGuest(outcome.result.volid, newVmid);
  g.sim.setGuestRunning(newVmid, true);
  return { backupId, restored, view: await viewFromCopy(g, restored.rootDir, name) };
}

describeDocker("restore: the start-up decision, row by row (pve sim + real docker)", () => {
  it("row own-backup: the original coming back from its own stop-mode backup is not a restore; it follows its task and reports it", {
    timeout: 150_000,
  }, async () => {
    const shutdown = new AbortController();
    let booted: Promise<StartUp> | undefined;
    h = await startGuestHarness({
      archiveBytesPerSecond: 50e6,
      onGuestStop: async () => {
        shutdown.abort(); // the agent goes down with its guest
        for (const id of await h!.running()) await docker("stop", "-t", "10", id);
      },
      onGuestStart: async () => {
        // The boot: the agent starts again in the same guest (not awaited: the task finishes meanwhile).
        booted = startUp(h!.deps({ localFacts: guestFacts(h!.sim, 101) }), {
          configuredProjects: [h!.project],
        });
      },
    });
    const before = await h.running();
    const backupId = newBackupId();
    const dying = await runBackup(h.deps({ localFacts: guestFacts(h.sim, 101) }), {
      backupId,
      mode: "stop",
      trigger: { source: "cli" },
      signal: shutdown.signal,
    });
    expect(dying).toMatchObject({ ok: false, failure: { code: "interrupted" } });
    await expect.poll(() => booted, { timeout: 60_000 }).toBeDefined();
    const s = await booted!;
    expect(s.decision).toMatchObject({ kind: "own", row: "own-backup" });
    expect(s.gate).toBeUndefined();
    expect(s.events).toEqual([]);
    expect(s.recovery?.outcome).toMatchObject({
      ok: true,
      result: { backupId, mode: "stop", exitStatus: "OK" },
    });
    expect(await h.running()).toEqual(before);
  });

  it("row copy-task-ended-before-boot: a copy of a stop-mode archive, started soon after (same MAC, similar uptime), is told apart by the task having ended before it booted", {
    timeout: 150_000,
  }, async () => {
    const shutdown = new AbortController();
    let booted: Promise<StartUp> | undefined;
    h = await startGuestHarness({
      archiveBytesPerSecond: 50e6,
      onGuestStop: async () => {
        shutdown.abort();
        for (const id of await h!.running()) await docker("stop", "-t", "10", id);
      },
      onGuestStart: async () => {
        booted = startUp(h!.deps({ localFacts: guestFacts(h!.sim, 101) }), {
          configuredProjects: [h!.project],
        });
      },
    });
    const backupId = newBackupId();
    await runBackup(h.deps({ localFacts: guestFacts(h.sim, 101) }), {
      backupId,
      mode: "stop",
      trigger: { source: "cli" },
      signal: shutdown.signal,
    });
    await expect.poll(() => booted, { timeout: 60_000 }).toBeDefined();
    const original = await booted!;
    expect(original.recovery?.outcome).toMatchObject({ ok: true, result: { backupId } });
    const volid = original.recovery!.outcome!.ok ? original.recovery!.outcome!.result.volid : "";
    const task = h.sim.tasks.list().find((t) => t.type === "vzdump")!;
    // The original followed its task to the end: it has ended by now. The operator restores and starts
    // the copy a few seconds later.
    expect(task.running).toBe(false);
    await new Promise((r) => setTimeout(r, (TASK_BOOT_SLACK_S + 2) * 1000));
    const restored = await h.sim.restoreGuest(volid, 201);
    h.sim.setGuestRunning(201, true);
    copy = await viewFromCopy(h, restored.rootDir);
    const copyDeps = h.deps({
      stateDir: copy.stateDir,
      projects: [copy.project],
      localFacts: guestFacts(h.sim, 201),
    });
    // The live check alone cannot tell: MAC and hostname match, and both booted moments apart.
    expect(await resolveIdentity(h.pve, { local: copyDeps.localFacts() })).toMatchObject({
      state: "verified",
      vmid: 101,
    });
    const started = Date.now();
    const s = await startUp(copyDeps, { configuredProjects: [copy.project] });
    expect(s.decision).toMatchObject({
      kind: "restored-copy",
      row: "copy-task-ended-before-boot",
      signals: ["marker", "task-ended-before-boot", "duplicate-mac"],
    });
    expect(s.stacks).toEqual([{ project: copy.project, outcome: "started" }]);
    // It never touched the original's task beyond reading when it ended, and wrote nothing.
    const mine = h.sim.requests.filter((r) => r.at >= started);
    expect(mine.filter(isWrite)).toEqual([]);
    expect(
      mine.filter((r) => r.path.includes(encodeURIComponent(task.upid)) || r.path.includes(task.upid)),
    ).toEqual([]);
  });

  it("row copy-original-gone: a copy started after its original was destroyed knows it, brings its stack up, and never writes to PVE", {
    timeout: 150_000,
  }, async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 50e6 });
    const { backupId, view } = await backupAndRestore(h, 201);
    copy = view;
    // pct destroy needs the guest stopped: its stack goes down with it. (The harness's own compose down
    // at the end then finds no compose file any more and says so on stderr; nothing is left behind.)
    await compose(h.project, h.stackDir, "down", "--timeout", "5");
    await h.sim.destroyGuest(101);
    const started = Date.now();
    const copyDeps = h.deps({
      stateDir: view.stateDir,
      projects: [view.project],
      localFacts: guestFacts(h.sim, 201),
    });

    const s = await startUp(copyDeps, { configuredProjects: [view.project] });
    expect(s.decision).toMatchObject({
      kind: "restored-copy",
      row: "copy-original-gone",
      originalVmid: 101,
      originalExists: false,
    });
    expect(s.gate).toMatchObject({ state: "restored-copy" });
    expect(s.events).toEqual([
      {
        kind: "restore.detected",
        fromBackupId: backupId,
        takenAt: expect.any(String),
        signals: ["marker", "vmid-missing"],
        stacks: [{ project: view.project, outcome: "started" }],
      },
      expect.objectContaining({ kind: "identity.warning", state: "restored-copy", signal: "restored-copy" }),
    ]);
    expect(await runningContainers(view.project)).toHaveLength(2);

    const refused = await runBackup(copyDeps, {
      backupId: newBackupId(),
      mode: "snapshot",
      trigger: { source: "cli" },
    });
    expect(refused).toMatchObject({
      ok: false,
      failure: { code: "identity_unverified", phase: "preflight" },
    });

    // A later start (row known-copy): still a copy, nothing announced again, the stack left as it runs.
    const again = await startUp(copyDeps, { configuredProjects: [view.project] });
    expect(again.decision).toMatchObject({ kind: "restored-copy", row: "known-copy", announce: false });
    expect(again.stacks).toEqual([{ project: view.project, outcome: "already-running" }]);
    expect(again.events.map((e) => e.kind)).toEqual(["identity.warning"]);

    const mine = h.sim.requests.filter((r) => r.tokenId === h!.self.tokenId && r.at >= started);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.filter(isWrite)).toEqual([]);
  });

  it("row copy-original-exists (reset MAC): the copy is told apart by its MAC, and `felhom-guest enroll` refuses a token that is not its own, then enrolls it with its own", {
    timeout: 150_000,
  }, async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 50e6 });
    const { restored, view } = await backupAndRestore(h, 201);
    copy = view;
    // The operator reset the copy's network identity: pct set 201 -net0 name=eth0,bridge=vmbr0,hwaddr=…
    const newMac = "bc:24:11:20:01:01";
    restored.config.net0 = `name=eth0,bridge=vmbr0,hwaddr=${newMac.toUpperCase()},ip=dhcp,type=veth`;
    const copyFacts = () => ({ ...guestFacts(h!.sim, 201)(), macs: [newMac] });
    const copyDeps = h.deps({ stateDir: view.stateDir, projects: [view.project], localFacts: copyFacts });
    const started = Date.now();

    const s = await startUp(copyDeps, { configuredProjects: [view.project] });
    expect(s.decision).toMatchObject({
      kind: "restored-copy",
      row: "copy-original-exists",
      signals: ["marker", "mac-mismatch"],
    });
    // No MAC collision to warn about: only the restored-copy warning.
    expect(s.events.filter((e) => e.kind === "identity.warning").map((e) => e.signal)).toEqual([
      "restored-copy",
    ]);

    const dir = await mkdtemp(join(tmpdir(), "felhom-enroll-"));
    dirs.push(dir);
    const config = await writeAgentConfig({ ...h, stateDir: view.stateDir, project: view.project }, dir);
    const enroll = async (tokenId: string, secret: string) => {
      const file = join(dir, `secret-${tokenId.replace(/\W/g, "_")}`);
      await writeFile(file, secret, { mode: 0o600 });
      const child = spawnAgent(
        config,
        ["enroll", "--vmid", "201", "--token-id", tokenId, "--token-secret-file", file],
        "pipe",
        { macs: [newMac], bootedAtMs: restored.startedAt },
      );
      children.push(child);
      let out = "";
      child.stdout?.on("data", (c: Buffer) => {
        out += c.toString();
      });
      child.stderr?.on("data", (c: Buffer) => {
        out += c.toString();
      });
      return { code: await exited(child), out };
    };

    // The original's token cannot see CT 201: refused, nothing written.
    const wrong = await enroll(h.self.tokenId, h.self.secret);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toMatch(/does not verify as CT 201/);
    await expect(stat(statePaths(view.stateDir).enrollment)).rejects.toThrow();

    const own = await selfScopedGuest(h.sim, { vmid: 201 });
    const right = await enroll(own.tokenId, own.secret);
    expect(right).toMatchObject({ code: 0 });
    expect(right.out).toMatch(/enrolled as CT 201 on pve1/);
    expect(right.out).not.toContain(own.secret);
    const enrollment = JSON.parse(await readFile(statePaths(view.stateDir).enrollment, "utf8"));
    expect((await stat(enrollment.tokenSecretFile)).mode & 0o777).toBe(0o600);

    // The daemon starts with the enrolled token: verified as CT 201, and that is a normal start now.
    const daemon = spawnAgent(config, ["run"], "pipe", { macs: [newMac], bootedAtMs: restored.startedAt });
    children.push(daemon);
    const line = JSON.parse(await waitForLine(daemon, /felhom-guest is running/, 60_000));
    expect(line.identity).toBe("verified");
    expect(
      h.sim.requests.filter((r) => r.at >= started && isWrite(r) && r.tokenId === h!.self.tokenId),
    ).toEqual([]);
  });

  it("row copy-original-exists (same MAC, original up longer): every PVE write path refuses on the live check alone, without the start-up gate", {
    timeout: 150_000,
  }, async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 50e6 });
    h.sim.getGuest(101).startedAt = Date.now() - 3_600_000;
    const { view } = await backupAndRestore(h, 201);
    copy = view;
    const copyDeps = h.deps({
      stateDir: view.stateDir,
      projects: [view.project],
      localFacts: guestFacts(h.sim, 201),
    });
    const started = Date.now();

    const s = await startUp(copyDeps, { configuredProjects: [view.project] });
    expect(s.decision).toMatchObject({
      row: "copy-original-exists",
      signals: ["marker", "uptime", "duplicate-mac"],
    });
    // What `felhom-guest backup` / `snapshot` in the copy would run: no gate there, the live check refuses.
    const backup = await runBackup(copyDeps, {
      backupId: newBackupId(),
      mode: "snapshot",
      trigger: { source: "cli" },
    });
    expect(backup).toMatchObject({
      ok: false,
      failure: { code: "identity_unverified", message: /has been up for/ },
    });
    expect(await createSnapshot(copyDeps, "copy-snap")).toMatchObject({
      ok: false,
      failure: { code: "identity_unverified" },
    });
    expect(await deleteSnapshot(copyDeps, "anything")).toMatchObject({
      ok: false,
      failure: { code: "identity_unverified" },
    });
    await expect(rollbackSnapshot(copyDeps, "anything")).rejects.toMatchObject({
      code: "identity_unverified",
    });
    const mine = h.sim.requests.filter((r) => r.tokenId === h!.self.tokenId && r.at >= started);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.filter(isWrite)).toEqual([]);
    expect(h.sim.vzdumpRuns).toHaveLength(1); // the original's backup only
  });

  it("row copy-already-enrolled: a copy that starts with a token of its own vmid brings its stack up, reports the restore and backs itself up", {
    timeout: 150_000,
  }, async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 50e6 });
    const { backupId, view } = await backupAndRestore(h, 202, "enrolled");
    copy = view;
    const own = await selfScopedGuest(h.sim, { vmid: 202 });
    const pve = simClient(h.sim, own);
    try {
      const copyDeps = h.deps({
        pve,
        stateDir: view.stateDir,
        projects: [view.project],
        localFacts: guestFacts(h.sim, 202),
      });
      const s = await startUp(copyDeps, { configuredProjects: [view.project] });
      expect(s.decision).toMatchObject({
        kind: "restored-enrolled",
        row: "copy-already-enrolled",
        originalVmid: 101,
      });
      expect(s.gate).toBeUndefined();
      expect(s.events).toEqual([
        {
          kind: "restore.detected",
          fromBackupId: backupId,
          takenAt: expect.any(String),
          signals: ["marker", "vmid-changed"],
          stacks: [{ project: view.project, outcome: "started" }],
        },
      ]);
      const backup = await runBackup(copyDeps, {
        backupId: newBackupId(),
        mode: "snapshot",
        trigger: { source: "cli" },
      });
      expect(backup).toMatchObject({ ok: true, result: { volid: expect.stringMatching(/vzdump-lxc-202-/) } });
    } finally {
      await pve.close();
    }
  });

  it("row marker-no-pve: with PVE unreachable a copy decides nothing, keeps the marker and follows no task; once PVE answers it knows it is a copy", {
    timeout: 150_000,
  }, async () => {
    h = await startGuestHarness({ archiveBytesPerSecond: 50e6 });
    h.sim.getGuest(101).startedAt = Date.now() - 3_600_000;
    const { view } = await backupAndRestore(h, 201);
    copy = view;
    const pve = simClient(h.sim, h.self, { retry: { maxAttempts: 1, wait: async () => {} } });
    try {
      const copyDeps = h.deps({
        pve,
        stateDir: view.stateDir,
        projects: [view.project],
        localFacts: guestFacts(h.sim, 201),
      });
      h.sim.faults.failNext(1, 503, "/cluster/resources");
      const started = Date.now();
      const s = await startUp(copyDeps, { configuredProjects: [view.project] });
      expect(s.decision).toMatchObject({ kind: "undecided", row: "marker-no-pve" });
      expect(s.gate).toMatchObject({ state: "unverified" });
      expect(s.events).toEqual([
        expect.objectContaining({ kind: "identity.warning", signal: "pve-unreachable" }),
      ]);
      await stat(statePaths(view.stateDir).backupMarker); // kept for the next check
      // Only the failed identity read: no task was read, followed or written.
      expect(h.sim.requests.filter((r) => r.at >= started).map((r) => r.path)).toEqual([
        "/cluster/resources",
      ]);

      const later = await startUp(copyDeps, { configuredProjects: [view.project] });
      expect(later.decision).toMatchObject({ kind: "restored-copy", row: "copy-original-exists" });
      expect(h.sim.requests.filter((r) => r.at >= started && isWrite(r))).toEqual([]);
    } finally {
      await pve.close();
    }
  });

  it("a guest migrated to another node keeps working: the node is re-discovered, the start is normal, the next backup runs there", {
    timeout: 120_000,
  }, async () => {
    sim = await startPveSimulator({
      authFailureDelayMs: 50,
      extraNodes: ["pve2"],
      archiveBytesPerSecond: 50e6,
    });
    const local = readLocalFacts();
    const self = await selfScopedGuest(sim, { vmid: 101, hostname: local.hostname, hwaddr: local.macs[0]! });
    const stateDir = join(self.guest.rootDir, "var/lib/felhom-guest");
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const pve = simClient(sim, self);
    const s = sim;
    try {
      const deps = {
        pve,
        engine: new DockerEngine(),
        stateDir,
        backup: {
          storage: "bk",
          mode: "snapshot" as const,
          max_downtime_seconds: 60,
          lockwait_minutes: 1,
          busy_retry: { attempts: 1, delay_seconds: 1 },
          protected: false,
          max_protected_backups: 5,
          no_snapshot: { policy: "hold" as const, max_hold_seconds: 3600 },
        },
        projects: ["felhom-no-such-project"], // no stack: this test is about PVE, not Docker
        localFacts: guestFacts(s, 101),
        emit: () => {},
        log: silentLogger(),
        follow: { minIntervalMs: 50, maxIntervalMs: 250 },
      };
      const run = () =>
        runBackup(deps, { backupId: newBackupId(), mode: "snapshot", trigger: { source: "cli" } });
      expect(await run()).toMatchObject({ ok: true });
      s.migrateGuest(101, "pve2");
      expect(await resolveIdentity(pve, { local: deps.localFacts() })).toMatchObject({
        state: "verified",
        node: "pve2",
      });
      const started = await startUp(deps, { configuredProjects: [] });
      expect(started.decision).toMatchObject({ kind: "own", row: "normal" });
      expect(await run()).toMatchObject({ ok: true });
      const posts = s.requests
        .filter((r) => r.method === "POST" && r.path.endsWith("/vzdump"))
        .map((r) => r.path);
      expect(posts).toEqual(["/nodes/pve1/vzdump", "/nodes/pve2/vzdump"]);
    } finally {
      await pve.close();
    }
  });
});
