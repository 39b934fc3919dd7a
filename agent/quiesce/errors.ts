import { AgentError } from "../lib/errors.ts";
import { formatPlanIssues, type PlanIssue } from "./plan.ts";

export class PlanInvalidError extends AgentError {
  readonly issues: PlanIssue[];
  constructor(issues: PlanIssue[]) {
    super("plan_invalid", `quiesce labels are invalid: ${formatPlanIssues(issues)}`, {
      hint: "fix the felhom.quiesce* labels of the named containers (see agent/quiesce/README.md) and recreate them",
    });
    this.issues = issues;
  }
}

export class HookFailedError extends AgentError {
  constructor(container: string, phase: "pre" | "post", detail: string) {
    super("hook_failed", `${phase} hook in container ${container} ${detail}`, {
      hint: `check the felhom.quiesce.${phase} label; the captured output is in the report`,
    });
  }
}

export class HealthTimeoutError extends AgentError {
  constructor(container: string, waitedMs: number, last: string | undefined) {
    super(
      "health_timeout",
      `container ${container} was started but not healthy after ${Math.round(waitedMs / 1000)} s (last: ${last ?? "unknown"})`,
      { hint: "it keeps running; raise felhom.quiesce.timeout if it is merely slow to become healthy" },
    );
  }
}

export class QuiesceFailedError extends AgentError {
  constructor(
    message: string,
    readonly failures: StepFailure[],
    /** What resuming the partly quiesced stacks did: the caller must not resume again. */
    readonly resumeReport: unknown,
  ) {
    super("quiesce_failed", message, { hint: "everything already quiesced was resumed; see the failures" });
  }
}

export class JournalUnfinishedError extends AgentError {
  constructor(path: string, backupId: string) {
    super("journal_unfinished", `quiesce journal ${path} of backup ${backupId} was never finished`, {
      hint: "call resumeFromJournal() first (the daemon does so at start)",
    });
  }
}

/** One failed step, as reported to the caller and the hub. */
export interface StepFailure {
  project: string;
  service: string;
  container: string;
  /** "journal": the step could not be recorded, so it was not taken. */
  action: "pre" | "stop" | "pause" | "start" | "unpause" | "health" | "post" | "journal";
  code: string;
  message: string;
}

/** An earlier resume left containers down, and retrying it did not bring them back. */
export class StacksDownError extends AgentError {
  constructor(readonly resumeReport: { backupId: string; failures: StepFailure[] }) {
    const down = resumeReport.failures
      .filter((f) => f.action === "start" || f.action === "unpause")
      .map((f) => `${f.container}: ${f.message}`)
      .join("; ");
    super(
      "stacks_down",
      `containers quiesced by ${resumeReport.backupId} could not be started again: ${down}`.slice(0, 2000),
      {
        hint: "find out why they do not start (docker start <name>, docker logs <name>); nothing new is quiesced until they run",
      },
    );
  }
}
