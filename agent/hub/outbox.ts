import type { FileHandle } from "node:fs/promises";
import { mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { MAX_HUB_SEQ } from "@felhom/protocol";
import { z } from "zod";
import { AgentError } from "../lib/errors.ts";
import { readJsonFile, writeFileDurable, writeJsonDurable } from "../state/durable-file.ts";
import { type GapInfo, type OverflowCandidate, planOverflow } from "./outbox-overflow.ts";

/** An event as the outbox hands it to the sender. */
export interface OutboxRecord<E> {
  seq: number;
  /** When the event happened (not when it is sent). */
  at: string;
  event: E;
}

export interface OutboxOptions<E> {
  /** Directory of the outbox files (created 0700). */
  dir: string;
  maxEvents: number;
  maxBytes: number;
  kindOf: (event: E) => string;
  /** Progress-type events (phase progress, periodic status): dropped first on overflow. */
  isDroppableFirst: (event: E) => boolean;
  /** Builds the event that is sent in place of dropped ones. */
  makeGap: (gap: GapInfo) => E;
  now?: () => Date;
  /** Dead (acked or dropped) bytes that must also outweigh the live ones before the log is rewritten. */
  compactMinDeadBytes?: number;
}

interface Entry<E> extends OverflowCandidate {
  at: string;
  event: E;
  line: string;
  /** Written and fsync'd: only durable entries are handed to the sender. */
  durable: boolean;
}

type LogLine =
  | { s: number; t: string; e: unknown; g?: GapInfo }
  | { d: Array<[number, number]> }
  | { h: { lastSeq: number } };

const ackedSchema = z.object({ ackedSeq: z.int().min(0) });

export const OUTBOX_LOG = "outbox.log";
export const OUTBOX_ACKED = "acked.json";
const WRITE_RETRY_MS = 1_000;

/** The hub's position would leave the outbox (almost) no seqs to number events with. */
export class RebaseRefusedError extends AgentError {
  constructor(position: number) {
    super(
      "outbox_rebase_refused",
      `the hub's position ${position} is above this agent's last seq and above MAX_HUB_SEQ (2^48): numbering on above it would run out of seqs; events stay queued with their seqs`,
      { hint: "the hub's stored position for this agent is corrupt: reset it on the hub" },
    );
  }
}

/**
 * The durable queue of events for the hub (invariant 4: nothing reported is lost).
 *
 * On disk: `outbox.log`, an append-only file of JSON lines — records (`s` seq, `t` time, `e` event, `g`
 * gap info), tombstones for records dropped on overflow (`d`: seq ranges), and, first in a rewritten
 * log, a header (`h.lastSeq`) so the sequence counter survives a log that held only acked events — and
 * `acked.json`, the highest seq the hub acknowledged. Appends that arrive in the same tick share one
 * write + fsync; `append` resolves after it, and only then is the event handed to the sender. When dead
 * bytes (acked or dropped) dominate, the log is rewritten (tmp + fsync + rename).
 *
 * A crash can leave a torn last line (cut off on open) and an `acked.json` older than the last ack
 * (those events are resent; the hub dedupes by seq). Memory holds the live events, so it is bounded by
 * `maxBytes` like the disk.
 */
export class Outbox<E> {
  readonly #opts: Required<OutboxOptions<E>>;
  readonly #entries = new Map<number, Entry<E>>();
  readonly #droppable = new Map<number, Entry<E>>();
  readonly #gaps = new Map<number, Entry<E>>();
  readonly #listeners = new Set<() => void>();
  #fh: FileHandle;
  #fileBytes: number;
  #liveBytes = 0;
  #lastSeq: number;
  #ackedSeq: number;
  #persistedAck: number;
  #pendingLines: string[] = [];
  #pendingWaiters: Array<{ seqs: number[]; resolve: () => void; reject: (err: unknown) => void }> = [];
  #pendingEntries: Entry<E>[] = [];
  #flushing: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #ackWrite: Promise<void> | undefined;
  #closed = false;

  private constructor(
    opts: Required<OutboxOptions<E>>,
    fh: FileHandle,
    fileBytes: number,
    lastSeq: number,
    acked: number,
  ) {
    this.#opts = opts;
    this.#fh = fh;
    this.#fileBytes = fileBytes;
    this.#lastSeq = lastSeq;
    this.#ackedSeq = acked;
    this.#persistedAck = acked;
  }

  static async open<E>(options: OutboxOptions<E>): Promise<Outbox<E>> {
    const opts: Required<OutboxOptions<E>> = {
      now: () => new Date(),
      compactMinDeadBytes: 1024 * 1024,
      ...options,
    };
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    const acked = (await readJsonFile(join(opts.dir, OUTBOX_ACKED), ackedSchema))?.ackedSeq ?? 0;
    const logPath = join(opts.dir, OUTBOX_LOG);
    const { lines, validBytes, torn, exists } = await readLog(logPath);
    // Created durably (directory entry included), so later appends only need the file's own fsync.
    if (!exists) await writeFileDurable(logPath, "");
    const fh = await open(logPath, "a+", 0o600);
    if (torn) await fh.truncate(validBytes);
    let lastSeq = acked;
    const records = new Map<number, { s: number; t: string; e: unknown; g?: GapInfo; line: string }>();
    for (const { parsed, line } of lines) {
      if ("h" in parsed) lastSeq = Math.max(lastSeq, parsed.h.lastSeq);
      else if ("d" in parsed) for (const [a, b] of parsed.d) for (let s = a; s <= b; s++) records.delete(s);
      else {
        lastSeq = Math.max(lastSeq, parsed.s);
        if (parsed.s > acked) records.set(parsed.s, { ...parsed, line });
      }
    }
    const outbox = new Outbox<E>(opts, fh, validBytes, lastSeq, acked);
    for (const r of [...records.values()].sort((a, b) => a.s - b.s)) {
      outbox.#insert(outbox.#entry(r.s, r.t, r.e as E, r.g, r.line), true);
    }
    return outbox;
  }

  /** Events waiting for an ack (sent or not). */
  get depth(): number {
    return this.#entries.size;
  }

  /** Bytes of the waiting events as stored. */
  get bytes(): number {
    return this.#liveBytes;
  }

  /** The highest seq assigned so far (0 if none). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  get ackedSeq(): number {
    return this.#ackedSeq;
  }

  /**
   * Assigns the next seq, persists the event, and resolves with its seq once it is on disk. If the outbox
   * is full, older events are dropped (see `planOverflow`) and a gap event is queued in their place.
   * `gap` marks the event as a gap declared by the caller, so a later overflow merges it, not loses it.
   */
  append(event: E, gap?: GapInfo): Promise<number> {
    if (this.#closed) return Promise.reject(new AgentError("outbox_closed", "the hub outbox is closed"));
    const seq = this.#nextSeq();
    const entry = this.#entry(seq, this.#opts.now().toISOString(), event, gap);
    this.#insert(entry, false);
    const seqs = [seq];
    const overflow = planOverflow(
      {
        count: this.#entries.size,
        bytes: this.#liveBytes,
        gaps: this.#gaps.values(),
        droppableFirst: this.#droppable.values(),
        all: this.#entries.values(),
      },
      this.#opts,
    );
    if (overflow) {
      for (const s of overflow.drop) this.#remove(s);
      this.#pendingLines.push(`${JSON.stringify({ d: toRanges(overflow.drop) })}\n`);
      const gapSeq = this.#nextSeq();
      const gap = this.#entry(
        gapSeq,
        this.#opts.now().toISOString(),
        this.#opts.makeGap(overflow.gap),
        overflow.gap,
      );
      this.#insert(gap, false);
      seqs.push(gapSeq);
    }
    return new Promise<number>((resolve, reject) => {
      this.#pendingWaiters.push({ seqs, resolve: () => resolve(seq), reject });
      this.#scheduleFlush();
    });
  }

  /**
   * Cumulative ack from the hub: every event with seq <= `seq` is removed. The ack position is persisted
   * in the background (a lost ack write only means a harmless resend).
   */
  ack(seq: number): void {
    // PROTOCOL.md: an ack below an earlier one, or above the highest seq ever assigned, is ignored.
    if (seq > this.#lastSeq) return;
    const upTo = seq;
    if (upTo <= this.#ackedSeq) return;
    this.#ackedSeq = upTo;
    for (const [s] of this.#entries) {
      if (s > upTo) break;
      this.#remove(s);
    }
    this.#persistAck();
    if (this.#needsCompaction()) this.#scheduleFlush();
  }

  /**
   * Removes a waiting event that can never be sent (it no longer passes the protocol's validation, e.g.
   * stored by an older agent version) and queues a gap for it, so the hub's cumulative ack can move on.
   */
  discard(seq: number): void {
    const entry = this.#entries.get(seq);
    if (!entry || this.#closed) return;
    this.#remove(seq);
    this.#pendingLines.push(`${JSON.stringify({ d: [[seq, seq]] })}\n`);
    const gap: GapInfo = entry.gap
      ? { ...entry.gap, toSeq: seq }
      : { fromSeq: seq, toSeq: seq, count: 1, kinds: [entry.kind] };
    // The gap's own append schedules the write; its failure is retried like any append.
    this.append(this.#opts.makeGap(gap), gap).catch(() => undefined);
  }

  /**
   * The hub knows seqs this outbox never assigned (a restored copy of the guest runs with its original's
   * older state): renumber the waiting events above the hub's position so none is mistaken for a
   * duplicate, and continue counting from there. A jump above `MAX_HUB_SEQ` (2^48) is refused
   * (`RebaseRefusedError`) and changes nothing: near 2^53 every new event would get the same seq.
   */
  async rebase(hubAckedSeq: number): Promise<void> {
    if (hubAckedSeq <= this.#lastSeq) return;
    if (!Number.isSafeInteger(hubAckedSeq) || hubAckedSeq > MAX_HUB_SEQ)
      throw new RebaseRefusedError(hubAckedSeq);
    await this.#drain();
    await this.#exclusive(async () => {
      // Pending appends (none after the drain, unless they raced it) are renumbered like the rest.
      const waiting = [...this.#entries.values()];
      for (const e of waiting) this.#remove(e.seq);
      this.#pendingLines = [];
      this.#pendingEntries = [];
      this.#lastSeq = hubAckedSeq;
      this.#ackedSeq = hubAckedSeq;
      for (const e of waiting) this.#insert(this.#entry(this.#nextSeq(), e.at, e.event, e.gap), true);
      await this.#rewrite();
      const waiters = this.#pendingWaiters;
      this.#pendingWaiters = [];
      for (const w of waiters) w.resolve();
    });
    this.#persistAck();
    await this.#ackWrite;
    for (const l of [...this.#listeners]) l();
  }

  /** Durable events with seq > `afterSeq`, oldest first. Walk it synchronously; it reflects live changes. */
  *durableAfter(afterSeq: number): Generator<OutboxRecord<E>> {
    for (const e of this.#entries.values()) {
      if (e.seq <= afterSeq) continue;
      if (!e.durable) return;
      yield { seq: e.seq, at: e.at, event: e.event };
    }
  }

  /** Called whenever new events became durable; returns the unsubscribe function. */
  onDurable(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Waits for pending appends and the ack file, then closes the log. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#drain();
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    await this.#ackWrite;
    await this.#fh.close();
  }

  #nextSeq(): number {
    this.#lastSeq += 1;
    return this.#lastSeq;
  }

  #entry(seq: number, at: string, event: E, gap: GapInfo | undefined, line?: string): Entry<E> {
    const text =
      line ?? `${JSON.stringify(gap ? { s: seq, t: at, e: event, g: gap } : { s: seq, t: at, e: event })}\n`;
    return {
      seq,
      at,
      event,
      gap,
      line: text,
      bytes: Buffer.byteLength(text),
      kind: this.#opts.kindOf(event),
      droppableFirst: gap === undefined && this.#opts.isDroppableFirst(event),
      durable: false,
    };
  }

  #insert(entry: Entry<E>, durable: boolean): void {
    entry.durable = durable;
    this.#entries.set(entry.seq, entry);
    if (entry.gap) this.#gaps.set(entry.seq, entry);
    else if (entry.droppableFirst) this.#droppable.set(entry.seq, entry);
    this.#liveBytes += entry.bytes;
    if (!durable) {
      this.#pendingLines.push(entry.line);
      this.#pendingEntries.push(entry);
    }
  }

  #remove(seq: number): void {
    const entry = this.#entries.get(seq);
    if (!entry) return;
    this.#entries.delete(seq);
    this.#droppable.delete(seq);
    this.#gaps.delete(seq);
    this.#liveBytes -= entry.bytes;
  }

  #scheduleFlush(): void {
    if (this.#flushing || this.#retryTimer || this.#closed) return;
    this.#exclusive(async () => {
      // Everything appended in this tick goes into one write + fsync.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await this.#flushLoop();
    });
  }

  /** Runs `fn` as the only writer of the log; afterwards picks up what was appended meanwhile. */
  #exclusive(fn: () => Promise<void>): Promise<void> {
    const run = fn().finally(() => {
      this.#flushing = undefined;
      if (this.#pendingLines.length > 0 || this.#needsCompaction()) this.#scheduleFlush();
    });
    this.#flushing = run;
    return run;
  }

  async #drain(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #flushLoop(): Promise<void> {
    while (this.#pendingLines.length > 0 || this.#needsCompaction()) {
      const lines = this.#pendingLines;
      const entries = this.#pendingEntries;
      const waiters = this.#pendingWaiters;
      this.#pendingLines = [];
      this.#pendingEntries = [];
      this.#pendingWaiters = [];
      try {
        if (lines.length > 0) {
          const data = lines.join("");
          await this.#fh.write(data);
          await this.#fh.datasync();
          this.#fileBytes += Buffer.byteLength(data);
        }
        for (const e of entries) e.durable = true;
        if (this.#needsCompaction()) await this.#rewrite();
      } catch (cause) {
        // The events stay queued in memory and are retried with the next append; the log is cut back
        // to its last complete line so the retry does not land behind a torn one.
        await this.#fh.truncate(this.#fileBytes).catch(() => undefined);
        this.#pendingLines = [...lines, ...this.#pendingLines];
        this.#pendingEntries = [...entries, ...this.#pendingEntries];
        const err = new AgentError(
          "outbox_write_failed",
          `cannot write the hub outbox in ${this.#opts.dir}`,
          {
            hint: "check free space and permissions of the state directory",
            cause,
          },
        );
        for (const w of waiters) w.reject(err);
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#scheduleFlush();
        }, WRITE_RETRY_MS);
        this.#retryTimer.unref();
        return;
      }
      for (const w of waiters) w.resolve();
      if (entries.length > 0) for (const l of [...this.#listeners]) l();
    }
  }

  #needsCompaction(): boolean {
    const dead = this.#fileBytes - this.#liveBytes;
    return dead >= this.#opts.compactMinDeadBytes && dead > this.#liveBytes;
  }

  /** Replaces the log with a header and the live, durable entries (pending ones are appended after). */
  async #rewrite(): Promise<void> {
    const parts = [`${JSON.stringify({ h: { lastSeq: this.#lastSeq } })}\n`];
    const pending = new Set(this.#pendingEntries);
    for (const e of this.#entries.values()) if (!pending.has(e)) parts.push(e.line);
    const data = parts.join("");
    const path = join(this.#opts.dir, OUTBOX_LOG);
    await writeFileDurable(path, data);
    const old = this.#fh;
    this.#fh = await open(path, "a+", 0o600);
    this.#fileBytes = Buffer.byteLength(data);
    for (const e of this.#entries.values()) if (!pending.has(e)) e.durable = true;
    await old.close();
  }

  #persistAck(): void {
    if (this.#ackWrite) return;
    this.#ackWrite = (async () => {
      while (this.#persistedAck < this.#ackedSeq) {
        const target = this.#ackedSeq;
        try {
          await writeJsonDurable(join(this.#opts.dir, OUTBOX_ACKED), { ackedSeq: target });
          this.#persistedAck = target;
        } catch {
          // Retried with the next ack; until then a restart resends a few acked events (harmless).
          return;
        }
      }
    })().finally(() => {
      this.#ackWrite = undefined;
    });
  }
}

async function readLog(path: string): Promise<{
  lines: Array<{ parsed: LogLine; line: string }>;
  validBytes: number;
  torn: boolean;
  exists: boolean;
}> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT")
      return { lines: [], validBytes: 0, torn: false, exists: false };
    throw err;
  }
  const end = text.lastIndexOf("\n") + 1;
  const lines: Array<{ parsed: LogLine; line: string }> = [];
  for (const raw of text.slice(0, end).split("\n")) {
    if (raw === "") continue;
    try {
      lines.push({ parsed: JSON.parse(raw) as LogLine, line: `${raw}\n` });
    } catch {
      // Only the last line can be torn by a crash (appends are fsync'd in order); a bad line in the
      // middle means outside damage: skip it rather than refuse to start and report nothing at all.
    }
  }
  return { lines, validBytes: Buffer.byteLength(text.slice(0, end)), torn: end < text.length, exists: true };
}

function toRanges(sorted: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last && last[1] === s - 1) last[1] = s;
    else out.push([s, s]);
  }
  return out;
}
