import { AgentError, describeError } from "../lib/errors.ts";
import { lateTimeout } from "../lib/late-timer.ts";
import type { JournalBackupSection } from "../operation/journal-section.ts";
import type { QuiescedStacks } from "../operation/quiesced-stacks.ts";
import type { TaskResult } from "../pve/task-follower.ts";
import { quiesceConsistency } from "../quiesce/consistency.ts";
import { QuiesceFailedError } from "../quiesce/errors.ts";
import type { QuiesceHandle, ResumeReport } from "../quiesce/executor.ts";
import { QuiesceJournal } from "../quiesce/journal.ts";
import type { QuiescePlan } from "../quiesce/plan.ts";
import { journalLeftOpen } from "../quiesce/quiesce-stacks.ts";
import { statePaths } from "../state/paths.ts";
import {
  type BackupRunAction,
  type BackupRunEvent,
  type BackupRunState,
  backupStep,
  type Consistency,
  fallbackWarning,
  initialBackupState,
  stacksWaiting,
} from "./backup-machine.ts";
import {
  type BackupDeps,
  type BackupOutcome,
  type BackupPhase,
  type BackupRequest,
  LogTail,
  pveModeField,
  resultWarnings,
} from "./backup-types.ts";
import { downtimeOf, resumeWarnings } from "./downtime.ts";
import type { FinishedBackup } from "./finish-backup.ts";
import { clearMarker } from "./marker.ts";
import type { OutsideArchive } from "./outside-archive.ts";
import type { RunPlan } from "./snapshot-plan.ts";

type Distribute<T> = T extends unknown ? Omit<T, "at"> : never;

/**
 * One backup's I/O around its pure state machine (backup-machine.ts): the events it emits, the journal
 * section it keeps, the quiesce handle it resumes, the deadline timer, the report it returns. Every
 * decision comes from the machine; this object only carries them out.
 */
export class RunningBackup {
  readonly tail = new LogTail(20);
  readonly started = Date.now();
  upid: string | null = null;
  task: TaskResult | undefined;
  #state: BackupRunState;
  #handle: QuiesceHandle | undefined;
  #journal: QuiesceJournal | undefined;
  #resumed: Promise<ResumeReport> | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #quiesceStarted = 0;
  #blackout: "stop-mode" | "snapshot-freeze" | undefined;
  /** The last consistency the machine had journalled: durable before the run moves on. */
  #consistencyWritten: Promise<void> | undefined;
  /** What the plan says in the result's warnings (snapshot-plan.ts). */
  #planWarnings: string[] = [];

  constructor(
    readonly deps: BackupDeps,
    readonly req: BackupRequest,
  ) {
    this.#state = initialBackupState(req.mode, this.started);
  }

  get phase(): BackupPhase {
    return this.#state.phase;
  }

  /** Whether the stacks still wait on the task (the follower polls quickly only then). */
  get urgent(): boolean {
    return stacksWaiting(this.#state);
  }

  get busy(): boolean {
    return this.#state.busy;
  }

  /** The mode the agent asks PVE for: the request's, or the plan's once the preflight decided it. */
  get mode(): BackupRunState["mode"] {
    return this.#state.mode;
  }

  get plan(): RunPlan | undefined {
    return this.#state.plan;
  }

  /** The plan's lines for the result, also journalled for a run finished after a boot. */
  get planWarnings(): string[] {
    return this.#planWarnings;
  }

  /** The preflight's decision (snapshot-plan.ts); `warnings` go into the result. */
  planned(plan: RunPlan, warnings: string[]): void {
    this.#planWarnings = [...warnings, ...(plan.note ? [plan.note] : [])];
    this.dispatch({ type: "planned", plan });
  }

  /** The main line enters `phase` (announced to the hub and the terminal). */
  enter(phase: BackupPhase): void {
    this.dispatch({ type: "enter", phase });
  }

  dispatch(event: Distribute<BackupRunEvent>): void {
    const { state, actions } = backupStep(this.#state, { ...event, at: Date.now() } as BackupRunEvent);
    this.#state = state;
    for (const a of actions) this.#act(a);
  }

  /** Stopping already: do not take the next step only to undo it. */
  refuseIfStopping(what: string): void {
    if (this.req.signal?.aborted) throw new AgentError("interrupted", `the agent is shutting down; ${what}`);
  }

  announceBlackout(seconds: number): void {
    this.#blackout = this.mode === "stop" ? "stop-mode" : "snapshot-freeze";
    this.deps.emit({
      kind: "blackout",
      reason: this.#blackout,
      // The protocol's whole seconds, at least 1: the CLI prints this event as it comes over the control
      // socket, and the rest of a hold counted from now can be fractional or already spent.
      expectedSeconds: Math.min(86_400, Math.max(1, Math.ceil(seconds))),
      operationId: this.req.backupId,
    });
  }

  /** The operation is over: the hub (and the link) stop waiting out the blackout it announced. */
  endBlackout(): void {
    if (this.#blackout)
      this.deps.emit({ kind: "blackout.ended", reason: this.#blackout, operationId: this.req.backupId });
    this.#blackout = undefined;
  }

  /** Downtime (and the executor's backstop) begins with the journal's fsync. */
  journalled(): void {
    this.#quiesceStarted = Date.now();
    this.enter("quiesce");
  }

  /**
   * The stacks are down (withQuiescedStacks): `body` runs the phases until the report. A failure in there
   * is reported here, while the stacks are still the machine's to resume; when it keeps them down (the
   * guest goes down for its stop-mode backup) withQuiescedStacks leaves them so.
   */
  async whileQuiesced(
    q: QuiescedStacks,
    plan: QuiescePlan,
    body: () => Promise<BackupOutcome>,
  ): Promise<BackupOutcome> {
    this.#handle = q.handle;
    this.#journal = q.journal;
    this.dispatch({ type: "quiesced", consistency: quiesceConsistency(plan, q.handle) });
    await this.#consistencyWritten;
    try {
      return await body();
    } catch (err) {
      const outcome = await this.failed(err);
      if (this.#state.resume === undefined) q.leaveDown();
      return outcome;
    }
  }

  journalPatch = (patch: Partial<JournalBackupSection>): Promise<void> | undefined =>
    this.#journal
      ?.update({ backup: { ...patch } })
      .catch((err) => this.deps.log.error({ err: describeError(err) }, "journal write failed"));

  /** Waits for the resume the machine decided (the task's end decides one if nothing did before). */
  async stacksBack(): Promise<void> {
    await this.#resumed;
  }

  progress(fields: { line: string } | { bytes: number }): void {
    this.deps.emit({ kind: "backup.progress", backupId: this.req.backupId, phase: this.phase, ...fields });
  }

  #act(a: BackupRunAction): void {
    const { deps } = this;
    switch (a.type) {
      case "announce":
        this.#announce(a.phase);
        return;
      case "arm-deadline":
        this.#armDeadline(
          (a.seconds ?? deps.backup.max_downtime_seconds) * 1000 - (Date.now() - this.#quiesceStarted),
        );
        return;
      case "hold-deadline":
        deps.log.warn(
          { backupId: this.req.backupId, lateMs: a.lateMs, waitMs: a.ms },
          this.#state.fallback === "held"
            ? "the hold deadline fell while the CT was frozen (suspend mode's final sync); waiting for PVE's 'resuming guest' line before resuming"
            : "the downtime deadline fell while the CT was frozen (PVE freezes it for the storage snapshot); waiting for the snapshot line before resuming",
        );
        this.#armDeadline(a.ms);
        return;
      case "disarm-deadline":
        clearTimeout(this.#deadline);
        return;
      case "journal-consistency":
        this.#consistencyWritten = this.journalPatch({ consistency: a.consistency });
        return;
      case "extend-blackout":
        // Replaces the first announcement (same operationId): the rest of the bound, counted from now.
        this.announceBlackout(a.seconds - (Date.now() - this.#quiesceStarted) / 1000);
        return;
      case "resume":
        this.#resumed = this.#resume(a.cause, a.consistency);
    }
  }

  #armDeadline(ms: number): void {
    this.#deadline = lateTimeout(Math.max(0, ms), (lateMs) =>
      this.dispatch({ type: "deadline-passed", lateMs }),
    );
  }

  #announce(phase: BackupPhase): void {
    const { backupId, trigger } = this.req;
    this.deps.emit({ kind: "backup.phase", backupId, mode: this.mode, phase, trigger });
  }

  /** The result's words on the plan and on a fallback to suspend mode nobody planned a hold for. */
  #modeWarnings(): string[] {
    const fallback = fallbackWarning(this.#state);
    return fallback ? [...this.#planWarnings, fallback] : [...this.#planWarnings];
  }

  /** The mode PVE ran (`backup mode: X`), for the result; absent when the log never said. */
  #pveMode(): ReturnType<typeof pveModeField> {
    return pveModeField(this.#state.pveMode);
  }

  async #resume(why: string, consistency: Consistency): Promise<ResumeReport> {
    const { deps } = this;
    const handle = this.#handle as QuiesceHandle;
    if (why === "deadline") {
      const { plan, fallback } = this.#state;
      const hold = plan?.onFallback === "hold" && (fallback === "held" || plan.holdFromStart === true);
      deps.log.warn(
        {
          backupId: this.req.backupId,
          seconds: hold ? plan.holdSeconds : (plan?.deadlineSeconds ?? deps.backup.max_downtime_seconds),
        },
        !hold
          ? "downtime deadline passed before the snapshot; resuming, the backup will be crash-consistent"
          : fallback === "held"
            ? "hold deadline (backup.no_snapshot.max_hold_seconds) passed before suspend mode's final sync ended; resuming, the backup will be crash-consistent"
            : "hold deadline (backup.no_snapshot.max_hold_seconds) passed before PVE fell back to suspend mode; resuming, the backup will be crash-consistent",
      );
    }
    deps.log.info({ backupId: this.req.backupId, why }, "resuming stacks");
    this.#announce("resume");
    // Journalled before the first container moves: an agent killed after the resume must still know
    // whether the snapshot was taken while the stacks were down.
    await this.journalPatch({ consistency });
    const report = await handle.resume();
    this.dispatch({ type: "resumed", trigger: report.trigger });
    await this.#consistencyWritten;
    // The live system is no longer "inside a backup"; a restored copy still finds the marker.
    await clearMarker(deps.stateDir).catch((err) =>
      deps.log.warn({ err: describeError(err) }, "could not clear the marker"),
    );
    return report;
  }

  /** The archive is verified and the stacks are back: `backup.completed`'s fields. */
  async completed(
    finished: FinishedBackup,
    plan: QuiescePlan,
    outside: OutsideArchive,
  ): Promise<BackupOutcome> {
    const report = (await this.#resumed) as ResumeReport;
    // The archive is good, but a stack is down: the hub must hear it (and the journal stays open, so the
    // next backup or start retries the resume).
    const warnings = [
      ...finished.warnings,
      ...resumeWarnings(report),
      ...outside.warnings,
      ...this.#modeWarnings(),
    ];
    await this.journalPatch({ phase: "report", reported: true });
    const { backupId } = this.req;
    const mode = this.mode;
    const task = this.task as TaskResult;
    return {
      ok: true,
      result: {
        backupId,
        mode,
        ...this.#pveMode(),
        upid: this.upid as string,
        volid: finished.volid,
        sizeBytes: finished.sizeBytes,
        totalMs: Date.now() - this.started,
        downtime: downtimeOf(report, plan, this.#state.timeline),
        exitStatus: task.exitstatus,
        warnings: resultWarnings(warnings),
        consistency: this.#state.consistency,
        stacksResumed: report.finished,
        ...(finished.pruned ? { pruned: finished.pruned } : {}),
        ...(outside.notInArchive.length ? { notInArchive: outside.notInArchive } : {}),
      },
    };
  }

  /** Any failure, at any phase: the stacks come back (unless the guest itself goes down), then `backup.failed`. */
  async failed(err: unknown): Promise<BackupOutcome> {
    const { deps, req } = this;
    const { backupId } = req;
    const mode = this.mode;
    const phase = this.phase;
    // A quiesce that aborted journalled this backup before it threw: mark it reported, or the next start
    // would report it a second time.
    if (!this.#journal && err instanceof QuiesceFailedError)
      this.#journal = await ownJournal(deps.stateDir, backupId);
    const shuttingDown = req.signal?.aborted === true;
    this.dispatch({ type: "failed", shuttingDown });
    const report = this.#resumed ? await this.#resumed : undefined;
    const resumeReport =
      report ?? (err instanceof QuiesceFailedError ? (err.resumeReport as ResumeReport) : undefined);
    const deferred = this.#state.deferred;
    await this.journalPatch(deferred ? { phase } : { phase, reported: true });
    if (!deferred) {
      this.endBlackout();
      // `backup.failed` follows; it names the phase that failed, not this one.
      this.#announce("report");
    }
    deps.log.error({ backupId, phase, err: describeError(err) }, "backup failed");
    return {
      ok: false,
      failure: {
        backupId,
        mode,
        ...this.#pveMode(),
        phase,
        code: shuttingDown ? "interrupted" : err instanceof AgentError ? err.code : "internal",
        message: describeError(err).slice(0, 2000),
        exitStatus: this.task?.exitstatus ?? null,
        upid: this.upid,
        logTail: this.tail.lines(),
        // A failed post hook is in the failures too, but leaves nothing down: `finished` is the alarm.
        stacksResumed: resumeReport ? resumeReport.finished : !(await journalLeftOpen(deps.stateDir)),
      },
    };
  }
}

async function ownJournal(stateDir: string, backupId: string): Promise<QuiesceJournal | undefined> {
  const j = await QuiesceJournal.open(statePaths(stateDir).quiesceJournal).catch(() => undefined);
  return j?.data.backupId === backupId ? j : undefined;
}
