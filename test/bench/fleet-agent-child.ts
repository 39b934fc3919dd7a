/**
 * One guest's agent for the node-fleet benchmark: the real BackupService and Scheduler wired as the daemon
 * wires them (agent/app/daemon.ts `build`: the schedule's run asks for a snapshot-mode backup with
 * retryWhenBusy), against the PVE simulator with this guest's own token, quiescing only this guest's compose
 * project. The guest's local facts (hostname, MAC) come from the config: one machine stands for every guest
 * (the test-only seam, as test/support/cli-with-local-facts.ts). Configured by the JSON in FELHOM_TEST_AGENT,
 * driven by one word per stdin line, answers JSON lines on stdout:
 *   alone   an operator's backup now (no retry); {"alone": outcome}
 *   slot T L K  a night: the schedule restarts with a daily cron at T's minute (ms epoch, UTC, a minute boundary
 *           the parent chose ahead for every agent) and runs that slot live at its tick, after its delay
 *           (a catch-up would neither use nor teach the learned delay, Scheduler #waitMs); L is `look` or
 *           `nolook` (whether the slot's requests look at the storage first), each with its own schedule state
 *           (what it learned), so that one run compares both on the same guests; K is the night's number:
 *           Math.random is seeded from the guest's seed and K, so that both draw the same delays in the slot;
 *           {"wants": ms} when the slot's run is due (its delay over; a run that looks began its look ahead of it),
 *           {"started": ms} when an attempt goes (any look over), {"attempt": outcome, "willRetry"} per attempt and {"final": outcome} for the slot's result
 */
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { scheduledLeadMs, scheduledLook } from "../../agent/app/scheduled-backup.ts";
import { BackupService } from "../../agent/backup/backup-service.ts";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import type { AgentConfig } from "../../agent/config/schema.ts";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { Secret } from "../../agent/lib/secret.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { PveClient } from "../../agent/pve/client.ts";
import { Scheduler } from "../../agent/schedule/scheduler.ts";
import { prng } from "../support/prng.ts";

export interface FleetAgentConfig {
  pveUrl: string;
  fingerprint: string;
  tokenId: string;
  secret: string;
  stateDir: string;
  project: string;
  hostname: string;
  mac: string;
  jitterSeconds: number;
  busyRetry: AgentConfig["backup"]["busy_retry"];
  /** This guest's seed for Math.random (with the night's number). */
  seed: number;
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
    no_snapshot: { policy: "hold", max_hold_seconds: 3600 },
  },
  projects: [config.project],
  localFacts: () => ({ hostname: config.hostname, macs: [config.mac] }),
  emit: () => {},
  log,
  onOutcome: (outcome, trigger, { retry }) => {
    if (trigger.source !== "schedule") return;
    out({ attempt: summary(outcome), willRetry: retry !== undefined });
    if (!retry) out({ final: summary(outcome) });
  },
});
/**
 * A schedule whose daily slot is `slot`'s minute, looking at the storage or not; the state file (what was
 * learned) carries over from the last night of the same kind.
 */
const scheduleAt = (slot: Date, look: boolean) =>
  new Scheduler({
    config: {
      cron: `${slot.getUTCMinutes()} ${slot.getUTCHours()} * * *`,
      timezone: "UTC",
      jitter_seconds: config.jitterSeconds,
      missed: "run",
    },
    statePath: statePath(look),
    log,
    // As agent/app/daemon-runtime.ts `buildRuntime` wires it: a run that looks begins its look ahead of its time.
    leadMs: (place) =>
      look ? scheduledLeadMs(service, { exactTime: false, atLearnedPlace: place.learned }) : 0,
    onRun: async (_reason, learn, _began, place) => {
      // The guest wants its backup from its time on (its delay in the slot over): the bench's demand begins
      // there, also for a run that began its look at the storage ahead of it.
      out({ wants: place.at });
      const ticket = await service.request({
        mode: "snapshot",
        trigger: { source: "schedule" },
        retryWhenBusy: true,
        lookAtStorage: lookOf(look, place),
        dueAt: place.at,
        onStarted: () => out({ started: Date.now() }),
        onSettled: (outcome, startedAt) => {
          if (outcome.ok) learn(startedAt);
          else if (outcome.failure.code === "vzdump_lock_busy") learn(undefined);
        },
      });
      await ticket.done;
    },
  });
/** As agent/app/scheduled-backup.ts decides it, or no look at all. */
const lookOf = (look: boolean, place: { learned: boolean }) =>
  look && scheduledLook({ exactTime: false, atLearnedPlace: place.learned });
const statePath = (look: boolean) => `${config.stateDir}/schedule-${look ? "look" : "nolook"}.json`;
let scheduler: Scheduler | undefined;

for await (const line of createInterface({ input: process.stdin })) {
  const word = line.trim();
  if (word === "alone") {
    const ticket = await service.request({ mode: "snapshot", trigger: { source: "cli" } });
    out({ alone: ticket.done ? summary(await ticket.done) : { ok: false, code: "not_started" } });
  } else if (word.startsWith("slot ")) {
    await scheduler?.stop();
    const [at, kind, night] = word.slice("slot ".length).split(" ");
    const slot = new Date(Number(at));
    const look = kind === "look";
    Math.random = prng(config.seed * 1000 + Number(night));
    scheduler = scheduleAt(slot, look);
    // Not a daemon start: nothing counts as missed, and the slot ahead runs at its tick.
    await scheduler.start({ catchUp: false });
    const state = JSON.parse(await readFile(statePath(look), "utf8").catch(() => "{}"));
    out({ slotStarted: slot.toISOString(), learned: state.learned ?? null });
  }
}
