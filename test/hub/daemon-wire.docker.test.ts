import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command, ResultMessage } from "@felhom/protocol";
import { afterEach, expect, it } from "vitest";
import { invalidFrames } from "../protocol/strict-validator.ts";
import { capturedStdout, exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import type { LocalFactsOverride } from "../support/cli-with-local-facts.ts";
import { docker } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, type HarnessOptions, startGuestHarness } from "../support/guest-harness.ts";
import { startTestHub, type TestHub } from "./test-hub.ts";

/**
 * The daemon as systemd runs it (PVE simulator, real Docker, the test hub over a real WebSocket), driven
 * as a hub written from PROTOCOL.md would drive it: the error codes the table promises are the ones it
 * answers, and every frame of the connection passes the published JSON Schema under a strict validator.
 */
let h: GuestHarness | undefined;
let hub: TestHub | undefined;
let daemon: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (daemon && daemon.exitCode === null) {
    daemon.kill("SIGTERM");
    await exited(daemon);
  }
  await hub?.close();
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = hub = daemon = dir = undefined;
});

/** `localFacts`: what this system says it is (the test-only entry, test/support/cli-with-local-facts.ts). */
async function startDaemonWithHub(
  localFacts?: LocalFactsOverride,
  harness: HarnessOptions = {},
): Promise<{ g: GuestHarness; link: TestHub; config: string }> {
  h = await startGuestHarness({ archiveBytesPerSecond: 20e6, ...harness });
  hub = await startTestHub({ credentials: ["hub-secret"] });
  dir = await mkdtemp(join(tmpdir(), "felhom-wire-"));
  const config = await writeAgentConfig(h, dir, [], { url: hub.url, credential: "hub-secret" });
  daemon = spawnAgent(config, ["run"], "pipe", localFacts);
  daemon.stdout?.resume();
  const link = hub;
  await link.waitFor("the first status", () => link.events.find((e) => e.event.kind === "status"), 30_000);
  return { g: h, link, config };
}

/** What every backup sends up to its vzdump POST, on the wire in this order. */
const UNTIL_SUBMIT = ["lock", "preflight", "announce", "blackout", "journal", "quiesce", "marker", "submit"];

const failed = (r: ResultMessage) => (r.ok ? undefined : r.error);

/** Waits for the event of `kind` about `id` (a backupId or operationId). */
function eventFor(link: TestHub, kind: string, id: string) {
  return link.waitFor(
    `${kind} ${id}`,
    () =>
      link.events.find((e) => {
        const ev = e.event as { kind: string; backupId?: string; operationId?: string };
        return ev.kind === kind && (ev.backupId ?? ev.operationId) === id;
      }),
    60_000,
  );
}

describeDocker("a hub driving the real daemon", () => {
  it("gets the documented error codes, phases and blackout end, in frames the strict validator accepts", async () => {
    const { g, link } = await startDaemonWithHub();
    const send = (command: Command) => link.sendCommand(command);

    // A good backup: every phase, the blackout ended right before report. While it runs, a second
    // backup.run is told to follow it.
    const paused = g.sim.faults.pauseTask({ type: "vzdump" }, { afterLine: /including mount point/ });
    const run = await send({ name: "backup.run", params: { mode: "snapshot" } });
    const backupId = (run as { data: { backupId: string } }).data.backupId;
    await paused.reached;
    const second = await send({ name: "backup.run", params: { mode: "snapshot" } });
    expect(failed(second)).toMatchObject({
      code: "already_running",
      retryable: false,
      details: { backupId },
    });
    paused.resume();
    await eventFor(link, "backup.completed", backupId);
    const about = (id: string) =>
      link.events
        .map((e) => e.event)
        .filter((e) => "backupId" in e || "operationId" in e)
        .filter(
          (e) =>
            (e as { backupId?: string }).backupId === id ||
            (e as { operationId?: string }).operationId === id,
        )
        .map((e) => (e.kind === "backup.phase" ? e.phase : e.kind));
    expect(about(backupId).filter((k) => k !== "backup.progress")).toEqual([
      ...UNTIL_SUBMIT,
      "snapshot-wait",
      "resume",
      "follow",
      "verify",
      "blackout.ended",
      "report",
      "backup.completed",
    ]);

    // Snapshots: already_exists and not_found as the command's answer, before anything is touched.
    const created = await send({ name: "snapshot.create", params: { name: "pre-upgrade" } });
    await eventFor(link, "snapshot.created", (created as { data: { operationId: string } }).data.operationId);
    const again = await send({ name: "snapshot.create", params: { name: "pre-upgrade" } });
    expect(failed(again)).toMatchObject({
      code: "already_exists",
      retryable: false,
      details: { name: "pre-upgrade" },
    });
    const snapshotTasks = g.sim.requests.filter((r) => r.method === "POST").length;
    const missing = await send({ name: "snapshot.delete", params: { name: "never-taken" } });
    expect(failed(missing)).toMatchObject({
      code: "not_found",
      retryable: false,
      details: { name: "never-taken" },
    });
    expect(g.sim.requests.filter((r) => r.method === "POST").length).toBe(snapshotTasks);
    const deleted = await send({ name: "snapshot.delete", params: { name: "pre-upgrade" } });
    await eventFor(link, "snapshot.deleted", (deleted as { data: { operationId: string } }).data.operationId);

    // PVE holds the guest: the command says so, with PVE's lock.
    g.sim.setGuestLock(101, "mounted");
    const locked = await send({ name: "backup.run", params: { mode: "snapshot" } });
    expect(failed(locked)).toMatchObject({
      code: "pve_guest_locked",
      retryable: true,
      details: { lock: "mounted" },
    });
    g.sim.setGuestLock(101, undefined);

    // A task failing while archiving: the failure names follow; blackout.ended and report precede it.
    g.sim.faults.failTask({ type: "vzdump" }, "archive write failed: No space left on device");
    const bad = await send({ name: "backup.run", params: { mode: "snapshot" } });
    const badId = (bad as { data: { backupId: string } }).data.backupId;
    const failure = await eventFor(link, "backup.failed", badId);
    expect(failure.event).toMatchObject({ phase: "follow", code: "vzdump_failed", stacksResumed: true });
    expect(about(badId).slice(-3)).toEqual(["blackout.ended", "report", "backup.failed"]);

    // A service-restart close in the middle: the agent comes back and resends what was not acked.
    link.dropConnections(1012);
    await link.waitFor("the reconnect", () => link.hellos.length === 2 && link.connections() === 1, 30_000);

    // PVE answers 503 to every try of the read: unreachable, retryable.
    g.sim.faults.failNext(8, 503, "/cluster/resources");
    const unreachable = await send({ name: "backups.list", params: {} });
    expect(failed(unreachable)).toMatchObject({ code: "pve_unreachable", retryable: true });
    g.sim.faults.clear();

    // The token loses the storage: a 403 with PVE's path; then the token is gone: 401.
    g.sim.removeAcl({ path: "/storage/bk", token: g.self.tokenId });
    const denied = await send({ name: "backups.list", params: {} });
    expect(failed(denied)).toMatchObject({ code: "pve_permission", details: { path: "/storage/bk" } });
    g.sim.access.users.get(g.self.userid)!.tokens.delete("backup");
    const revoked = await send({ name: "backups.list", params: {} });
    expect(failed(revoked)).toMatchObject({ code: "pve_auth", retryable: false });

    expect(link.invalidFromAgent).toEqual([]);
    expect(invalidFrames(link.frames)).toEqual([]);
    const seqs = link.events.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    expect(link.frames.length).toBeGreaterThan(100);
  });

  it("names the same CT and the same hostname in hello, identity.warning, status and `felhom-guest status` on a MAC mismatch", async () => {
    const facts = { macs: ["bc:24:11:aa:bb:cc"], hostname: "ct-own-name" };
    const { link, config } = await startDaemonWithHub(facts);
    const warning = await link.waitFor(
      "identity.warning",
      () => link.events.find((e) => e.event.kind === "identity.warning"),
      30_000,
    );
    expect(warning.event).toMatchObject({ state: "unverified", signal: "mac-mismatch", vmid: 101 });
    expect((warning.event as { message: string }).message).toContain("CT 101");
    const expected = { state: "unverified", vmid: 101, node: "pve1", hostname: "ct-own-name" };
    expect(link.hellos[0]!.identity).toEqual(expected);
    const status = link.events.find((e) => e.event.kind === "status")!.event as { identity: unknown };
    expect(status.identity).toEqual(expected);

    const cli = spawnAgent(config, ["status", "--json"], "pipe", facts);
    const out = capturedStdout(cli);
    await exited(cli);
    expect(JSON.parse(out()).identity).toMatchObject(expected);
    expect(invalidFrames(link.frames)).toEqual([]);
  });

  it("reports a stop-mode backup across its own guest's shutdown: blackout.ended and report from the booted guest's new run", {
    timeout: 150_000,
  }, async () => {
    let config = "";
    const {
      g,
      link,
      config: file,
    } = await startDaemonWithHub(undefined, {
      onGuestStop: async () => {
        // systemd stops the agent as the guest shuts down, and the shutdown stops every container.
        daemon!.kill("SIGTERM");
        await exited(daemon!);
        for (const id of await g.running()) await docker("stop", "-t", "10", id);
      },
      onGuestStart: async () => {
        daemon = spawnAgent(config, ["run"]);
        daemon.stdout?.resume();
      },
    });
    config = file;
    const run = await link.sendCommand({ name: "backup.run", params: { mode: "stop" } });
    const backupId = (run as { data: { backupId: string } }).data.backupId;
    await eventFor(link, "backup.completed", backupId);
    const about = link.events.filter(
      (e) =>
        (e.event as { backupId?: string }).backupId === backupId ||
        (e.event as { operationId?: string }).operationId === backupId,
    );
    const kinds = about.map((e) => (e.event.kind === "backup.phase" ? e.event.phase : e.event.kind));
    expect(kinds.filter((k) => k !== "backup.progress")).toEqual([
      ...UNTIL_SUBMIT,
      "follow",
      // The booted guest's run finishes the backup as a live run would (recover-at-start.ts).
      "resume",
      "follow",
      "verify",
      "blackout.ended",
      "report",
      "backup.completed",
    ]);
    expect(about.find((e) => e.event.kind === "blackout.ended")!.event).toMatchObject({
      reason: "stop-mode",
    });
    expect(
      about.find((e) => e.event.kind === "backup.phase" && e.event.phase === "report")!.event,
    ).toMatchObject({
      trigger: { source: "journal-replay" },
    });
    // The booted guest's agent is a new run.
    expect(link.hellos.map((hello) => hello.session.resume)).toEqual([false, false]);
    expect(invalidFrames(link.frames)).toEqual([]);
  });
});
