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
   * long as the read takes. Default: PBS_UPLOAD_IDLE_MS.
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
 * Watches a followed vzdump task for progress and calls `onStall` once, with the reason, when there was
 * none within the bound of its current step. Call `line()` on every new log line, `archiving(b)` when
 * the archive starts and ends, `stop()` when the task ended.
 */
export class StallWatch {
  readonly #bounds: StallBounds;
  readonly #storageUsed: () => Promise<number | undefined>;
  readonly #onStall: (reason: string) => void;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  #lastProgress: number;
  #archiving: false | "file" | "pbs" = false;
  #used: number | undefined;
  #fired = false;

  constructor(o: {
    bounds: StallBounds;
    storageUsed: () => Promise<number | undefined>;
    onStall: (reason: string) => void;
    now?: () => number;
  }) {
    this.#bounds = o.bounds;
    this.#storageUsed = o.storageUsed;
    this.#onStall = o.onStall;
    this.#now = o.now ?? Date.now;
    this.#lastProgress = this.#now();
    this.#timer = setInterval(() => void this.check(), o.bounds.checkEveryMs);
  }

  line(): void {
    this.#lastProgress = this.#now();
  }

  /**
   * Feeds one follower event: a line is progress; the archive (and suspend mode's sync to the dump
   * directory) write to the storage without logging.
   */
  see(ev: FollowEvent): void {
    if (ev.type === "line") this.line();
    if (ev.type !== "phase") return;
    if (ev.phase.phase === "archive-started") this.archiving(true, ev.phase.pbs ? "pbs" : "file");
    if (ev.phase.phase === "suspend") this.archiving(true);
    if (["bytes-written", "suspend-resumed", "guest-failed"].includes(ev.phase.phase)) this.archiving(false);
  }

  archiving(on: boolean, target: "file" | "pbs" = "file"): void {
    this.#archiving = on && target;
    this.#used = undefined;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One look; the timer calls it every `checkEveryMs`. */
  async check(): Promise<void> {
    if (this.#fired) return;
    if (this.#archiving) {
      const used = await this.#storageUsed().catch(() => undefined);
      if (used !== undefined && this.#used !== undefined && used !== this.#used)
        this.#lastProgress = this.#now();
      if (used !== undefined) this.#used = used;
    }
    const bound =
      this.#archiving === "pbs"
        ? (this.#bounds.pbsUploadIdleMs ?? PBS_UPLOAD_IDLE_MS)
        : this.#archiving
          ? this.#bounds.archiveIdleMs
          : this.#bounds.logSilenceMs;
    const idle = this.#now() - this.#lastProgress;
    if (idle < bound || this.#fired) return;
    this.#fired = true;
    this.stop();
    this.#onStall(
      this.#archiving === "pbs"
        ? `no new chunk on the Proxmox Backup Server and no log line for ${Math.round(idle / 1000)} s while the archive was uploaded`
        : this.#archiving
          ? `no new byte on the backup storage for ${Math.round(idle / 1000)} s while the archive was written`
          : `no new log line for ${Math.round(idle / 1000)} s`,
    );
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
