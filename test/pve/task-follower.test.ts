import { describe, expect, it } from "vitest";
import { PveServerError } from "../../agent/pve/errors.ts";
import { type FollowEvent, followTask, followTaskToEnd } from "../../agent/pve/task-follower.ts";

const UPID = "UPID:pve1:0012AB34:0456CD78:66F1A2B3:vzdump:100:agent@pve!backup:";
const SNAPSHOT_UPID = "UPID:pve1:0012AB35:0456CD78:66F1A2B4:vzsnapshot:100:agent@pve!backup:";

/**
 * A scripted task for the follower's bookkeeping (line numbering, paging, placeholders, failure
 * accounting). The real HTTP path is covered against the simulator in client.pve.test.ts.
 */
function scriptedTask(script: {
  lines: string[];
  stopAfterPolls: number;
  failOn?: Set<number>;
  pageSize?: number;
}) {
  let polls = 0;
  let calls = 0;
  const visible = () =>
    Math.min(script.lines.length, Math.ceil((polls * script.lines.length) / script.stopAfterPolls));
  return {
    async taskStatus() {
      calls++;
      if (script.failOn?.has(calls)) throw new PveServerError("GET status", 500, "boom");
      polls++;
      const stopped = polls >= script.stopAfterPolls;
      return {
        upid: UPID,
        node: "pve1",
        pid: 1,
        pstart: 1,
        starttime: 1,
        type: "vzdump",
        id: "100",
        user: "agent@pve",
        status: stopped ? ("stopped" as const) : ("running" as const),
        exitstatus: stopped ? "OK" : undefined,
      };
    },
    async taskLog(_node: string, _upid: string, range: { start: number; limit: number }) {
      calls++;
      if (script.failOn?.has(calls)) throw new PveServerError("GET log", 502, "bad gateway");
      const count = visible();
      if (count === 0) return { lines: [{ n: 1, t: "no content" }], total: 1 };
      const end = range.limit === 0 ? count : Math.min(count, range.start + range.limit);
      const lines = script.lines.slice(range.start, end).map((t, i) => ({ n: range.start + i + 1, t }));
      return { lines, total: count };
    },
  };
}

const noSleep = async () => {};

describe("pve task follower bookkeeping", () => {
  it("emits every line once, in order, through paging, placeholders and transient failures", async () => {
    const lines = Array.from({ length: 23 }, (_, i) => `INFO: line ${i + 1}`);
    lines.push("TASK OK");
    const task = scriptedTask({ lines, stopAfterPolls: 6, failOn: new Set([3, 6, 7, 12]) });
    const events: FollowEvent[] = [];
    const result = await followTaskToEnd(task, "pve1", UPID, { sleep: noSleep, pageSize: 5 }, (e) =>
      events.push(e),
    );
    const seen = events.filter((e) => e.type === "line").map((e) => (e.type === "line" ? e.text : ""));
    expect(seen).toEqual(lines);
    expect(result.lines).toEqual(lines);
    expect(result.classified).toEqual({ kind: "ok" });
    expect(events.filter((e) => e.type === "retry").length).toBe(4);
    expect(events.at(-1)?.type).toBe("end");
  });

  it("refuses to follow a task on a node other than the one in its UPID", async () => {
    const task = scriptedTask({ lines: ["TASK OK"], stopAfterPolls: 1 });
    await expect(followTaskToEnd(task, "pve2", UPID)).rejects.toMatchObject({ code: "pve_argument_invalid" });
  });

  it("gives up after the configured number of consecutive failures", async () => {
    const task = scriptedTask({ lines: ["TASK OK"], stopAfterPolls: 1, failOn: new Set([1, 2, 3]) });
    await expect(
      followTaskToEnd(task, "pve1", UPID, { sleep: noSleep, maxConsecutiveFailures: 3 }),
    ).rejects.toMatchObject({ code: "pve_server_error" });
  });

  it("stops at its deadline and when cancelled, without claiming the task ended", async () => {
    let clock = 0;
    const task = scriptedTask({ lines: ["INFO: a"], stopAfterPolls: 1_000 });
    const tick = async (ms: number) => {
      clock += ms;
    };
    await expect(
      followTaskToEnd(task, "pve1", UPID, { sleep: tick, now: () => clock, deadlineMs: 10_000 }),
    ).rejects.toMatchObject({ code: "pve_task_follow_deadline" });

    const controller = new AbortController();
    const it = followTask(task, "pve1", UPID, { signal: controller.signal, sleep: noSleep });
    expect((await it.next()).value).toMatchObject({ type: "line", text: "INFO: a" });
    controller.abort();
    await expect(it.next()).rejects.toMatchObject({ code: "pve_aborted" });
  });

  it("backs off while the log of a non-vzdump task is idle and returns to the fast interval when it moves", async () => {
    const waits: number[] = [];
    const lines = ["INFO: a", "INFO: b", "TASK OK"];
    const task = scriptedTask({ lines, stopAfterPolls: 30 });
    await followTaskToEnd(task, "pve1", SNAPSHOT_UPID, {
      sleep: async (ms) => {
        waits.push(ms);
      },
      minIntervalMs: 100,
      maxIntervalMs: 1_000,
      backoff: 2,
    });
    expect(Math.max(...waits)).toBe(1_000);
    expect(waits.filter((w) => w === 100).length).toBeGreaterThanOrEqual(2);
  });

  /** Log lines that appear at given poll numbers; the task stops at `stopAt`. */
  function stagedTask(stages: [number, string][], stopAt: number) {
    let polls = 0;
    const visible = () => stages.filter(([at]) => at <= polls).map(([, t]) => t);
    return {
      async taskStatus() {
        polls++;
        const stopped = polls >= stopAt;
        return {
          ...{
            upid: UPID,
            node: "pve1",
            pid: 1,
            pstart: 1,
            starttime: 1,
            type: "vzdump",
            id: "100",
            user: "agent@pve",
          },
          status: stopped ? ("stopped" as const) : ("running" as const),
          exitstatus: stopped ? "OK" : undefined,
        };
      },
      async taskLog(_n: string, _u: string, range: { start: number; limit: number }) {
        const all = visible();
        return {
          lines: all.slice(range.start).map((t, i) => ({ n: range.start + i + 1, t })),
          total: all.length,
        };
      },
    };
  }

  async function waitsOf(task: ReturnType<typeof stagedTask>, isUrgent?: () => boolean): Promise<number[]> {
    const waits: number[] = [];
    const record = async (ms: number) => {
      waits.push(ms);
    };
    await followTaskToEnd(task, "pve1", UPID, {
      sleep: record,
      minIntervalMs: 100,
      maxIntervalMs: 1_000,
      backoff: 2,
      ...(isUrgent ? { isUrgent } : {}),
    });
    return waits;
  }

  it("backs off once the caller says nothing waits any more, though no phase relieved it (a task stalled before the snapshot)", async () => {
    let polls = 0;
    const waits = await waitsOf(
      stagedTask(
        [
          [1, "INFO: starting new backup job: vzdump 100 --storage bk"],
          [1, "INFO: including mount point rootfs ('/') in backup"],
          [30, "TASK ERROR: interrupted by signal"],
        ],
        30,
      ),
      () => ++polls <= 5, // the stacks were resumed at a deadline after the fifth poll
    );
    expect(waits.slice(0, 4).every((w) => w === 100)).toBe(true);
    expect(Math.max(...waits.slice(5))).toBe(1_000);
  });

  it("polls a vzdump task at the fast interval until the services may resume, then backs off", async () => {
    const waits = await waitsOf(
      stagedTask(
        [
          [1, "INFO: starting new backup job: vzdump 100 --storage bk"],
          [1, "INFO: backup mode: snapshot"],
          [3, "INFO: create storage snapshot 'vzdump'"],
          [12, "INFO: creating vzdump archive '/x.tar'"],
          [30, "TASK OK"],
        ],
        30,
      ),
    );
    // Polls 1..11 wait the fast interval (nothing moved on polls 4..11, but the services are down).
    expect(waits.slice(0, 11).every((w) => w === 100)).toBe(true);
    expect(Math.max(...waits.slice(12))).toBe(1_000);
  });

  it("bounds when the snapshot line appeared: after the previous log read was sent, by the answer that had it", async () => {
    let clock = 0;
    const task = stagedTask(
      [
        [1, "INFO: starting new backup job: vzdump 100 --storage bk"],
        [1, "INFO: backup mode: snapshot"],
        [3, "INFO: create storage snapshot 'vzdump'"],
        [5, "INFO: creating vzdump archive '/x.tar'"],
        [8, "TASK OK"],
      ],
      8,
    );
    // Each log read takes 10 ms to answer; the follower sleeps 100 ms between polls.
    const slowLog: typeof task = {
      ...task,
      async taskLog(...args: Parameters<typeof task.taskLog>) {
        clock += 10;
        return task.taskLog(...args);
      },
    };
    const events: FollowEvent[] = [];
    await followTaskToEnd(
      slowLog,
      "pve1",
      UPID,
      {
        now: () => clock,
        sleep: async (ms) => {
          clock += ms;
        },
        minIntervalMs: 100,
      },
      (e) => events.push(e),
    );
    const created = events.find((e) => e.type === "phase" && e.phase.phase === "snapshot-created");
    // Poll n's log read is sent at 110·(n-1) and answered 10 ms later; the line completing the snapshot
    // arrives with poll 5, so poll 4's read (sent at 330) did not have it.
    expect(created).toMatchObject({ seen: { after: 330, by: 450 } });
  });

  it("backs off while a vzdump job waits for another guest's backup to release the node lock", async () => {
    const waits = await waitsOf(
      stagedTask(
        [
          [1, "INFO: trying to get global lock - waiting..."],
          [20, "INFO: got global lock"],
          [20, "INFO: starting new backup job: vzdump 100 --storage bk"],
          [30, "TASK OK"],
        ],
        30,
      ),
    );
    expect(Math.max(...waits.slice(0, 19))).toBe(1_000);
    // Once the lock is taken the job is urgent again until the snapshot (never, here): fast to the end.
    expect(waits.slice(20).every((w) => w === 100)).toBe(true);
  });
});
