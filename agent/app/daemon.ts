import type { AgentConfig } from "../config/schema.ts";
import { HubClient } from "../hub/hub-client.ts";
import type { LocalFacts } from "../identity/decide-identity.ts";
import { describeError } from "../lib/errors.ts";
import { settleHeapSoon } from "../lib/heap-settle.ts";
import type { Logger } from "../log/logger.ts";
import { AGENT_VERSION } from "../version.ts";
import { agentId } from "./agent-id.ts";
import { backupRelay } from "./control-relay.ts";
import { serveControl } from "./control-socket.ts";
import { DaemonEvents } from "./daemon-events.ts";
import { acquireDaemonLock } from "./daemon-lock.ts";
import { BackgroundOperations } from "./daemon-runtime.ts";
import { hubOptionsFromConfig } from "./hub-options.ts";
import { RuntimeSlot } from "./runtime-slot.ts";
import { StartGate } from "./start-gate.ts";

/**
 * `felhom-guest run`: open the hub link (events are durable from here on), decide who this system is
 * (agent/restore: the original, possibly back from its own stop-mode backup, or a restored copy) and only
 * then recover what an earlier run left behind, then serve the schedule and the hub's commands until
 * SIGTERM. A restored copy brings its stacks up and never writes to PVE until it is enrolled; an agent
 * that cannot verify itself keeps its schedule off and asks again every minute. On SIGTERM a running
 * snapshot-mode backup resumes its stacks before the process exits; a stop-mode backup whose guest is
 * going down leaves the rest to the next boot.
 *
 * The parts: DaemonEvents (where events go), RuntimeSlot (the runtime one identity runs, and the enroll
 * and reload that replace it), StartGate (the start-up decision and what it allows), the control relay
 * (an operator's `felhom-guest backup` run here).
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
  // Before anything touches the state dir (outbox, journal, control socket): a second daemon stops here.
  const daemonLock = await acquireDaemonLock(installed.state_dir);
  const shutdown = stopOnSignals(log);
  const { signal } = shutdown;
  const events = new DaemonEvents(log);
  const background = new BackgroundOperations(log);
  const gate: StartGate = new StartGate({ log, events, signal, current: () => slot.current });
  const slot: RuntimeSlot = new RuntimeSlot({
    installed,
    readConfig: options.readConfig,
    background,
    gate,
    parts: {
      log,
      localFacts: options.localFacts,
      events,
      signal,
      gate: () => gate.verdict,
      background,
      enroll: (params) => slot.enroll(params),
      reload: () => slot.reload(),
    },
  });
  await slot.start();

  if (installed.hub) {
    events.hub = await HubClient.open({
      ...hubOptionsFromConfig(installed.hub, installed.state_dir),
      agentId: await agentId(installed.state_dir),
      agentVersion: AGENT_VERSION,
      statusProvider: () => slot.current.status(),
      handlers: slot.handlers(),
      logger: log,
    });
    events.hub.start();
  }
  const relay = backupRelay({
    events,
    service: () => slot.current.service,
    gate: () => gate.verdict,
    signal,
  });
  const control = await serveControl(installed.state_dir, { backup: relay }, log);

  // Installed before the start-up decision, which can take minutes (stacks coming up): SIGHUP's default
  // action would kill the daemon. A reload during start-up is refused; the running config stays.
  const onSighup = () => {
    slot.reload().then(
      (r) => log.info({ changedKeys: r.changedKeys }, "SIGHUP: configuration reloaded"),
      (err) => log.error({ err: describeError(err) }, "SIGHUP: configuration not reloaded"),
    );
  };
  process.on("SIGHUP", onSighup);
  await gate.decide(slot.current);
  log.info(
    {
      nextRun: slot.current.scheduler?.nextRun()?.toISOString() ?? null,
      hub: installed.hub?.url ?? null,
      identity: gate.verdict?.state ?? "verified",
    },
    "felhom-guest is running",
  );
  settleHeapSoon();

  if (!signal.aborted)
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
  process.off("SIGHUP", onSighup);
  gate.stop();
  // The hub keeps hearing the running backup's events while it settles, but starts nothing new here.
  events.hub?.refuseCommands();
  const running = slot.current.service.running();
  if (running)
    log.info({ backupId: running.backupId }, "waiting for the running backup to hand its stacks back");
  await slot.settle();
  await control.close();
  await events.hub?.stop();
  await daemonLock.release();
}

/**
 * SIGTERM and SIGINT abort the returned controller. Installed first and kept for the whole life of the
 * daemon: a signal during the start-up decision (stacks coming up) is taken as soon as it is made, and a
 * second signal (Ctrl-C twice) must not kill the process by default while it is still resuming stacks.
 */
function stopOnSignals(log: Logger): AbortController {
  const shutdown = new AbortController();
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
  return shutdown;
}
