/**
 * An agent-side process for tests and the benchmark that must kill the agent for real (SIGKILL) or
 * measure its own RSS. Configured by the JSON in FELHOM_TEST_AGENT; prints JSON lines on stdout:
 * {"state": name} on every link state change, {"emitted": seq} per durable event, {"rss": bytes} when
 * asked with SIGUSR2. The `backup.run` handler appends one line per execution to `commandLog` (so a
 * test can count executions across restarts) and takes `handlerDelayMs`.
 */
import { appendFileSync } from "node:fs";
import { HubClient } from "../../agent/hub/hub-client.ts";
import { statusPayload } from "./support.ts";

interface ChildConfig {
  url: string;
  stateDir: string;
  credentialFile: string;
  agentId: string;
  /** Events to emit right after start (backup.progress), all at once. */
  emit?: number;
  commandLog?: string;
  handlerDelayMs?: number;
  heartbeat?: { intervalMs: number; timeoutMs: number };
  maxEvents?: number;
  statusIntervalSeconds?: number;
}

const config = JSON.parse(process.env.FELHOM_TEST_AGENT ?? "{}") as ChildConfig;
const out = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

const client = await HubClient.open({
  url: config.url,
  credentialFile: config.credentialFile,
  stateDir: config.stateDir,
  agentId: config.agentId,
  agentVersion: "0.1.0-test",
  outbox: { maxEvents: config.maxEvents ?? 50_000, maxBytes: 64 * 1024 * 1024 },
  statusIntervalSeconds: config.statusIntervalSeconds ?? 3_600,
  statusProvider: async () => statusPayload(),
  handlers: {
    "backup.run": async (params, ctx) => {
      if (config.commandLog) appendFileSync(config.commandLog, `${ctx.id}\n`);
      await new Promise((r) => setTimeout(r, config.handlerDelayMs ?? 0));
      return { backupId: `b-${ctx.id}`, mode: params.mode };
    },
  },
  tuning: {
    backoff: { baseMs: 5, maxMs: 100 },
    handshakeTimeoutMs: 2_000,
    heartbeat: config.heartbeat,
  },
});
client.onStateChange((state) => out({ state: state.name }));
client.start();

if (config.emit) {
  const seqs = await Promise.all(
    Array.from({ length: config.emit }, (_, i) =>
      client.emit({ kind: "backup.progress", backupId: "b-child", phase: "follow", bytes: i }),
    ),
  );
  out({ emitted: seqs.length, lastSeq: seqs.at(-1) });
}

process.on("SIGUSR2", () => out({ rss: process.memoryUsage.rss() }));
process.on("SIGTERM", () => void client.stop().then(() => process.exit(0)));
