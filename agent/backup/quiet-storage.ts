import { sleep } from "../pve/retry.ts";

/**
 * Before a scheduled backup quiesces (and before each busy retry; not before the first attempt of a run at its
 * learned place, agent/app/scheduled-backup.ts), a look at whether another guest's backup is being written: the node's vzdump lock is taken inside the task, after the agent has quiesced, and a
 * guest-scoped token cannot list the other guests' tasks (pve-manager PVE/API2/Tasks.pm `node_tasks` shows
 * other users' tasks only with Sys.Audit on /nodes), so the first attempt of a guest would otherwise find the
 * node busy about as often as it is busy, each refusal an outage and a failed-job mail to the PVE admin.
 *
 * What the token can see is its backup storage's `used` (Datastore.AllocateSpace suffices: pve-storage
 * PVE/API2/Storage/Status.pm `read_status`). PVE computes it on every call, not from pvestatd's cache:
 * `read_status` calls PVE::Storage `storage_info`, which asks each plugin's `status`; for the storages that
 * take backups that is `df` of the storage's path (PVE/Storage/Plugin.pm `status` via PVE::Tools::df, used by
 * the dir, NFS, CIFS, CephFS and btrfs plugins) or, on a Proxmox Backup Server, the datastore's own status
 * (PVE/Storage/PBSPlugin.pm `status`, `proxmox-backup-client status`). While another guest's archive is
 * written there, `used` grows at the archive's (compressed) rate; a PBS grows only by chunks it did not have,
 * so there a busy node is seen less often and the retries below remain the answer.
 *
 * Decision (issue 15, measured by `npm run bench -- fleet`): two looks `sampleMs` apart; growth of at least
 * BUSY_GROWTH_BYTES_PER_S means "probably busy": wait a random `recheckMs` ± 50 % (so that waiting guests
 * spread out and one goes first when the growth stops) and look again; after every BACKOFF_AFTER_BUSY busy
 * checks in a row the nominal wait doubles, up to MAX_BACKOFF times `recheckMs` (a long archive is seen just as
 * well less often, and each look costs PVE a `storage_info`, below). A check that sees no growth is confirmed by
 * a second one after a hold-off: another guest that has just taken the node's lock takes seconds (the snapshot,
 * its mount, the archiver's start) before its archive's first bytes, and a single look in that hand-over window
 * sees "quiet" and quiesces into a refusal; the two checks and the hold-off between them span that window (two
 * bare samples, 4 s at the default, cover a quick snapshot's; a look ahead of an attempt holds off at least half
 * the nominal, and a waiting guest's draw may be shorter, the price of a quicker hand-over).
 * After a check that saw growth the hold-off is drawn from 0 to 1.5 × `holdOffMs`: it is what orders the guests
 * that all saw the same archive end, and the one that drew the shortest goes while the others' confirmations
 * still see its archive start. A floor of half the nominal (the first shipped draw, ± 50 %) made every hand-over
 * that much longer and ordered the waiters no better: what orders them is the difference of their draws, and a
 * wider draw spreads them more (README "A node full of agents" has the fleet bench's figures before and after).
 * A look ahead of an attempt's time (`until`, below) does not draw: its confirmation ends at the attempt's time,
 * which is itself a random draw (the slot's jitter, a retry's delay). A chain's waits together never exceed
 * `budgetMs`, after which it goes anyway, so that an unrelated writer to the storage delays a backup by at most
 * that, never starves it. A storage that cannot be read is no reason to wait. This is a guess that only moves
 * the start: the lock's refusal and the busy retries (busy-retry.ts) stay the guarantee.
 *
 * The cost on PVE: `read_status` is a protected call (pveproxy hands it to pvedaemon, whose few workers all
 * API calls share) and computes `storage_info` over every storage enabled on the node, not only this one
 * (pve-storage PVE/Storage.pm `storage_info`: `activate_storage` and the plugin's `status` of each, e.g. an
 * NFS `df`, `lvs`, `zfs get`, a PBS client call), then returns this storage's entry.
 */

/** Busy checks in a row after which the nominal wait between checks doubles. */
export const BACKOFF_AFTER_BUSY = 4;
/** The nominal wait between checks grows to at most this many times `recheckMs`. */
export const MAX_BACKOFF = 4;

/** 5 MB/s: an archive writes tens to hundreds of MB/s; logs and the like on a shared file system far less. */
export const BUSY_GROWTH_BYTES_PER_S = 5_000_000;

export interface QuietStorageTiming {
  /** Between the two looks of one check. */
  sampleMs: number;
  /** The nominal wait after a check that saw growth (each drawn ± 50 %), before the back-off. */
  recheckMs: number;
  /**
   * The nominal wait between a check that saw no growth and the one that confirms it: drawn from 0 to 1.5 times
   * this after a check that saw growth; in a look ahead of an attempt's time, until one sample before that time
   * (this much when the look began on time), at least half of this.
   */
  holdOffMs: number;
  /** All waits of one request's chain together, at most. */
  budgetMs: number;
}

/**
 * The timing for a busy_retry base of `baseSeconds`, scaled with it (an admin who sets quicker retries wants
 * quicker looks; the fleet bench scales both): with the default 60 s, looks 2 s apart, re-checks every
 * 7.5 s ± 50 % (15 s after 4 busy checks, 30 s after 8), a quiet check confirmed after 4 s when the look began
 * ahead of the attempt (8 s ahead: no delay on a quiet node) and after 0-6 s once growth was seen, at most
 * 10 minutes of waiting per slot (the longest retry delay). Per waiting guest two GETs a check: about 12 a
 * minute for its first half minute, 7 for the next, then 4; per attempt on a quiet node 4 GETs.
 * Measured at N=30 on
 * the first night (bench scale: looks and re-checks ÷ 6): looks 5 s apart cost the lock the first look of
 * every guest (utilisation 0.64); re-checks every 10 s refused 6-9 tasks at 0.64-0.65, every 5 s 15 at 0.72
 * (the more often waiting guests look, the more of them go in the same moment the growth stops), every 7.5 s
 * 5 at 0.67 (two full runs; without any look, 35 at 0.45; before the hold-off and the back-off). With them,
 * the look off and on in the same run, twice: 6 and 14 refused at 0.54 and 0.52, against 38 and 22 at 0.51 and
 * 0.65 without the look. With the look ahead of the attempt and the hold-off after growth drawn from 0, in a
 * bench that holds the lock a scaled 1.5 s around each archive (a real node's snapshot mount and removal): 13
 * refused at 0.68 against 17 at 0.60 with the code before, the first night of two runs one after the other
 * (README "A node full of agents"). A slower
 * look also misses less on a ZFS-backed directory, whose `df` moves at each transaction group commit (5 s by
 * default): there a 2 s look sees some growths and lets the others go, as without looking.
 */
export function quietStorageTiming(baseSeconds: number): QuietStorageTiming {
  const baseMs = baseSeconds * 1000;
  return {
    sampleMs: Math.min(2_000, baseMs / 30),
    recheckMs: baseMs / 8,
    holdOffMs: Math.min(4_000, baseMs / 15),
    budgetMs: 10 * baseMs,
  };
}

/**
 * How long before an attempt's time its look starts, so that on a quiet storage it ends at that time (two
 * samples around the hold-off, waitForQuietStorage's `until`) and the attempt quiesces when it would have without
 * a look: a look that began at the attempt's time left the node's lock idle for its length each time the node
 * was free (the fleet bench's first night: 1.0-1.5 s a backup at bench scale, 8 s at the default timing).
 */
export function quietLookAheadMs(timing: QuietStorageTiming): number {
  return 2 * timing.sampleMs + timing.holdOffMs;
}

/** The hold-off before a confirming check, drawn from 0 to 1.5 × the nominal (the decision above); pure. */
export function holdOffDrawMs(timing: QuietStorageTiming, random: () => number): number {
  return Math.round(timing.holdOffMs * 1.5 * random());
}

/** Whether `used` grew like an archive being written between two looks `ms` apart; pure. */
export function storageLooksBusy(before: number | undefined, after: number | undefined, ms: number): boolean {
  if (before === undefined || after === undefined || ms <= 0) return false;
  return ((after - before) / ms) * 1000 >= BUSY_GROWTH_BYTES_PER_S;
}

/**
 * After the `busyChecks`-th check in a row that saw growth: how long to wait before the next one, or undefined
 * to go now because the chain's budget is spent (`waitedMs` so far). The last wait is cut to what is left of
 * the budget. Pure.
 */
export function nextQuietCheckMs(
  timing: QuietStorageTiming,
  waitedMs: number,
  random: () => number = Math.random,
  busyChecks = 1,
): number | undefined {
  const left = timing.budgetMs - waitedMs;
  if (left <= 0) return undefined;
  const backoff = Math.min(MAX_BACKOFF, 2 ** Math.floor(Math.max(0, busyChecks - 1) / BACKOFF_AFTER_BUSY));
  return Math.min(left, Math.round(timing.recheckMs * backoff * (0.5 + random())));
}

/** How a wait ended: `budget` when the chain's budget ran out while the storage still grew. */
export interface QuietWait {
  waitedMs: number;
  ended: "quiet" | "budget" | "unreadable" | "aborted";
}

/** Sleeps `ms`, or less when `signal` aborts; never rejects. */
const pause = (ms: number, signal: AbortSignal) => sleep(ms, signal).catch(() => undefined);

/**
 * Waits while the storage looks busy, within what is left of the chain's budget; resolves as soon as a check
 * that saw no growth is confirmed by another after the hold-off, the budget is spent, the storage cannot be
 * read or `signal` aborts, with the time waited (what the budget lost, the looks included) and why it ended.
 */
export async function waitForQuietStorage(o: {
  timing: QuietStorageTiming;
  /** The storage's `used` now; undefined (or a rejection) when it cannot be read; `signal` aborts the read. */
  used: (signal: AbortSignal) => Promise<number | undefined>;
  /** Already waited by this chain. */
  waitedMs: number;
  /**
   * When the attempt is due (ms epoch), for a look that starts ahead of it (quietLookAheadMs): the first
   * confirmation's hold-off lasts until one sample before it, so that on a quiet storage the wait ends at the
   * attempt's time with a fresh verdict; the wait counts against the budget only from then.
   */
  until?: number;
  signal: AbortSignal;
  /** Each wait after a check that saw growth, for the log. */
  onBusy?: (growthBytesPerS: number, waitMs: number) => void;
  now?: () => number;
  random?: () => number;
}): Promise<QuietWait> {
  const now = o.now ?? Date.now;
  const random = o.random ?? Math.random;
  const started = Math.max(now(), o.until ?? 0);
  const read = () => o.used(o.signal).catch(() => undefined);
  const end = (ended: QuietWait["ended"]): QuietWait => ({
    waitedMs: Math.max(0, now() - started),
    ended: o.signal.aborted ? "aborted" : ended,
  });
  let busyChecks = 0;
  let sawGrowth = false;
  let confirming = false;
  while (!o.signal.aborted) {
    const t0 = now();
    const before = await read();
    if (before === undefined) return end("unreadable");
    await pause(o.timing.sampleMs, o.signal);
    const after = await read();
    const ms = now() - t0;
    if (o.signal.aborted) break;
    if (after === undefined) return end("unreadable");
    if (!storageLooksBusy(before, after, ms)) {
      if (confirming) return end("quiet");
      busyChecks = 0;
      if (o.waitedMs + now() - started >= o.timing.budgetMs) return end("budget");
      confirming = true;
      // Ahead of the attempt's time, the confirmation ends at that time, or, when the look began late (a tick
      // late, a delay shorter than the look), half the nominal hold-off later, as the shortest hold-off before
      // the look began ahead: a look of two bare checks spans only twice the sample of a hand-over window. Once
      // growth was seen, the draw orders the waiting guests.
      const holdOff =
        o.until !== undefined && !sawGrowth
          ? Math.max(o.timing.holdOffMs / 2, o.until - now() - o.timing.sampleMs)
          : holdOffDrawMs(o.timing, random);
      await pause(holdOff, o.signal);
      continue;
    }
    confirming = false;
    busyChecks++;
    sawGrowth = true;
    const wait = nextQuietCheckMs(o.timing, o.waitedMs + now() - started, random, busyChecks);
    if (wait === undefined) return end("budget");
    o.onBusy?.(Math.round(((after - before) / ms) * 1000), wait);
    await pause(wait, o.signal);
  }
  return end("aborted");
}
