import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_HUB_SEQ } from "@felhom/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { OUTBOX_LOG, Outbox, type OutboxOptions, RebaseRefusedError } from "../../agent/hub/outbox.ts";
import type { GapInfo } from "../../agent/hub/outbox-overflow.ts";

type Ev = { kind: string; n?: number; gap?: GapInfo; pad?: string };

const dirs: string[] = [];
const opened: Outbox<Ev>[] = [];
afterEach(async () => {
  for (const o of opened.splice(0)) await o.close().catch(() => undefined);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "felhom-outbox-"));
  dirs.push(d);
  return d;
}

async function openOutbox(dir: string, over: Partial<OutboxOptions<Ev>> = {}): Promise<Outbox<Ev>> {
  const o = await Outbox.open<Ev>({
    dir,
    maxEvents: 1_000,
    maxBytes: 1024 * 1024,
    kindOf: (e) => e.kind,
    isDroppableFirst: (e) => e.kind === "progress",
    makeGap: (gap) => ({ kind: "gap", gap }),
    ...over,
  });
  opened.push(o);
  return o;
}

const all = (o: Outbox<Ev>) => [...o.durableAfter(0)];

describe("the durable outbox", () => {
  it("assigns increasing seqs and hands out events only once they are on disk", async () => {
    const o = await openOutbox(await tempDir());
    const p1 = o.append({ kind: "phase", n: 1 });
    const p2 = o.append({ kind: "phase", n: 2 });
    expect(all(o)).toEqual([]);
    expect(await Promise.all([p1, p2])).toEqual([1, 2]);
    expect(all(o).map((r) => r.event.n)).toEqual([1, 2]);
  });

  it("removes acknowledged events and keeps the rest across a reopen, with the counter intact", async () => {
    const dir = await tempDir();
    const o = await openOutbox(dir);
    for (let i = 1; i <= 5; i++) await o.append({ kind: "phase", n: i });
    o.ack(3);
    expect(all(o).map((r) => r.seq)).toEqual([4, 5]);
    await o.close();
    const again = await openOutbox(dir);
    expect(all(again).map((r) => [r.seq, r.event.n])).toEqual([
      [4, 4],
      [5, 5],
    ]);
    expect(await again.append({ kind: "phase", n: 6 })).toBe(6);
  });

  it("keeps the sequence counter after everything was acked and the log was compacted", async () => {
    const dir = await tempDir();
    const o = await openOutbox(dir, { compactMinDeadBytes: 100 });
    for (let i = 1; i <= 50; i++) await o.append({ kind: "phase", n: i, pad: "x".repeat(50) });
    o.ack(50);
    await o.append({ kind: "phase", n: 51 });
    await o.close();
    const log = await readFile(join(dir, OUTBOX_LOG), "utf8");
    expect(log.split("\n").length).toBeLessThan(10);
    const again = await openOutbox(dir);
    expect(all(again).map((r) => r.seq)).toEqual([51]);
    expect(await again.append({ kind: "phase" })).toBe(52);
  });

  it("cuts off a torn last line left by a crash and keeps every complete record", async () => {
    const dir = await tempDir();
    const o = await openOutbox(dir);
    await o.append({ kind: "phase", n: 1 });
    await o.close();
    await appendFile(join(dir, OUTBOX_LOG), '{"s":2,"t":"2026-');
    const again = await openOutbox(dir);
    expect(all(again).map((r) => r.seq)).toEqual([1]);
    expect(await again.append({ kind: "phase", n: 2 })).toBe(2);
    await again.close();
    const third = await openOutbox(dir);
    expect(all(third).map((r) => r.event.n)).toEqual([1, 2]);
  });

  it("drops the oldest progress events first on overflow and queues one gap event in their place", async () => {
    const o = await openOutbox(await tempDir(), { maxEvents: 100 });
    const kinds = ["phase", "progress", "progress", "phase"];
    for (let i = 0; i < 100; i++) o.append({ kind: kinds[i % 4]!, n: i + 1 });
    await o.append({ kind: "phase", n: 101 });
    await o.append({ kind: "phase", n: 102 });
    const recs = all(o);
    expect(recs.length).toBeLessThanOrEqual(100);
    const gaps = recs.filter((r) => r.event.kind === "gap");
    expect(gaps).toHaveLength(1);
    const gap = gaps[0]!.event.gap!;
    expect(gap.kinds).toEqual(["progress"]);
    expect(gap.fromSeq).toBe(2);
    // Every phase event is still there; the dropped ones are exactly what the gap counts.
    expect(recs.filter((r) => r.event.kind === "phase")).toHaveLength(52);
    const kept = new Set(recs.map((r) => r.seq));
    const missing = [];
    for (let s = gap.fromSeq; s <= gap.toSeq; s++) if (!kept.has(s)) missing.push(s);
    // Seqs above 100 that are missing are earlier gap records, merged into this one.
    const droppedEvents = missing.filter((s) => s <= 100);
    expect(droppedEvents).toHaveLength(gap.count);
    expect(droppedEvents.every((s) => kinds[(s - 1) % 4] === "progress")).toBe(true);
    expect(gaps[0]!.seq).toBeGreaterThan(gap.toSeq);
  });

  it("drops the oldest of anything when only non-progress events are left, and says so in the gap", async () => {
    const o = await openOutbox(await tempDir(), { maxEvents: 10 });
    for (let i = 1; i <= 20; i++) o.append({ kind: "phase", n: i });
    await o.append({ kind: "phase", n: 21 });
    const recs = all(o);
    expect(recs.length).toBeLessThanOrEqual(10);
    const gap = recs.find((r) => r.event.kind === "gap")!.event.gap!;
    expect(gap.fromSeq).toBe(1);
    expect(gap.kinds).toEqual(["phase"]);
    expect(recs.filter((r) => r.event.kind === "phase").at(-1)!.event.n).toBe(21);
    // Phase events survive newest first: those kept are a contiguous tail.
    const ns = recs.filter((r) => r.event.kind === "phase").map((r) => r.event.n!);
    expect(ns).toEqual(Array.from({ length: ns.length }, (_, i) => 21 - ns.length + 1 + i));
  });

  it("keeps its overflow decisions across a reopen", async () => {
    const dir = await tempDir();
    const o = await openOutbox(dir, { maxEvents: 10 });
    for (let i = 1; i <= 30; i++) o.append({ kind: i % 2 ? "progress" : "phase", n: i });
    await o.append({ kind: "phase", n: 31 });
    const before = all(o).map((r) => r.seq);
    await o.close();
    const again = await openOutbox(dir, { maxEvents: 10 });
    expect(all(again).map((r) => r.seq)).toEqual(before);
  });

  it("respects the byte bound as well as the count", async () => {
    const o = await openOutbox(await tempDir(), { maxBytes: 64 * 1024 });
    for (let i = 1; i <= 200; i++) o.append({ kind: "progress", n: i, pad: "y".repeat(1_000) });
    await o.append({ kind: "phase", n: 201 });
    expect(o.bytes).toBeLessThanOrEqual(64 * 1024);
    expect(all(o).some((r) => r.event.kind === "gap")).toBe(true);
  });

  it("renumbers waiting events above the hub's position when the hub knows later seqs", async () => {
    const dir = await tempDir();
    const o = await openOutbox(dir);
    await o.append({ kind: "phase", n: 1 });
    await o.append({ kind: "phase", n: 2 });
    await o.rebase(40);
    expect(all(o).map((r) => [r.seq, r.event.n])).toEqual([
      [41, 1],
      [42, 2],
    ]);
    await o.close();
    const again = await openOutbox(dir);
    expect(all(again).map((r) => r.seq)).toEqual([41, 42]);
    expect(await again.append({ kind: "phase" })).toBe(43);
  });

  it("refuses to number on above a hub position beyond MAX_HUB_SEQ, keeps its events, counter and ack as they were, and numbers on above the bound itself", async () => {
    const dir = await tempDir();
    const o = await openOutbox(dir);
    await o.append({ kind: "phase", n: 1 });
    await o.append({ kind: "phase", n: 2 });
    o.ack(1);
    const limit = MAX_HUB_SEQ;
    for (const position of [limit + 1, Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER, 2 ** 53, 2.5]) {
      await expect(o.rebase(position)).rejects.toBeInstanceOf(RebaseRefusedError);
    }
    await expect(o.rebase(limit + 1)).rejects.toMatchObject({ code: "outbox_rebase_refused" });
    expect(all(o).map((r) => [r.seq, r.event.n])).toEqual([[2, 2]]);
    expect([o.lastSeq, o.ackedSeq]).toEqual([2, 1]);
    expect(await o.append({ kind: "phase", n: 3 })).toBe(3);
    await o.close();
    const again = await openOutbox(dir);
    expect([again.lastSeq, again.ackedSeq]).toEqual([3, 1]);
    await again.rebase(limit);
    expect(all(again).map((r) => r.seq)).toEqual([limit + 1, limit + 2]);
    // Numbering goes on above the bound; a later welcome at or below its own last seq is no jump at all.
    expect(await again.append({ kind: "phase", n: 4 })).toBe(limit + 3);
    await again.rebase(limit + 3);
    expect(again.lastSeq).toBe(limit + 3);
  });

  it("ignores a corrupt line in the middle instead of refusing to open", async () => {
    const dir = await tempDir();
    await writeFile(
      join(dir, OUTBOX_LOG),
      `${JSON.stringify({ s: 1, t: "2026-01-01T00:00:00.000Z", e: { kind: "phase" } })}\nnot json\n${JSON.stringify({ s: 2, t: "2026-01-01T00:00:00.000Z", e: { kind: "phase" } })}\n`,
    );
    const o = await openOutbox(dir);
    expect(all(o).map((r) => r.seq)).toEqual([1, 2]);
  });

  it("queues 10,000 appends made at once with few fsyncs", async () => {
    const o = await openOutbox(await tempDir(), { maxEvents: 50_000 });
    const seqs = await Promise.all(
      Array.from({ length: 10_000 }, (_, i) => o.append({ kind: "progress", n: i })),
    );
    expect(seqs.at(-1)).toBe(10_000);
    expect(o.depth).toBe(10_000);
  });
});
