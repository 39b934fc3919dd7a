import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * A few full garbage collections once the daemon has gone idle: after its start-up and after each operation
 * (backup, snapshot, stacks up). V8 drops the bytecode of a function that has not run through
 * `--bytecode-old-age` full collections (1 in packaging/node-flags), but an idle daemon allocates so little
 * that V8 itself hardly ever runs one: the bytecode of everything the start-up or a backup ran (config,
 * identity, recovery, quiesce, PVE task follower…) stayed resident for the daemon's whole life. Three
 * collections ten seconds apart let it age and go (0.5 to 2.0 MiB of a 66 MiB idle daemon in probes; README, "The
 * daemon's idle resident set"); a function run again is compiled again from its source. A few milliseconds
 * each on a heap this size; an idle daemon only answers pings and ticks its schedule.
 */
export function heapSettler(o: { collect: () => void; collections: number; apartMs: number }): () => void {
  let pending: NodeJS.Timeout | undefined;
  return () => {
    clearTimeout(pending);
    let left = o.collections;
    const next = () => {
      // unref: a pending collection never keeps a process (a CLI command that took the lock) alive.
      pending = setTimeout(() => {
        o.collect();
        if (--left > 0) next();
      }, o.apartMs).unref();
    };
    next();
  };
}

let gc: (() => void) | undefined;

/** V8's full collection, taken in a context of its own: `--expose-gc` puts no `gc` in this one's globals. */
function fullCollection(): void {
  if (!gc) {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc") as () => void;
  }
  gc();
}

/** Starts (or starts again) the collections of an idle daemon. */
export const settleHeapSoon = heapSettler({ collect: fullCollection, collections: 3, apartMs: 10_000 });
