import { join } from "node:path";
import type { CommandResultData, Event } from "@felhom/protocol";
import { BackupService } from "../backup/backup-service.ts";
import type { BackupDeps, BackupEvent, BackupMode, BackupOutcome, Trigger } from "../backup/backup-types.ts";
import { recordLastBackup } from "../backup/last-backup.ts";
import { outcomeEvent } from "../backup/outcome-event.ts";
import { type IdentityGate, startUp } from "../boot/start-up.ts";
import { changedKeys, needsRestart } from "../config/diff.ts";
import { ConfigError } from "../config/load.ts";
import type { AgentConfig } from "../config/schema.ts";
import type { CommandContext, CommandHandlers } from "../hub/command-runner.ts";
import { CommandError } from "../hub/command-runner.ts";
import { HubClient } from "../hub/hub-client.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import { enrollGuest } from "../identity/enrollment.ts";
import { applyEnrollment } from "../identity/enrollment-record.ts";
import { AgentError, errorMessage } from "../lib/errors.ts";
import { Secret } from "../lib/secret.ts";
import type { Logger } from "../log/logger.ts";
import { publishBackupHealth, recordBackupHealth } from "../metrics/textfile.ts";
import { Scheduler } from "../schedule/scheduler.ts";
import { AGENT_VERSION } from "../version.ts";
import { agentId } from "./agent-id.ts";
import { type AgentContext, createContext } from "./context.ts";
import { serveControl } from "./control-socket.ts";
import { acquireDaemonLock } from "./daemon-lock.ts";
import { hubHandlers, statusProvider } from "./hub-handlers.ts";
import { hubOptionsFromConfig } from "./hub-options.ts";
import { refuseWhileBusy } from "./refuse-while-busy.ts";

/** How often an agent that could not verify itself at start asks again. */
const IDENTITY_RECHECK_MS = 60_000;

const STARTING: IdentityGate = {
  state: "unverified",
  reason: "the agent is still deciding who this system is (its original, or a restored copy)",
  hint: "try again once the agent has started",
};

/** What one identity (config + token) runs: rebuilt when the guest is enrolled with a new token. */
interface Runtime {
  config: AgentConfig;
  ctx: AgentContext;
  deps: BackupDeps;
  service: BackupService;
  scheduler: Scheduler | undefined;
  handlers: CommandHandlers;
  status: ReturnType<typeof statusProvider>;
}

/**
 * `felhom-guest run`: open the hub link (events are durable from here on), decide who this system is
 * (agent/restore: the original, possibly back from its own stop-mode backup, or a restored copy) and only
 * then recover what an earlier run left behind, then serve the schedule and the hub's commands until
 * SIGTERM. A restored copy brings its stacks up and never writes to PVE until it is enrolled; an agent
 * that cannot verify itself keeps its schedule off and asks again every minute. On SIGTERM a running
 * snapshot-mode backup resumes its stacks before the process exits; a stop-mode backup whose guest is
 * going down leaves the rest to the next boot.
 */
export async function runDaemon(
  installed: AgentConfig,
  log: Logger,
  options: {
    /** Reads the config file again (with the enrollment applied), for config.reload and SIGHUP. */
    readConfig: () => Promise<AgentConfig>;
    /** What this guest sees of itself (readLocalFacts in the shipped CLI). */
    localFacts: () => LocalFacts;
  },
): Promise<void> {
  const { readConfig, localFacts } = options;
  // Before anything touches the state dir (outbox, journal, control socket): a second daemon stops here.
  const daemonLock = await acquireDaemonLock(installed.state_dir);
  let hub: HubClient | undefined;
  let gate: IdentityGate | undefined;
  let recheck: NodeJS.Timeout | undefined;
  let stopping = false;
  /** Set once the start-up decision is made; a reload before that is refused. */
  let started = false;
  let lastRow: string | undefined;
  const shutdown = new AbortController();
  // Installed first and kept for the whole life of the daemon: SIGTERM during the start-up decision
  // (stacks coming up) is taken as soon as it is made, and a second signal (Ctrl-C twice) must not kill
  // the process by default while it is still resuming stacks.
  const onStop = (signal: NodeJS.Signals) => {
    if (shutdown.signal.aborted) {
      log.warn({ signal }, "already stopping: resuming the stacks first");
      return;
    }
    log.info({ signal }, "stopping");
    shutdown.abort();
  };
  process.on("SIGTERM", onStop);
  process.on("SIGINT", onStop);
  /** CLI backups relayed through the control socket watch the events of their backup here. */
  const watchers = new Set<(e: Event) => void>();
  const emit = (e: Event) => {
    for (const watch of watchers) watch(e);
    if (e.kind === "backup.phase") log.info({ backupId: e.backupId, phase: e.phase }, "backup phase");
    if (e.kind === "restore.detected" || e.kind === "identity.warning") log.warn({ event: e }, e.kind);
    if (!hub) return;
    const sent =
      e.kind === "blackout"
        ? hub.announceBlackout(e.expectedSeconds, e.reason, e.operationId)
        : e.kind === "blackout.ended"
          ? hub.endBlackout(e.reason, e.operationId)
          : hub.emit(e);
    // The outbox refused it (invalid) or the disk failed: log it, never let it break the backup.
    sent.catch((err) =>
      log.error({ kind: e.kind, err: errorMessage(err) }, "could not queue an event for the hub"),
    );
  };
  const finished =
    (config: AgentConfig) =>
    (outcome: BackupOutcome, trigger: Trigger, info = { willRetry: false }) => {
      emit(outcomeEvent(outcome));
      log[outcome.ok ? "info" : "error"](
        { trigger: trigger.source, ...(outcome.ok ? outcome.result : outcome.failure) },
        outcome.ok ? "backup completed" : "backup failed",
      );
      // A busy node's refusal that will be tried again is the hub's to hear, not yet the slot's result: the
      // last backup and the metrics (consecutive failures, last attempt) wait for the attempt that ends it.
      if (info.willRetry) return;
      recordLastBackup(config.state_dir, outcome).catch((err) =>
        log.error({ err: errorMessage(err) }, "could not record the last backup"),
      );
      recordBackupHealth(config.state_dir, config.metrics?.textfile, outcome).catch((err) =>
        log.error({ err: errorMessage(err) }, "could not record the backup health (metrics.textfile)"),
      );
    };

  const build = async (config: AgentConfig): Promise<Runtime> => {
    const ctx = await createContext(config, log, localFacts);
    if (config.metrics) {
      publishBackupHealth(config.state_dir, config.metrics.textfile).catch((err) =>
        log.error({ err: errorMessage(err) }, "could not write metrics.textfile"),
      );
    }
    const deps = ctx.backupDeps(emit);
    const service = new BackupService({ ...deps, onOutcome: finished(config) });
    const scheduler = config.schedule
      ? new Scheduler({
          config: config.schedule,
          statePath: join(config.state_dir, "schedule.json"),
          log,
          onRun: async (_reason, learn) => {
            const ticket = await service.request({
              mode: config.backup.mode,
              trigger: { source: "schedule" },
              retryWhenBusy: true,
              signal: shutdown.signal,
              // Where the node was free for this guest: the next slot comes back there (run-delay.ts).
              onSettled: (outcome, startedAt) => {
                if (outcome.ok) learn(startedAt);
                else if (outcome.failure.code === "vzdump_lock_busy") learn(undefined);
              },
            });
            if (!ticket.started)
              log.info({ running: ticket.backupId }, "scheduled backup skipped: a backup is already running");
            await ticket.done;
          },
        })
      : undefined;
    const status = statusProvider(
      ctx,
      service,
      () => scheduler?.nextRun() ?? null,
      () => gate,
    );
    const handlers = hubHandlers({
      ctx,
      backups: service,
      emit,
      status: async () => ({
        ...(await status()),
        outboxDepth: hub?.outboxDepth ?? 0,
        lastSeq: hub?.lastSeq ?? 0,
      }),
      gate: () => gate,
      enroll,
      reload,
      background: { signal: shutdown.signal, track },
    });
    return { config, ctx, deps, service, scheduler, handlers, status };
  };

  /** Hub snapshot operations still running (they resume their stacks at once on shutdown). */
  const background = new Set<Promise<unknown>>();
  function track(operation: Promise<unknown>) {
    const p = operation
      .catch((err) => log.error({ err: errorMessage(err) }, "background operation failed"))
      .finally(() => background.delete(p));
    background.add(p);
  }

  const settle = async (r: Runtime) => {
    r.service.stop();
    await r.scheduler?.stop();
    await r.service.settled();
    await Promise.allSettled([...background]);
    await r.ctx.close();
  };

  /** decide() calls in flight: reload and enroll wait for them (two recoveries must not share a journal). */
  let deciding = 0;
  /**
   * The start decision, and what it allows; re-run while the identity is unsure. `catchUp`: run a slot
   * missed while the agent was stopped (not after a reload that moved the slots); `rebuilt`: a reload or
   * enroll replaced the runtime.
   */
  const decide = async (r: Runtime, opts: { catchUp: boolean; rebuilt?: boolean } = { catchUp: true }) => {
    deciding++;
    try {
      await decideNow(r, opts);
    } finally {
      deciding--;
    }
  };
  const decideNow = async (r: Runtime, opts: { catchUp: boolean; rebuilt?: boolean }) => {
    clearTimeout(recheck);
    // Until the decision is made (stacks may take minutes to come up) every PVE write is refused: a copy
    // that the live check alone would verify as its original must not run a hub command meanwhile.
    gate ??= STARTING;
    const s = await startUp(r.deps, { configuredProjects: r.config.docker.projects }, shutdown.signal);
    // What it did (a restore announced) is reported whatever happens next; a re-check that lands on the
    // same row says nothing new.
    if (s.decision.row !== lastRow) for (const e of s.events) emit(e);
    lastRow = s.decision.row;
    // A runtime replaced meanwhile (not expected: reload and enroll wait for decide) was torn down under
    // its recovery; its outcome may be an artefact of that, and the new runtime reports the backup.
    if (r !== rt) return;
    if (s.recovery?.outcome) {
      // recoverAtStart has ended the blackout and entered `report`, as a live run does.
      finished(r.config)(s.recovery.outcome, { source: "journal-replay" });
    }
    gate = s.gate;
    // A rebuilt runtime (reload, enroll) runs the slot the old one left waiting out its jitter.
    if (s.verified) await r.scheduler?.start({ catchUp: opts.catchUp, runPending: opts.rebuilt === true });
    else if (s.decision.kind !== "restored-copy" && !stopping) {
      recheck = setTimeout(() => {
        decide(rt, opts).catch((err) => log.error({ err: errorMessage(err) }, "identity re-check failed"));
      }, IDENTITY_RECHECK_MS);
    }
  };

  let rt = await build(await applyEnrollment(installed));

  /** Reload and enroll before the first start-up decision has run would race it (refuseWhileDeciding: later ones). */
  function refuseBeforeStarted(what: string): void {
    if (!started) {
      throw new CommandError("busy", `the agent is still starting; ${what} once it runs`, {
        details: { operation: "start-up", operationId: null },
      });
    }
  }

  function refuseWhileDeciding(): void {
    if (deciding > 0) {
      throw new CommandError("busy", "an identity check is running; try again in a moment", {
        details: { operation: "start-up", operationId: null },
      });
    }
  }

  /**
   * The new runtime is built before the old one is torn down: if building fails (a token file gone, a
   * mode too loose) the running one stays, with its schedule, and the caller hears config_invalid.
   */
  async function swapRuntime(config: AgentConfig, opts: { catchUp: boolean }): Promise<void> {
    let next: Runtime;
    try {
      next = await build(config);
    } catch (err) {
      throw new CommandError(
        "config_invalid",
        `the new configuration cannot be used: ${errorMessage(err)}; the running one stays`.slice(0, 2000),
        { details: { key: "(runtime)" } },
      );
    }
    await settle(rt);
    rt = next;
    await decide(rt, { ...opts, rebuilt: true });
  }

  /** Hub `enroll`: verify the new token, persist it, then switch every adapter over to it. */
  async function enroll(params: { vmid: number; tokenId: string; tokenSecret: string }) {
    // Before the start-up decision has run, its verdict would land after (and undo) this enrollment.
    refuseBeforeStarted("enroll");
    refuseWhileDeciding();
    await refuseWhileBusy(rt.service, installed.state_dir, "enroll");
    let identity: Awaited<ReturnType<typeof enrollGuest>>;
    try {
      identity = await enrollGuest({
        config: installed,
        vmid: params.vmid,
        tokenId: params.tokenId,
        secret: new Secret(params.tokenSecret),
        local: rt.deps.localFacts(),
        log,
        connect: (config) => createContext(config, log, rt.deps.localFacts),
      });
    } catch (err) {
      const message = errorMessage(err).slice(0, 2000);
      const code = err instanceof AgentError ? err.code : "internal";
      if (code === "pve_authentication_failed") throw new CommandError("pve_auth", message);
      if (code === "pve_network_error" || code === "pve_timeout" || code === "pve_server_error")
        throw new CommandError("pve_unreachable", message);
      // The new token does not verify as this guest: nothing was written, the old identity stays.
      throw new CommandError("identity_unverified", message, {
        details: { identityState: gate?.state ?? "verified" },
      });
    }
    await swapRuntime(await applyEnrollment(installed), { catchUp: true });
    return {
      vmid: identity.vmid,
      node: identity.node,
      identityState: gate?.state ?? "verified",
    } satisfies CommandResultData<"enroll">;
  }

  /**
   * config.reload and SIGHUP: read the file again; an invalid file changes nothing (config_invalid, the
   * running config stays). The hub link and the state dir need a restart; everything else (PVE, backup,
   * schedule, Docker) is taken over by rebuilding the runtime, between backups.
   */
  async function reload(): Promise<CommandResultData<"config.reload">> {
    refuseBeforeStarted("reload");
    let next: AgentConfig;
    try {
      next = await readConfig();
    } catch (err) {
      const key = err instanceof ConfigError ? (err.issues[0]?.key ?? "(file)") : "(file)";
      throw new CommandError("config_invalid", errorMessage(err).slice(0, 2000), { details: { key } });
    }
    const changed = changedKeys(rt.config, next);
    const restart = needsRestart(changed);
    if (restart.length > 0) {
      throw new CommandError(
        "config_invalid",
        `${restart.join(", ")} changed: that needs a restart (systemctl restart felhom-guest); nothing was applied`,
        { details: { key: restart[0]! } },
      );
    }
    if (changed.length === 0) return { changedKeys: [] };
    refuseWhileDeciding();
    await refuseWhileBusy(rt.service, installed.state_dir, "reload");
    // A changed cron must not make the new schedule's earlier slots look missed; an unchanged one catches
    // up as usual (slots passed while the identity was unverified, the seconds of the swap).
    const slotsMoved = changed.some((k) => ["schedule", "schedule.cron", "schedule.timezone"].includes(k));
    await swapRuntime(next, { catchUp: !slotsMoved });
    log.level = next.log_level;
    log.info({ changedKeys: changed }, "configuration reloaded");
    return { changedKeys: changed.slice(0, 256) };
  }

  if (installed.hub) {
    hub = await HubClient.open({
      ...hubOptionsFromConfig(installed.hub, installed.state_dir),
      agentId: await agentId(installed.state_dir),
      agentVersion: AGENT_VERSION,
      statusProvider: () => rt.status(),
      handlers: delegate(() => rt.handlers),
      logger: log,
    });
    hub.start();
  }

  const control = await serveControl(installed.state_dir, { backup: relayBackup }, log);

  /**
   * `felhom-guest backup` while the daemon runs: the daemon runs it (the hub sees it) and streams its
   * events back. The same gate as the hub's commands: no PVE write before the identity is settled.
   */
  async function relayBackup(mode: BackupMode, onEvent: (e: BackupEvent) => void) {
    if (gate)
      throw new AgentError("identity_unverified", `refusing to back up: ${gate.reason}`, { hint: gate.hint });
    // The first events come before request() returns the id: hold them until it is known.
    const early: BackupEvent[] = [];
    let id: string | undefined;
    const watch = (e: Event) => {
      if (!isBackupEvent(e)) return;
      if (id === undefined) early.push(e);
      else if (operationOf(e) === id) onEvent(e);
    };
    watchers.add(watch);
    const ticket = await rt.service
      .request({ mode, trigger: { source: "cli" }, signal: shutdown.signal })
      .catch((err) => {
        watchers.delete(watch);
        throw err;
      });
    if (!ticket.started) {
      watchers.delete(watch);
      return ticket;
    }
    id = ticket.backupId;
    for (const e of early) if (operationOf(e) === id) onEvent(e);
    void ticket.done.finally(() => watchers.delete(watch));
    return ticket;
  }

  // Installed before the start-up decision, which can take minutes (stacks coming up): SIGHUP's default
  // action would kill the daemon. A reload during start-up is refused; the running config stays.
  const onSighup = () => {
    reload().then(
      (r) => log.info({ changedKeys: r.changedKeys }, "SIGHUP: configuration reloaded"),
      (err) => log.error({ err: errorMessage(err) }, "SIGHUP: configuration not reloaded"),
    );
  };
  process.on("SIGHUP", onSighup);
  await decide(rt);
  started = true;
  log.info(
    {
      nextRun: rt.scheduler?.nextRun()?.toISOString() ?? null,
      hub: installed.hub?.url ?? null,
      identity: gate?.state ?? "verified",
    },
    "felhom-guest is running",
  );

  if (!shutdown.signal.aborted) {
    await new Promise<void>((resolve) => shutdown.signal.addEventListener("abort", () => resolve()));
  }
  process.off("SIGHUP", onSighup);
  stopping = true;
  // The hub keeps hearing the running backup's events while it settles, but starts nothing new here.
  hub?.refuseCommands();
  clearTimeout(recheck);
  const running = rt.service.running();
  if (running)
    log.info({ backupId: running.backupId }, "waiting for the running backup to hand its stacks back");
  await settle(rt);
  await control.close();
  await hub?.stop();
  await daemonLock.release();
}

function isBackupEvent(e: Event): e is BackupEvent {
  return (
    e.kind === "backup.phase" ||
    e.kind === "backup.progress" ||
    e.kind === "blackout" ||
    e.kind === "blackout.ended"
  );
}

function operationOf(e: BackupEvent): string {
  return e.kind === "blackout" || e.kind === "blackout.ended" ? e.operationId : e.backupId;
}

/** Handlers that always reach the current runtime's (enrollment replaces it while the hub link stays). */
function delegate(current: () => CommandHandlers): CommandHandlers {
  const names = Object.keys(current()) as (keyof CommandHandlers)[];
  const out: Record<string, (params: never, c: CommandContext) => Promise<unknown>> = {};
  for (const name of names) {
    out[name] = (params, c) => {
      const handler = current()[name] as ((p: never, c: CommandContext) => Promise<unknown>) | undefined;
      if (!handler) throw new AgentError("internal", `no handler for ${name}`);
      return handler(params, c);
    };
  }
  return out as CommandHandlers;
}
