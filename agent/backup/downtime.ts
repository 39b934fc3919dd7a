import type { EventOf } from "@felhom/protocol";
import type { ResumeReport } from "../quiesce/executor.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";

/** A good archive can still leave a container down: each failed resume step, as a warning line. */
export function resumeWarnings(report: Pick<ResumeReport, "failures">): string[] {
  return report.failures.map((f) =>
    `resume: ${f.action} of ${f.container} failed: ${f.message}`.slice(0, 1000),
  );
}

/** Per planned service: first container quiesced → last resumed (what the resume report measured). */
export function downtimeOf(report: ResumeReport, plan: QuiescePlan): EventOf<"backup.completed">["downtime"] {
  return plan.levels.flat().flatMap((s) => {
    const ms = report.downtimeMs[`${s.project}/${s.service}`];
    return ms === undefined
      ? []
      : [{ project: s.project, service: s.service, strategy: s.strategy, downtimeMs: Math.round(ms) }];
  });
}
