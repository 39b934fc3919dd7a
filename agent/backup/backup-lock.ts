import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";

/**
 * One backup or snapshot at a time in the guest, across processes: the daemon (cron, hub) and an
 * operator's `felhom-guest backup` share the state dir (PVE would refuse the second anyway, with the
 * guest's `lock: backup`, but only after the stacks were quiesced for nothing). The lock file is created
 * exclusively and names its holder; a holder whose process is gone (killed, guest rebooted) is stale and
 * is taken over.
 */
const holderSchema = z.object({
  pid: z.number().int(),
  /** The backup id, or the operation id of a snapshot. */
  backupId: z.string(),
  mode: z.enum(["snapshot", "stop"]),
  kind: z.enum(["backup", "snapshot"]).default("backup"),
});
export type LockHolder = z.input<typeof holderSchema>;

export const lockPath = (stateDir: string): string => join(stateDir, "backup.lock");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
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

/** Takes the lock, or returns who holds it. The returned release is idempotent. */
export async function acquireBackupLock(
  stateDir: string,
  me: LockHolder,
): Promise<
  { acquired: true; release: () => Promise<void> } | { acquired: false; holder: z.infer<typeof holderSchema> }
> {
  const path = lockPath(stateDir);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, "wx", 0o600);
      try {
        await fh.writeFile(JSON.stringify(me));
        await fh.sync();
      } finally {
        await fh.close();
      }
      let released = false;
      return {
        acquired: true,
        release: async () => {
          if (released) return;
          released = true;
          await rm(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = await readHolder(path);
      if (holder && alive(holder.pid) && holder.pid !== process.pid) return { acquired: false, holder };
      // Stale (holder gone, or unreadable because it died mid-write): remove and try again.
      await rm(path, { force: true });
    }
  }
  throw new Error(`could not take the backup lock ${path}`);
}
