import type { consistency } from "@felhom/protocol";
import type { z } from "zod";
import type { QuiesceHandle } from "./executor.ts";
import type { QuiescePlan } from "./plan.ts";

/**
 * What the quiesce itself makes of the copy, before any question of timing: "crash" when a step failed
 * with on-error=continue, or when a container was only frozen (`pause` without a pre hook): the cgroup
 * freezer stops the processes mid-work, and a database copied that way runs crash recovery when restored
 * (consistency-facts.md, sequence C). A pause with a pre hook that succeeded (a flush) counts as app, like
 * `exec`; an `exec` with only a post hook did nothing before the snapshot and counts as crash. `none` is the
 * operator's statement that the service needs nothing, and is not counted.
 */
export function quiesceConsistency(
  plan: QuiescePlan,
  handle: Pick<QuiesceHandle, "failures" | "quiesced">,
): z.infer<typeof consistency> {
  if (handle.failures.length > 0) return "crash";
  const frozen = new Set(handle.quiesced.map((q) => `${q.project}/${q.service}`));
  // A freeze without a flush, or an exec whose only hook runs after the snapshot: nothing made the data
  // consistent before the snapshot.
  const unflushed = plan.levels
    .flat()
    .some(
      (s) =>
        (s.strategy === "pause" || s.strategy === "exec") &&
        !s.pre &&
        frozen.has(`${s.project}/${s.service}`),
    );
  return unflushed ? "crash" : "app";
}
