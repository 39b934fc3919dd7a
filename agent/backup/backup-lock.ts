import { randomBytes } from "node:crypto";
import { link, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { AgentError } from "../lib/errors.ts";

/**
 * One backup or snapshot at a time in the guest, across processes: the daemon (cron, hub) and an
 * operator's `felhom-guest backup` share the state dir (PVE would refuse the second anyway, with the
 * guest's `lock: backup`, but only after the stacks were quiesced for nothing). The lock file is created
 * exclusively and names its holder; a holder whose process is gone (killed, guest rebooted) is stale and
 * is taken over. The holder's start time is recorded with its pid: after a power loss the pid may belong
 * to some other live process (dockerd, for ever), and a lock that outlived its holder would stop every
 * backup without a word.
 */
const holderSchema = z.object({
  pid: z.number().int(),
  /** The backup id, or the operation id of a snapshot. */
  backupId: z.string(),
  mode: z.enum(["snapshot", "stop"]),
  /** stacks-up: an operator's `stacks up`, which must not start containers in the middle of a quiesce. */
  kind: z.enum(["backup", "snapshot", "stacks-up"]).default("backup"),
  /** The holder's start time (/proc/PID/stat field 22), set by acquireBackupLock. */
  pidStart: z.string().optional(),
});
export type LockHolder = Omit<z.input<typeof holderSchema>, "pidStart">;

export const lockPath = (stateDir: string): string => join(stateDir, "backup.lock");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** When the process started, in clock ticks since boot; undefined when it does not exist (or no /proc). */
async function processStart(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses: count from the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

async function readHolder(path: string): Promise<z.infer<typeof holderSchema> | undefined> {
  try {
    const parsed = holderSchema.safeParse(JSON.parse(await readFile(path, "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Locks this process holds now. A lock file naming our own pid is ours only if it is in here: after a
 * reboot the daemon may get the pid its dead predecessor had, and that file is stale; but a snapshot the
 * hub started in this daemon must still keep a backup of this same daemon out.
 */
const heldHere = new Set<string>();

async function live(path: string, holder: z.infer<typeof holderSchema> | undefined): Promise<boolean> {
  if (!holder) return false;
  if (holder.pid === process.pid) return heldHere.has(path);
  if (!alive(holder.pid)) return false;
  return holder.pidStart === undefined || (await processStart(holder.pid)) === holder.pidStart;
}

/** Who holds the lock now (this process or another), or undefined when nobody does. */
export async function lockHolder(stateDir: string): Promise<z.infer<typeof holderSchema> | undefined> {
  const path = lockPath(stateDir);
  const holder = await readHolder(path);
  return (await live(path, holder)) ? holder : undefined;
}

type Acquired =
  | { acquired: true; release: () => Promise<void> }
  | { acquired: false; holder: z.infer<typeof holderSchema> };

/**
 * Acquisitions of this process, one after the other. The file alone cannot order them: a winner's link
 * can land in the kernel before a loser's while the winner's completion reaches this thread after the
 * loser has read the file and, seeing our own pid not yet held, taken it for stale (measured: about one
 * round in a hundred with eight at once).
 */
let acquiring: Promise<unknown> = Promise.resolve();

/** The lock is held by someone else; `holder` says who (the CLI exits 75, busy). */
export class BackupLockBusyError extends AgentError {
  constructor(
    readonly holder: z.infer<typeof holderSchema>,
    what: string,
  ) {
    super("backup_running", `${holder.kind} ${holder.backupId} is running; not starting ${what}`, {
      hint: "try again when it has finished",
    });
  }
}

/** Runs `fn` holding the lock; BackupLockBusyError when someone else holds it. */
export async function withBackupLock<T>(
  stateDir: string,
  me: LockHolder,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireBackupLock(stateDir, me);
  if (!lock.acquired) throw new BackupLockBusyError(lock.holder, what);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Takes the lock, or returns who holds it. The returned release is idempotent. */
export function acquireBackupLock(stateDir: string, me: LockHolder): Promise<Acquired> {
  const attempt = acquiring.then(() => acquireNow(stateDir, me));
  acquiring = attempt.catch(() => undefined);
  return attempt;
}

async function acquireNow(stateDir: string, me: LockHolder): Promise<Acquired> {
  const path = lockPath(stateDir);
  for (let attempt = 0; attempt < 3; attempt++) {
    // Written in full under a private name, then linked into place: link fails if the lock exists, and a
    // reader never sees a half-written holder (which it would take for a dead one).
    const draft = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
    const fh = await open(draft, "wx", 0o600);
    try {
      await fh.writeFile(JSON.stringify({ ...me, pidStart: await processStart(me.pid) }));
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(draft, path);
      heldHere.add(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = await readHolder(path);
      if (holder && (await live(path, holder))) return { acquired: false, holder };
      // Stale: its holder is gone (killed, guest rebooted). Two processes taking over the same stale lock
      // at the same instant could both win; PVE's guest lock still refuses the second vzdump.
      await rm(path, { force: true });
      continue;
    } finally {
      await rm(draft, { force: true });
    }
    let released = false;
    return {
      acquired: true,
      release: async () => {
        if (released) return;
        released = true;
        await rm(path, { force: true });
        heldHere.delete(path);
      },
    };
  }
  throw new Error(`could not take the backup lock ${path}`);
}
