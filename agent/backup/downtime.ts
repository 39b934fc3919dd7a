import type { EventOf } from "@felhom/protocol";
import { eventLine } from "../lib/report-text.ts";
import type { ResumeReport } from "../quiesce/executor.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";
import type { TimelineEntry } from "./backup-machine.ts";

type ServiceDowntime = EventOf<"backup.completed">["downtime"][number];
export type DowntimeBreakdown = NonNullable<ServiceDowntime["breakdown"]>;

/** A good archive can still leave a container down: each failed resume step, as a warning line. */
export function resumeWarnings(report: Pick<ResumeReport, "failures">): string[] {
  return report.failures.map((f) => eventLine(`resume: ${f.action} of ${f.container} failed: ${f.message}`));
}

/**
 * Per planned service: first container quiesced → last resumed (what the resume report measured), and
 * where that time went. `timeline` is the run's (backup-machine.ts); without it (a journal replayed at
 * start: the run that quiesced is gone) only the resume's part is known.
 */
export function downtimeOf(
  report: ResumeReport,
  plan: QuiescePlan,
  timeline?: readonly TimelineEntry[],
): ServiceDowntime[] {
  return plan.levels.flat().flatMap((s) => {
    const k = `${s.project}/${s.service}`;
    const ms = report.downtimeMs[k];
    if (ms === undefined) return [];
    const span = report.spans[k];
    const entry = {
      project: s.project,
      service: s.service,
      strategy: s.strategy,
      downtimeMs: Math.round(ms),
    };
    return [span ? { ...entry, breakdown: breakdownOf(span, report.startedAt, timeline) } : entry];
  });
}

/**
 * One service's downtime cut at the run's instants: down → POST sent (`submit`) → the last log read
 * without the snapshot line → the resume decided → up. Each cut is held inside the ones around it, so the
 * parts are never negative and add up to the window exactly (a deadline that resumed before the POST
 * leaves `pveMs` 0, say). See `serviceDowntime` in protocol/schemas/events.ts for what each part means.
 */
export function breakdownOf(
  span: { readonly down: number; readonly up: number },
  resumeStarted: number,
  timeline: readonly TimelineEntry[] | undefined,
): DowntimeBreakdown {
  const step = (name: TimelineEntry["step"]) => timeline?.find((e) => e.step === name);
  const submit = step("submit");
  const resume = step("resume");
  if (!submit || !resume)
    return { resumeMs: Math.max(0, Math.round(span.up - Math.max(span.down, resumeStarted))) };
  const within = (t: number, lo: number, hi: number) => Math.round(Math.min(hi, Math.max(lo, t)));
  const posted = within(submit.at, span.down, span.up);
  const resumed = within(resume.at, posted, span.up);
  const up = Math.round(span.up);
  const parts = { quiesceMs: posted - Math.round(span.down), resumeMs: up - resumed };
  // Only a log line that released the stacks splits the wait; a deadline or the task's end does not.
  const line = step("snapshot");
  if (line?.lineAfter === undefined || line.at !== resume.at) return { ...parts, pveMs: resumed - posted };
  const appeared = within(line.lineAfter, posted, resumed);
  return { ...parts, pveMs: appeared - posted, noticeMs: resumed - appeared };
}
