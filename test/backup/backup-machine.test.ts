import { describe, expect, it } from "vitest";
import {
  type BackupRunEvent,
  type BackupRunState,
  backupStep,
  FREEZE_CONFIRM_MS,
  fallbackWarning,
  initialBackupState,
  stacksWaiting,
} from "../../agent/backup/backup-machine.ts";
import type { BackupMode } from "../../agent/backup/backup-types.ts";
import {
  type NoSnapshotPolicy,
  planRun,
  type RunPlan,
  type SnapshotVerdict,
  snapshotVerdict,
} from "../../agent/backup/snapshot-plan.ts";
import { FROZEN_AFTER_MS } from "../../agent/lib/late-timer.ts";
import type { CtMountPoint } from "../../agent/pve/mount-points.ts";

type EventWithoutAt = BackupRunEvent extends infer E ? (E extends unknown ? Omit<E, "at"> : never) : never;

/** Feeds events in order (instants 1, 2, 3…); returns the last state and every action, in order. */
function run(mode: BackupMode, events: EventWithoutAt[], from?: BackupRunState) {
  let state = from ?? initialBackupState(mode, 0);
  const actions = [];
  let at = state.timeline.at(-1)?.at ?? 0;
  for (const ev of events) {
    const step = backupStep(state, { ...ev, at: ++at } as BackupRunEvent);
    state = step.state;
    actions.push(...step.actions);
  }
  return { state, actions };
}

/** A run that quiesced its stacks (app-consistent so far) and submitted its task. */
function waitingForSnapshot(mode: BackupMode = "snapshot") {
  return run(mode, [
    { type: "enter", phase: "preflight" },
    { type: "enter", phase: "journal" },
    { type: "enter", phase: "quiesce" },
    { type: "quiesced", consistency: "app" },
    { type: "enter", phase: "submit" },
    { type: "submitted" },
    { type: "enter", phase: mode === "snapshot" ? "snapshot-wait" : "follow" },
  ]).state;
}

describe("backup machine: phases", () => {
  it("starts in lock, app-consistent, nothing to resume", () => {
    const s = initialBackupState("snapshot", 5);
    expect(s).toMatchObject({ phase: "lock", consistency: "app", quiesced: false, resume: undefined });
    expect(s.timeline).toEqual([{ step: "lock", at: 5 }]);
    expect(stacksWaiting(s)).toBe(true);
  });

  it("entering a phase announces it and records its instant", () => {
    const { state, actions } = run("snapshot", [{ type: "enter", phase: "preflight" }]);
    expect(state.phase).toBe("preflight");
    expect(actions).toEqual([{ type: "announce", phase: "preflight" }]);
    expect(state.timeline.at(-1)).toEqual({ step: "preflight", at: 1 });
  });
});

describe("backup machine: the quiesce", () => {
  it("snapshot mode arms the downtime deadline", () => {
    const { state, actions } = run("snapshot", [{ type: "quiesced", consistency: "app" }]);
    expect(state).toMatchObject({ quiesced: true, deadlineArmed: true, consistency: "app" });
    expect(actions).toEqual([{ type: "arm-deadline" }]);
  });

  it("stop mode arms no deadline: the stacks stay down for the whole archive", () => {
    const { state, actions } = run("stop", [{ type: "quiesced", consistency: "app" }]);
    expect(state.deadlineArmed).toBe(false);
    expect(actions).toEqual([]);
  });

  it("a quiesce that already made the copy crash-consistent is journalled at once", () => {
    const { state, actions } = run("snapshot", [{ type: "quiesced", consistency: "crash" }]);
    expect(state.consistency).toBe("crash");
    expect(actions).toEqual([
      { type: "journal-consistency", consistency: "crash" },
      { type: "arm-deadline" },
    ]);
  });
});

describe("backup machine: what resumes the stacks", () => {
  it("the snapshot line: disarm, resume app-consistent, enter follow", () => {
    const { state, actions } = run(
      "snapshot",
      [{ type: "task-phase", phase: "snapshot-created" }],
      waitingForSnapshot(),
    );
    expect(actions).toEqual([
      { type: "disarm-deadline" },
      { type: "resume", cause: "snapshot", consistency: "app" },
      { type: "announce", phase: "follow" },
    ]);
    expect(state).toMatchObject({ phase: "follow", consistency: "app", resume: { cause: "snapshot" } });
    expect(stacksWaiting(state)).toBe(false);
    // The instants a downtime breakdown reads: the POST accepted, the snapshot line noticed, the resume.
    expect(state.timeline.map((t) => t.step)).toEqual([
      "lock",
      "preflight",
      "journal",
      "quiesce",
      "submit",
      "submitted",
      "snapshot-wait",
      "snapshot",
      "resume",
      "follow",
    ]);
    expect(state.timeline.map((t) => t.at)).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 8, 8]);
  });

  it("suspend mode's `resume vm` counts as the snapshot", () => {
    const { actions } = run(
      "snapshot",
      [{ type: "task-phase", phase: "suspend-resumed" }],
      waitingForSnapshot(),
    );
    expect(actions).toContainEqual({ type: "resume", cause: "snapshot", consistency: "app" });
  });

  it("the deadline before the snapshot: resume, crash-consistent", () => {
    const { state, actions } = run(
      "snapshot",
      [{ type: "deadline-passed", lateMs: 0 }],
      waitingForSnapshot(),
    );
    expect(actions).toEqual([{ type: "resume", cause: "deadline", consistency: "crash" }]);
    expect(state).toMatchObject({ consistency: "crash", deadlineArmed: false, phase: "snapshot-wait" });
  });

  it("a busy node lock: resume, crash, and the run is marked busy", () => {
    const { state, actions } = run(
      "snapshot",
      [{ type: "task-phase", phase: "global-lock-timeout" }],
      waitingForSnapshot(),
    );
    expect(actions).toEqual([{ type: "resume", cause: "busy", consistency: "crash" }]);
    expect(state.busy).toBe(true);
  });

  it("a failed snapshot: disarm, resume, crash", () => {
    const { state, actions } = run(
      "snapshot",
      [{ type: "task-phase", phase: "snapshot-failed" }],
      waitingForSnapshot(),
    );
    expect(actions).toEqual([
      { type: "disarm-deadline" },
      { type: "resume", cause: "error", consistency: "crash" },
    ]);
    expect(state.consistency).toBe("crash");
  });

  it("a stalled task: resume, crash", () => {
    const { actions } = run("snapshot", [{ type: "task-stalled" }], waitingForSnapshot());
    expect(actions).toEqual([{ type: "resume", cause: "error", consistency: "crash" }]);
  });

  it("the task's end (stop mode): resume, still app-consistent", () => {
    const { state, actions } = run("stop", [{ type: "task-ended" }], waitingForSnapshot("stop"));
    expect(actions).toEqual([{ type: "resume", cause: "task-ended", consistency: "app" }]);
    expect(state.consistency).toBe("app");
  });

  it("the task's end after a busy refusal resumes nothing more", () => {
    const busy = run(
      "snapshot",
      [{ type: "task-phase", phase: "global-lock-timeout" }],
      waitingForSnapshot(),
    ).state;
    const { actions } = run("snapshot", [{ type: "task-ended" }], busy);
    expect(actions).toEqual([{ type: "disarm-deadline" }]);
  });

  it("resumes once: a deadline after the snapshot changes nothing", () => {
    const snap = run(
      "snapshot",
      [{ type: "task-phase", phase: "snapshot-created" }],
      waitingForSnapshot(),
    ).state;
    const { state, actions } = run(
      "snapshot",
      [{ type: "deadline-passed", lateMs: 0 }, { type: "task-ended" }],
      snap,
    );
    expect(actions).toEqual([]);
    expect(state).toMatchObject({ consistency: "app", resume: { cause: "snapshot" } });
  });

  it("stop mode ignores snapshot lines: the guest is off, the task's end resumes", () => {
    const { actions } = run(
      "stop",
      [{ type: "task-phase", phase: "snapshot-created" }],
      waitingForSnapshot("stop"),
    );
    expect(actions).toEqual([]);
  });

  it("other log phases decide nothing", () => {
    const { state, actions } = run(
      "snapshot",
      [{ type: "task-phase", phase: "archive-started" }],
      waitingForSnapshot(),
    );
    expect(actions).toEqual([]);
    expect(state.resume).toBeUndefined();
  });

  it("nothing quiesced, nothing to resume", () => {
    const { actions } = run("snapshot", [
      { type: "deadline-passed", lateMs: 0 },
      { type: "failed", shuttingDown: false },
    ]);
    expect(actions.filter((a) => a.type === "resume")).toEqual([]);
  });
});

describe("backup machine: a deadline that fell while PVE froze the CT", () => {
  const late = { type: "deadline-passed", lateMs: FROZEN_AFTER_MS } as const;
  const held = () => run("snapshot", [late], waitingForSnapshot()).state;

  it("fired late after the POST: held for FREEZE_CONFIRM_MS, nothing resumed yet", () => {
    const { state, actions } = run("snapshot", [late], waitingForSnapshot());
    expect(actions).toEqual([{ type: "hold-deadline", ms: FREEZE_CONFIRM_MS, lateMs: FROZEN_AFTER_MS }]);
    expect(state).toMatchObject({ deadlineHeld: true, deadlineArmed: true, consistency: "app" });
    expect(stacksWaiting(state)).toBe(true);
  });

  it("held, then the snapshot line: resume as the snapshot, app-consistent", () => {
    const { state, actions } = run("snapshot", [{ type: "task-phase", phase: "snapshot-created" }], held());
    expect(actions).toContainEqual({ type: "disarm-deadline" });
    expect(actions).toContainEqual({ type: "resume", cause: "snapshot", consistency: "app" });
    expect(state.consistency).toBe("app");
  });

  it("held, and the hold runs out on time: resume, crash-consistent", () => {
    const { state, actions } = run("snapshot", [{ type: "deadline-passed", lateMs: 0 }], held());
    expect(actions).toEqual([{ type: "resume", cause: "deadline", consistency: "crash" }]);
    expect(state).toMatchObject({ consistency: "crash", deadlineArmed: false });
  });

  it("held once only: a hold that fires late too resumes, crash-consistent", () => {
    const { actions } = run("snapshot", [late], held());
    expect(actions).toEqual([{ type: "resume", cause: "deadline", consistency: "crash" }]);
  });

  it("held, then the snapshot failed: resume, crash-consistent", () => {
    const { actions } = run("snapshot", [{ type: "task-phase", phase: "snapshot-failed" }], held());
    expect(actions).toEqual([
      { type: "disarm-deadline" },
      { type: "resume", cause: "error", consistency: "crash" },
    ]);
  });

  it("fired late before the POST: no PVE freeze explains it, resume at once, crash-consistent", () => {
    const beforePost = run("snapshot", [
      { type: "quiesced", consistency: "app" },
      { type: "enter", phase: "submit" },
    ]).state;
    const { actions } = run("snapshot", [late], beforePost);
    expect(actions).toEqual([{ type: "resume", cause: "deadline", consistency: "crash" }]);
  });

  it("fired a little late (a busy event loop, not a freeze): resume at once, crash-consistent", () => {
    const { actions } = run(
      "snapshot",
      [{ type: "deadline-passed", lateMs: FROZEN_AFTER_MS - 1 }],
      waitingForSnapshot(),
    );
    expect(actions).toEqual([{ type: "resume", cause: "deadline", consistency: "crash" }]);
  });
});

describe("backup machine: the resume's report", () => {
  const resumedBy = (trigger: "caller" | "deadline", from: BackupRunState) =>
    run("snapshot", [{ type: "resumed", trigger }], from);

  it("the executor's backstop resumed first: crash, journalled", () => {
    const { state, actions } = resumedBy("deadline", waitingForSnapshot());
    expect(state.consistency).toBe("crash");
    expect(actions).toEqual([{ type: "journal-consistency", consistency: "crash" }]);
  });

  it("the run's own resume keeps the consistency it had", () => {
    const snap = run(
      "snapshot",
      [{ type: "task-phase", phase: "snapshot-created" }],
      waitingForSnapshot(),
    ).state;
    const { state, actions } = resumedBy("caller", snap);
    expect(state.consistency).toBe("app");
    expect(actions).toEqual([]);
    expect(state.timeline.map((t) => t.step).slice(-3)).toEqual(["resume", "follow", "resumed"]);
  });
});

describe("backup machine: failure", () => {
  it("before the POST: resume, crash, not deferred", () => {
    const { state, actions } = run("snapshot", [
      { type: "quiesced", consistency: "app" },
      { type: "failed", shuttingDown: false },
    ]);
    expect(actions.slice(1)).toEqual([
      { type: "disarm-deadline" },
      { type: "resume", cause: "error", consistency: "crash" },
    ]);
    expect(state.deferred).toBe(false);
  });

  it("the phase a failure names is the main line's, not resume", () => {
    const snap = run(
      "snapshot",
      [{ type: "task-phase", phase: "snapshot-created" }],
      waitingForSnapshot(),
    ).state;
    expect(run("snapshot", [{ type: "failed", shuttingDown: false }], snap).state.phase).toBe("follow");
  });

  it("a shutdown after the POST in snapshot mode resumes and defers the report", () => {
    const { state, actions } = run(
      "snapshot",
      [{ type: "failed", shuttingDown: true }],
      waitingForSnapshot(),
    );
    expect(actions).toContainEqual({ type: "resume", cause: "error", consistency: "crash" });
    expect(state.deferred).toBe(true);
  });

  it("a shutdown after the POST in stop mode touches nothing: the guest goes down for the backup", () => {
    const { state, actions } = run(
      "stop",
      [{ type: "failed", shuttingDown: true }],
      waitingForSnapshot("stop"),
    );
    expect(actions).toEqual([]);
    expect(state).toMatchObject({ deferred: true, resume: undefined });
  });

  it("a shutdown before the POST in stop mode resumes and is not deferred", () => {
    const { state, actions } = run("stop", [
      { type: "quiesced", consistency: "app" },
      { type: "failed", shuttingDown: true },
    ]);
    expect(actions).toEqual([{ type: "resume", cause: "error", consistency: "crash" }]);
    expect(state.deferred).toBe(false);
  });
});

describe("backup machine: a CT that cannot be snapshotted (snapshot-plan.ts)", () => {
  const cfg = { maxDowntimeSeconds: 300, maxHoldSeconds: 3600 };
  const planOf = (verdict: SnapshotVerdict, policy: NoSnapshotPolicy) => {
    const r = planRun("snapshot", verdict, { ...cfg, policy });
    if (!r.ok) throw new Error(r.message);
    return r.plan;
  };
  const no: SnapshotVerdict = { can: "no", volumes: ["rootfs (local:101/vm-101-disk-0.raw)"] };
  const unknown: SnapshotVerdict = { can: "unknown", why: "PVE did not say" };
  /** A planned run up to the snapshot wait. */
  const planned = (plan: RunPlan) =>
    run(plan.mode, [
      { type: "planned", plan },
      { type: "quiesced", consistency: "app" },
      { type: "submitted" },
      { type: "enter", phase: plan.mode === "snapshot" ? "snapshot-wait" : "follow" },
    ]);

  it("hold: the deadline is the hold bound from the start; the fallback keeps the stacks down until `resuming guest`, app-consistent", () => {
    const start = planned(planOf(no, "hold"));
    expect(start.actions).toContainEqual({ type: "arm-deadline", seconds: 3600 });
    const { state, actions } = run(
      "snapshot",
      [
        { type: "pve-mode", mode: "suspend" },
        { type: "task-phase", phase: "suspend" },
        { type: "task-phase", phase: "suspend-resumed" },
      ],
      start.state,
    );
    // announced as the hold from the start: no second blackout
    expect(actions).toEqual([
      { type: "disarm-deadline" },
      { type: "arm-deadline", seconds: 3600 },
      { type: "disarm-deadline" },
      { type: "resume", cause: "snapshot", consistency: "app" },
      { type: "announce", phase: "follow" },
    ]);
    expect(state).toMatchObject({ fallback: "held", pveMode: "suspend", consistency: "app" });
    // held through the silent first rsync: the follower backs off instead of polling fast
    const held = run("snapshot", [{ type: "task-phase", phase: "suspend" }], start.state).state;
    expect(stacksWaiting(start.state)).toBe(true);
    expect(stacksWaiting(held)).toBe(false);
    expect(held.resume).toBeUndefined();
  });

  it("hold known from the start, its bound passing before `trying 'suspend'` is read: the result names the hold bound", () => {
    const start = planned(planOf(no, "hold"));
    const { state } = run(
      "snapshot",
      [
        { type: "deadline-passed", lateMs: 0 },
        { type: "task-phase", phase: "suspend" },
      ],
      start.state,
    );
    expect(state).toMatchObject({ fallback: "resumed-before", consistency: "crash" });
    expect(fallbackWarning(state)).toMatch(
      /the hold bound \(backup\.no_snapshot\.max_hold_seconds\) of 3600 s passed first\)/,
    );
    expect(fallbackWarning(state)).not.toMatch(/applies only from that line/);
  });

  it("hold: the hold bound passing before `resuming guest` resumes crash-consistent", () => {
    const held = run(
      "snapshot",
      [{ type: "task-phase", phase: "suspend" }],
      planned(planOf(no, "hold")).state,
    );
    const { state, actions } = run("snapshot", [{ type: "deadline-passed", lateMs: 0 }], held.state);
    expect(actions).toEqual([{ type: "resume", cause: "deadline", consistency: "crash" }]);
    expect(state.consistency).toBe("crash");
  });

  it("hold with an unknown answer: the usual deadline (and blackout) until PVE falls back, then the hold bound, announced then", () => {
    const plan = planOf(unknown, "hold");
    // what backup-run.ts announces first: the snapshot deadline, not the hour a hold may last
    expect(plan).toMatchObject({ deadlineSeconds: 300, onFallback: "hold", holdSeconds: 3600 });
    const start = planned(plan);
    expect(start.actions).toContainEqual({ type: "arm-deadline", seconds: 300 });
    const { actions } = run("snapshot", [{ type: "task-phase", phase: "suspend" }], start.state);
    expect(actions).toEqual([
      { type: "disarm-deadline" },
      { type: "arm-deadline", seconds: 3600 },
      { type: "extend-blackout", seconds: 3600 },
    ]);
  });

  it("hold with an unknown answer, the downtime deadline passing before `trying 'suspend'` is read: resumed before the fallback, not 'no hold planned'", () => {
    const start = planned(planOf(unknown, "hold"));
    const { state, actions } = run(
      "snapshot",
      [
        { type: "deadline-passed", lateMs: 0 },
        { type: "task-phase", phase: "suspend" },
      ],
      start.state,
    );
    expect(actions).toEqual([{ type: "resume", cause: "deadline", consistency: "crash" }]);
    expect(state).toMatchObject({
      fallback: "resumed-before",
      resume: { cause: "deadline" },
      consistency: "crash",
    });
    expect(fallbackWarning(state)).toMatch(
      /resumed before the agent read it \(the downtime deadline of 300 s passed first; a hold applies only from that line\)/,
    );
    expect(fallbackWarning(state)).not.toMatch(/no hold was planned/);
  });

  it("hold: the hold bound falling due in suspend mode's final-sync freeze (late) is held once for the `resuming guest` line; app", () => {
    const held = run(
      "snapshot",
      [{ type: "task-phase", phase: "suspend" }],
      planned(planOf(no, "hold")).state,
    );
    const { state, actions } = run(
      "snapshot",
      [
        { type: "deadline-passed", lateMs: FROZEN_AFTER_MS + 3000 },
        { type: "task-phase", phase: "suspend-resumed" },
      ],
      held.state,
    );
    expect(actions).toEqual([
      { type: "hold-deadline", ms: FREEZE_CONFIRM_MS, lateMs: FROZEN_AFTER_MS + 3000 },
      { type: "disarm-deadline" },
      { type: "resume", cause: "snapshot", consistency: "app" },
      { type: "announce", phase: "follow" },
    ]);
    expect(state.consistency).toBe("app");
  });

  it("a fallback nobody planned a hold for (PVE had said yes, or another policy): the stacks come back at once, crash", () => {
    for (const plan of [planOf({ can: "yes" }, "hold"), planOf(unknown, "stop"), planOf(unknown, "refuse")]) {
      const { state, actions } = run(
        "snapshot",
        [{ type: "task-phase", phase: "suspend" }],
        planned(plan).state,
      );
      expect(actions).toEqual([
        { type: "disarm-deadline" },
        { type: "resume", cause: "fallback", consistency: "crash" },
      ]);
      expect(state).toMatchObject({ fallback: "resumed", consistency: "crash" });
      expect(fallbackWarning(state)).toMatch(/no hold was planned, so the stacks were resumed at once/);
    }
  });

  it("crash: nothing quiesced, crash-consistent from the start, no deadline", () => {
    const { state, actions } = planned(planOf(no, "crash"));
    expect(actions).toEqual([
      { type: "journal-consistency", consistency: "crash" },
      { type: "announce", phase: "snapshot-wait" },
    ]);
    expect(state).toMatchObject({ consistency: "crash", deadlineArmed: false });
  });

  it("stop: the run becomes a stop-mode run (no deadline); refuse: no plan, an error with the fix", () => {
    const { state, actions } = planned(planOf(no, "stop"));
    expect(state.mode).toBe("stop");
    expect(actions).toEqual([{ type: "announce", phase: "follow" }]);
    expect(planRun("snapshot", no, { ...cfg, policy: "refuse" })).toMatchObject({
      ok: false,
      hint: expect.stringMatching(/pct move-volume/),
    });
    // a stop-mode request is never changed
    expect(planRun("stop", no, { ...cfg, policy: "crash" })).toMatchObject({
      ok: true,
      plan: { mode: "stop" },
    });
  });
});

describe("snapshot verdict: PVE's feature check read as vzdump's test", () => {
  const mp = (key: string, inBackup: boolean): CtMountPoint => ({
    key,
    volume: key === "rootfs" ? "local:101/vm-101-disk-0.raw" : "/srv/bulk",
    path: key === "rootfs" ? "/" : "/mnt/bulk",
    type: key === "rootfs" ? "volume" : "bind",
    inBackup,
    reason: inBackup ? "rootfs" : "not a volume",
  });

  it("yes is yes; no is no only when every mount point is in the backup; no answer is unknown", () => {
    expect(snapshotVerdict({ hasFeature: true }, undefined)).toEqual({ can: "yes" });
    expect(snapshotVerdict({ hasFeature: false }, [mp("rootfs", true)])).toEqual({
      can: "no",
      volumes: ["rootfs (local:101/vm-101-disk-0.raw)"],
    });
    // vm_feature judges the bind mount too (volume_has_feature is undef for a path); vzdump skips it
    expect(snapshotVerdict({ hasFeature: false }, [mp("rootfs", true), mp("mp0", false)])).toMatchObject({
      can: "unknown",
      why: expect.stringMatching(/also judges mp0/),
    });
    expect(snapshotVerdict({ hasFeature: false }, undefined)).toMatchObject({ can: "unknown" });
    expect(snapshotVerdict({ error: "403 Permission check failed" }, [mp("rootfs", true)])).toMatchObject({
      can: "unknown",
      why: expect.stringMatching(/did not say/),
    });
  });
});
