import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccessModel } from "./access-model.ts";
import { ApiServer, type RequestLogEntry, type Route } from "./api-server.ts";
import { listBackups, parseBackupVolid } from "./backup-files.ts";
import {
  defaultGuestConfig,
  type Guest,
  hostnameOf,
  hwaddrOf,
  randomHwaddr,
  type Storage,
} from "./cluster-model.ts";
import { Faults } from "./faults.ts";
import { dieError } from "./http-error.ts";
import { NodeLock } from "./node-lock.ts";
import { restoreArchiveInto } from "./restore.ts";
import { accessRoutes } from "./routes-access.ts";
import { guestRoutes } from "./routes-guest.ts";
import { snapshotRoutes } from "./routes-snapshot.ts";
import { storageRoutes } from "./routes-storage.ts";
import { taskRoutes } from "./routes-tasks.ts";
import { vzdumpRoutes } from "./routes-vzdump.ts";
import { type Task, TaskRegistry } from "./task-registry.ts";
import { createNodeCertificates } from "./tls.ts";
import {
  DEFAULT_VOLUME_STORAGES,
  type VolumeStorageType,
  volumesWithoutSnapshot,
} from "./volume-features.ts";
import { type SnapshotMethod, VolumeStore } from "./volume-store.ts";

export interface PveSimulatorOptions {
  /** The first (local) node; default "pve1". */
  node?: string;
  /** More cluster nodes (served by the same simulator, as pveproxy proxies to them). */
  extraNodes?: string[];
  /** Delay of every 401; PVE uses 3 s. Default 3000. */
  authFailureDelayMs?: number;
  /** Rate of the uncompressed tar stream while archiving; default 110e6 (real PVE, product-brief §3). */
  archiveBytesPerSecond?: number;
  /** Where guest roots, the btrfs image and storages live; default a fresh temp dir (removed by close()). */
  dataDir?: string;
  /** "new": error bodies carry "message" (libpve-http-server >= 5.2); "old": reason phrase only. Default "new". */
  errorStyle?: "new" | "old";
  /** Milliseconds per `lockwait` minute; default 60000. Tests use e.g. 100 so lockwait=1 waits 0.1 s. */
  lockwaitScaleMs?: number;
  /**
   * Time between the task logging `create storage snapshot 'vzdump'` and the snapshot existing (PVE freezes,
   * syncs and snapshots in that window; measured 20-50 ms): the CT is frozen throughout. Default 30. Makes an
   * agent that resumes on that line instead of the next one observably wrong.
   */
  snapshotDelayMs?: number;
  /**
   * After the snapshot exists and the CT is thawed, before the archiver starts: the snapshot's volumes
   * activated and mounted (pve-container src/PVE/VZDump/LXC.pm `snapshot`: PVE::Storage::activate_volumes,
   * PVE::LXC::mountpoint_mount; on LVM-thin an `lvchange -ay -K` and a mount). With snapshotDelayMs, what a
   * node's lock is held before the archive's first bytes reach the storage. Default 0.
   */
  snapshotMountDelayMs?: number;
  /**
   * After the archive, before the task ends and frees the node's lock: the snapshot unmounted and deleted
   * (LXC.pm `cleanup`: `umount -l -d`, PVE::LXC::Config->snapshot_delete; on LVM-thin an `lvremove`).
   * Default 0.
   */
  snapshotRemoveDelayMs?: number;
  /**
   * Suspend mode's first rsync copies the whole root (the tmpdir is emptied every run) at this rate: it lasts
   * at least <root bytes> / rate. Default 0: as fast as the simulator's copy (a btrfs snapshot, instant).
   * The final rsync copies only what changed and is not slowed.
   */
  syncBytesPerSecond?: number;
  /**
   * Log the storage plugin's raw lvcreate/lvremove lines (unprefixed, as on LVM-thin) after the snapshot and its
   * clean-up. Default true: log parsers must cope with them.
   */
  rawStorageOutput?: boolean;
  /**
   * Where a storage's status takes `used` from: "df" (default) of its directory, as PVE's dir plugin; "files",
   * the sizes of the files in it, so that a test's growth is this simulator's archive writes alone and not the
   * other work on the machine's shared disk, whose writes and deletions move a df by tens of MB a second.
   */
  storageUsedFrom?: "df" | "files";
  /** Size of the sparse btrfs image; default 4 GiB. */
  btrfsSizeBytes?: number;
  /** Skip btrfs and use plain copies (to test the fallback). */
  forceCopySnapshots?: boolean;
  /** Worker start times above 0xFFFFFFFF so UPIDs carry a 9-digit pstart. */
  ninePstartDigits?: boolean;
  /** `{{cluster}}` in notes templates; default "standalone node" like an unclustered PVE. */
  clusterName?: string;
  version?: { version: string; release: string; repoid: string };
  /** Called when vzdump stop mode shuts the guest down, or rollback kills it (`kill: true`). */
  onGuestStop?: (vmid: number, info: { kill: boolean }) => Promise<void>;
  /** Called when vzdump restarts the guest after a stop-mode backup (or rollback with start=1). */
  onGuestStart?: (vmid: number) => Promise<void>;
  /**
   * Called where PVE freezes the whole CT (its cgroup freezer: every process in it, the agent included)
   * during a vzdump run, and `onGuestThaw` where it thaws it; see vzdump-task.ts `frozen`. Awaited: a test
   * stops the guest's processes here (test/support/guest-freeze.ts). A thaw follows every freeze that
   * returned, also when the step in between fails or the task is stopped.
   */
  onGuestFreeze?: (vmid: number, info: { upid: string }) => Promise<void>;
  onGuestThaw?: (vmid: number, info: { upid: string }) => Promise<void>;
}

export interface AddGuestOptions {
  vmid: number;
  node?: string;
  hostname?: string;
  hwaddr?: string;
  running?: boolean;
  /** Seconds the guest has been up already (for uptime checks). */
  uptime?: number;
  haManaged?: boolean;
  template?: boolean;
  /** Extra raw config keys. */
  config?: Record<string, string | number>;
}

/** What a vzdump run did to one guest, with timestamps (ms epoch) for downtime measurements. */
export interface VzdumpRun {
  upid: string;
  vmid: number;
  mode: "snapshot" | "stop" | "suspend";
  snapshotMethod?: SnapshotMethod;
  /** When the read-only `vzdump` snapshot existed (right before the line after `create storage snapshot`). */
  snapshotTakenAt?: number;
  /** The snapshot was taken from here: time the btrfs call took, ms. */
  snapshotDurationMs?: number;
  guestStoppedAt?: number;
  guestStartedAt?: number;
  /** The CT's freezes in this run (vzdump-task.ts `frozen`), ms epoch: when frozen and when thawed. */
  freezes?: Array<{ frozenAt: number; thawedAt?: number }>;
  archiveStartedAt?: number;
  archiveFinishedAt?: number;
  archivePath?: string;
  volid?: string;
  bytesWritten?: number;
}

/** One VZDump.pm `send_notification`: through the notification system, or mailed directly (legacy-sendmail). */
export interface VzdumpNotification {
  upid: string;
  severity: "info" | "error";
  via: "notification-system" | "sendmail";
  /** The recipients of a direct mail. */
  to?: string[];
  statusText: string;
}

const DEFAULT_VERSION = { version: "9.2.0", release: "9.2", repoid: "5a7b1c9e2d3f4a60" };

export class PveSimulator {
  url = "";
  fingerprint = "";
  caPem = "";
  caFile = "";
  certPem = "";
  readonly nodes: string[];
  readonly access = new AccessModel();
  readonly guests = new Map<number, Guest>();
  readonly storages = new Map<string, Storage>();
  /**
   * The storage type behind each storage id a guest's `rootfs`/`mpN` volid names (volume-features.ts):
   * whether its volumes can be snapshotted. `local` (dir) and `local-lvm` (lvmthin) as a default install;
   * `setVolumeStorage` adds more. A volid on an id not here cannot snapshot.
   */
  readonly volumeStorages = new Map<string, VolumeStorageType>(DEFAULT_VOLUME_STORAGES);
  readonly requests: RequestLogEntry[] = [];
  readonly taskRegistry: TaskRegistry;
  readonly faults: Faults;
  readonly vzdumpRuns: VzdumpRun[] = [];
  /** Every notification vzdump sent (VZDump.pm `send_notification`). */
  readonly notifications: VzdumpNotification[] = [];
  /** The node's /etc/vzdump.conf defaults that decide how vzdump notifies (`mailto`, `mailnotification`). */
  readonly vzdumpConf: { mailto?: string[]; mailnotification?: "always" | "failure" } = {};
  readonly nodeLocks = new Map<string, NodeLock>();
  readonly opts: Required<
    Omit<
      PveSimulatorOptions,
      | "dataDir"
      | "onGuestStop"
      | "onGuestStart"
      | "onGuestFreeze"
      | "onGuestThaw"
      | "extraNodes"
      | "clusterName"
    >
  > &
    PveSimulatorOptions;
  volumes!: VolumeStore;
  dataDir = "";
  private ownsDataDir = false;
  private server!: ApiServer;
  private closed = false;
  /** A test process that exits without close() must not leave a mounted loop device behind. */
  private readonly onExit = () => {
    this.volumes?.closeSync();
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  };

  constructor(opts: PveSimulatorOptions) {
    this.opts = {
      node: "pve1",
      authFailureDelayMs: 3000,
      archiveBytesPerSecond: 110e6,
      errorStyle: "new",
      lockwaitScaleMs: 60_000,
      snapshotDelayMs: 30,
      snapshotMountDelayMs: 0,
      snapshotRemoveDelayMs: 0,
      syncBytesPerSecond: 0,
      rawStorageOutput: true,
      btrfsSizeBytes: 4 * 1024 ** 3,
      forceCopySnapshots: false,
      storageUsedFrom: "df",
      ninePstartDigits: false,
      version: DEFAULT_VERSION,
      ...opts,
    };
    this.nodes = [this.opts.node, ...(opts.extraNodes ?? [])];
    for (const n of this.nodes) this.nodeLocks.set(n, new NodeLock());
    const pstartBase =
      (this.opts.ninePstartDigits ? 0x1_0000_0000 : 0) + 0x0a00_0000 + Math.floor(Math.random() * 0x100000);
    this.taskRegistry = new TaskRegistry(pstartBase);
    this.faults = new Faults(this.taskRegistry.hangs, this.taskRegistry.failures);
  }

  /** @internal */
  async start(): Promise<void> {
    this.ownsDataDir = !this.opts.dataDir;
    process.once("exit", this.onExit);
    this.dataDir = this.opts.dataDir ?? (await mkdtemp(join(tmpdir(), "pve-sim-")));
    await mkdir(this.dataDir, { recursive: true });
    const certDir = join(this.dataDir, "pve");
    await mkdir(certDir, { recursive: true });
    const certs = await createNodeCertificates(certDir, this.opts.node);
    Object.assign(this, {
      caPem: certs.caPem,
      caFile: certs.caFile,
      certPem: certs.certPem,
      fingerprint: certs.fingerprint,
    });
    this.volumes = await VolumeStore.create(this.dataDir, {
      sizeBytes: this.opts.btrfsSizeBytes,
      forceCopy: this.opts.forceCopySnapshots,
    });
    const routes: Route[] = [
      ...accessRoutes(this),
      ...guestRoutes(this),
      ...snapshotRoutes(this),
      ...storageRoutes(this),
      ...taskRoutes(this),
      ...vzdumpRoutes(this),
    ];
    this.server = new ApiServer({
      key: certs.keyPem,
      cert: certs.certPem,
      access: this.access,
      faults: this.faults,
      routes,
      authFailureDelayMs: this.opts.authFailureDelayMs,
      errorStyle: this.opts.errorStyle,
      log: this.requests,
    });
    const port = await this.server.listen();
    this.url = `https://127.0.0.1:${port}`;
  }

  /** "btrfs" (constant-time snapshots) or "copy" (the loud fallback). */
  get snapshotMethod(): SnapshotMethod {
    return this.volumes.method;
  }

  // ---- access model -------------------------------------------------------------------------------

  addUser(userid: string, opts: { enable?: boolean; groups?: string[] } = {}): void {
    this.access.addUser(userid, opts);
  }

  addToGroup(userid: string, group: string): void {
    this.access.addToGroup(userid, group);
  }

  /** Creates an API token; the secret is a UUID like PVE's. The user is created when missing. */
  addToken(
    userid: string,
    tokenName: string,
    opts: { privsep?: boolean; expire?: number; secret?: string } = {},
  ): { tokenId: string; secret: string } {
    if (!this.access.users.has(userid)) this.access.addUser(userid);
    const secret = opts.secret ?? randomUUID();
    const tokenId = this.access.addToken(userid, tokenName, { ...opts, secret });
    return { tokenId, secret };
  }

  addRole(name: string, privs: readonly string[]): void {
    this.access.addRole(name, privs);
  }

  /** One ACL entry; exactly one of user, group, token. `propagate` defaults to true. */
  setAcl(entry: {
    path: string;
    role: string;
    propagate?: boolean;
    user?: string;
    group?: string;
    token?: string;
  }): void {
    this.access.setAcl(entry);
  }

  removeAcl(match: { path: string; role?: string; user?: string; group?: string; token?: string }): void {
    this.access.removeAcl(match);
  }

  /** A root@pam token (non-privsep): everything is allowed. */
  rootToken(): { tokenId: string; secret: string } {
    return this.addToken("root@pam", `sim${Math.floor(Math.random() * 1e9)}`, { privsep: false });
  }

  // ---- guests and storages ------------------------------------------------------------------------

  async addGuest(o: AddGuestOptions): Promise<Guest> {
    if (this.guests.has(o.vmid)) throw new Error(`CT ${o.vmid} already exists`);
    const node = o.node ?? this.opts.node;
    if (!this.nodes.includes(node)) throw new Error(`no such node '${node}'`);
    const rootDir = await this.volumes.createRoot(`subvol-${o.vmid}-disk-0`);
    const guest: Guest = {
      vmid: o.vmid,
      node,
      running: o.running ?? true,
      startedAt: Date.now() - (o.uptime ?? 0) * 1000,
      template: o.template ?? false,
      haManaged: o.haManaged ?? false,
      config: {
        ...defaultGuestConfig(o.vmid, o.hostname ?? `ct${o.vmid}`, o.hwaddr ?? randomHwaddr()),
        ...o.config,
      },
      rootDir,
      snapshots: new Map(),
    };
    this.guests.set(o.vmid, guest);
    return guest;
  }

  getGuest(vmid: number): Guest {
    const g = this.guests.get(vmid);
    if (!g) throw new Error(`no such guest ${vmid}`);
    return g;
  }

  async addStorage(o: {
    id: string;
    /** @default "dir" */
    type?: "dir" | "pbs";
    content?: string[];
    pruneBackups?: string;
    maxProtectedBackups?: number;
    nodes?: string[];
  }): Promise<Storage> {
    const path = join(this.dataDir, "storage", o.id);
    const type = o.type ?? "dir";
    await mkdir(type === "pbs" ? path : join(path, "dump"), { recursive: true });
    const s: Storage = {
      content: ["backup"],
      ...o,
      type,
      path,
      ...(type === "pbs" ? { pbs: { server: "192.0.2.10", datastore: o.id, username: "root@pam" } } : {}),
    };
    this.storages.set(o.id, s);
    return s;
  }

  /** Operator action `pct destroy`: the guest and its root and snapshots go; backups stay. */
  async destroyGuest(vmid: number): Promise<void> {
    const g = this.getGuest(vmid);
    for (const s of g.snapshots.values()) await this.volumes.remove(s.path);
    await this.volumes.remove(g.rootDir);
    this.guests.delete(vmid);
  }

  /** Operator action: the guest now lives on `node` (its tasks stay on the old node). */
  migrateGuest(vmid: number, node: string): void {
    if (!this.nodes.includes(node)) throw new Error(`no such node '${node}'`);
    this.getGuest(vmid).node = node;
  }

  setGuestLock(vmid: number, lock: string | undefined): void {
    const g = this.getGuest(vmid);
    if (lock === undefined) delete g.lock;
    else g.lock = lock;
  }

  /** Operator start/stop (no hooks are called: the caller is the operator). */
  setGuestRunning(vmid: number, running: boolean): void {
    const g = this.getGuest(vmid);
    if (running && !g.running) g.startedAt = Date.now();
    g.running = running;
  }

  /**
   * Operator action `pct restore <newVmid> <volid>`: a new guest whose config comes from the archive's
   * /etc/vzdump/pct.conf (so hostname and MAC are kept) and whose root is the extracted archive. Left stopped.
   */
  async restoreGuest(
    volid: string,
    newVmid: number,
    opts: { node?: string; start?: boolean } = {},
  ): Promise<Guest> {
    const parsed = parseBackupVolid(volid);
    const storage = parsed && this.storages.get(parsed.storage);
    if (!parsed || !storage) throw new Error(`unable to parse volume ID '${volid}'`);
    if (this.guests.has(newVmid)) throw new Error(`CT ${newVmid} already exists`);
    const rootDir = await this.volumes.createRoot(`subvol-${newVmid}-disk-0`);
    // a PBS snapshot's root archive (pbs-store.ts), or the archive file of a dir storage
    const archive =
      storage.type === "pbs"
        ? join(storage.path, parsed.file, "root.pxar.didx")
        : join(storage.path, "dump", parsed.file);
    const conf = await restoreArchiveInto(archive, rootDir);
    conf.rootfs = `local-lvm:vm-${newVmid}-disk-0,size=8G`;
    const guest: Guest = {
      vmid: newVmid,
      node: opts.node ?? this.opts.node,
      running: opts.start ?? false,
      startedAt: Date.now(),
      template: false,
      haManaged: false,
      config: conf,
      rootDir,
      snapshots: new Map(),
    };
    this.guests.set(newVmid, guest);
    return guest;
  }

  /** Holds the node's vzdump lock as "another guest's backup" would; call release() to let waiters in. */
  holdGlobalVzdumpLock(node = this.opts.node): { release: () => void } {
    const owner = `held-by-test-${randomUUID()}`;
    const lock = this.nodeLock(node);
    if (!lock.tryAcquire(owner)) throw new Error(`vzdump lock on ${node} is already held by ${lock.heldBy}`);
    return { release: () => lock.release(owner) };
  }

  /** Backups of a storage as the storage plugin lists them (no permission filter). */
  async listBackups(storageId: string) {
    const s = this.storages.get(storageId);
    if (!s) throw new Error(`no such storage '${storageId}'`);
    return listBackups(s);
  }

  // ---- tasks --------------------------------------------------------------------------------------

  get tasks(): {
    list: () => Task[];
    get: (upid: string) => Task | undefined;
    wait: (upid: string) => Promise<Task>;
  } {
    return {
      list: () => [...this.taskRegistry.all],
      get: (upid) => this.taskRegistry.find(upid),
      wait: async (upid) => {
        const t = this.taskRegistry.find(upid);
        if (!t) throw new Error(`no such task ${upid}`);
        await t.done;
        return t;
      },
    };
  }

  // ---- internal helpers for the routes --------------------------------------------------------------

  /** @internal proxyto node: an unknown node cannot be resolved. */
  assertNode(node: string): void {
    if (!this.nodes.includes(node))
      throw dieError(
        `hostname lookup '${node}' failed - failed to get address info for: ${node}: Name or service not known`,
      );
  }

  /** Operator action: a storage for guest volumes (`pvesm add <type> <id>`), e.g. a thick `lvm` or an `nfs`. */
  setVolumeStorage(id: string, type: VolumeStorageType): void {
    this.volumeStorages.set(id, type);
  }

  /**
   * The guest's mount points whose volumes cannot be snapshotted (LXC/Config.pm `has_feature('snapshot')`):
   * `backupOnly` as vzdump's `prepare` and its `vzdump` snapshot_create ask (only the mount points in the
   * backup), else as `vm_feature` and a user's snapshot_create ask (all of them). Empty: it can.
   */
  snapshotBlockers(g: Guest, backupOnly: boolean): string[] {
    return volumesWithoutSnapshot(g, this.volumeStorages, backupOnly);
  }

  /** @internal load_config on the URL node */
  guestOn(node: string, vmid: number): Guest {
    this.assertNode(node);
    const g = this.guests.get(vmid);
    if (!g || g.node !== node)
      throw dieError(`Configuration file 'nodes/${node}/lxc/${vmid}.conf' does not exist`);
    return g;
  }

  /** @internal */
  storageOn(node: string, id: string): Storage {
    this.assertNode(node);
    const s = this.storages.get(id);
    if (!s) throw dieError(`storage '${id}' does not exist`);
    if (s.nodes && !s.nodes.includes(node))
      throw dieError(`storage '${id}' is not available on node '${node}'`);
    return s;
  }

  /** @internal */
  nodeLock(node: string): NodeLock {
    const l = this.nodeLocks.get(node);
    if (!l) throw new Error(`no such node '${node}'`);
    return l;
  }

  /** @internal */
  hostnameOf(g: Guest): string {
    return hostnameOf(g);
  }

  /** @internal */
  hwaddrOf(g: Guest): string | undefined {
    return hwaddrOf(g);
  }

  /** Stops the server, kills running tasks, unmounts the btrfs image, detaches the loop device, removes temp dirs. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    process.removeListener("exit", this.onExit);
    // let killed tar/zstd children exit before their files and the mount go away
    if (this.taskRegistry.killAll() > 0) await new Promise((r) => setTimeout(r, 200));
    await this.server?.close();
    await this.volumes?.close();
    if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
    else
      for (const p of ["guests.btrfs.img", "guests", "storage", "pve"])
        await rm(join(this.dataDir, p), { recursive: true, force: true });
  }
}
