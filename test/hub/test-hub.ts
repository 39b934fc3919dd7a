/**
 * A real hub for tests and the sandbox: a WebSocket server on 127.0.0.1 that speaks the protocol through
 * protocol/'s parser and stringify, dedupes events by (agent, seq), acks cumulatively, sends commands and
 * awaits their results, records everything, and misbehaves on request (drop sockets, stop acking, go
 * down and come back on the same port with its state, send garbage, black-hole or fall silent).
 *
 * CLI: `npx tsx test/hub/test-hub.ts --port 8765 --credential secret` prints every event it stores.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { Socket } from "node:net";
import { pathToFileURL } from "node:url";
import {
  type AgentToHubMessage,
  CloseCode,
  type Command,
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_PONG_TIMEOUT_MS,
  type ErrorMessage,
  type Event,
  type HelloMessage,
  type HubToAgentMessage,
  PROTOCOL_VERSION,
  parseAgentToHub,
  type ResultMessage,
  SUBPROTOCOL,
  stringifyMessage,
  TRANSPORT_MAX_PAYLOAD_BYTES,
} from "@felhom/protocol";
import { WebSocket, WebSocketServer } from "ws";
import { describeErrors, strictErrors } from "../protocol/strict-validator.ts";

export interface TestHubOptions {
  /** 0 (default): any free port. */
  port?: number;
  /** Accepted bearer credentials. @default ["test-credential"] */
  credentials?: string[];
  /** How a wrong credential is refused: HTTP 401 on the upgrade (what PROTOCOL.md says a hub SHOULD do), or close 4401 after it. @default "http" */
  authRejection?: "close" | "http";
  /** Sent in `welcome` (a wrong one tests the agent's 4406). @default PROTOCOL_VERSION */
  protocolVersion?: number;
  /** Sent in `welcome`. @default the protocol defaults */
  heartbeat?: { intervalMs: number; timeoutMs: number };
  /** Serve wss:// with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Where to print what happens (the CLI passes console.log). */
  log?: (line: string) => void;
}

export interface StoredEvent {
  agentId: string;
  seq: number;
  at: string;
  event: Event;
}

export interface Attempt {
  at: number;
  outcome: "accepted" | "auth-rejected" | "black-holed" | "bad-subprotocol" | "dropped-on-open";
}

export interface Frame {
  at: number;
  direction: "in" | "out";
  text: string;
}

/**
 * - normal: speaks the protocol.
 * - black-hole: accepts TCP and never answers the upgrade (new connections only).
 * - silent: completes the handshake, then answers nothing (no acks, no pongs); frames are kept and
 *   handled when the mode returns to normal, as a stuck hub would.
 * - drop-on-open: completes the upgrade and closes at once (1011), before any welcome.
 */
export type HubMode = "normal" | "black-hole" | "silent" | "drop-on-open";

interface AgentState {
  received: Set<number>;
  gaps: Array<[number, number]>;
  /** Highest seq up to which everything is stored (or declared lost by a gap). */
  contiguous: number;
  /** What the hub last acknowledged; `welcome` reports this, so events stored while acks were paused are resent. */
  acked: number;
}

interface Conn {
  ws: WebSocket;
  agentId: string | undefined;
  ackScheduled: boolean;
  /** Frames that arrived while the hub was silent: a stuck hub handles them once it is unstuck. */
  backlog: AgentToHubMessage[];
}

export interface TestHub {
  readonly url: string;
  readonly port: number;
  /** Every event stored, deduped by (agent, seq), in arrival order. */
  readonly events: StoredEvent[];
  /** Events received again after they were stored (resends of unacked events). */
  readonly duplicates: number;
  readonly frames: Frame[];
  readonly attempts: Attempt[];
  readonly hellos: HelloMessage[];
  readonly results: ResultMessage[];
  /** `error` frames the agent sent (its answers to our garbage). */
  readonly agentErrors: ErrorMessage[];
  /**
   * Frames from the agent that did not parse, or that the published JSON Schema refuses under a strict
   * independent validator (must stay empty: the agent validates before sending).
   */
  readonly invalidFromAgent: string[];
  connections(): number;
  /** The last cumulative ack the hub sent to an agent. */
  lastAckedSeq(agentId: string): number;
  sendCommand(
    command: Command,
    options?: { id?: string; accept?: "final" | "first" },
  ): Promise<ResultMessage>;
  sendRaw(data: string | Buffer, options?: { binary?: boolean }): void;
  /** Closes every agent socket with `code`, or kills it without a close frame when no code is given. */
  dropConnections(code?: number): void;
  setAcking(on: boolean): void;
  /** The hub loses what it stored for an agent (its position goes back to `seq`, default 0). */
  forgetAgent(agentId: string, seq?: number): void;
  /** The hub claims to have stored everything up to `seq` for an agent (as for a restored copy's original). */
  presetAgent(agentId: string, seq: number): void;
  setMode(mode: HubMode): void;
  /**
   * Later welcomes report `seq` as every agent's position, unvalidated (a hub whose stored position is
   * corrupt); `undefined` goes back to the truth.
   */
  setWelcomeSeq(seq: number | undefined): void;
  /** Goes down (listener and sockets); state is kept for `restart`. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
  waitFor<T>(what: string, probe: () => T | undefined | false | null, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

let commandCounter = 0;

export async function startTestHub(options: TestHubOptions = {}): Promise<TestHub> {
  const credentials = new Set(options.credentials ?? ["test-credential"]);
  const heartbeat = options.heartbeat ?? {
    intervalMs: DEFAULT_PING_INTERVAL_MS,
    timeoutMs: DEFAULT_PONG_TIMEOUT_MS,
  };
  const log = options.log ?? (() => undefined);
  const agents = new Map<string, AgentState>();
  const conns = new Set<Conn>();
  const holes = new Set<Socket>();
  const events: StoredEvent[] = [];
  const frames: Frame[] = [];
  const attempts: Attempt[] = [];
  const hellos: HelloMessage[] = [];
  const results: ResultMessage[] = [];
  const agentErrors: ErrorMessage[] = [];
  const invalidFromAgent: string[] = [];
  const waiters = new Map<
    string,
    Array<{ accept: "final" | "first"; resolve: (r: ResultMessage) => void }>
  >();
  let duplicates = 0;
  let acking = true;
  let mode: HubMode = "normal";
  let welcomeSeq: number | undefined;
  let closed = false;

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: TRANSPORT_MAX_PAYLOAD_BYTES,
    handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });
  const refuse = (_req: IncomingMessage, res: import("node:http").ServerResponse) => {
    res.writeHead(426).end();
  };
  const server: Server = options.tls ? createTlsServer(options.tls, refuse) : createServer(refuse);
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (mode === "black-hole") {
      attempts.push({ at: Date.now(), outcome: "black-holed" });
      holes.add(socket);
      socket.on("close", () => holes.delete(socket));
      socket.on("error", () => undefined);
      return;
    }
    const offered = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
    if (!offered.includes(SUBPROTOCOL)) {
      attempts.push({ at: Date.now(), outcome: "bad-subprotocol" });
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const auth = req.headers.authorization ?? "";
    const authorized = auth.startsWith("Bearer ") && credentials.has(auth.slice(7));
    if (!authorized && (options.authRejection ?? "http") === "http") {
      attempts.push({ at: Date.now(), outcome: "auth-rejected" });
      socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (!authorized) {
        attempts.push({ at: Date.now(), outcome: "auth-rejected" });
        ws.close(CloseCode.Unauthorized, "credential rejected");
        return;
      }
      if (mode === "drop-on-open") {
        attempts.push({ at: Date.now(), outcome: "dropped-on-open" });
        ws.close(1011, "the test hub drops this socket");
        return;
      }
      attempts.push({ at: Date.now(), outcome: "accepted" });
      accept(ws);
    });
  });

  function send(conn: Conn, msg: HubToAgentMessage): void {
    sendText(conn, stringifyMessage(msg));
  }

  function sendText(conn: Conn, text: string): void {
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    frames.push({ at: Date.now(), direction: "out", text });
    conn.ws.send(text);
  }

  function stateOf(agentId: string): AgentState {
    let s = agents.get(agentId);
    if (!s) {
      s = { received: new Set(), gaps: [], contiguous: 0, acked: 0 };
      agents.set(agentId, s);
    }
    return s;
  }

  function advance(s: AgentState): void {
    const covered = (seq: number) => s.gaps.some(([a, b]) => seq >= a && seq <= b);
    while (s.received.has(s.contiguous + 1) || covered(s.contiguous + 1)) s.contiguous++;
  }

  function scheduleAck(conn: Conn): void {
    if (!acking || conn.ackScheduled) return;
    conn.ackScheduled = true;
    setImmediate(() => {
      conn.ackScheduled = false;
      if (!acking || !conn.agentId || mode === "silent" || conn.ws.readyState !== WebSocket.OPEN) return;
      const s = stateOf(conn.agentId);
      s.acked = s.contiguous;
      send(conn, { type: "ack", seq: s.acked });
    });
  }

  function accept(ws: WebSocket): void {
    const conn: Conn = { ws, agentId: undefined, ackScheduled: false, backlog: [] };
    conns.add(conn);
    ws.on("close", () => conns.delete(conn));
    ws.on("error", () => undefined);
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? `<binary ${(data as Buffer).length} bytes>` : (data as Buffer).toString("utf8");
      frames.push({ at: Date.now(), direction: "in", text });
      const parsed = parseAgentToHub(data as Buffer, isBinary);
      if (!parsed.ok) {
        invalidFromAgent.push(text);
        return;
      }
      // A hub in another language validates with the published JSON Schema: a frame zod accepts and that
      // schema (under a strict independent validator) refuses is invalid too.
      const strict = strictErrors("agent-to-hub", JSON.parse(text));
      if (strict.length > 0) invalidFromAgent.push(`${text} (JSON Schema: ${describeErrors(strict)})`);
      if (mode === "silent" && conn.agentId) conn.backlog.push(parsed.message);
      else onMessage(conn, parsed.message);
    });
  }

  function onMessage(conn: Conn, msg: AgentToHubMessage): void {
    if (!conn.agentId) {
      if (msg.type !== "hello") {
        conn.ws.close(CloseCode.BadHandshake, "hello first");
        return;
      }
      hellos.push(msg);
      const agentId = msg.agent.id;
      for (const other of conns) {
        if (other !== conn && other.agentId === agentId)
          other.ws.close(CloseCode.Replaced, "replaced by a newer connection");
      }
      conn.agentId = agentId;
      const welcome: HubToAgentMessage = {
        type: "welcome",
        protocolVersion: options.protocolVersion ?? PROTOCOL_VERSION,
        lastAckedSeq: welcomeSeq ?? stateOf(agentId).acked,
        heartbeat,
        serverTime: new Date().toISOString(),
      };
      // A corrupt position would not pass stringifyMessage: it goes out as it is, as a broken hub's would.
      if (welcomeSeq === undefined) send(conn, welcome);
      else sendText(conn, JSON.stringify(welcome));
      return;
    }
    switch (msg.type) {
      case "hello":
        conn.ws.close(CloseCode.BadHandshake, "second hello");
        return;
      case "event": {
        const s = stateOf(conn.agentId);
        if (s.received.has(msg.seq) || msg.seq <= s.contiguous) {
          duplicates++;
        } else {
          s.received.add(msg.seq);
          events.push({ agentId: conn.agentId, seq: msg.seq, at: msg.at, event: msg.event });
          if (msg.event.kind === "gap") s.gaps.push([msg.event.fromSeq, msg.event.toSeq]);
          log(JSON.stringify({ agent: conn.agentId, seq: msg.seq, at: msg.at, event: msg.event }));
          advance(s);
        }
        scheduleAck(conn);
        return;
      }
      case "result": {
        results.push(msg);
        const final = !(msg.ok === false && msg.error.code === "in_progress");
        const list = waiters.get(msg.id) ?? [];
        const keep = list.filter((w) => {
          if (final || w.accept === "first") {
            w.resolve(msg);
            return false;
          }
          return true;
        });
        if (keep.length > 0) waiters.set(msg.id, keep);
        else waiters.delete(msg.id);
        return;
      }
      case "ping":
        send(conn, { type: "pong", id: msg.id, at: new Date().toISOString() });
        return;
      case "pong":
        return;
      case "error":
        agentErrors.push(msg);
        return;
    }
  }

  await listen(server, options.port ?? 0);
  const port = (server.address() as { port: number }).port;

  const hub: TestHub = {
    url: `${options.tls ? "wss" : "ws"}://127.0.0.1:${port}/agent`,
    port,
    events,
    get duplicates() {
      return duplicates;
    },
    frames,
    attempts,
    hellos,
    results,
    agentErrors,
    invalidFromAgent,
    connections: () => [...conns].filter((c) => c.agentId).length,
    lastAckedSeq: (agentId) => agents.get(agentId)?.acked ?? 0,
    sendCommand(command, opts = {}) {
      const id = opts.id ?? `cmd-${++commandCounter}`;
      const conn = [...conns].find((c) => c.agentId && c.ws.readyState === WebSocket.OPEN);
      if (!conn) return Promise.reject(new Error("no agent is connected to the test hub"));
      return new Promise<ResultMessage>((resolve) => {
        const list = waiters.get(id) ?? [];
        list.push({ accept: opts.accept ?? "final", resolve });
        waiters.set(id, list);
        send(conn, { type: "command", id, command });
      });
    },
    sendRaw(data, opts = {}) {
      for (const c of conns) {
        if (c.ws.readyState !== WebSocket.OPEN) continue;
        frames.push({
          at: Date.now(),
          direction: "out",
          text: typeof data === "string" ? data : `<${data.length} bytes>`,
        });
        c.ws.send(data, { binary: opts.binary ?? typeof data !== "string" });
      }
    },
    dropConnections(code) {
      for (const c of conns) {
        if (code === undefined) c.ws.terminate();
        else c.ws.close(code, "dropped by the test hub");
      }
    },
    forgetAgent(agentId, seq = 0) {
      const s = stateOf(agentId);
      for (const n of [...s.received]) if (n > seq) s.received.delete(n);
      s.gaps = s.gaps.filter(([, b]) => b <= seq);
      s.contiguous = Math.min(s.contiguous, seq);
      s.acked = Math.min(s.acked, seq);
    },
    presetAgent(agentId, seq) {
      const s = stateOf(agentId);
      s.contiguous = Math.max(s.contiguous, seq);
      s.acked = Math.max(s.acked, seq);
    },
    setAcking(on) {
      acking = on;
      if (on) for (const c of conns) scheduleAck(c);
    },
    setWelcomeSeq(seq) {
      welcomeSeq = seq;
    },
    setMode(next) {
      mode = next;
      if (next !== "normal") return;
      for (const s of holes) s.destroy();
      for (const c of conns) for (const msg of c.backlog.splice(0)) onMessage(c, msg);
    },
    async stop() {
      for (const c of conns) c.ws.terminate();
      for (const s of holes) s.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    async restart() {
      await listen(server, port);
    },
    async waitFor(what, probe, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = probe();
        if (value !== undefined && value !== false && value !== null) return value;
        if (Date.now() > deadline) throw new Error(`test hub: timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (server.listening) await hub.stop();
      wss.close();
    },
  };
  return hub;
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const hub = await startTestHub({
    port: Number(arg("port") ?? 8765),
    credentials: [arg("credential") ?? "test-credential"],
    log: (line) => console.log(line),
  });
  console.error(`test hub listening on ${hub.url}`);
  const shutdown = () => void hub.close().then(() => process.exit(0));
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
