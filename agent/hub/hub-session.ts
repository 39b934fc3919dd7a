import { performance } from "node:perf_hooks";
import {
  type AgentToHubMessage,
  CloseCode,
  type CommandMessage,
  type ErrorMessage,
  type Event,
  type HelloMessage,
  limitCloseReason,
  PROTOCOL_VERSION,
  parseHubToAgent,
  type ResultMessage,
  replyToRejectedFrame,
  SUBPROTOCOL,
  stringifyMessage,
  TRANSPORT_MAX_PAYLOAD_BYTES,
  type WelcomeMessage,
} from "@felhom/protocol";
import WebSocket from "ws";
import { describeError } from "../lib/errors.ts";
import { FROZEN_AFTER_MS } from "../lib/late-timer.ts";
import type { Secret } from "../lib/secret.ts";
import type { Logger } from "../log/logger.ts";
import { type Outbox, RebaseRefusedError } from "./outbox.ts";
import type { LinkDrop } from "./reconnect-decision.ts";

export interface Heartbeat {
  intervalMs: number;
  timeoutMs: number;
}

export interface SessionTiming {
  /** From dialling to `welcome`, covering TCP, TLS, the upgrade and the hello/welcome exchange. */
  handshakeTimeoutMs: number;
  /** Replaces `welcome.heartbeat` (tests; a production hub chooses it). */
  heartbeat: Heartbeat | undefined;
  /** No frame at all for this many ping intervals: the socket is dead even if TCP says otherwise. */
  watchdogFactor: number;
  /** Events outstanding and no ack for this long: the hub side is stuck. */
  ackTimeoutMs: number;
  /** Stop draining the outbox while the socket buffers more than this. */
  highWaterBytes: number;
}

export interface SessionHooks {
  opened(): void;
  /** Runs before the session drains the outbox; may renumber or ack it. */
  welcomed(welcome: WelcomeMessage): Promise<void>;
  command(msg: CommandMessage, send: (result: ResultMessage) => void): void;
  /** Called exactly once, when the session ends for any reason. */
  dropped(drop: LinkDrop): void;
}

export interface SessionOptions {
  url: URL;
  credential: Secret;
  ca: Buffer | undefined;
  hello: HelloMessage;
  outbox: Outbox<Event>;
  timing: SessionTiming;
  log: Logger;
  hooks: SessionHooks;
  /** Epoch ms until which the agent announced it may be unreachable (0: none). */
  blackoutUntil: number;
}

/** Rejected frames logged at warn per session; the rest at debug, so a hostile hub cannot flood the log. */
const LOUD_REJECTIONS = 5;

/**
 * One socket to the hub, from dialling to its end. Every frame out goes through `stringifyMessage`,
 * every frame in through `parseHubToAgent`; a rejected frame gets the protocol's reply and the socket
 * stays up. Whatever ends the socket — a close, a network error, an HTTP rejection of the upgrade, or
 * one of the deadlines (handshake, pong, silence, ack) — is reported once through `hooks.dropped`, and a
 * stalled socket is terminated rather than closed politely (it would not answer the close either).
 */
export class HubSession {
  readonly #o: SessionOptions;
  readonly #ws: WebSocket;
  #ended = false;
  #welcomed = false;
  /** Set once the welcome is applied: only then is the outbox drained (commands and acks are taken as soon as it arrives). */
  #ready = false;
  #pumping = false;
  #sentUpTo = 0;
  #heartbeat: Heartbeat | undefined;
  #lastFrameAt = Date.now();
  #pendingPing: { id: string; sentAt: number } | undefined;
  #pingCounter = 0;
  #outstandingSince: number | undefined;
  #rejected = 0;
  #transportError: string | undefined;
  #handshakeTimer: NodeJS.Timeout;
  #blackoutUntil: number;
  /** When a liveness tick last found this process frozen (epoch ms): the deadlines count from there. */
  #thawedAt = 0;
  #tick: NodeJS.Timeout | undefined;
  #tickMs = 0;
  #lastTickAt = 0;
  #unsubscribe: () => void;

  constructor(options: SessionOptions) {
    this.#o = options;
    const ws = new WebSocket(options.url, SUBPROTOCOL, {
      headers: { Authorization: `Bearer ${options.credential.reveal()}` },
      ...(options.ca ? { ca: options.ca } : {}),
      maxPayload: TRANSPORT_MAX_PAYLOAD_BYTES,
      // A backstop only: our own handshake timer (which reports "stalled") fires first.
      handshakeTimeout: options.timing.handshakeTimeoutMs + 1_000,
      perMessageDeflate: false,
      followRedirects: false,
      // UTF-8 is checked by the protocol's parser, which answers with an error frame; ws would close 1007.
      skipUTF8Validation: true,
    });
    this.#ws = ws;
    this.#blackoutUntil = options.blackoutUntil;
    this.#handshakeTimer = setTimeout(
      () =>
        this.#stall(
          `no welcome within ${options.timing.handshakeTimeoutMs} ms of dialling`,
          CloseCode.HandshakeTimeout,
        ),
      options.timing.handshakeTimeoutMs,
    );
    ws.on("unexpected-response", (req, res) => {
      res.resume();
      this.#end({ kind: "http-rejected", status: res.statusCode ?? 0 });
      req.destroy();
    });
    ws.on("open", () => this.#onOpen());
    ws.on("message", (data, isBinary) => this.#onMessage(data as Buffer | Buffer[] | ArrayBuffer, isBinary));
    ws.on("error", (err) => {
      this.#transportError = describeError(err);
    });
    ws.on("close", (code, reason) => {
      if (code === 1006 && this.#transportError)
        this.#end({ kind: "network", message: this.#transportError });
      else this.#end({ kind: "closed", code, reason: reason.toString("utf8") });
    });
    this.#unsubscribe = options.outbox.onDurable(() => this.pump());
  }

  /** Validates and sends; false when the socket is not open (the caller's data is safe elsewhere). */
  send(msg: AgentToHubMessage | ErrorMessage): boolean {
    if (this.#ended || this.#ws.readyState !== WebSocket.OPEN) return false;
    let text: string;
    try {
      text = stringifyMessage(msg);
    } catch (err) {
      // Our bug, never the hub's input: the frame is not sent, and nothing is thrown into a socket callback.
      this.#o.log.error({ type: msg.type, err: describeError(err) }, "refusing to send an invalid frame");
      return false;
    }
    this.#ws.send(text);
    return true;
  }

  /** Ends the session from our side (agent stopping). */
  close(code: number, reason: string): void {
    this.#closeWith(code, reason);
  }

  /** Sends durable, unsent events in seq order until the socket's buffer is above the high-water mark. */
  pump(): void {
    if (!this.#ready || this.#pumping || this.#ended || this.#ws.readyState !== WebSocket.OPEN) return;
    this.#pumping = true;
    try {
      for (const rec of this.#o.outbox.durableAfter(this.#sentUpTo)) {
        if (this.#outstandingSince === undefined) this.#outstandingSince = Date.now();
        const text = this.#encodeEvent(rec.seq, rec.at, rec.event);
        this.#sentUpTo = rec.seq;
        if (text === undefined) continue;
        if (this.#ws.bufferedAmount + text.length >= this.#o.timing.highWaterBytes) {
          // Continue when this frame has been handed to the kernel.
          this.#ws.send(text, (err) => {
            if (!err) this.pump();
          });
          return;
        }
        this.#ws.send(text);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #encodeEvent(seq: number, at: string, event: Event): string | undefined {
    try {
      return stringifyMessage({ type: "event", seq, at, event });
    } catch (err) {
      // Stored by an older agent version under a schema that no longer accepts it: it can never be
      // sent, so it is replaced by a gap instead of blocking everything behind it.
      this.#o.log.error(
        { seq, kind: event.kind, err: describeError(err) },
        "a stored hub event is invalid; declaring it lost with a gap",
      );
      this.#o.outbox.discard(seq);
      return undefined;
    }
  }

  #onOpen(): void {
    if (this.#ended) return;
    this.#lastFrameAt = Date.now();
    this.#o.hooks.opened();
    if (!this.send(this.#o.hello)) this.#stall("hello could not be sent");
  }

  #onMessage(data: Buffer | Buffer[] | ArrayBuffer, isBinary: boolean): void {
    if (this.#ended) return;
    this.#lastFrameAt = Date.now();
    const parsed = parseHubToAgent(data, isBinary);
    if (!parsed.ok) {
      this.#rejected++;
      const level = this.#rejected <= LOUD_REJECTIONS ? "warn" : "debug";
      this.#o.log[level](
        { code: parsed.error.code, error: parsed.error.message },
        "rejected a frame from the hub",
      );
      const reply = replyToRejectedFrame(parsed.error);
      if (reply) this.send(reply);
      return;
    }
    const msg = parsed.message;
    switch (msg.type) {
      case "welcome":
        if (msg.protocolVersion !== PROTOCOL_VERSION) {
          this.#closeWith(
            CloseCode.UnsupportedProtocol,
            `welcome for protocol version ${msg.protocolVersion}`,
          );
          return;
        }
        if (this.#welcomed) {
          this.#unexpected("welcome", "a second welcome on one socket");
          return;
        }
        this.#welcomed = true;
        clearTimeout(this.#handshakeTimer);
        void this.#onWelcome(msg);
        return;
      case "ping":
        this.send({ type: "pong", id: msg.id, at: new Date().toISOString() });
        return;
      case "pong":
        if (this.#pendingPing?.id === msg.id) this.#pendingPing = undefined;
        return;
      case "error":
        this.#o.log.warn(
          { code: msg.code, error: msg.message, ref: msg.ref },
          "the hub rejected a frame we sent",
        );
        return;
      case "ack":
        if (!this.#welcomed) {
          this.#unexpected("ack", "an ack before welcome");
          return;
        }
        this.#onAck(msg.seq);
        return;
      case "command":
        if (!this.#welcomed) {
          this.#unexpected("command", "a command before welcome", msg.id);
          return;
        }
        this.#o.hooks.command(msg, (result) => {
          this.send(result);
        });
        return;
    }
  }

  #unexpected(type: string, what: string, id?: string): void {
    this.send({
      type: "error",
      code: "unexpected_message",
      message: `${what} is not allowed`,
      ref: { type, ...(id === undefined ? {} : { id }) },
    });
  }

  async #onWelcome(welcome: WelcomeMessage): Promise<void> {
    try {
      await this.#o.hooks.welcomed(welcome);
    } catch (err) {
      if (err instanceof RebaseRefusedError) {
        // The hub broke the handshake's contract (PROTOCOL.md, welcome): say so with 4400, keep every
        // event queued as it is, and try again with backoff.
        this.#o.log.error({ err: describeError(err) }, "refusing the hub's welcome");
        this.#closeWith(CloseCode.BadHandshake, "welcome.lastAckedSeq jumps above MAX_HUB_SEQ", "refused");
        return;
      }
      this.#o.log.error({ err: describeError(err) }, "cannot apply the hub's welcome");
      this.#stall("welcome could not be applied");
      return;
    }
    if (this.#ended) return;
    this.#sentUpTo = welcome.lastAckedSeq;
    this.#heartbeat = this.#o.timing.heartbeat ?? welcome.heartbeat;
    this.#ready = true;
    const hb = this.#heartbeat;
    this.#tickMs = Math.max(10, Math.floor(Math.min(hb.intervalMs, hb.timeoutMs) / 4));
    this.#lastTickAt = performance.now();
    this.#tick = setInterval(() => this.#onTick(), this.#tickMs);
    this.pump();
  }

  #onAck(seq: number): void {
    this.#o.outbox.ack(seq);
    this.#outstandingSince = this.#o.outbox.ackedSeq >= this.#sentUpTo ? undefined : Date.now();
    this.pump();
  }

  /**
   * Liveness (PROTOCOL.md, ping): after `intervalMs` without any frame, ping; no pong within `timeoutMs`
   * means the peer is gone (4504). Independently, a socket with no frame at all for `watchdogFactor`
   * intervals, or with events outstanding and no ack for `ackTimeoutMs`, is torn down — the backstops for
   * the sockets that look alive to TCP and to a heartbeat timer that itself got stuck. During an
   * announced blackout the deadlines are suspended and start counting again when it ends; after a freeze of
   * this process they start counting again at the thaw.
   */
  #onTick(): void {
    const hb = this.#heartbeat!;
    const tickedAt = performance.now();
    const late = tickedAt - this.#lastTickAt - this.#tickMs;
    this.#lastTickAt = tickedAt;
    const now = Date.now();
    // A tick this late found the process frozen (PVE freezes the CT for the storage snapshot; timers run
    // before sockets are read on thaw): the hub's frames wait unread in the socket, and it heard nothing
    // from us either. Like a blackout that ended now, the deadlines count again from here.
    if (late >= FROZEN_AFTER_MS) this.#thawedAt = now;
    if (now < this.#blackoutUntil) return;
    const since = (t: number) => now - Math.max(t, this.#blackoutUntil, this.#thawedAt);
    if (this.#pendingPing && since(this.#pendingPing.sentAt) > hb.timeoutMs) {
      this.#stall(`no pong within ${hb.timeoutMs} ms`);
      return;
    }
    const silence = this.#o.timing.watchdogFactor * hb.intervalMs;
    if (since(this.#lastFrameAt) > silence) {
      this.#stall(`no frame from the hub for ${silence} ms`);
      return;
    }
    if (this.#outstandingSince !== undefined && since(this.#outstandingSince) > this.#o.timing.ackTimeoutMs) {
      this.#stall(`events outstanding and no ack for ${this.#o.timing.ackTimeoutMs} ms`);
      return;
    }
    if (!this.#pendingPing && since(this.#lastFrameAt) >= hb.intervalMs) {
      const id = `p${++this.#pingCounter}`;
      if (this.send({ type: "ping", id, at: new Date(now).toISOString() }))
        this.#pendingPing = { id, sentAt: now };
    }
  }

  /**
   * Suspends the liveness deadlines until `until` (epoch ms); a blackout ended early moves it back to the
   * moment it ended, from which the deadlines count again.
   */
  setBlackout(until: number): void {
    this.#blackoutUntil = until;
  }

  /**
   * Ends the session with a close code of ours; a hub that does not complete the close cannot keep it.
   * `refused` reports it as a refusal of the hub's frame (retried with backoff) rather than as that close.
   */
  #closeWith(code: number, reason: string, as: "closed" | "refused" = "closed"): void {
    if (this.#ended) return;
    this.#end(as === "refused" ? { kind: "refused", code, what: reason } : { kind: "closed", code, reason });
    this.#ws.close(code, limitCloseReason(reason));
    setTimeout(() => this.#ws.terminate(), 1_000).unref();
  }

  #stall(what: string, code: number = CloseCode.PeerTimeout): void {
    if (this.#ended) return;
    this.#end({ kind: "stalled", what });
    if (this.#ws.readyState !== WebSocket.OPEN) {
      this.#ws.terminate();
      return;
    }
    // Say why (a hub that still reads logs the code), but do not wait for a peer that stopped answering.
    this.#ws.close(code, limitCloseReason(what));
    setTimeout(() => this.#ws.terminate(), 1_000).unref();
  }

  #end(drop: LinkDrop): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#tick);
    this.#unsubscribe();
    this.#o.hooks.dropped(drop);
  }
}
