import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect, promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AgentError } from "../../agent/lib/errors.ts";
import { Secret } from "../../agent/lib/secret.ts";
import { createLogger, type Logger } from "../../agent/log/logger.ts";
import { PveClient } from "../../agent/pve/client.ts";
import {
  PveAuthenticationError,
  type PveNetworkError,
  PveNotImplementedError,
  PveParameterError,
  PvePermissionError,
  PveServerError,
  PveTlsPinMismatchError,
} from "../../agent/pve/errors.ts";
import { parsePermissionFailure } from "../../agent/pve/permission-error.ts";
import type { RetryPolicy } from "../../agent/pve/retry.ts";
import { submitSnapshot, submitVzdump } from "../../agent/pve/submit.ts";
import { type FollowEvent, followTask, followTaskToEnd } from "../../agent/pve/task-follower.ts";
import { type PveConnection, PveTransport } from "../../agent/pve/transport.ts";
import { parseUpid } from "../../agent/pve/upid.ts";
import type { VzdumpPhase } from "../../agent/pve/vzdump-log.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { startPveSimulator } from "../pve-sim/index.ts";

type Sim = Awaited<ReturnType<typeof startPveSimulator>>;

// Every pino line of the whole suite, to prove the token secret never reaches a log.
const logLines: string[] = [];
const logger: Logger = createLogger({
  level: "debug",
  destination: { write: (s: string) => logLines.push(s) },
});
// Every error the suite provoked, to prove none of them carries the secret in any serialisation.
const provoked: unknown[] = [];
// The token secrets of every simulator started in this file.
const secrets: string[] = [];
const noWait: RetryPolicy = { maxAttempts: 4, wait: async () => {} };
const FAST_FOLLOW = { minIntervalMs: 20, maxIntervalMs: 200 };
const VMID = 100;
const OTHER_VMID = 101;
const STORAGE = "bk";
const run = promisify(execFile);

async function failure(promise: Promise<unknown>): Promise<AgentError> {
  try {
    await promise;
  } catch (err) {
    provoked.push(err);
    return err as AgentError;
  }
  throw new Error("expected the call to fail");
}

function countRequests(sim: Sim, method: string, pathPart: string): number {
  return sim.requests.filter((r) => r.method === method && r.path.includes(pathPart)).length;
}

describe("pve client against the PVE simulator", () => {
  let sim: Sim;
  let token: { tokenId: string; secret: string };
  let connection: PveConnection;
  let pve: PveClient;
  const node = "pve1";
  const clients: PveClient[] = [];
  const client = (overrides: Partial<PveConnection> = {}) => {
    const c = new PveClient({ ...connection, ...overrides }, logger);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    sim = await startPveSimulator({
      node,
      extraNodes: ["pve2"],
      authFailureDelayMs: 50,
      lockwaitScaleMs: 100,
    });
    token = await selfScopedGuest(sim, { vmid: VMID, storage: STORAGE });
    secrets.push(token.secret);
    if (!sim.guests.has(OTHER_VMID)) await sim.addGuest({ vmid: OTHER_VMID, hostname: "neighbour" });
    connection = {
      baseUrl: sim.url,
      tokenId: token.tokenId,
      secret: new Secret(token.secret),
      tls: { fingerprint: sim.fingerprint },
      retry: noWait,
    };
    pve = client();
  });

  afterAll(async () => {
    for (const c of clients) await c.close();
    await sim?.close();
  });

  it("pve self-discovery: the self-scoped token sees only its own guest, and the version", async () => {
    const vms = await pve.clusterVms();
    expect(vms.map((v) => v.vmid)).toEqual([VMID]);
    expect(vms[0]).toMatchObject({ id: `lxc/${VMID}`, node, type: "lxc" });
    const version = await pve.version();
    expect(version.release).toMatch(/^\d+\.\d+$/);
  });

  it("pve node re-discovery follows a migrated guest and names a guest the token cannot see", async () => {
    expect(await pve.nodeOf(VMID)).toBe(node);
    sim.migrateGuest(VMID, "pve2");
    try {
      expect(await pve.nodeOf(VMID)).toBe("pve2");
    } finally {
      sim.migrateGuest(VMID, node);
    }
    expect((await failure(pve.nodeOf(OTHER_VMID))).code).toBe("pve_guest_not_visible");
  });

  it("pve status and config: reads the guest's status and the net0 hwaddr the identity check compares", async () => {
    const status = await pve.lxcStatus(node, VMID);
    expect(status).toMatchObject({ vmid: VMID, status: "running" });
    expect(status.lock).toBeUndefined();
    const config = await pve.lxcConfig(node, VMID);
    const guest = sim.getGuest(VMID);
    expect(config.nets.net0?.hwaddr).toBe(sim.hwaddrOf(guest)?.toUpperCase());
    expect(config.hostname).toBe(sim.hostnameOf(guest));
  });

  it("pve permissions self-check and certificate info through the token", async () => {
    const perms = await pve.permissions({ path: `/vms/${VMID}` });
    expect(perms[`/vms/${VMID}`]?.["VM.Backup"]).toBeDefined();
    const all = await pve.permissions();
    expect(Object.keys(all)).toContain(`/storage/${STORAGE}`);
    const certs = await pve.certificates(node);
    expect(certs.map((c) => c.fingerprint)).toContain(sim.fingerprint);
  });

  it("pve vzdump in snapshot mode is followed to OK with phases in order and the snapshot before the archive", async () => {
    const submitted = await submitVzdump(
      pve,
      node,
      {
        vmid: VMID,
        storage: STORAGE,
        mode: "snapshot",
        compress: "zstd",
        lockwait: 1,
        notesTemplate: "felhom b-first {{guestname}}",
        remove: false,
      },
      { logger },
    );
    if (submitted.kind !== "task") throw new Error("expected a task");
    expect(submitted.recovered).toBe(false);
    expect(parseUpid(submitted.upid)).toMatchObject({
      type: "vzdump",
      id: String(VMID),
      user: `agent-${VMID}@pve`,
    });
    const events: FollowEvent[] = [];
    let snapshotSeenAt = Number.POSITIVE_INFINITY;
    const result = await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW, (e) => {
      events.push(e);
      if (e.type === "phase" && e.phase.phase === "snapshot-created") snapshotSeenAt = Date.now();
    });
    expect(result.classified).toEqual({ kind: "ok" });
    expect(result.lines).toEqual(sim.tasks.get(submitted.upid)?.lines);
    const phases = events.flatMap((e) => (e.type === "phase" ? [e.phase.phase] : []));
    const order = [
      "job-started",
      "snapshot-requested",
      "snapshot-created",
      "archive-started",
      "archive-size",
      "finished",
    ];
    const positions = order.map((p) => phases.indexOf(p as VzdumpPhase["phase"]));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    // The phase follows the first line after the create step, and comes before the archive phase.
    const createAt = events.findIndex(
      (e) => e.type === "line" && e.text === "INFO: create storage snapshot 'vzdump'",
    );
    const snapAt = events.findIndex((e) => e.type === "phase" && e.phase.phase === "snapshot-created");
    const nextLineAt = events.findIndex((e, i) => i > createAt && e.type === "line");
    expect(snapAt).toBe(nextLineAt + 1);
    expect(snapAt).toBeLessThan(
      events.findIndex((e) => e.type === "phase" && e.phase.phase === "archive-started"),
    );
    // Causality, not speed: the simulator's snapshot existed before the follower reported it.
    expect(sim.vzdumpRuns.find((r) => r.upid === submitted.upid)!.snapshotTakenAt!).toBeLessThanOrEqual(
      snapshotSeenAt,
    );
    expect(events.at(-1)?.type).toBe("end");
  });

  it("pve content listing shows the new archive with size and notes", async () => {
    const backups = await pve.backups(node, STORAGE, VMID);
    expect(backups.length).toBe(1);
    expect(backups[0]).toMatchObject({ vmid: VMID, format: "tar.zst", protected: false });
    expect(backups[0]!.size).toBeGreaterThan(0);
    expect(backups[0]!.notes).toBe(`felhom b-first ${sim.hostnameOf(sim.getGuest(VMID))}`);
  });

  it("pve vzdump POST succeeds with a UPID but the task fails with 403 on a guest the token may not back up", async () => {
    const submitted = await pve.vzdump(node, { vmid: OTHER_VMID, storage: STORAGE, lockwait: 1 });
    if (submitted.kind !== "task") throw new Error("expected a task");
    const result = await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW);
    expect(result.classified).toEqual({
      kind: "error",
      text: `403 Permission check failed (/vms/${OTHER_VMID}, VM.Backup)`,
    });
    expect(parsePermissionFailure(result.exitstatus)).toEqual({
      path: `/vms/${OTHER_VMID}`,
      privileges: ["VM.Backup"],
      any: false,
    });
  });

  it("pve vzdump on a node the guest is not on answers not-local instead of a task", async () => {
    expect(await pve.vzdump("pve2", { vmid: VMID, storage: STORAGE })).toEqual({ kind: "not-local" });
  });

  it("pve privsep trap: a role on the token but not the user gives a parsed 403 with the both-grants hint", async () => {
    sim.addRole("FelhomTrap", ["VM.Audit", "VM.Backup", "Datastore.AllocateSpace", "Datastore.Audit"]);
    const trap = sim.addToken("trap@pve", "trap", { privsep: true });
    sim.setAcl({ path: `/vms/${VMID}`, role: "FelhomTrap", token: trap.tokenId });
    const trapClient = client({ tokenId: trap.tokenId, secret: new Secret(trap.secret) });
    expect(await trapClient.clusterVms()).toEqual([]);
    const before = countRequests(sim, "GET", `/lxc/${VMID}/status/current`);
    const err = await failure(trapClient.lxcStatus(node, VMID));
    expect(countRequests(sim, "GET", `/lxc/${VMID}/status/current`) - before).toBe(1);
    expect(err).toBeInstanceOf(PvePermissionError);
    expect((err as PvePermissionError).failure).toEqual({
      path: `/vms/${VMID}`,
      privileges: ["VM.Audit"],
      any: false,
    });
    expect(err.hint).toBe(
      `grant VM.Audit on /vms/${VMID} to BOTH the user and the token (privilege separation intersects them)`,
    );
  });

  it("pve 401 is typed and sent once, with no retry storm", async () => {
    const before = sim.requests.filter((r) => r.status === 401).length;
    const bad = client({ secret: new Secret("00000000-0000-0000-0000-000000000000") });
    const err = await failure(bad.version());
    expect(err).toBeInstanceOf(PveAuthenticationError);
    expect(err.code).toBe("pve_authentication_failed");
    expect(sim.requests.filter((r) => r.status === 401).length - before).toBe(1);
  });

  it("pve 400 carries PVE's per-parameter errors map", async () => {
    const before = countRequests(sim, "GET", "not-a-upid");
    const err = await failure(pve.taskStatus(node, "UPID:not-a-upid"));
    expect(countRequests(sim, "GET", "not-a-upid") - before).toBe(1);
    expect(err).toBeInstanceOf(PveParameterError);
    expect((err as PveParameterError).errors.upid).toMatch(/unable to parse worker upid/);
    expect(err.message).toContain("upid: unable to parse worker upid");
  });

  it("pve 501 for an endpoint the server does not have", async () => {
    const transport = new PveTransport(connection, logger);
    try {
      const err = await failure(transport.call("GET", "/nodes/pve1/no-such-thing"));
      expect(err).toBeInstanceOf(PveNotImplementedError);
      expect(err.message).toContain("Method 'GET /nodes/pve1/no-such-thing' not implemented");
    } finally {
      await transport.close();
    }
  });

  it("pve 5xx is retried for a GET and not for a POST", async () => {
    sim.faults.failNext(2, 500, "/status/current");
    const before = countRequests(sim, "GET", "/status/current");
    expect((await pve.lxcStatus(node, VMID)).status).toBe("running");
    expect(countRequests(sim, "GET", "/status/current") - before).toBe(3);

    sim.faults.failNext(1, 500, (method, path) => method === "POST" && path.endsWith("/snapshot"));
    const postsBefore = countRequests(sim, "POST", "/snapshot");
    const err = await failure(pve.createSnapshot(node, VMID, "never"));
    expect(err).toBeInstanceOf(PveServerError);
    expect(countRequests(sim, "POST", "/snapshot") - postsBefore).toBe(1);
    expect((await pve.snapshots(node, VMID)).map((s) => s.name)).not.toContain("never");
  });

  it("pve follower survives dropped connections and still emits every line exactly once", async () => {
    const submitted = await pve.vzdump(node, {
      vmid: VMID,
      storage: STORAGE,
      lockwait: 1,
      notesTemplate: "felhom b-second",
      remove: false,
    });
    if (submitted.kind !== "task") throw new Error("expected a task");
    sim.faults.dropConnections(3, "/log");
    sim.faults.dropConnections(2, "/status");
    const seen: number[] = [];
    const result = await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW, (e) => {
      if (e.type === "line") seen.push(e.n);
    });
    expect(sim.requests.filter((r) => r.status === -1).length).toBeGreaterThanOrEqual(5);
    expect(result.classified.kind).toBe("ok");
    const expected = sim.tasks.get(submitted.upid)!.lines;
    expect(result.lines).toEqual(expected);
    expect(seen).toEqual(expected.map((_, i) => i + 1));
  });

  it("pve ambiguous vzdump POST timeout adopts the task from the task list instead of re-sending", async () => {
    // The simulator handles the POST only after 3 s; the client gives up on it after 0.5 s (undici's
    // headers timer has ~1 s resolution), so the task starts after the client saw a timeout.
    sim.faults.slow(3000, (method, path) => method === "POST" && path.endsWith("/vzdump"));
    const postsBefore = countRequests(sim, "POST", "/vzdump");
    const tasksBefore = sim.tasks.list().filter((t) => t.type === "vzdump").length;
    try {
      const submitted = await submitVzdump(
        pve,
        node,
        { vmid: VMID, storage: STORAGE, lockwait: 1, remove: false },
        {
          logger,
          headersTimeoutMs: 500,
          lookups: 40,
          lookupWait: () => new Promise((r) => setTimeout(r, 250)),
        },
      );
      if (submitted.kind !== "task") throw new Error("expected a task");
      expect(submitted.recovered).toBe(true);
      expect(countRequests(sim, "POST", "/vzdump") - postsBefore).toBe(1);
      const vzdumpTasks = sim.tasks.list().filter((t) => t.type === "vzdump");
      expect(vzdumpTasks.length - tasksBefore).toBe(1);
      expect(vzdumpTasks.at(-1)?.upid).toBe(submitted.upid);
      expect((await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW)).classified.kind).toBe("ok");
    } finally {
      sim.faults.slow(0);
    }
  });

  it("pve ambiguous POST with no task to adopt is reported as unknown, never re-sent", async () => {
    sim.faults.hangNext(1, (method, path) => method === "POST" && path.endsWith("/snapshot"));
    const postsBefore = countRequests(sim, "POST", "/snapshot");
    const err = await failure(
      submitSnapshot(pve, node, VMID, "lost", {
        logger,
        headersTimeoutMs: 200,
        lookups: 2,
        lookupWait: async () => {},
      }),
    );
    expect(err.code).toBe("pve_task_start_unknown");
    expect((err.cause as PveNetworkError).mayHaveReachedServer).toBe(true);
    expect(countRequests(sim, "POST", "/snapshot") - postsBefore).toBe(1);
  });

  it("pve prune dry run with vmid marks all but the newest; delete removes one volume", async () => {
    const before = await pve.backups(node, STORAGE, VMID);
    expect(before.length).toBe(3);
    const dry = await pve.pruneDryRun(node, STORAGE, VMID, { "keep-last": 1 });
    expect(dry.filter((i) => i.mark === "keep").length).toBe(1);
    expect(dry.filter((i) => i.mark === "remove").length).toBe(2);
    const dryParams = sim.requests
      .filter((r) => r.method === "GET" && r.path.endsWith("/prunebackups"))
      .at(-1)?.params;
    expect(dryParams).toMatchObject({ vmid: String(VMID), "prune-backups": "keep-last=1" });
    const after = await pve.backups(node, STORAGE, VMID);
    expect(after.length).toBe(3);

    const delUpid = await pve.deleteVolume(node, STORAGE, after[0]!.volid);
    if (delUpid === null) throw new Error("expected an imgdel task");
    expect(parseUpid(delUpid).type).toBe("imgdel");
    expect((await followTaskToEnd(pve, node, delUpid, FAST_FOLLOW)).classified.kind).toBe("ok");
    expect((await pve.backups(node, STORAGE, VMID)).map((b) => b.volid)).toEqual(
      after.slice(1).map((b) => b.volid),
    );
  });

  it("pve snapshot create, list and delete through tasks; reserved names are refused before sending", async () => {
    const created = await submitSnapshot(pve, node, VMID, "pre-upgrade", {
      logger,
      description: "before upgrade",
    });
    expect(created.recovered).toBe(false);
    expect(parseUpid(created.upid).type).toBe("vzsnapshot");
    expect((await followTaskToEnd(pve, node, created.upid, FAST_FOLLOW)).classified.kind).toBe("ok");
    const snaps = await pve.snapshots(node, VMID);
    expect(snaps.map((s) => s.name)).toEqual(expect.arrayContaining(["pre-upgrade", "current"]));
    expect(snaps.find((s) => s.name === "pre-upgrade")?.description).toBe("before upgrade");

    const deleted = await pve.deleteSnapshot(node, VMID, "pre-upgrade");
    expect(parseUpid(deleted).type).toBe("vzdelsnapshot");
    expect((await followTaskToEnd(pve, node, deleted, FAST_FOLLOW)).classified.kind).toBe("ok");
    expect((await pve.snapshots(node, VMID)).map((s) => s.name)).not.toContain("pre-upgrade");

    const posts = countRequests(sim, "POST", "/snapshot");
    const err = await failure(pve.createSnapshot(node, VMID, "vzdump"));
    expect(err.code).toBe("pve_snapshot_name_invalid");
    expect(countRequests(sim, "POST", "/snapshot")).toBe(posts);
  });

  it("pve storage status and stopping a task of our own", async () => {
    const status = await pve.storageStatus(node, STORAGE);
    expect(status.active).toBe(true);
    sim.faults.hangTask({ type: "vzsnapshot", vmid: VMID });
    const upid = await pve.createSnapshot(node, VMID, "hung");
    await pve.stopTask(node, upid);
    const result = await followTaskToEnd(pve, node, upid, FAST_FOLLOW);
    expect(result.classified.kind).not.toBe("ok");
  });

  it("pve task status of a token task splits user and tokenid", async () => {
    const upid = sim.tasks.list().find((t) => t.type === "vzdump" && t.id === String(VMID))!.upid;
    const status = await pve.taskStatus(node, upid);
    expect(status).toMatchObject({
      user: `agent-${VMID}@pve`,
      tokenid: "backup",
      status: "stopped",
      exitstatus: "OK",
    });
    const listed = await pve.taskList(node, { vmid: VMID, typefilter: "vzdump", source: "all" });
    expect(listed.map((t) => t.upid)).toContain(upid);
  });

  it("pve vzdump waiting for another guest's backup: lock wait, then timeout as unexpected status", async () => {
    const held = sim.holdGlobalVzdumpLock();
    try {
      const submitted = await pve.vzdump(node, { vmid: VMID, storage: STORAGE, lockwait: 1 });
      if (submitted.kind !== "task") throw new Error("expected a task");
      const phases: string[] = [];
      const result = await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW, (e) => {
        if (e.type === "phase") phases.push(e.phase.phase);
      });
      expect(phases).toEqual(["waiting-for-global-lock", "global-lock-timeout"]);
      expect(result.classified).toEqual({ kind: "unexpected" });
    } finally {
      held.release();
    }
  });

  it("pve vzdump gets the global lock once the other backup ends, then completes", async () => {
    const held = sim.holdGlobalVzdumpLock();
    const submitted = await pve.vzdump(node, { vmid: VMID, storage: STORAGE, lockwait: 100, remove: false });
    if (submitted.kind !== "task") throw new Error("expected a task");
    const phases: string[] = [];
    try {
      const result = await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW, (e) => {
        if (e.type !== "phase") return;
        phases.push(e.phase.phase);
        if (e.phase.phase === "waiting-for-global-lock") held.release();
      });
      expect(result.classified.kind).toBe("ok");
      expect(phases.slice(0, 3)).toEqual(["waiting-for-global-lock", "got-global-lock", "job-started"]);
    } finally {
      held.release();
    }
  });

  it("pve guest lock during a backup: status shows lock backup and a snapshot task fails with CT is locked", async () => {
    sim.faults.hangTask({ type: "vzdump", vmid: VMID }, { afterLine: /creating vzdump archive/ });
    const submitted = await pve.vzdump(node, { vmid: VMID, storage: STORAGE, lockwait: 1, remove: false });
    if (submitted.kind !== "task") throw new Error("expected a task");
    const it = followTask(pve, node, submitted.upid, FAST_FOLLOW);
    for await (const e of it) if (e.type === "phase" && e.phase.phase === "archive-started") break;
    expect((await pve.lxcStatus(node, VMID)).lock).toBe("backup");
    const snap = await pve.createSnapshot(node, VMID, "during-backup");
    const snapResult = await followTaskToEnd(pve, node, snap, FAST_FOLLOW);
    expect(snapResult.classified).toEqual({ kind: "error", text: "CT is locked (backup)" });
    await pve.stopTask(node, submitted.upid);
    const result = await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW);
    expect(result.classified.kind).not.toBe("ok");
    // A killed vzdump may leave `lock: backup` behind (pve-api-facts §2); the operator's `pct unlock`:
    sim.setGuestLock(VMID, undefined);
  });

  it("pve vzdump in stop mode reports stopping, restarting and online again", async () => {
    const submitted = await pve.vzdump(node, {
      vmid: VMID,
      storage: STORAGE,
      mode: "stop",
      lockwait: 1,
      remove: false,
    });
    if (submitted.kind !== "task") throw new Error("expected a task");
    const phases: string[] = [];
    const result = await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW, (e) => {
      if (e.type === "phase") phases.push(e.phase.phase);
    });
    expect(result.classified.kind).toBe("ok");
    const order = [
      "backup-mode",
      "guest-stopping",
      "archive-started",
      "restarting",
      "guest-online",
      "finished",
    ];
    const positions = order.map((p) => phases.indexOf(p));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    expect(phases).not.toContain("snapshot-created");
  });

  it("pve volume delete with delay waits for the task and answers null", async () => {
    const newest = (await pve.backups(node, STORAGE, VMID)).sort(
      (a, b) => (b.ctime ?? 0) - (a.ctime ?? 0),
    )[0]!;
    expect(await pve.deleteVolume(node, STORAGE, newest.volid, { delay: 5 })).toBeNull();
    expect((await pve.backups(node, STORAGE, VMID)).map((b) => b.volid)).not.toContain(newest.volid);
  });

  it("pve protected backup is listed as protected (PVE's integer 1) and its delete task fails", async () => {
    const submitted = await pve.vzdump(node, {
      vmid: VMID,
      storage: STORAGE,
      lockwait: 1,
      protected: true,
      remove: false,
    });
    if (submitted.kind !== "task") throw new Error("expected a task");
    expect((await followTaskToEnd(pve, node, submitted.upid, FAST_FOLLOW)).classified.kind).toBe("ok");
    const prot = (await pve.backups(node, STORAGE, VMID)).filter((b) => b.protected);
    expect(prot.length).toBe(1);
    const del = await pve.deleteVolume(node, STORAGE, prot[0]!.volid);
    const result = await followTaskToEnd(pve, node, del!, FAST_FOLLOW);
    expect(result.classified).toMatchObject({
      kind: "error",
      text: expect.stringContaining("cannot remove protected volume"),
    });
  });

  it("pve snapshot rollback runs as a vzrollback task", async () => {
    const { upid } = await submitSnapshot(pve, node, VMID, "before-rollback", { logger });
    expect((await followTaskToEnd(pve, node, upid, FAST_FOLLOW)).classified.kind).toBe("ok");
    const rollback = await pve.rollbackSnapshot(node, VMID, "before-rollback", { start: true });
    expect(parseUpid(rollback).type).toBe("vzrollback");
    expect((await followTaskToEnd(pve, node, rollback, FAST_FOLLOW)).classified.kind).toBe("ok");
    const done = await pve.deleteSnapshot(node, VMID, "before-rollback");
    expect((await followTaskToEnd(pve, node, done, FAST_FOLLOW)).classified.kind).toBe("ok");
  });

  it("pve network failures say whether the request may have reached the server", async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as AddressInfo).port;
        server.close(() => resolve(port));
      });
    });
    const refused = await failure(client({ baseUrl: `https://127.0.0.1:${closed}` }).version());
    expect(refused.code).toBe("pve_network_error");
    expect((refused as PveNetworkError).mayHaveReachedServer).toBe(false);

    sim.faults.hangNext(4, "/version");
    const timedOut = await failure(client({ timeouts: { headersMs: 150 } }).version());
    expect(timedOut.code).toBe("pve_timeout");
    expect((timedOut as PveNetworkError).mayHaveReachedServer).toBe(true);
    expect(timedOut.hint).toContain("8006");

    expect(() => client({ tokenId: "agent@pve" })).toThrow(
      expect.objectContaining({ code: "pve_config_invalid" }),
    );
  });

  it("pve rare failures are typed too: an unexpected status, an unusable 200, a cancelled call, a follow deadline", async () => {
    sim.faults.failNext(1, 404, "/version");
    expect((await failure(pve.version())).code).toBe("pve_http_error");
    sim.faults.failNext(1, 200, "/version");
    expect((await failure(pve.version())).code).toBe("pve_bad_response");

    sim.faults.slow(2000, "/version");
    try {
      expect((await failure(pve.version(AbortSignal.timeout(100)))).code).toBe("pve_aborted");
    } finally {
      sim.faults.slow(0);
    }

    sim.faults.hangTask({ type: "vzsnapshot", vmid: VMID });
    const upid = await pve.createSnapshot(node, VMID, "deadline");
    expect((await failure(followTaskToEnd(pve, node, upid, { ...FAST_FOLLOW, deadlineMs: 300 }))).code).toBe(
      "pve_task_follow_deadline",
    );
    await pve.stopTask(node, upid);
    await sim.tasks.wait(upid);

    try {
      client({ tokenId: "agent@pve" });
    } catch (err) {
      provoked.push(err);
    }
  });

  it("pve pinned fingerprint is accepted in lower case and without colons", async () => {
    const bare = sim.fingerprint.replaceAll(":", "").toLowerCase();
    expect((await client({ tls: { fingerprint: bare } }).version()).release).toBeTruthy();
    expect(() => client({ tls: { fingerprint: "AB:CD" } })).toThrow(
      expect.objectContaining({ code: "pve_tls_fingerprint_invalid" }),
    );
  });

  it("pve pinned fingerprint mismatch fails closed with nothing sent", async () => {
    const wrong = sim.fingerprint.replace(/^../, sim.fingerprint.startsWith("00") ? "11" : "00");
    const before = sim.requests.length;
    const err = await failure(client({ tls: { fingerprint: wrong } }).version());
    expect(err).toBeInstanceOf(PveTlsPinMismatchError);
    expect((err as PveTlsPinMismatchError).expected).toBe(wrong);
    expect((err as PveTlsPinMismatchError).presented).toBe(sim.fingerprint);
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(sim.fingerprint);
    expect(sim.requests.length).toBe(before);
  });

  it("pve CA file trust works for the cluster CA and refuses a certificate from another CA", async () => {
    expect((await client({ tls: { caFile: sim.caFile } }).version()).release).toBeTruthy();
    const port = new URL(sim.url).port;
    expect(
      (await client({ tls: { caFile: sim.caFile }, baseUrl: `https://localhost:${port}` }).version()).release,
    ).toBeTruthy();
    const dir = await mkdtemp(join(tmpdir(), "pve-other-ca-"));
    try {
      const otherCa = join(dir, "ca.pem");
      await run("openssl", [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        join(dir, "ca.key"),
        "-out",
        otherCa,
        "-days",
        "1",
        "-subj",
        "/CN=Some Other CA",
      ]);
      const before = sim.requests.length;
      const err = await failure(client({ tls: { caFile: otherCa } }).version());
      expect(err.code).toBe("pve_tls_untrusted");
      expect(sim.requests.length).toBe(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("pve insecure TLS works and logs a warning each time a client is created", async () => {
    const warningsBefore = logLines.filter((l) => l.includes("tls.insecure")).length;
    expect((await client({ tls: { insecure: true } }).version()).release).toBeTruthy();
    client({ tls: { insecure: true } });
    const warnings = logLines.slice().filter((l) => l.includes("tls.insecure"));
    expect(warnings.length - warningsBefore).toBe(2);
    expect(JSON.parse(warnings.at(-1)!).level).toBe(40);
  });
});

describe("pve client against an older PVE (reason phrase only) with 9-digit pstart UPIDs", () => {
  let sim: Sim;
  let pve: PveClient;
  const node = "pve1";

  beforeAll(async () => {
    sim = await startPveSimulator({
      node,
      errorStyle: "old",
      ninePstartDigits: true,
      authFailureDelayMs: 50,
    });
    const token = await selfScopedGuest(sim, { vmid: VMID, storage: STORAGE });
    secrets.push(token.secret);
    await sim.addGuest({ vmid: OTHER_VMID });
    pve = new PveClient(
      {
        baseUrl: sim.url,
        tokenId: token.tokenId,
        secret: new Secret(token.secret),
        tls: { fingerprint: sim.fingerprint },
        retry: noWait,
      },
      logger,
    );
  });

  afterAll(async () => {
    await pve?.close();
    await sim?.close();
  });

  it("pve 403 without a message body is read from the HTTP reason phrase", async () => {
    const err = await failure(pve.lxcStatus(node, OTHER_VMID));
    expect(err).toBeInstanceOf(PvePermissionError);
    expect((err as PvePermissionError).failure).toEqual({
      path: `/vms/${OTHER_VMID}`,
      privileges: ["VM.Audit"],
      any: false,
    });
  });

  it("pve 400 without a message body still names the parameter", async () => {
    const err = await failure(pve.taskStatus(node, "UPID:nope"));
    expect(err).toBeInstanceOf(PveParameterError);
    expect(err.message).toContain("Parameter verification failed");
    expect((err as PveParameterError).errors.upid).toMatch(/unable to parse worker upid/);
  });

  it("pve task with a 9-digit pstart is parsed and followed", async () => {
    const { upid } = await submitSnapshot(pve, node, VMID, "nine", { logger });
    expect(upid.split(":")[3]).toHaveLength(9);
    expect(parseUpid(upid).pstart).toBeGreaterThan(0xffffffff);
    expect((await followTaskToEnd(pve, node, upid, FAST_FOLLOW)).classified.kind).toBe("ok");
  });
});

describe("pve secret hygiene over the whole suite", () => {
  it("pve errors of every type never show the token secret, however they are printed", () => {
    const codes = new Set(provoked.map((e) => (e as AgentError).code));
    for (const code of [
      "pve_permission_denied",
      "pve_authentication_failed",
      "pve_parameter_invalid",
      "pve_not_implemented",
      "pve_server_error",
      "pve_task_start_unknown",
      "pve_tls_pin_mismatch",
      "pve_tls_untrusted",
      "pve_network_error",
      "pve_timeout",
      "pve_http_error",
      "pve_bad_response",
      "pve_aborted",
      "pve_task_follow_deadline",
      "pve_config_invalid",
    ]) {
      expect(codes).toContain(code);
    }
    const sink: string[] = [];
    const errLogger = createLogger({ level: "debug", destination: { write: (s: string) => sink.push(s) } });
    for (const err of provoked) {
      errLogger.error({ err }, "failed");
      const forms = [
        JSON.stringify(err),
        JSON.stringify({ ...(err as object), cause: (err as Error).cause }),
        inspect(err, { depth: 10, showHidden: true }),
        String(err),
        (err as Error).stack ?? "",
        sink.join(""),
      ];
      for (const form of forms) for (const secret of secrets) expect(form).not.toContain(secret);
    }
  });

  it("pve client objects and their configuration print without the secret", () => {
    const connection = {
      baseUrl: "https://127.0.0.1:8006",
      tokenId: "agent@pve!backup",
      secret: new Secret("s3cr3t-value"),
      tls: { insecure: true as const },
    };
    const c = new PveClient(connection, createLogger({ level: "silent" }));
    for (const form of [
      inspect(c, { showHidden: true, depth: 10 }),
      inspect(connection, { depth: 10 }),
      JSON.stringify(connection),
      String(connection.secret),
    ]) {
      expect(form).not.toContain("s3cr3t-value");
    }
    return c.close();
  });

  it("pve suite never wrote the token secret to any log line", () => {
    expect(logLines.length).toBeGreaterThan(10);
    expect(secrets.length).toBe(2);
    for (const line of logLines) for (const secret of secrets) expect(line).not.toContain(secret);
  });
});
