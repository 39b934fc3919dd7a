import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ContainerDetails } from "../../agent/docker/docker-engine.ts";
import { FROZEN_AFTER_MS } from "../../agent/lib/late-timer.ts";
import type { QuiesceFailedError } from "../../agent/quiesce/errors.ts";
import { type Engine, quiesce, type ResumeReport } from "../../agent/quiesce/executor.ts";
import { QuiesceJournal } from "../../agent/quiesce/journal.ts";
import { buildPlan } from "../../agent/quiesce/plan.ts";
import { container, stacksOf } from "./support/builders.ts";

/**
 * The one race a real engine cannot produce on demand: the downtime deadline firing while a stop is still
 * in flight. A small in-memory engine holds the stop until the test releases it.
 */
class HeldStopEngine implements Engine {
  readonly calls: string[] = [];
  readonly states = new Map<string, ContainerDetails["state"]>();
  releaseStop: () => void = () => undefined;
  private readonly held = new Promise<void>((r) => {
    this.releaseStop = r;
  });

  constructor(private readonly containers: ContainerDetails[]) {
    for (const c of containers) this.states.set(c.id, c.state);
  }
  async inspect(id: string): Promise<ContainerDetails> {
    const c = this.containers.find((x) => x.id === id)!;
    return { ...c, state: this.states.get(id)! };
  }
  async stop(id: string, name: string): Promise<void> {
    this.calls.push(`stop ${name}`);
    await this.held;
    this.states.set(id, "exited");
    this.calls.push(`stopped ${name}`);
  }
  async start(id: string, name: string): Promise<void> {
    this.calls.push(`start ${name}`);
    this.states.set(id, "running");
  }
  async pause(): Promise<void> {
    throw new Error("not used");
  }
  async unpause(): Promise<void> {
    throw new Error("not used");
  }
  async exec(): Promise<never> {
    throw new Error("not used");
  }
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "felhom-deadline-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe("downtime deadline during quiesce", () => {
  it("resumes when the deadline passes during the last stop of all, which no later service would notice", async () => {
    const containers = [container("p", "db")];
    const result = buildPlan(stacksOf(...containers));
    if (!result.ok) throw new Error("plan");
    const engine = new HeldStopEngine(containers);
    const journal = await QuiesceJournal.create(join(dir, "j.json"), { backupId: "b0", plan: result.plan });
    const quiescing = quiesce(journal, engine, { downtimeDeadlineMs: 50 });
    await new Promise((r) => setTimeout(r, 200));
    engine.releaseStop();
    const err = (await quiescing.catch((e: unknown) => e)) as QuiesceFailedError;
    expect(err.code).toBe("quiesce_failed");
    expect((err.resumeReport as ResumeReport).trigger).toBe("deadline");
    expect(engine.states.get(containers[0]!.id)).toBe("running");
    expect(journal.finished).toBe(true);
  });

  it("waits for an in-flight stop, touches nothing further, and then resumes what was stopped", async () => {
    const containers = [container("p", "db"), container("p", "app", { dependsOn: "db:x:false" })];
    const result = buildPlan(stacksOf(...containers));
    if (!result.ok) throw new Error("plan");
    const engine = new HeldStopEngine(containers);
    const journal = await QuiesceJournal.create(join(dir, "j.json"), { backupId: "b1", plan: result.plan });

    const quiescing = quiesce(journal, engine, { downtimeDeadlineMs: 50 });
    await new Promise((r) => setTimeout(r, 200));
    // The deadline has passed, but app's stop has not returned: nothing may be started yet.
    expect(engine.calls).toEqual(["stop p_app_1"]);
    engine.releaseStop();

    const err = (await quiescing.catch((e: unknown) => e)) as QuiesceFailedError;
    expect(err.code).toBe("quiesce_failed");
    expect((err.resumeReport as ResumeReport).trigger).toBe("deadline");
    expect(engine.calls).toEqual(["stop p_app_1", "stopped p_app_1", "start p_app_1"]);
    expect(engine.states.get(containers[0]!.id)).toBe("running");
    expect(journal.finished).toBe(true);
  });
});

/** This thread stops for `ms`, as a process under SIGSTOP or the cgroup freezer: its timers fall due meanwhile. */
function freezeThread(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe("the dead man's switch after a freeze (PVE froze the CT for the snapshot)", () => {
  // Room for the quiesce's journal fsyncs on a slow disk: the switch must not fall due before the freeze.
  const DEADLINE_MS = 1_000;

  async function quiescedDb(frozenGraceMs: number) {
    const containers = [container("p", "db")];
    const result = buildPlan(stacksOf(...containers));
    if (!result.ok) throw new Error("plan");
    const engine = new HeldStopEngine(containers);
    engine.releaseStop();
    const journal = await QuiesceJournal.create(join(dir, "j.json"), { backupId: "bf", plan: result.plan });
    const started = Date.now();
    const handle = await quiesce(journal, engine, { downtimeDeadlineMs: DEADLINE_MS, frozenGraceMs });
    // The quiesce ended before its switch was due (else this test proves nothing about a late one).
    expect(engine.calls).toEqual(["stop p_db_1", "stopped p_db_1"]);
    // Frozen past the switch's time: on thaw it is overdue by more than FROZEN_AFTER_MS.
    freezeThread(Math.max(0, started + DEADLINE_MS - Date.now()) + FROZEN_AFTER_MS + 300);
    // Overdue timers run before this one.
    await new Promise((r) => setTimeout(r, 0));
    return { engine, journal, handle, db: containers[0]!.id };
  }

  it("fired late, it leaves the resume to the caller, thawed at the same instant", async () => {
    const { engine, handle } = await quiescedDb(60_000);
    expect(engine.calls).toEqual(["stop p_db_1", "stopped p_db_1"]);
    expect((await handle.resume()).trigger).toBe("caller");
  });

  it("its grace is given once: frozen again through the grace, it resumes on thaw instead of waiting anew", async () => {
    const graceMs = 200;
    const { engine, handle, db } = await quiescedDb(graceMs);
    freezeThread(graceMs + FROZEN_AFTER_MS + 300);
    await new Promise((r) => setTimeout(r, 0));
    // the switch began the resume when it fired: the caller's resume joins it
    expect((await handle.resume()).trigger).toBe("deadline");
    expect(engine.states.get(db)).toBe("running");
  });

  it("fired late and then the caller does nothing: it resumes after its grace", async () => {
    const { engine, journal, handle, db } = await quiescedDb(50);
    while (!journal.finished) await new Promise((r) => setTimeout(r, 10));
    expect((await handle.resume()).trigger).toBe("deadline");
    expect(engine.states.get(db)).toBe("running");
  });
});
