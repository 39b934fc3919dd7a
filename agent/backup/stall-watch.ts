import { AgentError } from "../lib/errors.ts";
import type { PveClient } from "../pve/client.ts";
import type { FollowEvent } from "../pve/task-follower.ts";

/**
 * How long a vzdump task may go without progress before the agent gives up on it. Before the archive
 * every step logs a line within seconds (the snapshot itself, or the stop of the guest, are the slowest);
 * while the archive is written the log is silent for as long as it takes (hours for a large guest), so
 * progress there is the backup storage's `used` growing. Documented in README "A hung task".
 */
export interface StallBounds {
  /** No new log line for this long outside the archive. */
  logSilenceMs: number;
  /** No new byte on the storage (and no log line) for this long while the archive is written. */
  archiveIdleMs: number;
  /**
   * The same on a Proxmox Backup Server. PBS stores only chunks it does not have yet, and its client
   * (proxmox-backup-client `create_backup`, as read) logs nothing while it reads the root: an incremental
   * backup of a large guest that changed little moves neither the log nor the datastore's `used` for as
   * long as the read takes. Also suspend mode's first sync while its copy is not seen landing on the
   * storage (stallBound). Default: PBS_UPLOAD_IDLE_MS.
   */
  pbsUploadIdleMs?: number;
  /** How often the storage is looked at. */
  checkEveryMs: number;
}

/** Reading 2 TB at a modest 150 MB/s. */
export const PBS_UPLOAD_IDLE_MS = 4 * 3600_000;

export const DEFAULT_STALL_BOUNDS: StallBounds = {
  logSilenceMs: 10 * 60_000,
  archiveIdleMs: 30 * 60_000,
  pbsUploadIdleMs: PBS_UPLOAD_IDLE_MS,
  checkEveryMs: 60_000,
};

/**
 * The task's current step as far as the watch is concerned: logging (`log`), suspend mode's first rsync
 * of the guest into vzdump's tmpdir (`sync`, silent until "first sync finished", pve-container
 * src/PVE/VZDump/LXC.pm `rsync_vm`), or the archive written to a file storage or uploaded to a PBS.
 */
export type StallStep = "log" | "sync" | "archive-file" | "archive-pbs";

/**
 * The bound for the current step and what to say when it is exceeded; pure.
 *
 * `sync`: where the rsync writes decides whether the storage's `used` can show progress. pve-manager
 * PVE/VZDump.pm `exec_backup_task` puts the tmpdir on the PVE host's /var/tmp for a PBS target, inside
 * the dump directory for a file storage whose file system is ext3/ext4/nfs/nfs4/reiserfs/xfs
 * (`@posix_filesystems`), and on /var/tmp for any other (zfs, btrfs, cifs…) or wherever /etc/vzdump.conf's
 * `tmpdir` says. The agent sees neither the file system nor vzdump.conf, so a sync gets the short bound
 * only once the storage was seen to grow during it (proof the copy lands there); until then, and always
 * on a PBS, it gets the long bound: a healthy backup stopped for looking idle is worse than a hung one
 * found late.
 */
export function stallBound(
  step: StallStep,
  o: { storageType: string | undefined; syncGrewStorage: boolean },
  bounds: StallBounds,
): { ms: number; what: (idleS: number) => string } {
  const long = bounds.pbsUploadIdleMs ?? PBS_UPLOAD_IDLE_MS;
  if (step === "archive-pbs")
    return {
      ms: long,
      what: (s) =>
        `no new chunk on the Proxmox Backup Server and no log line for ${s} s while the archive was uploaded`,
    };
  if (step === "archive-file")
    return {
      ms: bounds.archiveIdleMs,
      what: (s) => `no new byte on the backup storage for ${s} s while the archive was written`,
    };
  if (step === "sync") {
    const onStorage = o.storageType !== "pbs" && o.syncGrewStorage;
    return {
      ms: onStorage ? bounds.archiveIdleMs : long,
      what: onStorage
        ? (s) => `no new byte on the backup storage for ${s} s while suspend mode copied the guest`
        : (s) =>
            `no log line for ${s} s while suspend mode copied the guest to the PVE host's temporary directory`,
    };
  }
  return { ms: bounds.logSilenceMs, what: (s) => `no new log line for ${s} s` };
}

/** What the watch reads of the backup storage (PVE `storage/{storage}/status`). */
export interface StorageLook {
  used?: number | undefined;
  type?: string | undefined;
}

/**
 * Watches a followed vzdump task for progress and calls `onStall` once, with the reason, when there was
 * none within the bound of its current step. Call `see()` with every follower event (or `line()` and
 * `step()`), `stop()` when the task ended.
 */
export class StallWatch {
  readonly #bounds: StallBounds;
  readonly #storage: () => Promise<StorageLook>;
  readonly #onStall: (reason: string) => void;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  #lastProgress: number;
  #step: StallStep = "log";
  #storageType: string | undefined;
  #syncGrewStorage = false;
  #used: number | undefined;
  #fired = false;

  constructor(o: {
    bounds: StallBounds;
    /** The storage's type (`dir`, `nfs`, `pbs`…) from the preflight, if known; a look at the storage fills it in. */
    storageType?: string | undefined;
    storage: () => Promise<StorageLook>;
    onStall: (reason: string) => void;
    now?: () => number;
  }) {
    this.#bounds = o.bounds;
    this.#storageType = o.storageType;
    this.#storage = o.storage;
    this.#onStall = o.onStall;
    this.#now = o.now ?? Date.now;
    this.#lastProgress = this.#now();
    this.#timer = setInterval(() => void this.check(), o.bounds.checkEveryMs);
  }

  line(): void {
    this.#lastProgress = this.#now();
  }

  /**
   * Feeds one follower event: a line is progress; the archive, and suspend mode's first sync (from the
   * fallback, or "backup mode: suspend", VZDump.pm `exec_backup_task`, until "resuming guest"), write
   * without logging.
   */
  see(ev: FollowEvent): void {
    if (ev.type === "line") this.line();
    if (ev.type !== "phase") return;
    const p = ev.phase;
    if (p.phase === "archive-started") this.step(p.pbs ? "archive-pbs" : "archive-file");
    if (p.phase === "suspend" || (p.phase === "backup-mode" && p.mode === "suspend")) this.step("sync");
    if (["bytes-written", "suspend-resumed", "guest-failed"].includes(p.phase)) this.step("log");
  }

  step(step: StallStep): void {
    if (step === this.#step) return;
    this.#step = step;
    this.#used = undefined;
    this.#syncGrewStorage = false;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One look; the timer calls it every `checkEveryMs`. */
  async check(): Promise<void> {
    if (this.#fired) return;
    if (this.#step !== "log") {
      const look = await this.#storage().catch((): StorageLook => ({}));
      this.#storageType ??= look.type;
      const used = look.used;
      // a PBS sync writes to the host's /var/tmp: the datastore growing is another client's upload
      const counts = this.#step !== "sync" || this.#storageType !== "pbs";
      if (counts && used !== undefined && this.#used !== undefined && used !== this.#used) {
        this.#lastProgress = this.#now();
        if (this.#step === "sync") this.#syncGrewStorage = true;
      }
      if (used !== undefined) this.#used = used;
    }
    const bound = stallBound(
      this.#step,
      { storageType: this.#storageType, syncGrewStorage: this.#syncGrewStorage },
      this.#bounds,
    );
    const idle = this.#now() - this.#lastProgress;
    if (idle < bound.ms || this.#fired) return;
    this.#fired = true;
    this.stop();
    this.#onStall(bound.what(Math.round(idle / 1000)));
  }
}

/**
 * A task that made no progress: stop it (PVE SIGTERMs, then SIGKILLs after 5 s) and say what is left. A
 * worker killed in its clean-up leaves `lock: backup` (and maybe the `vzdump` snapshot) on the CT, which
 * only root can clear; the error then names the commands for the PVE host, or every later backup would
 * be refused as guest_locked.
 */
export async function stoppedStalledTask(
  pve: PveClient,
  t: { node: string; vmid: number; upid: string },
  reason: string,
): Promise<AgentError> {
  await pve.stopTask(t.node, t.upid).catch(() => undefined);
  for (let i = 0; i < 20; i++) {
    const status = await pve.taskStatus(t.node, t.upid).catch(() => undefined);
    if (status?.status === "stopped") break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const lock = (await pve.lxcStatus(t.node, t.vmid).catch(() => undefined))?.lock;
  const leftover = (await pve.snapshots(t.node, t.vmid).catch(() => [])).some((s) => s.name === "vzdump");
  const commands = [
    ...(lock ? [`pct unlock ${t.vmid}`] : []),
    ...(leftover ? [`pct delsnapshot ${t.vmid} vzdump --force`] : []),
  ];
  return new AgentError(
    "vzdump_stalled",
    `vzdump task ${t.upid} made no progress (${reason}); the agent stopped it`,
    {
      hint: commands.length
        ? `the stopped task left the CT ${lock ? `locked (${lock})` : "with its vzdump snapshot"}, which only root can clear: on the PVE host run ${commands.join(" && ")}; until then every backup is refused`
        : "nothing is left behind and the next backup can run; if it recurs, check the node's load and the backup storage",
    },
  );
}
