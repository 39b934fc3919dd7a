/**
 * The `felhom.quiesce*` container labels (set as compose service `labels:`) parsed into a policy.
 * Pure. Every problem is returned as an issue that names the container and the label, so a typo is
 * reported before any downtime instead of silently falling back to the default.
 */

export const LABELS = {
  strategy: "felhom.quiesce",
  timeout: "felhom.quiesce.timeout",
  onError: "felhom.quiesce.on-error",
  pre: "felhom.quiesce.pre",
  post: "felhom.quiesce.post",
} as const;

const KNOWN = new Set<string>(Object.values(LABELS));
const STRATEGIES = ["stop", "pause", "exec", "none"] as const;
const ON_ERROR = ["abort", "continue"] as const;
/** An hour: a larger per-step bound is almost certainly a unit mistake (ms for s). */
const MAX_TIMEOUT_S = 3600;

export type Strategy = (typeof STRATEGIES)[number];
export type OnError = (typeof ON_ERROR)[number];

export interface QuiescePolicy {
  strategy: Strategy;
  /** Bound for each hook and for the health wait on resume; undefined = the plan's default. */
  timeoutS: number | undefined;
  onError: OnError;
  /** argv run inside the container before quiescing it; undefined = none. */
  pre: string[] | undefined;
  /** argv run inside the container after resuming it. */
  post: string[] | undefined;
}

export interface LabelIssue {
  container: string;
  label: string;
  message: string;
}

export const DEFAULT_POLICY: QuiescePolicy = {
  strategy: "stop",
  timeoutS: undefined,
  onError: "abort",
  pre: undefined,
  post: undefined,
};

/**
 * A hook is either a JSON array of strings (exec form, no shell) or any other string, which runs as
 * `sh -c <string>` inside the container, like compose's own string-form `command`.
 */
export function parseHookCommand(value: string): { argv: string[] } | { error: string } {
  const trimmed = value.trim();
  if (trimmed === "") return { error: "is empty" };
  if (trimmed.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      return { error: "starts with '[' but is not a valid JSON array" };
    }
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((a) => typeof a === "string")) {
      return { error: "must be a non-empty JSON array of strings" };
    }
    return { argv: parsed };
  }
  return { argv: ["sh", "-c", trimmed] };
}

export function parsePolicy(
  container: string,
  labels: Record<string, string>,
): { policy: QuiescePolicy; issues: LabelIssue[] } {
  const issues: LabelIssue[] = [];
  const issue = (label: string, message: string) => issues.push({ container, label, message });
  const policy: QuiescePolicy = { ...DEFAULT_POLICY };

  for (const key of Object.keys(labels)) {
    if ((key === LABELS.strategy || key.startsWith(`${LABELS.strategy}.`)) && !KNOWN.has(key)) {
      issue(key, `unknown label; known: ${[...KNOWN].join(", ")}`);
    }
  }

  const strategy = labels[LABELS.strategy];
  if (strategy !== undefined) {
    const s = strategy.trim();
    if ((STRATEGIES as readonly string[]).includes(s)) policy.strategy = s as Strategy;
    else issue(LABELS.strategy, `value ${JSON.stringify(strategy)} is not one of ${STRATEGIES.join(", ")}`);
  }

  const timeout = labels[LABELS.timeout];
  if (timeout !== undefined) {
    const n = Number(timeout.trim().replace(/s$/, ""));
    if (timeout.trim() === "" || !Number.isFinite(n) || n <= 0 || n > MAX_TIMEOUT_S) {
      issue(
        LABELS.timeout,
        `value ${JSON.stringify(timeout)} must be a number of seconds in (0, ${MAX_TIMEOUT_S}]`,
      );
    } else policy.timeoutS = n;
  }

  const onError = labels[LABELS.onError];
  if (onError !== undefined) {
    const v = onError.trim();
    if ((ON_ERROR as readonly string[]).includes(v)) policy.onError = v as OnError;
    else issue(LABELS.onError, `value ${JSON.stringify(onError)} is not one of ${ON_ERROR.join(", ")}`);
  }

  for (const phase of ["pre", "post"] as const) {
    const raw = labels[LABELS[phase]];
    if (raw === undefined) continue;
    const parsed = parseHookCommand(raw);
    if ("error" in parsed) issue(LABELS[phase], `hook ${parsed.error}`);
    else policy[phase] = parsed.argv;
  }

  if (policy.strategy === "none" && (policy.pre || policy.post)) {
    issue(
      LABELS.strategy,
      `strategy "none" leaves the service untouched, so it cannot have ${LABELS.pre}/${LABELS.post}`,
    );
  }
  if (policy.strategy === "exec" && !policy.pre && !policy.post) {
    issue(LABELS.strategy, `strategy "exec" needs a ${LABELS.pre} and/or ${LABELS.post} command`);
  }
  return { policy, issues };
}

/** Only the felhom.quiesce* labels, for comparing replicas of one service. */
export function quiesceLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (k === LABELS.strategy || k.startsWith(`${LABELS.strategy}.`)) out[k] = v;
  }
  return out;
}
