import { z } from "zod";
import { type LabelIssue, parsePolicy, quiesceLabels } from "./labels.ts";
import type { StackFacts } from "./stack-facts.ts";

/**
 * The quiesce plan: which container gets what, in which order. Pure — built from discovered facts, no
 * I/O — and plain JSON, because it is journalled before the first container is touched and replayed by
 * a fresh process after a crash. The schema below is the one the journal validates against.
 */

const containerState = z.enum(["created", "running", "paused", "restarting", "removing", "exited", "dead"]);

export const plannedContainerSchema = z.object({
  id: z.string(),
  name: z.string(),
  /** State when the plan was made; only "running" containers are ever acted on. */
  priorState: containerState,
});

export const plannedServiceSchema = z.object({
  project: z.string(),
  service: z.string(),
  strategy: z.enum(["stop", "pause", "exec"]),
  onError: z.enum(["abort", "continue"]),
  /** Bound for each hook and for the health wait on resume. */
  timeoutMs: z.number().int().positive(),
  /** `t` for Docker's stop: the service's own stop_grace_period, or Docker's 10 s. */
  stopGraceS: z.number().int().nonnegative(),
  stopSignal: z.string().nullable(),
  pre: z.array(z.string()).nullable(),
  post: z.array(z.string()).nullable(),
  healthcheck: z.boolean(),
  dependsOn: z.array(z.string()),
  /**
   * Planned services of the same project that depend on this one, directly or through others (also
   * through services left untouched): quiesced before it, resumed after it. The executor starts each
   * service as soon as these allow instead of waiting for a whole level.
   */
  dependents: z.array(z.string()),
  /** Running containers of the service: the only ones quiesce touches. */
  containers: z.array(plannedContainerSchema),
  /** Containers that were not running: left alone, never started. */
  leftAlone: z.array(plannedContainerSchema),
});

export const quiescePlanSchema = z.object({
  /** Quiesce order: dependents first. Resume runs the levels in reverse. Each level runs in parallel. */
  levels: z.array(z.array(plannedServiceSchema)),
  /** Services with strategy "none". */
  untouched: z.array(z.object({ project: z.string(), service: z.string() })),
});

export type PlannedContainer = z.infer<typeof plannedContainerSchema>;
export type PlannedService = z.infer<typeof plannedServiceSchema>;
export type QuiescePlan = z.infer<typeof quiescePlanSchema>;

export interface PlanOptions {
  /** Hook and health-wait bound for services without felhom.quiesce.timeout. @default 60 s */
  defaultTimeoutS?: number;
  /**
   * A stop-mode backup: the whole guest goes down. A frozen (paused) container makes no sense there, so
   * `pause` becomes `stop`; and `none` is not "untouched" any more (the shutdown stops it too), so it is
   * planned like `exec` without hooks: journalled, left running until the shutdown, started again after
   * the boot if it does not come back by itself.
   */
  guestGoesDown?: boolean;
}

export type PlanIssue = LabelIssue;

export type PlanResult = { ok: true; plan: QuiescePlan } | { ok: false; issues: PlanIssue[] };

const DOCKER_DEFAULT_GRACE_S = 10;

export function buildPlan(stacks: StackFacts[], options: PlanOptions = {}): PlanResult {
  const defaultTimeoutS = options.defaultTimeoutS ?? 60;
  const issues: PlanIssue[] = [];
  const levels: PlannedService[][] = [];
  const untouched: QuiescePlan["untouched"] = [];

  for (const stack of stacks) {
    const depth = quiesceDepths(stack, issues);
    const closure = transitiveDependents(stack);
    const plannedHere: PlannedService[] = [];
    for (const svc of stack.services) {
      const first = svc.containers[0];
      if (!first) continue;
      const { policy, issues: labelIssues } = parsePolicy(first.name, first.labels);
      issues.push(...labelIssues);
      const reference = JSON.stringify(quiesceLabels(first.labels));
      for (const other of svc.containers.slice(1)) {
        if (JSON.stringify(quiesceLabels(other.labels)) !== reference) {
          issues.push({
            container: other.name,
            label: "felhom.quiesce*",
            message: `labels differ from ${first.name} of the same service ${stack.project}/${svc.name}`,
          });
        }
      }
      const toRef = (c: (typeof svc.containers)[number]): PlannedContainer => ({
        id: c.id,
        name: c.name,
        priorState: c.state,
      });
      const strategy = !options.guestGoesDown
        ? policy.strategy
        : policy.strategy === "pause"
          ? "stop"
          : policy.strategy === "none"
            ? "exec"
            : policy.strategy;
      if (strategy === "none") {
        untouched.push({ project: stack.project, service: svc.name });
        continue;
      }
      const planned: PlannedService = {
        project: stack.project,
        service: svc.name,
        strategy,
        onError: policy.onError,
        timeoutMs: Math.round((policy.timeoutS ?? defaultTimeoutS) * 1000),
        stopGraceS: first.stopTimeoutS ?? DOCKER_DEFAULT_GRACE_S,
        stopSignal: first.stopSignal ?? null,
        pre: policy.pre ?? null,
        post: policy.post ?? null,
        healthcheck: first.hasHealthcheck,
        dependsOn: svc.dependsOn,
        dependents: [],
        containers: svc.containers.filter((c) => c.state === "running").map(toRef),
        leftAlone: svc.containers.filter((c) => c.state !== "running").map(toRef),
      };
      const d = depth.get(svc.name) ?? 0;
      while (levels.length <= d) levels.push([]);
      levels[d]!.push(planned);
      plannedHere.push(planned);
    }
    const plannedNames = new Set(plannedHere.map((p) => p.service));
    for (const p of plannedHere) {
      p.dependents = [...(closure.get(p.service) ?? [])].filter((n) => plannedNames.has(n)).sort();
    }
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, plan: { levels: levels.filter((l) => l.length > 0), untouched } };
}

/** The services in the order resume visits them: dependencies first. */
export function resumeLevels(plan: QuiescePlan): PlannedService[][] {
  return [...plan.levels].reverse();
}

export function formatPlanIssues(issues: PlanIssue[]): string {
  return issues.map((i) => `${i.container}: ${i.label}: ${i.message}`).join("; ");
}

function transitiveDependents(stack: StackFacts): Map<string, Set<string>> {
  const direct = new Map<string, string[]>();
  for (const s of stack.services)
    for (const d of s.dependsOn) direct.set(d, [...(direct.get(d) ?? []), s.name]);
  const closure = new Map<string, Set<string>>();
  for (const s of stack.services) {
    const seen = new Set<string>();
    const todo = [...(direct.get(s.name) ?? [])];
    while (todo.length > 0) {
      const n = todo.pop()!;
      if (seen.has(n) || n === s.name) continue;
      seen.add(n);
      todo.push(...(direct.get(n) ?? []));
    }
    closure.set(s.name, seen);
  }
  return closure;
}

/**
 * Depth 0 = nothing depends on the service; otherwise one more than its deepest dependent. Quiescing by
 * increasing depth stops every dependent before what it depends on; a cycle is a plan issue.
 */
function quiesceDepths(stack: StackFacts, issues: PlanIssue[]): Map<string, number> {
  const dependents = new Map<string, string[]>();
  for (const s of stack.services) dependents.set(s.name, []);
  for (const s of stack.services) for (const d of s.dependsOn) dependents.get(d)?.push(s.name);
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (name: string): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (visiting.has(name)) {
      issues.push({
        container: `${stack.project}/${name}`,
        label: "depends_on",
        message: "dependency cycle; cannot order quiesce",
      });
      return 0;
    }
    visiting.add(name);
    let d = 0;
    for (const dep of dependents.get(name) ?? []) d = Math.max(d, visit(dep) + 1);
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const s of stack.services) visit(s.name);
  return depth;
}
