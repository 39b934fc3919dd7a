import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../hub/test-hub.ts";
import { capturedStdout, exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

/** The daemon as systemd runs it, driven by the test hub over a real WebSocket. */
let h: GuestHarness | undefined;
let hub: TestHub | undefined;
let daemon: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (daemon) {
    daemon.kill("SIGTERM");
    await exited(daemon);
  }
  await hub?.close();
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = hub = daemon = dir = undefined;
});

/** A guest, the test hub, and `felhom-guest run` connected to both; resolves once the hub has its status. */
async function startDaemonWithHub(extraConfig: (dir: string) => string[] = () => []): Promise<string> {
  h = await startGuestHarness({ archiveBytesPerSecond: 20e6 });
  hub = await startTestHub({ credentials: ["hub-secret"] });
  dir = await mkdtemp(join(tmpdir(), "felhom-daemon-"));
  const config = await writeAgentConfig(h, dir, extraConfig(dir), { url: hub.url, credential: "hub-secret" });
  daemon = spawnAgent(config, ["run"]);
  daemon.stdout?.resume();
  await hub.waitFor(
    "the agent's first status",
    () => hub!.events.find((e) => e.event.kind === "status"),
    30_000,
  );
  return config;
}

describeDocker("the daemon and the hub (pve sim + real docker + test hub)", () => {
  it("runs a backup on the hub's command, reports every phase and the result, and runs a repeated command id once", async () => {
    await startDaemonWithHub();
    const link = hub!;
    const guest = h!;
    const status = await link.sendCommand({ name: "status.get", params: {} });
    expect(status).toMatchObject({
      ok: true,
      data: { identity: { state: "verified", vmid: 101, node: "pve1" } },
    });

    const result = await link.sendCommand(
      { name: "backup.run", params: { mode: "snapshot" } },
      { id: "cmd-backup-1" },
    );
    expect(result).toMatchObject({
      ok: true,
      data: { mode: "snapshot", backupId: expect.stringMatching(/^bk-/) },
    });
    const backupId = (result as { data: { backupId: string } }).data.backupId;
    const completed = await link.waitFor(
      "backup.completed",
      () => link.events.find((e) => e.event.kind === "backup.completed" && e.event.backupId === backupId),
      60_000,
    );
    expect(completed.event).toMatchObject({ exitStatus: "OK", consistency: "app" });
    const phases = link.events.flatMap((e) =>
      e.event.kind === "backup.phase" && e.event.backupId === backupId ? [e.event.phase] : [],
    );
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
    expect(link.events.some((e) => e.event.kind === "blackout")).toBe(true);
    const phase = link.events.find(
      (e) => e.event.kind === "backup.phase" && e.event.backupId === backupId,
    )!.event;
    expect(phase).toMatchObject({ trigger: { source: "hub", commandId: "cmd-backup-1" } });

    // The same command id again: the stored result, no second backup.
    const again = await link.sendCommand(
      { name: "backup.run", params: { mode: "snapshot" } },
      { id: "cmd-backup-1" },
    );
    expect(again).toEqual(result);
    expect(guest.sim.vzdumpRuns.length).toBe(1);
    // Events carry consecutive sequence numbers: none missing, none out of order.
    const seqs = link.events.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
  });

  it("publishes its backup health for node_exporter's textfile collector at start and after each backup", async () => {
    const textfile = (d: string) => join(d, "node-exporter", "felhom_guest.prom");
    await startDaemonWithHub((d) => {
      mkdirSync(join(d, "node-exporter"));
      return ["metrics:", `  textfile: ${textfile(d)}`];
    });
    const link = hub!;
    const file = textfile(dir!);
    const read = () => (existsSync(file) ? readFileSync(file, "utf8") : "");
    // Written at start from the (empty) history, before any backup.
    await link.waitFor("the textfile at start", () =>
      /^felhom_guest_backup_last_success_timestamp_seconds 0$/m.test(read()),
    );
    await link.sendCommand({ name: "backup.run", params: { mode: "snapshot" } });
    const completed = await link.waitFor(
      "backup.completed",
      () => link.events.find((e) => e.event.kind === "backup.completed"),
      60_000,
    );
    const event = completed.event as Extract<typeof completed.event, { kind: "backup.completed" }>;
    await link.waitFor("the textfile after the backup", () =>
      /^felhom_guest_backup_last_attempt_success 1$/m.test(read()),
    );
    const text = read();
    expect(text).toMatch(new RegExp(`^felhom_guest_backup_archive_size_bytes ${event.sizeBytes}$`, "m"));
    expect(text).toMatch(/^felhom_guest_backup_consecutive_failures 0$/m);
    for (const d of event.downtime)
      expect(text).toContain(
        `felhom_guest_backup_service_downtime_seconds{project="${d.project}",service="${d.service}"} ${d.downtimeMs / 1000}`,
      );
    expect(event.downtime.length).toBeGreaterThan(0);
  });

  it("runs an operator's `felhom-guest backup` inside the daemon, so the hub sees it, and shows its progress", async () => {
    const config = await startDaemonWithHub();
    const link = hub!;
    const guest = h!;
    const cli = spawnAgent(config, ["backup"]);
    const output = capturedStdout(cli);
    expect(await exited(cli)).toBe(0);
    const out = output();
    expect(out).toMatch(
      /▸ preflight[\s\S]*▸ snapshot-wait[\s\S]*▸ report[\s\S]*completed \(app-consistent\)/,
    );
    const completed = await link.waitFor(
      "backup.completed",
      () => link.events.find((e) => e.event.kind === "backup.completed"),
      30_000,
    );
    const backupId = completed.event.kind === "backup.completed" ? completed.event.backupId : "";
    expect(out).toContain(backupId);
    const first = link.events.find(
      (e) => e.event.kind === "backup.phase" && e.event.backupId === backupId,
    )!.event;
    expect(first).toMatchObject({ phase: "lock", trigger: { source: "cli" } });
    expect(guest.sim.vzdumpRuns.length).toBe(1);
  });

  it("reloads its config on the hub's command; a broken file or a key that needs a restart changes nothing", async () => {
    const config = await startDaemonWithHub();
    const link = hub!;
    const original = await readFile(config, "utf8");
    await writeFile(config, original.replace("  storage: bk", "  storage: bk\n  max_downtime_seconds: 42"));
    expect(await link.sendCommand({ name: "config.reload", params: {} })).toMatchObject({
      ok: true,
      data: { changedKeys: ["backup.max_downtime_seconds"] },
    });
    await writeFile(config, original.replace("  storage: bk", "  storage: bk\n  max_downtime_secnds: 42"));
    expect(await link.sendCommand({ name: "config.reload", params: {} })).toMatchObject({
      ok: false,
      error: { code: "config_invalid", message: expect.stringMatching(/max_downtime_secnds: unknown key/) },
    });
    await writeFile(config, original.replace(/url: ws:\/\/127\.0\.0\.1:\d+/, "url: ws://127.0.0.1:1"));
    expect(await link.sendCommand({ name: "config.reload", params: {} })).toMatchObject({
      ok: false,
      error: {
        code: "config_invalid",
        message: expect.stringMatching(/hub\.url changed: that needs a restart/),
      },
    });
    // A file that parses but cannot be used (its token file readable by others): the running runtime stays.
    const loose = join(dir!, "loose-token");
    await writeFile(loose, "00000000-0000-0000-0000-000000000000", { mode: 0o644 });
    await writeFile(config, original.replace(/token_secret_file: .*/, `token_secret_file: ${loose}`));
    expect(await link.sendCommand({ name: "config.reload", params: {} })).toMatchObject({
      ok: false,
      error: { code: "config_invalid", message: expect.stringMatching(/the running one stays/) },
    });
    // SIGHUP (systemctl reload) does the same; the reload runs in the background, so wait for its log line.
    await writeFile(config, original.replace("  storage: bk", "  storage: bk\n  max_downtime_seconds: 43"));
    const reloaded = new Promise<void>((resolve) =>
      daemon!.stdout?.on(
        "data",
        (d: Buffer) => d.toString().includes("SIGHUP: configuration reloaded") && resolve(),
      ),
    );
    daemon!.kill("SIGHUP");
    await reloaded;
    // Still serving, with the reloaded value (and not killed by the signal).
    const backup = await link.sendCommand({ name: "backup.run", params: { mode: "snapshot" } });
    expect(backup).toMatchObject({ ok: true });
    const blackout = await link.waitFor(
      "blackout",
      () => link.events.find((e) => e.event.kind === "blackout"),
      30_000,
    );
    expect(blackout.event).toMatchObject({ expectedSeconds: 43 });
  });

  it("keeps every exclusive command out while a hub snapshot runs, finishes it app-consistent, and lists it with its parent", async () => {
    const config = await startDaemonWithHub();
    const link = hub!;
    const guest = h!;
    const first = await link.sendCommand({ name: "snapshot.create", params: { name: "before-upgrade" } });
    expect(first).toMatchObject({ ok: true, data: { name: "before-upgrade" } });
    await link.waitFor(
      "snapshot.created before-upgrade",
      () => link.events.find((e) => e.event.kind === "snapshot.created"),
      30_000,
    );

    const paused = guest.sim.faults.pauseTask({ type: "vzsnapshot" });
    const second = await link.sendCommand({ name: "snapshot.create", params: { name: "after-upgrade" } });
    expect(second).toMatchObject({ ok: true });
    const operationId = (second as { data: { operationId: string } }).data.operationId;
    await paused.reached;

    // Stacks are quiesced now. A reload or an enroll would replace the PVE client the snapshot polls with;
    // a backup or stacks.up would fight over the same containers.
    const original = await readFile(config, "utf8");
    await writeFile(config, original.replace("  storage: bk", "  storage: bk\n  max_downtime_seconds: 44"));
    const busy = { ok: false, error: { code: "busy", details: { operation: "snapshot", operationId } } };
    expect(await link.sendCommand({ name: "config.reload", params: {} })).toMatchObject(busy);
    expect(
      await link.sendCommand({
        name: "enroll",
        params: {
          vmid: 101,
          tokenId: "felhom@pve!other",
          tokenSecret: "00000000-0000-0000-0000-000000000000",
        },
      }),
    ).toMatchObject(busy);
    expect(await link.sendCommand({ name: "backup.run", params: { mode: "snapshot" } })).toMatchObject(busy);
    expect(await link.sendCommand({ name: "stacks.up", params: {} })).toMatchObject(busy);

    paused.resume();
    const created = await link.waitFor(
      "snapshot.created after-upgrade",
      () =>
        link.events.find((e) => e.event.kind === "snapshot.created" && e.event.operationId === operationId),
      30_000,
    );
    expect(created.event).toMatchObject({ name: "after-upgrade", consistency: "app" });
    expect(guest.sim.vzdumpRuns.length).toBe(0);
    expect(await link.sendCommand({ name: "snapshot.list", params: {} })).toMatchObject({
      ok: true,
      data: {
        snapshots: [
          { name: "before-upgrade", parent: null, takenAt: expect.any(String) },
          { name: "after-upgrade", parent: "before-upgrade", takenAt: expect.any(String) },
        ],
      },
    });
    // Once it has ended, the reload goes through.
    expect(await link.sendCommand({ name: "config.reload", params: {} })).toMatchObject({
      ok: true,
      data: { changedKeys: ["backup.max_downtime_seconds"] },
    });
  });

  it("on SIGTERM during a hub snapshot, resumes the stacks before it exits", async () => {
    await startDaemonWithHub();
    const link = hub!;
    const guest = h!;
    const before = await guest.running();
    const paused = guest.sim.faults.pauseTask({ type: "vzsnapshot" });
    expect(
      await link.sendCommand({ name: "snapshot.create", params: { name: "before-upgrade" } }),
    ).toMatchObject({ ok: true });
    await paused.reached;
    expect(await guest.running()).not.toEqual(before);
    daemon!.kill("SIGTERM");
    expect(await exited(daemon!)).toBe(0);
    daemon = undefined;
    expect(await guest.running()).toEqual(before);
    paused.resume();
  });
});
