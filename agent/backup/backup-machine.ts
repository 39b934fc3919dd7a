import type { consistency } from "@felhom/protocol";
import type { z } from "zod";
import { FROZEN_AFTER_MS } from "../lib/late-timer.ts";
import type { VzdumpPhase } from "../pve/vzdump-log.ts";
import type { ResumeReport } from "../quiesce/executor.ts";
import type { BackupMode, BackupPhase } from "./backup-types.ts";
import type { RunPlan } from "./snapshot-plan.ts";

/**
 * A backup's decisions, apart from its driver (backup-run.ts): which phase it is in, when the stacks
 * resume and why, and whether the copy is app- or crash-consistent. Pure: events in (with the instant
 * they happened), the next state and the actions for the driver out. No timers, no I/O; every transition
 * has a unit test (test/backup/backup-machine.test.ts).
 *
 * The resume happens once, for whatever comes first: the snapshot exists (snapshot mode: the line after
 * PVE's snapshot, or `resume vm` after a suspend), the downtime deadline, a busy node lock, a failed
 * snapshot, a stalled task, the task's end, or an error. Only the snapshot and the task's end leave the
 * copy app-consistent; anything before the snapshot existed makes it crash-consistent, and so does the
 * executor's own backstop resuming before the run asked.
 *
 * PVE freezes the whole CT, this agent included, while it takes the storage snapshot. A deadline that falls
 * due in that freeze fires on thaw, before the agent has read the log line that says the snapshot exists
 * (it usually does: the freeze ends only after the volume snapshots). Such a deadline fires late, and after
 * the POST; it is held once for FREEZE_CONFIRM_MS so that the follower's next reads can show the snapshot.
 * A deadline that fires on time, or before the POST, resumes at once as before.
 *
 * A CT that cannot be snapshotted (snapshot-plan.ts) runs on a plan decided before the quiesce: hold the
 * stacks through suspend mode's two syncs (the deadline is the hold bound), nothing quiesced (crash), or
 * stop mode. PVE's own fallback (`trying 'suspend' mode instead`) either was planned for (`hold`: the
 * deadline moves to the hold bound) or was not (the stacks resume at once, crash, and the result says why).
 */

/**
 * How long a deadline that fired late waits for the snapshot line. After the thaw PVE mounts the snapshot
 * and runs the hook script before it logs the next line (VZDump/LXC.pm `snapshot`, VZDump.pm
 * `exec_backup_task`): typically well under a second.
 */
export const FREEZE_CONFIRM_MS = 10_000;

export type Consistency = z.infer<typeof consistency>;

export type TimelineStep = BackupPhase | "submitted" | "snapshot" | "resume" | "resumed";

/** Why the stacks were resumed. `fallback`: PVE fell back to suspend mode and no hold was planned. */
export type ResumeCause = "snapshot" | "deadline" | "task-ended" | "busy" | "error" | "fallback";

export interface BackupRunState {
  readonly mode: BackupMode;
  /** The main line's phase: the one a failure names. `resume` runs beside it and is never this. */
  readonly phase: BackupPhase;
  readonly consistency: Consistency;
  /** Containers were quiesced: there is something to resume. */
  readonly quiesced: boolean;
  /** PVE accepted the task (a UPID exists): it goes on even if this process stops following it. */
  readonly submitted: boolean;
  /** PVE refused the task at once: another guest's backup holds the node's vzdump lock. */
  readonly busy: boolean;
  /** The downtime deadline's timer runs (snapshot mode, from the quiesce to the snapshot). */
  readonly deadlineArmed: boolean;
  /** The deadline fired late, after a freeze, and was extended by FREEZE_CONFIRM_MS (once per run). */
  readonly deadlineHeld: boolean;
  /** Set once, when the resume was decided. */
  readonly resume: { readonly cause: ResumeCause; readonly at: number } | undefined;
  /** A shutdown interrupted the run after the POST: the next start follows the task and reports it. */
  readonly deferred: boolean;
  /** How this run goes, from the preflight (`planned`); absent before it. */
  readonly plan: RunPlan | undefined;
  /** The mode PVE ran, from vzdump's `backup mode: X` line. */
  readonly pveMode: string | undefined;
  /**
   * PVE fell back from snapshot to suspend mode: the stacks were held through it, resumed at once, or had
   * been resumed already (`resume.cause` says why: the downtime deadline passed before the line was read).
   */
  readonly fallback: "held" | "resumed" | "resumed-before" | undefined;
  /**
   * Every transition with its instant (ms since the epoch), in order: the phase list as it was lived,
   * and beside it the POST accepted (`submitted`), the snapshot line noticed (`snapshot`), the resume
   * decided and finished. What a per-phase downtime breakdown reads (waiting for PVE: `submitted` to
   * `snapshot`).
   */
  readonly timeline: readonly TimelineEntry[];
}

export interface TimelineEntry {
  readonly step: TimelineStep;
  readonly at: number;
  /**
   * `snapshot` only: the line appeared in the task log after this instant (the previous log read, which
   * did not have it, was sent then); `at` is when the agent acted on the read that returned it.
   */
  readonly lineAfter?: number;
}

/** What happened, as the driver saw it; `at` is when (ms since the epoch). */
export type BackupRunEvent = { readonly at: number } & (
  | { readonly type: "enter"; readonly phase: BackupPhase }
  /** The preflight decided how the run goes (snapshot-plan.ts): its mode may differ from the request's. */
  | { readonly type: "planned"; readonly plan: RunPlan }
  /** vzdump's `backup mode: X`: the mode PVE runs. */
  | { readonly type: "pve-mode"; readonly mode: string }
  /** The quiesce finished; `consistency` is what the quiesce itself made of the copy (consistency.ts). */
  | { readonly type: "quiesced"; readonly consistency: Consistency }
  | { readonly type: "submitted" }
  /** A phase recognised in the task's log (vzdump-log.ts); `seen`: when its line appeared (task-follower.ts). */
  | {
      readonly type: "task-phase";
      readonly phase: VzdumpPhase["phase"];
      readonly seen?: { readonly after: number; readonly by: number };
    }
  /** The deadline's timer fired, `lateMs` after it was due (monotonic: a freeze of the CT makes it late). */
  | { readonly type: "deadline-passed"; readonly lateMs: number }
  /** The task made no progress within its bounds (stall-watch.ts) and is being stopped. */
  | { readonly type: "task-stalled" }
  /** The follower saw the task's end. */
  | { readonly type: "task-ended" }
  /** The executor finished the resume; `trigger` says who started it (the run, or its backstop). */
  | { readonly type: "resumed"; readonly trigger: ResumeReport["trigger"] }
  /** The run failed; `shuttingDown`: the agent is stopping. */
  | { readonly type: "failed"; readonly shuttingDown: boolean }
);

/** What the driver does, in order. */
export type BackupRunAction =
  /** Send `backup.phase` for this phase. */
  | { readonly type: "announce"; readonly phase: BackupPhase }
  /** `seconds` from the start of the quiesce; absent without a plan (the configured max_downtime_seconds). */
  | { readonly type: "arm-deadline"; readonly seconds?: number }
  | { readonly type: "disarm-deadline" }
  /** Re-arm the deadline for `ms`: it fired `lateMs` late, after a freeze, and the snapshot may exist. */
  | { readonly type: "hold-deadline"; readonly ms: number; readonly lateMs: number }
  /** Resume the stacks now; journal `consistency` before the first container moves. */
  | { readonly type: "resume"; readonly cause: ResumeCause; readonly consistency: Consistency }
  /** Journal the copy's consistency (it changed after the journal last had it). */
  | { readonly type: "journal-consistency"; readonly consistency: Consistency }
  /**
   * Tell the hub (and the link) again how long the agent may be dark: until `seconds` from the start of the
   * quiesce. A hold learned from the task log outlasts the snapshot deadline the backup announced first.
   */
  | { readonly type: "extend-blackout"; readonly seconds: number };

export interface Step {
  readonly state: BackupRunState;
  readonly actions: readonly BackupRunAction[];
}

/** A run that has taken the lock: its first phase. */
export function initialBackupState(mode: BackupMode, at: number): BackupRunState {
  return {
    mode,
    phase: "lock",
    consistency: "app",
    quiesced: false,
    submitted: false,
    busy: false,
    deadlineArmed: false,
    deadlineHeld: false,
    resume: undefined,
    deferred: false,
    plan: undefined,
    pveMode: undefined,
    fallback: undefined,
    timeline: [{ step: "lock", at }],
  };
}

export function backupStep(s: BackupRunState, ev: BackupRunEvent): Step {
  switch (ev.type) {
    case "enter":
      return enter(s, ev.phase, ev.at, []);
    case "planned":
      return { state: { ...s, mode: ev.plan.mode, plan: ev.plan }, actions: [] };
    case "pve-mode":
      return { state: { ...s, pveMode: ev.mode }, actions: [] };
    case "quiesced": {
      // A plan without a quiesce (policy `crash` on a CT that cannot snapshot): nothing was made consistent.
      const consistency = s.plan?.quiesce === false ? "crash" : ev.consistency;
      const next = { ...s, quiesced: true, consistency };
      // Journalled at once when the quiesce already made it crash: an agent killed later must not take
      // this copy for app-consistent.
      const actions: BackupRunAction[] =
        consistency === "crash" ? [{ type: "journal-consistency", consistency: "crash" }] : [];
      // Stop mode keeps the stacks down for the whole archive by design (the guest is off): no deadline.
      // Nothing quiesced: nothing waits on a deadline either.
      if (s.mode === "snapshot" && s.plan?.quiesce !== false)
        return { state: { ...next, deadlineArmed: true }, actions: [...actions, armDeadline(s.plan)] };
      return { state: next, actions };
    }
    case "submitted":
      return {
        state: { ...s, submitted: true, timeline: [...s.timeline, { step: "submitted", at: ev.at }] },
        actions: [],
      };
    case "task-phase":
      return taskPhase(s, ev.phase, ev.at, ev.seen?.after);
    case "deadline-passed":
      // Late after the POST: PVE froze the CT for the snapshot, which most likely exists now. Before the
      // POST no PVE freeze explains it, and on time there was none: the deadline stands.
      if (ev.lateMs >= FROZEN_AFTER_MS && s.submitted && !s.deadlineHeld && !s.resume)
        return {
          state: { ...s, deadlineHeld: true },
          actions: [{ type: "hold-deadline", ms: FREEZE_CONFIRM_MS, lateMs: ev.lateMs }],
        };
      return resume({ ...s, deadlineArmed: false }, "deadline", ev.at, []);
    case "task-stalled":
      return resume(s, "error", ev.at, []);
    case "task-ended": {
      const { state, actions } = disarm(s);
      // A busy refusal resumed already; the driver reports it as such.
      return state.busy ? { state, actions } : resume(state, "task-ended", ev.at, actions);
    }
    case "resumed": {
      const timeline = [...s.timeline, { step: "resumed" as const, at: ev.at }];
      // The executor's own dead man's switch resumed the stacks before this run asked: the snapshot that
      // follows sees them running.
      if (ev.trigger !== "caller" && s.consistency === "app")
        return {
          state: { ...s, consistency: "crash", timeline },
          actions: [{ type: "journal-consistency", consistency: "crash" }],
        };
      return { state: { ...s, timeline }, actions: [] };
    }
    case "failed": {
      const { state, actions } = disarm(s);
      // Interrupted by a shutdown after the POST, the task goes on in PVE: the next start reports it.
      const deferred = ev.shuttingDown && s.submitted;
      // Stop mode after the POST while the agent stops: the guest itself is going down for the backup;
      // touch nothing, the next boot resumes and reports.
      if (deferred && s.mode === "stop") return { state: { ...state, deferred }, actions };
      return resume({ ...state, deferred }, "error", ev.at, actions);
    }
  }
}

/**
 * Whether the task is still urgent to follow: the stacks wait on it until they are resumed. Not while they
 * are held through suspend mode's first rsync: a silent copy of the whole root lasts minutes, and polling
 * the log four times a second through it would cost PVE thousands of reads per held guest; the follower's
 * backoff (up to its max interval) notices `first sync finished`, and polls fast again once the log moves.
 */
export const stacksWaiting = (s: BackupRunState): boolean => s.resume === undefined && s.fallback !== "held";

function taskPhase(
  s: BackupRunState,
  phase: VzdumpPhase["phase"],
  at: number,
  lineAfter: number | undefined,
): Step {
  if (phase === "global-lock-timeout" && !s.busy) {
    // Another guest's backup holds the node: PVE refused ours at once and the task is ending.
    return resume({ ...s, busy: true }, "busy", at, []);
  }
  if (s.mode !== "snapshot") return { state: s, actions: [] };
  if (phase === "suspend") return fallback(s, at);
  if (phase === "snapshot-failed") {
    // No snapshot will come: resume now, and nothing of this run counts as app-consistent.
    const { state, actions } = disarm(s);
    return resume(state, "error", at, actions);
  }
  if (phase === "snapshot-created" || phase === "suspend-resumed") {
    const noticed: TimelineEntry =
      lineAfter === undefined ? { step: "snapshot", at } : { step: "snapshot", at, lineAfter };
    const { state, actions } = disarm({ ...s, timeline: [...s.timeline, noticed] });
    const resumed = resume(state, "snapshot", at, actions);
    return enter(resumed.state, "follow", at, resumed.actions);
  }
  return { state: s, actions: [] };
}

/**
 * `trying 'suspend' mode instead`: PVE will copy the running guest, freeze it, copy again, thaw. A planned
 * hold keeps the stacks down until `resuming guest` (suspend-resumed, which resumes as the snapshot does)
 * under the hold bound; otherwise they come back now, before the first sync, and the copy is crash.
 */
function fallback(s: BackupRunState, at: number): Step {
  if (s.fallback) return { state: s, actions: [] };
  // The stacks came back before the line was read (the downtime deadline of a hold planned on an unsure
  // verdict, an error): nothing to decide, but the result must not say that no hold was planned.
  if (s.resume) return { state: { ...s, fallback: "resumed-before" }, actions: [] };
  if (s.plan?.onFallback === "hold") {
    const { state, actions } = disarm({ ...s, fallback: "held" });
    if (!s.deadlineArmed) return { state, actions };
    const seconds = s.plan.holdSeconds;
    // A hold known from the start was announced as such; only an unsure verdict's blackout needs extending.
    const extend: BackupRunAction[] = s.plan.holdFromStart ? [] : [{ type: "extend-blackout", seconds }];
    return {
      state: { ...state, deadlineArmed: true },
      actions: [...actions, { type: "arm-deadline", seconds }, ...extend],
    };
  }
  const { state, actions } = disarm({ ...s, fallback: "resumed" });
  return resume(state, "fallback", at, actions);
}

/** The result's words on a fallback to suspend mode that was not held through; nothing otherwise. */
export function fallbackWarning(s: BackupRunState): string | undefined {
  const fellBack =
    "PVE could not snapshot the CT and fell back to suspend mode (trying 'suspend' mode instead)";
  if (s.fallback === "resumed" && s.plan?.quiesce !== false)
    return `${fellBack}; no hold was planned, so the stacks were resumed at once and the backup is crash-consistent`;
  if (s.fallback === "resumed-before" && s.resume)
    return `${fellBack}; the stacks had been resumed before the agent read it (${resumedBecause(s.resume.cause, s.plan)}) and the backup is crash-consistent`;
  return undefined;
}

function resumedBecause(cause: ResumeCause, plan: RunPlan | undefined): string {
  switch (cause) {
    case "deadline":
      if (plan?.holdFromStart)
        return `the hold bound (backup.no_snapshot.max_hold_seconds) of ${plan.holdSeconds} s passed first`;
      return `the downtime deadline of ${plan?.deadlineSeconds ?? "max_downtime_seconds"} s passed first${plan?.onFallback === "hold" ? "; a hold applies only from that line" : ""}`;
    case "busy":
      return "another guest's backup held the node";
    case "error":
      return "the run had failed";
    default:
      return cause;
  }
}

function armDeadline(plan: RunPlan | undefined): BackupRunAction {
  return plan ? { type: "arm-deadline", seconds: plan.deadlineSeconds } : { type: "arm-deadline" };
}

function enter(s: BackupRunState, phase: BackupPhase, at: number, before: readonly BackupRunAction[]): Step {
  return {
    state: { ...s, phase, timeline: [...s.timeline, { step: phase, at }] },
    actions: [...before, { type: "announce", phase }],
  };
}

function disarm(s: BackupRunState): Step {
  return s.deadlineArmed
    ? { state: { ...s, deadlineArmed: false }, actions: [{ type: "disarm-deadline" }] }
    : { state: s, actions: [] };
}

/** Resume once, for the first cause; nothing when nothing was quiesced or the resume is under way. */
function resume(s: BackupRunState, cause: ResumeCause, at: number, before: readonly BackupRunAction[]): Step {
  if (!s.quiesced || s.resume) return { state: s, actions: before };
  // Resumed before the storage snapshot existed: whatever PVE archives now is crash-consistent.
  const consistency = cause === "snapshot" || cause === "task-ended" ? s.consistency : "crash";
  return {
    state: { ...s, consistency, resume: { cause, at }, timeline: [...s.timeline, { step: "resume", at }] },
    actions: [...before, { type: "resume", cause, consistency }],
  };
}
