import { randomBytes } from "node:crypto";
import { link, open, readFile, rm } from "node:fs/promises";
import { backupMode } from "@felhom/protocol";
import { z } from "zod";
import { AgentError } from "../lib/errors.ts";
import { settleHeapSoon } from "../lib/heap-settle.ts";
import { statePaths } from "../state/paths.ts";

/**
 * What takes the guest for itself: a backup, a snapshot (create or delete), an operator's or the hub's
 * `stacks up` (which must not start containers in the middle of a quiesce). One at a time.
 */
export const operationKind = z.enum(["backup", "snapshot", "stacks-up"]);
export type OperationKind = z.infer<typeof operationKind>;

/**
 * One operation at a time in the guest, across processes: the daemon (cron, hub) and an operator's
 * `felhom-guest backup` share the state dir (PVE would refuse the second anyway, with the guest's
 * `lock: backup`, but only after the stacks were quiesced for nothing). The lock file is created
 * exclusively and names its holder by `{kind, operationId}`; a holder whose process is gone (killed, guest
 * rebooted) is stale and is taken over. The holder's start time is recorded with its pid: after a power
 * loss the pid may belong to some other live process (dockerd, for ever), and a lock that outlived its
 * holder would stop every backup without a word.
 */
const holderSchema = z.preprocess(
  // Agents up to 0.1.0 wrote `backupId` for every kind and a mode for every holder: a lock such an agent
  // holds while this one starts (an upgrade in the middle of an operator's backup) is still a lock.
  (raw) =>
    raw && typeof raw === "object" && !("operationId" in raw) && "backupId" in raw
      ? { ...raw, operationId: (raw as { backupId: unknown }).backupId }
      : raw,
  z
    .object({
      pid: z.number().int(),
      kind: operationKind.default("backup"),
      operationId: z.string(),
      /** A backup's mode; other kinds have none. */
      mode: backupMode.optional(),
      /** The holder's start time (/proc/PID/stat field 22), set by acquireOperationLock. */
      pidStart: z.string().optional(),
    })
    .transform(({ mode, ...h }): typeof h & { mode?: z.infer<typeof backupMode> } =>
      h.kind === "backup" && mode ? { ...h, mode } : h,
    ),
);
type StoredHolder = z.infer<typeof holderSchema>;
export type OperationHolder = Omit<StoredHolder, "pidStart">;
/** An operation as the hub, the CLI and the logs name it. */
export type Operation = Omit<OperationHolder, "pid">;

export const operationOf = ({ kind, operationId, mode }: OperationHolder): Operation =>
  mode ? { kind, operationId, mode } : { kind, operationId };

/** What a new holder writes: the fields older agents read too, so that they see the lock as held. */
function onDisk(me: OperationHolder, pidStart: string | undefined) {
  return { ...me, pidStart, backupId: me.operationId, mode: me.mode ?? "snapshot" };
}

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

async function readHolder(path: string): Promise<StoredHolder | undefined> {
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

async function live(path: string, holder: StoredHolder | undefined): Promise<boolean> {
  if (!holder) return false;
  if (holder.pid === process.pid) return heldHere.has(path);
  if (!alive(holder.pid)) return false;
  return holder.pidStart === undefined || (await processStart(holder.pid)) === holder.pidStart;
}

/** Who holds the guest now (this process or another), or undefined when nobody does. */
export async function operationHolder(stateDir: string): Promise<StoredHolder | undefined> {
  const path = statePaths(stateDir).operationLock;
  const holder = await readHolder(path);
  return (await live(path, holder)) ? holder : undefined;
}

type Acquired = { acquired: true; release: () => Promise<void> } | { acquired: false; holder: StoredHolder };

/**
 * Acquisitions of this process, one after the other. The file alone cannot order them: a winner's link
 * can land in the kernel before a loser's while the winner's completion reaches this thread after the
 * loser has read the file and, seeing our own pid not yet held, taken it for stale (measured: about one
 * round in a hundred with eight at once).
 */
let acquiring: Promise<unknown> = Promise.resolve();

/** The guest is held by another operation; `holder` says which (the CLI exits 75, busy). */
export class OperationBusyError extends AgentError {
  constructor(
    readonly holder: OperationHolder,
    what: string,
  ) {
    super("backup_running", `${holder.kind} ${holder.operationId} is running; not starting ${what}`, {
      hint: "try again when it has finished",
    });
  }
}

/** Runs `fn` holding the lock as `me`; OperationBusyError when another operation holds it. */
export async function withOperationLock<T>(
  stateDir: string,
  me: Omit<OperationHolder, "pid">,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireOperationLock(stateDir, { pid: process.pid, ...me });
  if (!lock.acquired) throw new OperationBusyError(lock.holder, what);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Takes the lock, or returns who holds it. The returned release is idempotent. */
export function acquireOperationLock(stateDir: string, me: OperationHolder): Promise<Acquired> {
  const attempt = acquiring.then(() => acquireNow(stateDir, me));
  acquiring = attempt.catch(() => undefined);
  return attempt;
}

async function acquireNow(stateDir: string, me: OperationHolder): Promise<Acquired> {
  const path = statePaths(stateDir).operationLock;
  for (let attempt = 0; attempt < 3; attempt++) {
    // Written in full under a private name, then linked into place: link fails if the lock exists, and a
    // reader never sees a half-written holder (which it would take for a dead one).
    const draft = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
    const fh = await open(draft, "wx", 0o600);
    try {
      await fh.writeFile(JSON.stringify(onDisk(me, await processStart(me.pid))));
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
        // The operation is over: what it built and ran is garbage or idle code from here on.
        settleHeapSoon();
      },
    };
  }
  throw new Error(`could not take the operation lock ${path}`);
}
