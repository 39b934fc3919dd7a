/**
 * One guest's agent for the node-fleet benchmark: the real BackupService and Scheduler wired as the daemon
 * wires them (agent/app/daemon.ts `build`: the schedule's run asks for a snapshot-mode backup with
 * retryWhenBusy), against the PVE simulator with this guest's own token, quiescing only this guest's compose
 * project. The guest's local facts (hostname, MAC) come from the config: one machine stands for every guest
 * (the test-only seam, as test/support/cli-with-local-facts.ts). Configured by the JSON in FELHOM_TEST_AGENT,
 * driven by one word per stdin line, answers JSON lines on stdout:
 *   alone   an operator's backup now (no retry); {"alone": outcome}
 *   slot    the schedule starts with its state one day behind, so the start's catch-up runs the last
 *           `30 2 * * *` slot after the jitter (Scheduler #run, the same path as a live slot);
 *           {"attempt": outcome, "willRetry"} per attempt and {"final": outcome} for the slot's result
 */
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { BackupService } from "../../agent/backup/backup-service.ts";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import type { AgentConfig } from "../../agent/config/schema.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { Secret } from "../../agent/lib/secret.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { PveClient } from "../../agent/pve/client.ts";
import { findMissedSlot } from "../../agent/schedule/missed-slot.ts";
import { Scheduler } from "../../agent/schedule/scheduler.ts";
import { writeJsonDurable } from "../../agent/state/durable-file.ts";

export interface FleetAgentConfig {
  pveUrl: string;
  fingerprint: string;
  tokenId: string;
  secret: string;
  stateDir: string;
  project: string;
  hostname: string;
  mac: string;
  cron: string;
  jitterSeconds: number;
  busyRetry: AgentConfig["backup"]["busy_retry"];
}

const config = JSON.parse(process.env.FELHOM_TEST_AGENT ?? "{}") as FleetAgentConfig;
const out = (value: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ at: Date.now(), ...value })}\n`);
const log = silentLogger();
const summary = (o: BackupOutcome) =>
  o.ok
    ? { ok: true, totalMs: o.result.totalMs }
    : { ok: false, code: o.failure.code, message: o.failure.message };

const pve = new PveClient(
  {
    baseUrl: config.pveUrl,
    tokenId: config.tokenId,
    secret: new Secret(config.secret),
    tls: { fingerprint: config.fingerprint },
  },
  log,
);
const service = new BackupService({
  pve,
  engine: new DockerEngine(),
  stateDir: config.stateDir,
  backup: {
    storage: "bk",
    mode: "snapshot",
    max_downtime_seconds: 120,
    busy_retry: config.busyRetry,
    protected: false,
    max_protected_backups: 5,
  },
  projects: [config.project],
  localFacts: () => ({ hostname: config.hostname, macs: [config.mac] }),
  emit: () => {},
  log,
  onOutcome: (outcome, trigger, { willRetry }) => {
    if (trigger.source !== "schedule") return;
    out({ attempt: summary(outcome), willRetry });
    if (!willRetry) out({ final: summary(outcome) });
  },
});
const scheduleConfig = {
  cron: config.cron,
  timezone: "UTC",
  jitter_seconds: config.jitterSeconds,
  missed: "run" as const,
};
const scheduler = new Scheduler({
  config: scheduleConfig,
  statePath: `${config.stateDir}/schedule.json`,
  log,
  // As agent/app/daemon.ts `build` wires it.
  onRun: async (_reason, learn) => {
    const ticket = await service.request({
      mode: "snapshot",
      trigger: { source: "schedule" },
      retryWhenBusy: true,
      onSettled: (outcome, startedAt) => {
        if (outcome.ok) learn(startedAt);
        else if (outcome.failure.code === "vzdump_lock_busy") learn(undefined);
      },
    });
    await ticket.done;
  },
});
const statePath = `${config.stateDir}/schedule.json`;

for await (const line of createInterface({ input: process.stdin })) {
  const word = line.trim();
  if (word === "alone") {
    const ticket = await service.request({ mode: "snapshot", trigger: { source: "cli" } });
    out({ alone: ticket.done ? summary(await ticket.done) : { ok: false, code: "not_started" } });
  } else if (word === "slot") {
    // A night: the schedule (stopped after an earlier night) starts with its state one minute before the
    // last slot, keeping what it learned, so that the start's catch-up runs that slot.
    await scheduler.stop();
    const now = new Date();
    const slot = findMissedSlot(scheduleConfig, new Date(now.getTime() - 86_400_000), now);
    if (!slot) throw new Error(`no slot of ${config.cron} in the last day`);
    const state = JSON.parse(await readFile(statePath, "utf8").catch(() => "{}")) as Record<string, unknown>;
    await writeJsonDurable(statePath, {
      ...state,
      last_slot: new Date(slot.getTime() - 60_000).toISOString(),
    });
    await scheduler.start({ catchUp: true });
    out({ slotStarted: slot.toISOString(), learned: state.learned ?? null });
  }
}
