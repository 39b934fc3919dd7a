/** What a `gap` event declares: seqs in [fromSeq, toSeq] the hub has not received are lost for good. */
export interface GapInfo {
  fromSeq: number;
  toSeq: number;
  /** Events dropped (gap records that were merged into this one are not counted). */
  count: number;
  /** Distinct kinds of the dropped events, sorted. */
  kinds: string[];
}

/** The part of an outbox entry the overflow policy looks at. */
export interface OverflowCandidate {
  seq: number;
  kind: string;
  bytes: number;
  /** Progress-type events: dropped before anything else. */
  droppableFirst: boolean;
  /** Set on gap records: they are never lost, only merged into the new gap. */
  gap?: GapInfo;
}

export interface OverflowLimits {
  maxEvents: number;
  maxBytes: number;
}

/** Room kept for the gap record that replaces the victims. */
export const GAP_RESERVE_BYTES = 1_024;

/** The outbox as the policy sees it; the iterables are walked lazily, oldest first. */
export interface OverflowView {
  count: number;
  bytes: number;
  gaps: Iterable<OverflowCandidate>;
  droppableFirst: Iterable<OverflowCandidate>;
  all: Iterable<OverflowCandidate>;
}

/**
 * Pure: which entries to drop so that the outbox fits its limits again, with room for one gap record.
 * Victims are the oldest progress-type events first, then the oldest of anything. Every existing gap
 * record is merged into the new one as well (whether or not it had to go for room), so a long outage
 * leaves one gap, not one per overflowing append. The views are walked only as far as needed, so an
 * append into a full outbox costs the victims it makes, not the outbox's size. Returns the seqs to drop
 * and the gap that covers them, or nothing when the outbox already fits.
 */
export function planOverflow(
  view: OverflowView,
  limits: OverflowLimits,
): { drop: number[]; gap: GapInfo } | undefined {
  if (view.count <= limits.maxEvents && view.bytes <= limits.maxBytes) return undefined;

  const victims = new Map<number, OverflowCandidate>();
  let count = view.count;
  let bytes = view.bytes;
  const take = (e: OverflowCandidate) => {
    if (victims.has(e.seq)) return;
    victims.set(e.seq, e);
    count--;
    bytes -= e.bytes;
  };
  // Old gaps always go: they are folded into the new gap, which takes one slot of its own.
  for (const e of view.gaps) take(e);
  const fits = () => count + 1 <= limits.maxEvents && bytes + GAP_RESERVE_BYTES <= limits.maxBytes;
  for (const source of [view.droppableFirst, view.all]) {
    for (const e of source) {
      if (fits()) break;
      take(e);
    }
  }

  let fromSeq = Number.POSITIVE_INFINITY;
  let toSeq = 0;
  let dropped = 0;
  const kinds = new Set<string>();
  for (const v of victims.values()) {
    if (v.gap) {
      fromSeq = Math.min(fromSeq, v.gap.fromSeq);
      // The old gap's own seq becomes a hole too; the new gap must cover it.
      toSeq = Math.max(toSeq, v.seq, v.gap.toSeq);
      dropped += v.gap.count;
      for (const k of v.gap.kinds) kinds.add(k);
    } else {
      fromSeq = Math.min(fromSeq, v.seq);
      toSeq = Math.max(toSeq, v.seq);
      dropped++;
      kinds.add(v.kind);
    }
  }
  return {
    drop: [...victims.keys()].sort((a, b) => a - b),
    gap: { fromSeq, toSeq, count: dropped, kinds: [...kinds].sort() },
  };
}
