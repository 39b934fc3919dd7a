/**
 * Many hub links in one process, for the hub-restart benchmark: `agent` mode runs N real HubClients (each
 * with its own state dir, outbox and credential file, default tuning, so the real backoff), `bare` mode N
 * bare WebSockets that only say hello and answer pings (the per-link memory floor). Configured by the JSON
 * in FELHOM_TEST_AGENT, driven by one word per stdin line, answers one JSON line on stdout per command:
 *   open          agent mode: opens the clients (outboxes on disk), not dialling yet
 *   start         dials every link at once
 *   mem           after a full GC: {"mem": {"rss", "heapUsed"}}
 *   emit <tag>    agent mode: every link emits `perEmit` events with backupId <tag>; {"emitted", "lastSeqs"}
 *   dials         agent mode: {"dials": n}, the connection attempts of all links so far
 * Link i is agent id `agent-<i>` (or `bare-<i>`).
 * Run with --expose-gc so that `mem` measures live memory rather than garbage.
 */
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PROTOCOL_VERSION, SUBPROTOCOL } from "@felhom/protocol";
import WebSocket from "ws";
import { HubClient } from "../../agent/hub/hub-client.ts";
import { statusPayload } from "../hub/support.ts";

export interface FleetConfig {
  url: string;
  /** Each link gets `<root>/<i>/` as its state dir. */
  root: string;
  count: number;
  mode: "agent" | "bare";
  credential: string;
  perEmit: number;
}

const config = JSON.parse(process.env.FELHOM_TEST_AGENT ?? "{}") as FleetConfig;
const out = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
const clients: HubClient[] = [];
const sockets: WebSocket[] = [];
let dials = 0;

async function open(): Promise<void> {
  for (let i = 0; i < config.count; i++) {
    const stateDir = join(config.root, String(i));
    await mkdir(stateDir, { recursive: true });
    const credentialFile = join(stateDir, "hub.credential");
    await writeFile(credentialFile, `${config.credential}\n`);
    await chmod(credentialFile, 0o600);
    clients.push(
      await HubClient.open({
        url: config.url,
        credentialFile,
        stateDir,
        agentId: `agent-${i}`,
        agentVersion: "0.1.0-bench",
        outbox: { maxEvents: 1_000, maxBytes: 1024 * 1024 },
        statusIntervalSeconds: 3_600,
        statusProvider: async () => statusPayload(),
        handlers: {},
      }),
    );
    clients.at(-1)!.onStateChange((state) => {
      if (state.name === "connecting") dials++;
    });
  }
}

function startBare(i: number): void {
  const ws = new WebSocket(config.url, SUBPROTOCOL, {
    headers: { Authorization: `Bearer ${config.credential}` },
  });
  ws.on("open", () =>
    ws.send(
      JSON.stringify({
        type: "hello",
        protocolVersion: PROTOCOL_VERSION,
        agent: { id: `bare-${i}`, version: "0" },
        identity: statusPayload().identity,
        capabilities: [],
        lastAckedSeq: 0,
        session: { runId: `bare-run-${i}`, resume: false },
      }),
    ),
  );
  ws.on("message", (data) => {
    const m = JSON.parse(data.toString()) as { type: string; id?: string };
    if (m.type === "ping") ws.send(JSON.stringify({ type: "pong", id: m.id, at: new Date().toISOString() }));
  });
  ws.on("error", () => undefined);
  sockets.push(ws);
}

/** Per agent id, the seq of its last event. */
async function emit(tag: string): Promise<Record<string, number>> {
  const last: Record<string, number> = {};
  await Promise.all(
    clients.map(async (client, i) => {
      for (let n = 0; n < config.perEmit; n++)
        last[`agent-${i}`] = await client.emit({
          kind: "backup.progress",
          backupId: tag,
          phase: "follow",
          bytes: n,
        });
    }),
  );
  return last;
}

function mem(): { rss: number; heapUsed: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
}

for await (const line of createInterface({ input: process.stdin })) {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === "open") {
    if (config.mode === "agent") await open();
    out({ opened: clients.length });
  } else if (command === "start") {
    if (config.mode === "agent") for (const c of clients) c.start();
    else for (let i = 0; i < config.count; i++) startBare(i);
    out({ started: config.count });
  } else if (command === "mem") {
    out({ mem: mem() });
  } else if (command === "dials") {
    out({ dials });
  } else if (command === "emit") {
    out({ emitted: arg, lastSeqs: await emit(arg ?? "bench") });
  }
}
