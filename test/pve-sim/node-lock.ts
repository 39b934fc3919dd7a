/** One tenure of the lock (`to` unset while held), for benchmarks of a node's utilisation. */
export interface LockHold {
  owner: string;
  from: number;
  to?: number;
}

/**
 * The per-node vzdump flock (/var/run/vzdump.lock): one holder, FIFO waiters with a timeout, like `flock` with
 * an `alarm`. pve-manager API2/VZDump.pm `vzdump` takes it (VZDump.pm `getlock`) first thing in the worker,
 * before `exec_backup` touches any guest: a refusal comes before any guest work on the PVE side.
 */
export class NodeLock {
  private holder: string | undefined;
  private waiters: Array<{ owner: string; grant: () => void }> = [];
  /** Every tenure, oldest first. */
  readonly holds: LockHold[] = [];
  /** Every immediate try that found the lock held (with lockwait=0, each is a refused task). */
  readonly refusals: Array<{ owner: string; at: number }> = [];

  get heldBy(): string | undefined {
    return this.holder;
  }

  tryAcquire(owner: string): boolean {
    if (this.holder !== undefined) {
      this.refusals.push({ owner, at: Date.now() });
      return false;
    }
    this.take(owner);
    return true;
  }

  private take(owner: string | undefined): void {
    this.holder = owner;
    if (owner !== undefined) this.holds.push({ owner, from: Date.now() });
  }

  /** Resolves true once held, false after `timeoutMs`. */
  acquire(owner: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.tryAcquire(owner)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        owner,
        grant: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const giveUp = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      };
      const timer = setTimeout(giveUp, timeoutMs);
      signal?.addEventListener("abort", giveUp, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** The holder ended at this instant and `owner`, a waiter, got the lock instead of giving up. */
  handOver(owner: string): void {
    this.waiters = this.waiters.filter((w) => w.owner !== owner);
    this.end();
    this.take(owner);
  }

  private end(): void {
    const current = this.holds.at(-1);
    if (current && current.to === undefined) current.to = Date.now();
  }

  release(owner: string): void {
    if (this.holder !== owner) return;
    this.end();
    const next = this.waiters.shift();
    this.take(next?.owner);
    next?.grant();
  }
}
