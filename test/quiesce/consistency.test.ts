import { describe, expect, it } from "vitest";
import { quiesceConsistency } from "../../agent/quiesce/consistency.ts";
import { buildPlan, type QuiescePlan } from "../../agent/quiesce/plan.ts";
import { container, stacksOf } from "./support/builders.ts";

function plan(labels: Record<string, string>): QuiescePlan {
  const result = buildPlan(stacksOf(container("p", "db", { image: "postgres:16", labels })));
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.plan;
}

/** Everything in the plan was quiesced without a failure. */
const clean = (p: QuiescePlan) => ({
  failures: [],
  quiesced: p.levels.flat().map((s) => ({ project: s.project, service: s.service, container: "c" })),
});

describe("what the quiesce makes of the copy", () => {
  it.each([
    ["stop", {}, "app"],
    ["exec with a pre hook", { "felhom.quiesce": "exec", "felhom.quiesce.pre": "pg_dumpall -f /x" }, "app"],
    ["pause with a pre hook", { "felhom.quiesce": "pause", "felhom.quiesce.pre": "sync" }, "app"],
    ["a bare pause", { "felhom.quiesce": "pause" }, "crash"],
    ["exec with only a post hook", { "felhom.quiesce": "exec", "felhom.quiesce.post": "true" }, "crash"],
    ["none (the operator's choice)", { "felhom.quiesce": "none" }, "app"],
  ] as const)("%s: %s", (_what, labels, expected) => {
    const p = plan(labels);
    expect(quiesceConsistency(p, clean(p))).toBe(expected);
  });

  it("is crash when a step failed with on-error continue", () => {
    const p = plan({});
    const failure = {
      project: "p",
      service: "db",
      container: "c",
      action: "stop" as const,
      code: "x",
      message: "x",
    };
    expect(quiesceConsistency(p, { ...clean(p), failures: [failure] })).toBe("crash");
  });
});
