import type { BackupService } from "../backup/backup-service.ts";
import type { IdentityGate } from "../boot/start-up.ts";
import { AgentError } from "../lib/errors.ts";
import type { ControlHandlers } from "./control-socket.ts";
import type { DaemonEvents } from "./daemon-events.ts";

/**
 * `felhom-guest backup` while the daemon runs: the daemon runs it (the hub sees it) and streams its
 * events back. The same gate as the hub's commands: no PVE write before the identity is settled. The
 * service names the backup before its first event, so the relay follows exactly that one.
 */
export function backupRelay(o: {
  events: DaemonEvents;
  service: () => BackupService;
  gate: () => IdentityGate | undefined;
  signal: AbortSignal;
}): ControlHandlers["backup"] {
  return async (mode, onEvent) => {
    const gate = o.gate();
    if (gate)
      throw new AgentError("identity_unverified", `refusing to back up: ${gate.reason}`, { hint: gate.hint });
    let backupId: string | undefined;
    const unwatch = o.events.watch(() => backupId, onEvent);
    try {
      const ticket = await o.service().request({
        mode,
        trigger: { source: "cli" },
        signal: o.signal,
        onStarted: (id) => {
          backupId = id;
        },
      });
      if (ticket.started) void ticket.done.finally(unwatch);
      else unwatch();
      return ticket;
    } catch (err) {
      unwatch();
      throw err;
    }
  };
}
