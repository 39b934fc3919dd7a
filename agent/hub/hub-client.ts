import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
  ACK_TIMEOUT_MS,
  type Event,
  eventBody,
  FATAL_RECONNECT_DELAY_MS,
  HANDSHAKE_TIMEOUT_MS,
  type HelloMessage,
  PROTOCOL_VERSION,
  RESULT_RETENTION_MS,
  type ResultMessage,
  type statusBody,
  type WelcomeMessage,
} from "@felhom/protocol";
import type { z } from "zod";
import { checkHubUrl } from "../config/hub-url.ts";
import { AgentError, describeError } from "../lib/errors.ts";
import { requireTrusted } from "../lib/file-trust.ts";
import { readSecretFile } from "../lib/secret.ts";
import { type Logger, silentLogger } from "../log/logger.ts";
import { statePaths } from "../state/paths.ts";
import { type BackoffPolicy, DEFAULT_BACKOFF, type RetryWait } from "./backoff.ts";
import { type CommandHandlers, CommandRunner, interruptedResult } from "./command-runner.ts";
import { CommandStore } from "./command-store.ts";
import { gapEvent, isDroppableFirst, kindOf } from "./event-policy.ts";
import { type Heartbeat, HubSession } from "./hub-session.ts";
import { backoffAttempt, type LinkState, transition } from "./link-state.ts";
import { Outbox } from "./outbox.ts";
import { decideReconnect, describeDrop, type LinkDrop } from "./reconnect-decision.ts";

export type StatusBody = z.infer<typeof statusBody>;
/** What the daemon knows about itself; the link adds `outboxDepth` and `lastSeq`. */
export type StatusPayload = Omit<StatusBody, "outboxDepth" | "lastSeq">;

export interface HubTuning {
  backoff: BackoffPolicy;
  /** Nominal wait after the hub rejected the credential. @default 300_000 (5 min) */
  authRejectedMs: number;
  /** Nominal wait after a fatal close code. @default FATAL_RECONNECT_DELAY_MS (1 h) */
  fatalMs: number;
  /** How to wait between attempts. @default a cancellable timer */
  retryWait: RetryWait | undefined;
  random: () => number;
  /** @default HANDSHAKE_TIMEOUT_MS */
  handshakeTimeoutMs: number;
  /** Overrides `welcome.heartbeat` (tests). @default the hub's choice */
  heartbeat: Heartbeat | undefined;
  /** @default 3 */
  watchdogFactor: number;
  /** @default ACK_TIMEOUT_MS */
  ackTimeoutMs: number;
  /** @default 1 MiB */
  highWaterBytes: number;
  /** How long `stop()` waits for running commands. @default 5_000 */
  stopGraceMs: number;
  /** Command results are kept this long or as the newest `minKeep`, up to `maxEntries`. */
  commandRetention: { retentionMs: number; minKeep: number; maxEntries: number };
}

export interface HubClientOptions {
  /** `wss://…`, or `ws://` to loopback only. */
  url: string;
  /**
   * 0600 file holding the hub credential. `open` refuses a missing, empty or group/world-readable one;
   * each attempt reads it again, so a credential changed later needs no restart.
   */
  credentialFile: string;
  /** PEM CA bundle to trust instead of the system CAs (read by `open` and on every attempt, like the credential). */
  caFile?: string;
  /** The agent's state dir; the link keeps `hub-outbox/` and `hub-commands.json` in it. */
  stateDir: string;
  /** Stable agent id (kept in the state dir by the daemon). */
  agentId: string;
  agentVersion: string;
  outbox: { maxEvents: number; maxBytes: number };
  statusIntervalSeconds: number;
  statusProvider: () => Promise<StatusPayload>;
  handlers: CommandHandlers;
  logger?: Logger;
  tuning?: Partial<HubTuning>;
}

export const DEFAULT_TUNING: HubTuning = {
  backoff: DEFAULT_BACKOFF,
  authRejectedMs: 300_000,
  fatalMs: FATAL_RECONNECT_DELAY_MS,
  retryWait: undefined,
  random: Math.random,
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  heartbeat: undefined,
  watchdogFactor: 3,
  ackTimeoutMs: ACK_TIMEOUT_MS,
  highWaterBytes: 1024 * 1024,
  stopGraceMs: 5_000,
  commandRetention: { retentionMs: RESULT_RETENTION_MS, minKeep: 1_000, maxEntries: 10_000 },
};

export async function readHubCa(path: string): Promise<Buffer> {
  // The CA decides which server gets the hub credential: whoever could write it could stand in for the hub.
  await requireTrusted("config", path, "hub.ca_file", "file_unsafe");
  try {
    return await readFile(path);
  } catch (cause) {
    throw new AgentError("hub_ca_unreadable", `cannot read the hub CA file ${path}`, {
      hint: "point hub.ca_file at a readable PEM bundle of the CA that signed the hub's certificate",
      cause,
    });
  }
}

/**
 * The agent's link to its hub: an outbound WebSocket that reconnects forever (exponential backoff with a random phase;
 * auth rejections and fatal close codes back off hard and are logged once), a durable outbox of events
 * resent from the hub's last ack, idempotent commands dispatched to the injected handlers, app-level
 * pings and a watchdog that rebuilds a socket that stopped moving. See agent/hub/README.md.
 */
export class HubClient {
  readonly #o: HubClientOptions;
  readonly #t: HubTuning;
  readonly #url: URL;
  readonly #log: Logger;
  readonly #outbox: Outbox<Event>;
  readonly #runner: CommandRunner;
  readonly #runId = `run-${randomUUID()}`;
  readonly #listeners = new Set<(state: LinkState) => void>();
  #state: LinkState = { name: "idle" };
  #session: HubSession | undefined;
  #everWelcomed = false;
  #quietDrop: "auth-rejected" | "fatal" | "local" | undefined;
  #lastStatus: StatusPayload | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  /** Blackouts announced and not ended yet: operation id → the latest moment it may last to (epoch ms). */
  readonly #blackouts = new Map<string, number>();
  #blackoutUntil = 0;
  /** The backoff phase of the current streak of failed attempts (`phasedDelayMs`). */
  #phase = 0;
  #waitTimer: { timer: NodeJS.Timeout; resolve: () => void } | undefined;

  private constructor(
    o: HubClientOptions,
    t: HubTuning,
    url: URL,
    outbox: Outbox<Event>,
    store: CommandStore<ResultMessage>,
  ) {
    this.#o = o;
    this.#t = t;
    this.#url = url;
    this.#log = (o.logger ?? silentLogger()).child({ component: "hub" });
    this.#outbox = outbox;
    this.#runner = new CommandRunner(store, o.handlers, this.#log);
  }

  /**
   * Checks the URL, reads the credential and CA files once, and opens the durable outbox and command
   * store; does not dial yet. A credential file others can read (or a missing one, or an unreadable CA)
   * refuses the start here — `secret_file_*`, `hub_ca_unreadable`, exit 78 — rather than become a dial
   * failure retried forever (product brief: secret files are 0600 "or the agent refuses to start").
   */
  static async open(options: HubClientOptions): Promise<HubClient> {
    const url = checkHubUrl(options.url);
    await readSecretFile(options.credentialFile, "hub credential");
    if (options.caFile) await readHubCa(options.caFile);
    const tuning = { ...DEFAULT_TUNING, ...options.tuning };
    const outbox = await Outbox.open<Event>({
      dir: statePaths(options.stateDir).hubOutbox,
      maxEvents: options.outbox.maxEvents,
      maxBytes: options.outbox.maxBytes,
      kindOf,
      isDroppableFirst,
      makeGap: (gap) => gapEvent(gap),
    });
    const store = await CommandStore.open<ResultMessage>({
      path: statePaths(options.stateDir).hubCommands,
      ...tuning.commandRetention,
      interrupted: interruptedResult,
    });
    return new HubClient(options, tuning, url, outbox, store);
  }

  get state(): LinkState {
    return this.#state;
  }

  /** Events persisted and not yet acknowledged. */
  get outboxDepth(): number {
    return this.#outbox.depth;
  }

  /** The highest sequence number assigned so far (0 before the first event). */
  get lastSeq(): number {
    return this.#outbox.lastSeq;
  }

  /** Called on every state change; returns the unsubscribe function. */
  onStateChange(listener: (state: LinkState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Starts dialling (and keeps the link up until `stop`). */
  start(): void {
    if (this.#state.name !== "idle") return;
    this.#statusTimer = setInterval(() => void this.#sendStatus(), this.#o.statusIntervalSeconds * 1000);
    void this.#dial();
  }

  /**
   * Persists an event (validated first: an event the hub would reject is a bug in the caller) and sends
   * it when connected. Resolves with its seq once it is on disk.
   */
  emit(event: Event): Promise<number> {
    const parsed = eventBody.safeParse(event);
    if (!parsed.success) {
      return Promise.reject(
        new AgentError(
          "hub_event_invalid",
          `event "${event.kind}" does not match the protocol: ${parsed.error.message}`,
        ),
      );
    }
    return this.#outbox.append(parsed.data as Event);
  }

  /**
   * Tells the hub the agent will be unreachable for about `seconds` (before a stop-mode backup, around a
   * snapshot freeze), so that it pauses its liveness alarm instead of raising it. The link's own
   * deadlines (pong, silence, ack) are suspended until `endBlackout` for the same operation, at most as long.
   */
  announceBlackout(
    seconds: number,
    reason: "stop-mode" | "snapshot-freeze",
    operationId: string,
  ): Promise<number> {
    // Our own liveness deadlines are suspended too: a frozen guest must not tear down a healthy socket.
    this.#blackouts.set(operationId, Date.now() + seconds * 1000);
    this.#applyBlackouts();
    return this.emit({
      kind: "blackout",
      reason,
      expectedSeconds: Math.min(86_400, Math.max(1, Math.ceil(seconds))),
      operationId,
    });
  }

  /**
   * The operation that announced a blackout is over: the link's deadlines count again from now (a hub
   * that fell silent meanwhile is noticed within one heartbeat, not at the end of the announced time),
   * and the hub hears `blackout.ended` so that it stops waiting too.
   */
  endBlackout(reason: "stop-mode" | "snapshot-freeze", operationId: string): Promise<number> {
    this.#blackouts.delete(operationId);
    this.#applyBlackouts();
    return this.emit({ kind: "blackout.ended", reason, operationId });
  }

  /** The session's deadlines resume at the end of the latest blackout still announced, or now if none is. */
  #applyBlackouts(): void {
    const now = Date.now();
    for (const [id, until] of this.#blackouts) if (until <= now) this.#blackouts.delete(id);
    const latest = Math.max(0, ...this.#blackouts.values());
    this.#blackoutUntil = latest > 0 ? latest : Math.min(this.#blackoutUntil, now);
    this.#session?.setBlackout(this.#blackoutUntil);
  }

  /**
   * The agent is stopping (it may still wait minutes for a backup to hand its stacks back): the link stays
   * up for the events, and every new command is answered `shutting_down` (retryable) instead of run.
   */
  refuseCommands(): void {
    this.#runner.refuseNew();
  }

  /** Closes the socket (1001), lets running commands settle briefly, and closes the durable files. */
  async stop(): Promise<void> {
    if (this.#isStopped()) return;
    this.#setState(transition(this.#state, { type: "stop" }));
    clearInterval(this.#statusTimer);
    if (this.#waitTimer) {
      clearTimeout(this.#waitTimer.timer);
      this.#waitTimer.resolve();
    }
    this.#session?.close(1001, "agent stopping");
    await this.#runner.stop(this.#t.stopGraceMs);
    await this.#outbox.close();
  }

  /** A method, not a narrowed field read: the state changes across every await. */
  #isStopped(): boolean {
    return this.#state.name === "stopped";
  }

  #setState(state: LinkState): void {
    this.#state = state;
    for (const l of [...this.#listeners]) l(state);
  }

  async #dial(): Promise<void> {
    if (this.#isStopped()) return;
    this.#setState(transition(this.#state, { type: "dial" }));
    let hello: HelloMessage;
    let credential: Awaited<ReturnType<typeof readSecretFile>>;
    let ca: Buffer | undefined;
    try {
      credential = await readSecretFile(this.#o.credentialFile, "hub credential");
      ca = this.#o.caFile ? await readHubCa(this.#o.caFile) : undefined;
      hello = await this.#hello();
    } catch (err) {
      return this.#onDrop({ kind: "local", message: describeError(err) });
    }
    if (this.#isStopped()) return;
    try {
      this.#session = new HubSession({
        url: this.#url,
        credential,
        ca,
        hello,
        blackoutUntil: this.#blackoutUntil,
        outbox: this.#outbox,
        timing: this.#t,
        log: this.#log,
        hooks: {
          opened: () => {
            if (!this.#isStopped()) this.#setState(transition(this.#state, { type: "opened" }));
          },
          welcomed: (w) => this.#onWelcome(w),
          command: (msg, send) => void this.#runner.handle(msg, send),
          dropped: (drop) => void this.#onDrop(drop),
        },
      });
    } catch (err) {
      return this.#onDrop({ kind: "network", message: describeError(err) });
    }
  }

  async #hello(): Promise<HelloMessage> {
    try {
      this.#lastStatus = await this.#o.statusProvider();
    } catch (err) {
      // Dial with the identity we knew; only the very first hello needs the provider to work.
      if (!this.#lastStatus) throw err;
      this.#log.warn(
        { err: describeError(err) },
        "status provider failed; the hello carries the last known identity",
      );
    }
    return {
      type: "hello",
      protocolVersion: PROTOCOL_VERSION,
      agent: { id: this.#o.agentId, version: this.#o.agentVersion },
      identity: this.#lastStatus.identity,
      capabilities: Object.keys(this.#o.handlers).sort(),
      lastAckedSeq: this.#outbox.ackedSeq,
      session: { runId: this.#runId, resume: this.#everWelcomed },
    };
  }

  async #onWelcome(welcome: WelcomeMessage): Promise<void> {
    const hubSeq = welcome.lastAckedSeq;
    if (hubSeq > this.#outbox.lastSeq) {
      this.#log.warn(
        { hubSeq, lastSeq: this.#outbox.lastSeq },
        "the hub has seen seqs this agent never assigned (a restored copy?); renumbering waiting events above them",
      );
      await this.#outbox.rebase(hubSeq);
    } else if (hubSeq < this.#outbox.ackedSeq) {
      const acked = this.#outbox.ackedSeq;
      this.#log.warn({ hubSeq, acked }, "the hub lost events it had acknowledged; declaring them as a gap");
      await this.#outbox.append(
        gapEvent({ fromSeq: hubSeq + 1, toSeq: acked, count: acked - hubSeq, kinds: [] }, "already-acked"),
        { fromSeq: hubSeq + 1, toSeq: acked, count: acked - hubSeq, kinds: [] },
      );
    }
    this.#outbox.ack(hubSeq);
    // The socket may have dropped (or the client stopped) while the outbox was being renumbered.
    if (this.#state.name !== "handshaking") return;
    this.#setState(transition(this.#state, { type: "welcomed", at: Date.now() }));
    if (this.#quietDrop)
      this.#log.info(
        { url: this.#url.origin },
        `the hub accepts this agent again (after ${this.#quietDrop})`,
      );
    this.#quietDrop = undefined;
    this.#everWelcomed = true;
    this.#log.info(
      { url: this.#url.origin, outboxDepth: this.#outbox.depth, hubSeq },
      "connected to the hub",
    );
    void this.#sendStatus();
  }

  async #onDrop(drop: LinkDrop): Promise<void> {
    this.#session = undefined;
    if (this.#isStopped()) return;
    const wasConnected = this.#state.name === "connected";
    const waiting = transition(this.#state, { type: "dropped", drop });
    if (waiting.name !== "waiting") return;
    this.#setState(waiting);
    const attempt = backoffAttempt(waiting);
    if (attempt === 0) this.#phase = this.#t.random();
    const decision = decideReconnect(drop, attempt, this.#t, this.#t.random, this.#phase);
    this.#logDrop(drop, decision.action, decision.delayMs, wasConnected, waiting.attempt);
    await this.#wait(decision.delayMs);
    await this.#dial();
  }

  /** Auth and fatal rejections are logged once per streak (then debug); a lost link once, retries at info. */
  #logDrop(drop: LinkDrop, action: string, delayMs: number, wasConnected: boolean, attempt: number): void {
    const fields = { url: this.#url.origin, drop: describeDrop(drop), retryInMs: delayMs, attempt };
    if (action === "auth-rejected" || action === "fatal" || drop.kind === "local") {
      const streak = action === "retry" ? "local" : (action as "auth-rejected" | "fatal");
      if (this.#quietDrop === streak) {
        this.#log.debug(fields, "hub link still rejected");
        return;
      }
      this.#quietDrop = streak;
      const message =
        streak === "auth-rejected"
          ? `the hub rejected this agent's credential; retrying every few minutes — fix ${this.#o.credentialFile} (no restart needed)`
          : streak === "fatal"
            ? "the hub closed the link with a code that retrying cannot fix soon; retrying in about an hour"
            : "cannot dial the hub";
      this.#log.error(fields, message);
      return;
    }
    if (wasConnected) this.#log.warn(fields, "lost the hub link; reconnecting");
    else this.#log.info(fields, "hub link attempt failed; retrying");
  }

  #wait(delayMs: number): Promise<void> {
    if (this.#t.retryWait) return this.#t.retryWait(delayMs);
    return new Promise((resolve) => {
      this.#waitTimer = {
        timer: setTimeout(() => {
          this.#waitTimer = undefined;
          resolve();
        }, delayMs),
        resolve,
      };
    });
  }

  /** A status heartbeat while connected; offline status history would tell the hub nothing the next one does not. */
  async #sendStatus(): Promise<void> {
    if (this.#state.name !== "connected") return;
    try {
      const status = await this.#o.statusProvider();
      this.#lastStatus = status;
      await this.emit({
        kind: "status",
        ...status,
        outboxDepth: this.#outbox.depth,
        lastSeq: this.#outbox.lastSeq,
      });
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, "cannot send the periodic status");
    }
  }
}
