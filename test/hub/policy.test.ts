import { CLOSE_CODES } from "@felhom/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkHubUrl, isLoopback } from "../../agent/config/hub-url.ts";
import { hardDelayMs, phasedDelayMs } from "../../agent/hub/backoff.ts";
import { backoffAttempt, IllegalStateError, type LinkState, transition } from "../../agent/hub/link-state.ts";
import { type OverflowCandidate, planOverflow } from "../../agent/hub/outbox-overflow.ts";
import { decideReconnect, type LinkDrop } from "../../agent/hub/reconnect-decision.ts";
import { peakInWindow } from "../bench/report.ts";
import { prng } from "./support.ts";

const policy = { backoff: { baseMs: 1_000, maxMs: 60_000 }, authRejectedMs: 300_000, fatalMs: 3_600_000 };

describe("backoff with one random phase per streak", () => {
  it("makes attempt k at base·2^(k+phase) after the streak began while the waits are below the cap", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (phase) => {
        let at = 0;
        for (let k = 0; k < 5; k++) {
          at += phasedDelayMs(k, policy.backoff, phase);
          // Each wait is floored to whole ms.
          if (Math.abs(at - 1_000 * 2 ** (k + phase)) > k + 1) return false;
        }
        return true;
      }),
    );
  });

  it("never waits longer than the cap, nor less than the base", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, phase) => {
          const d = phasedDelayMs(attempt, policy.backoff, phase);
          return Number.isInteger(d) && d >= 1_000 && d <= 60_000;
        },
      ),
    );
    expect(phasedDelayMs(50, policy.backoff, 0)).toBe(60_000);
  });

  it("brings a fleet that lost the hub at once back evenly, whatever the outage (busiest second ≤ 2× the mean)", () => {
    // The model of test/bench/hub-restart.bench.ts without sockets: 2,000 agents drop at 0, each with its
    // own phase; attempts while the hub is down fail at once; the hub is back after `outage` ms.
    const random = prng(15);
    const phases = Array.from({ length: 2_000 }, () => random());
    const drop: LinkDrop = { kind: "network", message: "ECONNREFUSED" };
    for (const outage of [500, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000]) {
      const arrivals = phases
        .map((phase) => {
          let at = 0;
          for (let attempt = 0; at < outage; attempt++)
            at += decideReconnect(drop, attempt, policy, random, phase).delayMs;
          return at - outage;
        })
        .sort((a, b) => a - b);
      const t99 = arrivals[Math.ceil(arrivals.length * 0.99) - 1]!;
      const windowMs = Math.min(1_000, t99);
      const inTime = arrivals.filter((a) => a <= t99);
      const peak = peakInWindow(inTime, windowMs) / windowMs;
      const mean = inTime.length / t99;
      expect(peak / mean, `outage ${outage} ms`).toBeLessThanOrEqual(2);
    }
  });

  it("keeps a hard delay between half and all of the nominal wait", () => {
    expect(hardDelayMs(300_000, () => 0)).toBe(150_000);
    expect(hardDelayMs(300_000, () => 0.999_999)).toBeLessThan(300_000);
    expect(hardDelayMs(300_000, () => 0.999_999)).toBeGreaterThan(299_000);
  });
});

describe("the reconnect decision", () => {
  const decide = (drop: LinkDrop, attempt = 0) => decideReconnect(drop, attempt, policy, () => 0.5, 0.5);

  it.each([
    [{ kind: "http-rejected", status: 401 }],
    [{ kind: "http-rejected", status: 403 }],
    [{ kind: "closed", code: CLOSE_CODES.Unauthorized.code, reason: "" }],
    [{ kind: "closed", code: CLOSE_CODES.Forbidden.code, reason: "" }],
  ] as Array<[LinkDrop]>)("backs off for minutes after the auth rejection %j", (drop) => {
    expect(decide(drop)).toEqual({ action: "auth-rejected", delayMs: 225_000 });
  });

  it.each([CLOSE_CODES.BadHandshake.code, CLOSE_CODES.UnsupportedProtocol.code])(
    "waits about an hour after the fatal close code %i",
    (code) => {
      expect(decide({ kind: "closed", code, reason: "" })).toEqual({ action: "fatal", delayMs: 2_700_000 });
    },
  );

  it.each([1000, 1001, 1006, 1009, 1011, 1012, 4408, 4409, 4429, 4500, 4504, 4999])(
    "retries with backoff after close code %i",
    (code) => {
      expect(decide({ kind: "closed", code, reason: "" }, 2)).toEqual({ action: "retry", delayMs: 2_828 });
    },
  );

  it.each([
    [{ kind: "http-rejected", status: 502 }],
    [{ kind: "network", message: "ECONNREFUSED" }],
    [{ kind: "stalled", what: "no pong" }],
    [{ kind: "local", message: "credential file missing" }],
    // The agent's own 4400 over a welcome it refused: the hub may be fixed soon, unlike a 4400 it receives.
    [{ kind: "refused", code: 4400, what: "welcome.lastAckedSeq jumps above MAX_HUB_SEQ" }],
  ] as Array<[LinkDrop]>)("retries with backoff after %j", (drop) => {
    expect(decide(drop).action).toBe("retry");
  });
});

describe("the link state machine", () => {
  const dropped: LinkDrop = { kind: "network", message: "x" };

  it("counts failed attempts across opened-then-dropped sockets and resets only on welcome", () => {
    let s: LinkState = { name: "idle" };
    s = transition(s, { type: "dial" });
    s = transition(s, { type: "opened" });
    s = transition(s, { type: "dropped", drop: dropped });
    expect(s).toMatchObject({ name: "waiting", attempt: 1 });
    s = transition(s, { type: "dial" });
    s = transition(s, { type: "opened" });
    s = transition(s, { type: "dropped", drop: dropped });
    expect(s).toMatchObject({ name: "waiting", attempt: 2 });
    expect(backoffAttempt(s as Extract<LinkState, { name: "waiting" }>)).toBe(1);
    s = transition(s, { type: "dial" });
    s = transition(s, { type: "opened" });
    s = transition(s, { type: "welcomed", at: 1 });
    s = transition(s, { type: "dropped", drop: dropped });
    expect(s).toMatchObject({ name: "waiting", attempt: 1 });
    expect(backoffAttempt(s as Extract<LinkState, { name: "waiting" }>)).toBe(0);
  });

  it("refuses transitions that would be bugs", () => {
    expect(() => transition({ name: "idle" }, { type: "welcomed", at: 1 })).toThrow(IllegalStateError);
    expect(() => transition({ name: "connecting", attempt: 0 }, { type: "welcomed", at: 1 })).toThrow(
      IllegalStateError,
    );
    expect(() => transition({ name: "stopped" }, { type: "dial" })).toThrow(IllegalStateError);
    expect(transition({ name: "connected", since: 1 }, { type: "stop" })).toEqual({ name: "stopped" });
  });
});

describe("the hub URL check", () => {
  it.each(["127.0.0.1", "127.3.2.1", "localhost", "[::1]", "[::ffff:127.0.0.1]"])(
    "treats %s as loopback",
    (host) => {
      expect(isLoopback(host)).toBe(true);
    },
  );

  it.each(["10.0.0.1", "128.0.0.1", "hub.example", "[::2]", "localhost.evil.example"])(
    "does not treat %s as loopback",
    (host) => {
      expect(isLoopback(host)).toBe(false);
    },
  );

  it("accepts wss anywhere and ws only to loopback", () => {
    expect(checkHubUrl("wss://hub.example/agent").host).toBe("hub.example");
    expect(checkHubUrl("ws://127.0.0.1:8765/agent").port).toBe("8765");
    expect(() => checkHubUrl("ws://hub.example/agent")).toThrow(
      expect.objectContaining({ code: "hub_url_insecure" }),
    );
    expect(() => checkHubUrl("http://hub.example/")).toThrow(
      expect.objectContaining({ code: "hub_url_invalid" }),
    );
    expect(() => checkHubUrl("not a url")).toThrow(expect.objectContaining({ code: "hub_url_invalid" }));
  });
});

describe("the overflow policy", () => {
  const entries = (kinds: string[]): OverflowCandidate[] =>
    kinds.map((kind, i) => ({ seq: i + 1, kind, bytes: 10, droppableFirst: kind === "progress" }));
  const view = (list: OverflowCandidate[]) => ({
    count: list.length,
    bytes: list.reduce((n, e) => n + e.bytes, 0),
    gaps: list.filter((e) => e.gap),
    droppableFirst: list.filter((e) => e.droppableFirst),
    all: list,
  });

  it("does nothing while the outbox fits", () => {
    expect(
      planOverflow(view(entries(["phase", "progress"])), { maxEvents: 2, maxBytes: 10_000 }),
    ).toBeUndefined();
  });

  it("drops the oldest progress events first, leaving room for the gap", () => {
    const plan = planOverflow(view(entries(["phase", "progress", "phase", "progress", "progress"])), {
      maxEvents: 4,
      maxBytes: 10_000,
    });
    expect(plan).toEqual({ drop: [2, 4], gap: { fromSeq: 2, toSeq: 4, count: 2, kinds: ["progress"] } });
  });

  it("then the oldest of anything", () => {
    const plan = planOverflow(view(entries(["phase", "result", "progress", "phase"])), {
      maxEvents: 2,
      maxBytes: 10_000,
    });
    expect(plan).toEqual({
      drop: [1, 2, 3],
      gap: { fromSeq: 1, toSeq: 3, count: 3, kinds: ["phase", "progress", "result"] },
    });
  });

  it("merges an earlier gap into the new one, covering the old gap's own seq", () => {
    const list: OverflowCandidate[] = [
      {
        seq: 5,
        kind: "gap",
        bytes: 10,
        droppableFirst: false,
        gap: { fromSeq: 1, toSeq: 4, count: 4, kinds: ["progress"] },
      },
      { seq: 6, kind: "phase", bytes: 10, droppableFirst: false },
      { seq: 7, kind: "progress", bytes: 10, droppableFirst: true },
      { seq: 8, kind: "phase", bytes: 10, droppableFirst: false },
    ];
    const plan = planOverflow(view(list), { maxEvents: 2, maxBytes: 10_000 });
    expect(plan).toEqual({
      drop: [5, 6, 7],
      gap: { fromSeq: 1, toSeq: 7, count: 6, kinds: ["phase", "progress"] },
    });
  });

  it("obeys the byte limit with room for the gap record", () => {
    const list = entries(Array.from({ length: 200 }, () => "progress"));
    const plan = planOverflow(view(list), { maxEvents: 10_000, maxBytes: 1_500 })!;
    expect(200 * 10 - plan.drop.length * 10 + 1_024).toBeLessThanOrEqual(1_500);
    expect(plan.drop).toEqual(Array.from({ length: plan.drop.length }, (_, i) => i + 1));
  });
});
