/**
 * The per-node vzdump flock (/var/run/vzdump.lock): one holder, FIFO waiters with a timeout, like `flock` with
 * an `alarm`.
 */
export class NodeLock {
  private holder: string | undefined;
  private waiters: Array<{ owner: string; grant: () => void }> = [];

  get heldBy(): string | undefined {
    return this.holder;
  }

  tryAcquire(owner: string): boolean {
    if (this.holder !== undefined) return false;
    this.holder = owner;
    return true;
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
    this.holder = owner;
  }

  release(owner: string): void {
    if (this.holder !== owner) return;
    const next = this.waiters.shift();
    this.holder = next?.owner;
    next?.grant();
  }
}
