import type { Event } from "@felhom/protocol";
import type { GapInfo } from "./outbox-overflow.ts";

/**
 * Kinds that describe a moment and are superseded by the next one of their kind: on overflow they go
 * first. Phase changes, results, restore and identity notices are what the hub must not miss.
 */
const DROPPABLE_FIRST = new Set<Event["kind"]>(["backup.progress", "status"]);

export const isDroppableFirst = (event: Event): boolean => DROPPABLE_FIRST.has(event.kind);

export const kindOf = (event: Event): string => event.kind;

export function gapEvent(
  gap: GapInfo,
  reason: "outbox-overflow" | "already-acked" = "outbox-overflow",
): Event {
  return {
    kind: "gap",
    fromSeq: gap.fromSeq,
    toSeq: gap.toSeq,
    count: Math.max(1, gap.count),
    kinds: gap.kinds.slice(0, 32),
    reason,
  };
}
