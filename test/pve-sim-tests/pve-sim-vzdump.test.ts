import { randomBytes } from "node:crypto";
import { chmod, chown, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { type PveSimulator, startPveSimulator } from "../pve-sim/index.ts";
import { listTarZst, readTarZstMember } from "./archive-listing.ts";
import { rawClient } from "./pve-client.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("pve sim: vzdump", () => {
  let sim: PveSimulator;
  const stops: Array<{ vmid: number; kill: boolean }> = [];
  const starts: number[] = [];
  beforeAll(async () => {
    sim = await startPveSimulator({
      authFailureDelayMs: 0,
      archiveBytesPerSecond: 4e6,
      lockwaitScaleMs: 300,
      extraNodes: ["pve2"],
      onGuestStop: async (vmid, { kill }) => {
        if (vmid === 141) throw new Error("container did not stop");
        stops.push({ vmid, kill });
      },
      onGuestStart: async (vmid) => {
        starts.push(vmid);
      },
    });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it("archives a btrfs read-only snapshot: files written once the snapshot line is followed are not in the real tar.zst", async () => {
    const self = await selfScopedGuest(sim, { vmid: 100, hostname: "web1" });
    const root = self.guest.rootDir;
    await mkdir(join(root, "srv"), { recursive: true });
    await writeFile(join(root, "srv", "before.txt"), "before");
    await chown(join(root, "srv", "before.txt"), 100033, 100044);
    await chmod(join(root, "srv", "before.txt"), 0o640);
    await writeFile(join(root, "srv", "bulk.bin"), randomBytes(3_000_000)); // ~0.75 s at 4 MB/s
    const c = rawClient(sim, self.authorization);
    // hold the task right after it announces the archive, so the writes below happen while it is still running
    const pause = sim.faults.pauseTask(
      { type: "vzdump", vmid: 100 },
      { afterLine: /^INFO: creating vzdump archive/ },
    );
    const post = await c.post("/nodes/pve1/vzdump", {
      vmid: 100,
      storage: "bk",
      mode: "snapshot",
      compress: "zstd",
      "notes-template": "backup-id=b1 {{guestname}} on {{node}}",
    });
    expect(post.status).toBe(200);
    const upid: string = post.json.data;
    expect(upid).toMatch(
      /^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:vzdump:100:agent-100@pve!backup:$/,
    );

    // follow the log like the agent: the snapshot exists once the line AFTER "create storage snapshot" is there
    let wroteAfter = false;
    let sawLockBackup = false;
    for (let start = 0; !wroteAfter; ) {
      const r = await c.get(`/nodes/pve1/tasks/${encodeURIComponent(upid)}/log`, { start });
      const lines: Array<{ n: number; t: string }> = r.json.data;
      const status = await c.get("/nodes/pve1/lxc/100/status/current");
      if (status.json.data.lock === "backup") sawLockBackup = true;
      for (const l of lines) {
        start = l.n;
        if (l.t.startsWith("INFO: creating vzdump archive")) {
          await writeFile(join(root, "srv", "after.txt"), "after");
          await writeFile(join(root, "srv", "before.txt"), "changed after the snapshot");
          expect(sim.tasks.get(upid)?.running).toBe(true);
          wroteAfter = true;
          pause.resume();
        }
      }
      await sleep(10);
    }
    const done = await c.waitTask("pve1", upid);
    expect(done).toMatchObject({
      status: "stopped",
      exitstatus: "OK",
      user: "agent-100@pve",
      tokenid: "backup",
      type: "vzdump",
      id: "100",
    });
    expect(sawLockBackup).toBe(true);
    const log = await c.taskLog("pve1", upid);
    expect(log.slice(0, 9)).toEqual([
      expect.stringMatching(/^INFO: starting new backup job: vzdump 100 /),
      "INFO: Starting Backup of VM 100 (lxc)",
      expect.stringMatching(/^INFO: Backup started at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/),
      "INFO: status = running",
      "INFO: CT Name: web1",
      "INFO: including mount point rootfs ('/') in backup",
      "INFO: backup mode: snapshot",
      "INFO: ionice priority: 7",
      "INFO: create storage snapshot 'vzdump'",
    ]);
    // the storage plugin's raw output follows the snapshot line unprefixed, as lvcreate's does on LVM-thin
    expect(log[9]).toBe('  Logical volume "snap_vm-100-disk-0_vzdump" created.');
    expect(log[10]).toMatch(/^INFO: creating vzdump archive '/);
    expect(log).toContain("INFO: cleanup temporary 'vzdump' snapshot");
    // no retention anywhere: the schema default keep-all=1 switches the whole prune step off
    expect(log.some((l) => l.includes("prune"))).toBe(false);
    expect(log.at(-1)).toBe("TASK OK");
    expect(log.find((l) => l.startsWith("INFO: Total bytes written: "))).toMatch(
      /^INFO: Total bytes written: \d+ \(.+, .+\/s\)$/,
    );

    const run = sim.vzdumpRuns.find((r) => r.upid === upid);
    expect(run?.snapshotMethod).toBe("btrfs");
    expect(sim.snapshotMethod).toBe("btrfs");
    const archive = run?.archivePath as string;
    expect(archive).toMatch(/\/vzdump-lxc-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$/);
    const entries = await listTarZst(archive);
    const paths = entries.map((e) => e.path);
    expect(paths.slice(0, 2)).toEqual(["./etc/vzdump/pct.conf", "./etc/vzdump/pct.fw"]);
    expect(paths).toContain("./srv/before.txt");
    expect(paths).toContain("./srv/bulk.bin");
    expect(paths).not.toContain("./srv/after.txt");
    expect(entries.find((e) => e.path === "./srv/before.txt")).toMatchObject({
      mode: "-rw-r-----",
      owner: "100033/100044",
    });
    expect(await readTarZstMember(archive, "./srv/before.txt")).toBe("before");
    expect(await readTarZstMember(archive, "./etc/vzdump/pct.conf")).toContain("hostname: web1");
    expect(await readFile(`${archive}.notes`, "utf8")).toBe("backup-id=b1 web1 on pve1");
    expect((await stat(archive.replace(/\.tar\.zst$/, ".log"))).size).toBeGreaterThan(0);
    expect(sim.getGuest(100).lock).toBeUndefined();
    expect(sim.getGuest(100).snapshots.size).toBe(0);

    const content = await c.get("/nodes/pve1/storage/bk/content", { content: "backup", vmid: 100 });
    expect(content.json.data).toEqual([
      {
        volid: run?.volid,
        content: "backup",
        format: "tar.zst",
        size: (await stat(archive)).size,
        ctime: expect.any(Number),
        subtype: "lxc",
        vmid: 100,
        notes: "backup-id=b1 web1 on pve1",
      },
    ]);
    await c.close();
  });

  it("accepts the POST of a token without VM.Backup (200 + UPID) and fails the task with the 403 text", async () => {
    const self = await selfScopedGuest(sim, { vmid: 110, variant: "missing-vm-backup" });
    const c = rawClient(sim, self.authorization);
    const post = await c.post("/nodes/pve1/vzdump", { vmid: 110, storage: "bk", mode: "snapshot" });
    expect(post.status).toBe(200);
    const done = await c.waitTask("pve1", post.json.data);
    expect(done.exitstatus).toBe("403 Permission check failed (/vms/110, VM.Backup)");
    const log = await c.taskLog("pve1", post.json.data);
    expect(log).toEqual([
      expect.stringMatching(/^INFO: starting new backup job: /),
      "TASK ERROR: 403 Permission check failed (/vms/110, VM.Backup)",
    ]);
    expect((await sim.listBackups("bk")).filter((b) => b.vmid === 110)).toEqual([]);
    await c.close();
  });

  it('answers "OK" and starts no task for a vmid on another node, and follows migration and destruction', async () => {
    const self = await selfScopedGuest(sim, { vmid: 120, node: "pve2" });
    const c = rawClient(sim, self.authorization);
    const before = sim.tasks.list().length;
    const post = await c.post("/nodes/pve1/vzdump", { vmid: 120, storage: "bk" });
    expect(post.status).toBe(200);
    expect(post.json.data).toBe("OK");
    expect(sim.tasks.list().length).toBe(before);

    // an operator migrates the guest to pve1: the old node no longer has its config, the new one backs it up
    sim.migrateGuest(120, "pve1");
    const resources = await c.get("/cluster/resources", { type: "vm" });
    expect(resources.json.data).toEqual([expect.objectContaining({ id: "lxc/120", node: "pve1" })]);
    const old = await c.get("/nodes/pve2/lxc/120/status/current");
    expect(old.status).toBe(500);
    expect(old.reason).toBe("Configuration file 'nodes/pve2/lxc/120.conf' does not exist");
    expect((await c.post("/nodes/pve2/vzdump", { vmid: 120, storage: "bk" })).json.data).toBe("OK");

    // and then destroys it: the vmid exists nowhere, the task fails inside
    await sim.destroyGuest(120);
    const gone = await c.post("/nodes/pve1/vzdump", { vmid: 120, storage: "bk" });
    expect((await c.waitTask("pve1", gone.json.data)).exitstatus).toBe("job errors");
    expect(await c.taskLog("pve1", gone.json.data)).toContain(
      "ERROR: Backup of VM 120 failed - unable to find VM '120'",
    );
    await c.close();
  });

  it("rejects root-only options with 400, ionice with 403 on Sys.Modify, prune-backups with 403 on Datastore.Allocate, and unknown keys with 400", async () => {
    const self = await selfScopedGuest(sim, { vmid: 100, tokenName: "checks" });
    const c = rawClient(sim, self.authorization);
    const rootOnly = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", dumpdir: "/tmp" });
    expect(rootOnly.status).toBe(400);
    expect(rootOnly.json.errors).toEqual({ dumpdir: "Only root may set this option." });
    const ionice = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", ionice: 7 });
    expect(ionice.status).toBe(403);
    expect(ionice.reason).toBe("Permission check failed (/, Sys.Modify)");
    const prune = await c.post("/nodes/pve1/vzdump", {
      vmid: 100,
      storage: "bk",
      "prune-backups": "keep-last=1",
    });
    expect(prune.reason).toBe("Permission check failed (/storage/bk, Datastore.Allocate)");
    const noStorage = await c.post("/nodes/pve1/vzdump", { vmid: 100 });
    expect(noStorage.reason).toBe("Permission check failed (/storage/local, Datastore.AllocateSpace)");
    const unknown = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", colour: "blue" });
    expect(unknown.status).toBe(400);
    expect(unknown.json.errors).toEqual({
      colour: "property is not defined in schema and the schema does not allow additional properties",
    });
    const missing = await c.post("/nodes/pve1/vzdump", { storage: "bk" });
    expect(missing.json.errors).toEqual({ vmid: "property is missing" });
    const badMode = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", mode: "fast" });
    expect(badMode.json.errors).toEqual({
      mode: "value 'fast' does not have a value in the enumeration 'snapshot, suspend, stop'",
    });
    const badNotes = await c.post("/nodes/pve1/vzdump", {
      vmid: 100,
      storage: "bk",
      "notes-template": "{{owner}} \\t",
    });
    expect(badNotes.json.errors).toEqual({
      "notes-template": "found unknown: escape sequence '\\t', variable 'owner'\n",
    });
    const protectedNoStorage = await c.post("/nodes/pve1/vzdump", { vmid: 100, protected: 1 });
    expect(protectedNoStorage.json.errors).toEqual({ storage: "missing property required by 'protected'" });
    expect(
      sim.requests
        .filter((r) => r.path === "/nodes/pve1/vzdump" && r.tokenId === self.tokenId)
        .every((r) => r.status >= 400),
    ).toBe(true);
    await c.close();
  });

  it("fails a backup of a vmid that exists nowhere inside the task with 'unable to find VM' and 'job errors'", async () => {
    const root = sim.rootToken();
    const c = rawClient(sim, `PVEAPIToken=${root.tokenId}=${root.secret}`);
    const post = await c.post("/nodes/pve1/vzdump", { vmid: 999, storage: "bk" });
    const done = await c.waitTask("pve1", post.json.data);
    expect(done.exitstatus).toBe("job errors");
    const log = await c.taskLog("pve1", post.json.data);
    expect(log).toContain("ERROR: Backup of VM 999 failed - unable to find VM '999'");
    expect(log.slice(-2)).toEqual(["INFO: Backup job finished with errors", "TASK ERROR: job errors"]);
    await c.close();
  });

  it("pages the task log with start and limit, reports total, and reads to the end with limit=0", async () => {
    const root = sim.rootToken();
    const c = rawClient(sim, `PVEAPIToken=${root.tokenId}=${root.secret}`);
    const post = await c.post("/nodes/pve1/vzdump", { vmid: 999, storage: "bk" });
    await c.waitTask("pve1", post.json.data);
    const path = `/nodes/pve1/tasks/${encodeURIComponent(post.json.data)}/log`;
    const all = await c.get(path, { limit: 0 });
    const total: number = all.json.total;
    expect(all.json.data.length).toBe(total);
    const page = await c.get(path, { start: 1, limit: 2 });
    expect(page.json.total).toBe(total);
    expect(page.json.data).toEqual([
      { n: 2, t: all.json.data[1].t },
      { n: 3, t: all.json.data[2].t },
    ]);
    expect((await c.get(path, { start: total })).json.data).toEqual([]);
    const bad = await c.get("/nodes/pve1/tasks/UPID:nonsense/status");
    expect(bad.status).toBe(400);
    expect(bad.json.errors).toEqual({ upid: "unable to parse worker upid" });
    const otherNode = await c.get(`/nodes/pve2/tasks/${encodeURIComponent(post.json.data)}/status`);
    expect(otherNode.json.errors).toEqual({ upid: "no such task" });
    await c.close();
  });

  it("waits for the node-global vzdump lock, then times out after lockwait with no TASK line (unexpected status)", async () => {
    const self = await selfScopedGuest(sim, { vmid: 100, tokenName: "lockwait" });
    const c = rawClient(sim, self.authorization);
    const held = sim.holdGlobalVzdumpLock();
    try {
      const post = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", lockwait: 1 });
      const done = await c.waitTask("pve1", post.json.data);
      expect(done.exitstatus).toBe("unexpected status");
      expect(await c.taskLog("pve1", post.json.data)).toEqual([
        "INFO: trying to get global lock - waiting...",
        "ERROR: can't acquire lock '/var/run/vzdump.lock' - got timeout",
      ]);
      const zero = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", lockwait: 0 });
      expect((await c.waitTask("pve1", zero.json.data)).exitstatus).toBe("unexpected status");
      expect(await c.taskLog("pve1", zero.json.data)).toEqual([
        "ERROR: can't acquire lock '/var/run/vzdump.lock' (wait = 0)",
      ]);

      const waiting = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", lockwait: 10 });
      while (
        !(await c.taskLog("pve1", waiting.json.data)).includes("INFO: trying to get global lock - waiting...")
      )
        await sleep(10);
      held.release();
      const ok = await c.waitTask("pve1", waiting.json.data);
      expect(ok.exitstatus).toBe("OK");
      const log = await c.taskLog("pve1", waiting.json.data);
      expect(log.slice(0, 3)).toEqual([
        "INFO: trying to get global lock - waiting...",
        "INFO: got global lock",
        expect.stringMatching(/^INFO: starting new backup job: /),
      ]);
    } finally {
      held.release();
      await c.close();
    }
  });

  it("a queued vzdump granted the node lock as its stop lands is killed inside the backup: no TASK line, the CT keeps lock: backup", async () => {
    const self = await selfScopedGuest(sim, { vmid: 171, tokenName: "race" });
    const c = rawClient(sim, self.authorization);
    const held = sim.holdGlobalVzdumpLock();
    try {
      sim.faults.grantLockOnStop({ vmid: 171 });
      const post = await c.post("/nodes/pve1/vzdump", { vmid: 171, storage: "bk", lockwait: 10 });
      const upid = post.json.data;
      while (!(await c.taskLog("pve1", upid)).includes("INFO: trying to get global lock - waiting..."))
        await sleep(10);
      expect((await c.del(`/nodes/pve1/tasks/${encodeURIComponent(upid)}`)).status).toBe(200);
      expect((await c.waitTask("pve1", upid)).exitstatus).toBe("unexpected status");
      expect(await c.taskLog("pve1", upid)).toEqual([
        "INFO: trying to get global lock - waiting...",
        "INFO: got global lock",
        expect.stringMatching(/^INFO: starting new backup job: /),
        "INFO: Starting Backup of VM 171 (lxc)",
        "ERROR: Backup of VM 171 failed - interrupted by signal",
      ]);
      expect((await c.get("/nodes/pve1/lxc/171/status/current")).json.data.lock).toBe("backup");
      // The killed worker's flock is gone with it.
      expect(sim.nodeLock("pve1").heldBy).toBeUndefined();
    } finally {
      held.release();
      sim.setGuestLock(171, undefined);
      await c.close();
    }
  }, 20_000);

  it("fails a snapshot as AbstractConfig.pm does: an unprefixed 'snapshot create failed' line, then the guest fails", async () => {
    const self = await selfScopedGuest(sim, { vmid: 174, tokenName: "snapfail" });
    const c = rawClient(sim, self.authorization);
    try {
      sim.faults.failSnapshot({ vmid: 174 }, "lvcreate snapshot error: no space");
      const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 174, storage: "bk" })).json.data;
      expect((await c.waitTask("pve1", upid)).exitstatus).toBe("job errors");
      const log = await c.taskLog("pve1", upid);
      const at = log.indexOf("INFO: create storage snapshot 'vzdump'");
      expect(log.slice(at + 1, at + 3)).toEqual([
        "snapshot create failed: starting cleanup",
        "ERROR: Backup of VM 174 failed - lvcreate snapshot error: no space",
      ]);
      expect((await c.get("/nodes/pve1/lxc/174/status/current")).json.data.lock).toBeUndefined();
    } finally {
      await c.close();
    }
  });

  it("notifies as VZDump.pm send_notification does: the notification system by default, legacy mail only to vzdump.conf's mailto", async () => {
    const self = await selfScopedGuest(sim, { vmid: 175, tokenName: "notify" });
    const c = rawClient(sim, self.authorization);
    const run = async (params: Record<string, string> = {}) => {
      const upid = (await c.post("/nodes/pve1/vzdump", { vmid: 175, storage: "bk", ...params })).json.data;
      await c.waitTask("pve1", upid);
      return sim.notifications.filter((n) => n.upid === upid);
    };
    const quiet = { "notification-mode": "legacy-sendmail", mailnotification: "failure" };
    try {
      expect(await run()).toEqual([
        {
          upid: expect.any(String),
          severity: "info",
          via: "notification-system",
          statusText: "backup successful",
        },
      ]);
      expect(await run(quiet)).toEqual([]);
      sim.vzdumpConf.mailto = ["admin@example.com"];
      expect(await run()).toMatchObject([{ severity: "info", via: "sendmail", to: ["admin@example.com"] }]);
      expect(await run(quiet)).toEqual([]);
      const held = sim.holdGlobalVzdumpLock();
      try {
        expect(await run({ ...quiet, lockwait: "0" })).toMatchObject([
          {
            severity: "error",
            via: "sendmail",
            statusText: "backup failed: can't acquire lock '/var/run/vzdump.lock' (wait = 0)",
          },
        ]);
      } finally {
        held.release();
      }
    } finally {
      delete sim.vzdumpConf.mailto;
      await c.close();
    }
  });

  it("lists tasks as Tasks.pm does: an active one unconverted and RUNNING, exit(-1) as unknown, nothing for limit=0", async () => {
    const self = await selfScopedGuest(sim, { vmid: 172, tokenName: "list" });
    const c = rawClient(sim, self.authorization);
    const held = sim.holdGlobalVzdumpLock();
    try {
      const refused = (await c.post("/nodes/pve1/vzdump", { vmid: 172, storage: "bk", lockwait: 0 })).json
        .data;
      await c.waitTask("pve1", refused);
      const queued = (await c.post("/nodes/pve1/vzdump", { vmid: 172, storage: "bk", lockwait: 10 })).json
        .data;
      const list = async (params: Record<string, string | number>) =>
        (await c.get("/nodes/pve1/tasks", { vmid: 172, source: "all", ...params })).json.data as Array<
          Record<string, unknown>
        >;
      const all = await list({});
      const active = all.find((t) => t.upid === queued);
      expect(active).toMatchObject({ user: "agent-172@pve!list", status: "RUNNING" });
      expect(active).not.toHaveProperty("tokenid");
      expect(all.find((t) => t.upid === refused)).toMatchObject({
        user: "agent-172@pve",
        tokenid: "list",
        status: "unexpected status",
      });
      expect((await list({ statusfilter: "unknown" })).map((t) => t.upid).sort()).toEqual(
        [queued, refused].sort(),
      );
      expect(await list({ statusfilter: "error" })).toEqual([]);
      expect(await list({ limit: 0 })).toEqual([]);
      await c.del(`/nodes/pve1/tasks/${encodeURIComponent(queued)}`);
      await c.waitTask("pve1", queued);
    } finally {
      held.release();
      await c.close();
    }
  });

  it("takes prune-backups together with remove=0 (no such conflict in verify_vzdump_parameters)", async () => {
    const token = sim.rootToken();
    const root = rawClient(sim, `PVEAPIToken=${token.tokenId}=${token.secret}`);
    await selfScopedGuest(sim, { vmid: 173 });
    try {
      const post = await root.post("/nodes/pve1/vzdump", {
        vmid: 173,
        storage: "bk",
        remove: 0,
        "prune-backups": "keep-last=1",
      });
      expect(post.status).toBe(200);
      await root.waitTask("pve1", post.json.data);
    } finally {
      await root.close();
    }
  });

  it("holds lock: backup during the backup: a snapshot POST then fails inside its task, and a locked CT fails vzdump per guest", async () => {
    const self = await selfScopedGuest(sim, { vmid: 130 });
    const c = rawClient(sim, self.authorization);
    const pause = sim.faults.pauseTask(
      { type: "vzdump", vmid: 130 },
      { afterLine: /^INFO: creating vzdump archive/ },
    );
    const post = await c.post("/nodes/pve1/vzdump", { vmid: 130, storage: "bk", compress: "zstd" });
    await pause.reached;
    const snap = await c.post("/nodes/pve1/lxc/130/snapshot", { snapname: "pre_upgrade" });
    expect(snap.status).toBe(200);
    expect((await c.waitTask("pve1", snap.json.data)).exitstatus).toBe("CT is locked (backup)");
    const list = await c.get("/nodes/pve1/lxc/130/snapshot");
    expect(list.json.data.map((s: { name: string }) => s.name)).toEqual(["vzdump", "current"]);
    pause.resume();
    expect((await c.waitTask("pve1", post.json.data)).exitstatus).toBe("OK");

    sim.setGuestLock(130, "snapshot");
    const locked = await c.post("/nodes/pve1/vzdump", { vmid: 130, storage: "bk" });
    expect((await c.waitTask("pve1", locked.json.data)).exitstatus).toBe("job errors");
    expect(await c.taskLog("pve1", locked.json.data)).toContain(
      "ERROR: Backup of VM 130 failed - CT is locked (snapshot)",
    );
    expect(sim.getGuest(130).lock).toBe("snapshot");
    sim.setGuestLock(130, undefined);
    await c.close();
  });

  it("stops and restarts the guest in stop mode through the hooks, archiving the live root", async () => {
    const self = await selfScopedGuest(sim, { vmid: 140, hostname: "db1" });
    await writeFile(join(self.guest.rootDir, "data"), "live");
    const c = rawClient(sim, self.authorization);
    const post = await c.post("/nodes/pve1/vzdump", {
      vmid: 140,
      storage: "bk",
      mode: "stop",
      compress: "zstd",
    });
    const done = await c.waitTask("pve1", post.json.data);
    expect(done.exitstatus).toBe("OK");
    const log = await c.taskLog("pve1", post.json.data);
    const at = (prefix: string) => log.findIndex((l) => l.startsWith(prefix));
    expect(log.slice(at("INFO: status = running"), at("INFO: stopping virtual guest") + 1)).toEqual([
      "INFO: status = running",
      "INFO: backup mode: stop",
      "INFO: ionice priority: 7",
      "INFO: CT Name: db1",
      "INFO: including mount point rootfs ('/') in backup",
      "INFO: stopping virtual guest",
    ]);
    expect(at("INFO: restarting vm")).toBeGreaterThan(at("INFO: archive file size"));
    expect(log[at("INFO: restarting vm") + 1]).toMatch(
      /^INFO: guest is online again after (\d+|<1) seconds$/,
    );
    expect(stops).toContainEqual({ vmid: 140, kill: false });
    expect(starts).toContain(140);
    expect(sim.getGuest(140).running).toBe(true);
    const run = sim.vzdumpRuns.find((r) => r.upid === post.json.data);
    expect(run?.guestStoppedAt).toBeLessThanOrEqual(run?.archiveStartedAt as number);
    expect(await readTarZstMember(run?.archivePath as string, "./data")).toBe("live");

    const stuck = await selfScopedGuest(sim, { vmid: 141 });
    const c2 = rawClient(sim, stuck.authorization);
    const post2 = await c2.post("/nodes/pve1/vzdump", { vmid: 141, storage: "bk", mode: "stop" });
    expect((await c2.waitTask("pve1", post2.json.data)).exitstatus).toBe("job errors");
    const log2 = await c2.taskLog("pve1", post2.json.data);
    expect(log2).toContain("ERROR: Backup of VM 141 failed - container did not stop");
    expect(log2).not.toContain("INFO: restarting vm");
    expect(starts).not.toContain(141);
    await c2.close();
    await c.close();
  });

  it("refuses stop mode for an HA-managed guest and a protected backup over the storage's limit, per guest", async () => {
    await sim.addStorage({ id: "bk-limited", maxProtectedBackups: 1 });
    const self = await selfScopedGuest(sim, { vmid: 146, storage: "bk-limited" });
    self.guest.haManaged = true;
    const c = rawClient(sim, self.authorization);
    const ha = await c.post("/nodes/pve1/vzdump", { vmid: 146, storage: "bk-limited", mode: "stop" });
    expect((await c.waitTask("pve1", ha.json.data)).exitstatus).toBe("job errors");
    expect(await c.taskLog("pve1", ha.json.data)).toContain(
      "ERROR: Backup of VM 146 failed - Cannot execute a backup with stop mode on a HA managed and enabled Service. Use snapshot mode or disable the Service.",
    );
    const first = await c.post("/nodes/pve1/vzdump", { vmid: 146, storage: "bk-limited", protected: 1 });
    expect((await c.waitTask("pve1", first.json.data)).exitstatus).toBe("OK");
    const second = await c.post("/nodes/pve1/vzdump", { vmid: 146, storage: "bk-limited", protected: 1 });
    expect((await c.waitTask("pve1", second.json.data)).exitstatus).toBe("job errors");
    expect(await c.taskLog("pve1", second.json.data)).toContain(
      "ERROR: Backup of VM 146 failed - The number of protected backups per guest is limited to 1 on storage 'bk-limited'",
    );
    await c.close();
  });

  it("runs suspend mode as two syncs around a freeze and archives the synced copy", async () => {
    const self = await selfScopedGuest(sim, { vmid: 145 });
    await writeFile(join(self.guest.rootDir, "data"), "synced");
    const c = rawClient(sim, self.authorization);
    const post = await c.post("/nodes/pve1/vzdump", {
      vmid: 145,
      storage: "bk",
      mode: "suspend",
      compress: "zstd",
    });
    expect((await c.waitTask("pve1", post.json.data)).exitstatus).toBe("OK");
    const log = await c.taskLog("pve1", post.json.data);
    const from = log.indexOf("INFO: backup mode: suspend");
    expect(log.slice(from, from + 10)).toEqual([
      "INFO: backup mode: suspend",
      "INFO: ionice priority: 7",
      expect.stringMatching(/^INFO: CT Name: /),
      "INFO: including mount point rootfs ('/') in backup",
      // LXC.pm rsync_vm into VZDump.pm's tmpdir: <dumpdir>/<basename>.tmp on a POSIX dump directory
      expect.stringMatching(
        /^INFO: starting first sync \/proc\/\d+\/root\/ to \/.*\/dump\/vzdump-lxc-145-[\d_-]+\.tmp$/,
      ),
      expect.stringMatching(/^INFO: first sync finished - transferred [\d.]+[KMGTP]? bytes in \d+s$/),
      "INFO: suspending guest",
      expect.stringMatching(/^INFO: starting final sync \/proc\/\d+\/root\/ to \/.*\.tmp$/),
      expect.stringMatching(/^INFO: final sync finished - /),
      "INFO: resuming guest",
    ]);
    expect(log[from + 10]).toMatch(/^INFO: guest is online again after (\d+|<1) seconds$/);
    const run = sim.vzdumpRuns.find((r) => r.upid === post.json.data);
    expect(await readTarZstMember(run?.archivePath as string, "./data")).toBe("synced");
    await c.close();
  });

  it("ends a task stopped through DELETE with 'interrupted by signal' for the guest and the job, cleaning up snapshot and lock", async () => {
    const self = await selfScopedGuest(sim, { vmid: 150 });
    await writeFile(join(self.guest.rootDir, "bulk.bin"), randomBytes(4_000_000));
    const c = rawClient(sim, self.authorization);
    const post = await c.post("/nodes/pve1/vzdump", { vmid: 150, storage: "bk", compress: "zstd" });
    while (
      !(await c.taskLog("pve1", post.json.data)).some((l) => l.startsWith("INFO: creating vzdump archive"))
    )
      await sleep(10);
    const del = await c.del(`/nodes/pve1/tasks/${encodeURIComponent(post.json.data)}`);
    expect(del.status).toBe(200);
    const done = await c.waitTask("pve1", post.json.data);
    expect(done.exitstatus).toBe("interrupted by signal");
    const log = await c.taskLog("pve1", post.json.data);
    expect(log).toContain("ERROR: Backup of VM 150 failed - interrupted by signal");
    expect(log.slice(-2)).toEqual([
      "ERROR: Backup job failed - interrupted by signal",
      "TASK ERROR: interrupted by signal",
    ]);
    expect(log).toContain("INFO: cleanup temporary 'vzdump' snapshot");
    expect(sim.getGuest(150).lock).toBeUndefined();
    expect((await sim.listBackups("bk")).filter((b) => b.vmid === 150)).toEqual([]);
    await c.close();
  });

  it("injects task faults: a hung task never stops until DELETE kills it without a TASK line; an injected failure fails the guest", async () => {
    const self = await selfScopedGuest(sim, { vmid: 160 });
    const c = rawClient(sim, self.authorization);
    sim.faults.hangTask({ type: "vzdump", vmid: 160 }, { afterLine: /create storage snapshot/ });
    const post = await c.post("/nodes/pve1/vzdump", { vmid: 160, storage: "bk" });
    while (!(await c.taskLog("pve1", post.json.data)).includes("INFO: create storage snapshot 'vzdump'"))
      await sleep(10);
    await sleep(100);
    expect(
      (await c.get(`/nodes/pve1/tasks/${encodeURIComponent(post.json.data)}/status`)).json.data.status,
    ).toBe("running");
    await c.del(`/nodes/pve1/tasks/${encodeURIComponent(post.json.data)}`);
    expect((await c.waitTask("pve1", post.json.data)).exitstatus).toBe("unexpected status");
    expect(sim.getGuest(160).lock).toBe("backup"); // a SIGKILLed vzdump leaves its lock behind, as the facts warn
    sim.setGuestLock(160, undefined);

    sim.faults.failTask({ type: "vzdump" }, "write error: No space left on device");
    const failing = await c.post("/nodes/pve1/vzdump", { vmid: 160, storage: "bk" });
    expect((await c.waitTask("pve1", failing.json.data)).exitstatus).toBe("job errors");
    expect(await c.taskLog("pve1", failing.json.data)).toContain(
      "ERROR: Backup of VM 160 failed - write error: No space left on device",
    );
    await c.close();
  });
});

describe("pve sim: the node's lock around the archive", () => {
  it("holds the lock while the snapshot is mounted before the archive and removed after it (LXC.pm snapshot, cleanup)", async () => {
    const sim = await startPveSimulator({
      authFailureDelayMs: 0,
      snapshotMountDelayMs: 300,
      snapshotRemoveDelayMs: 300,
    });
    try {
      const self = await selfScopedGuest(sim, { vmid: 100, hostname: "web1" });
      const c = rawClient(sim, self.authorization);
      const post = await c.post("/nodes/pve1/vzdump", { vmid: 100, storage: "bk", mode: "snapshot" });
      expect((await c.waitTask("pve1", post.json.data)).exitstatus).toBe("OK");
      const [hold] = sim.nodeLock("pve1").holds;
      const [run] = sim.vzdumpRuns;
      // Nothing reaches the storage for the mount's time after the lock was taken, and the lock stays held
      // for the removal's time after the last byte: what a look at the storage cannot see.
      expect(run!.archiveStartedAt! - hold!.from).toBeGreaterThanOrEqual(300);
      expect(hold!.to! - run!.archiveFinishedAt!).toBeGreaterThanOrEqual(300);
    } finally {
      await sim.close();
    }
  });
});
