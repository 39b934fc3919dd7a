import type { Event } from "@felhom/protocol";
import type { HubClient } from "../hub/hub-client.ts";
import { describeError } from "../lib/errors.ts";
import type { Logger } from "../log/logger.ts";
import type { OperationEvent } from "../operation/operation-deps.ts";

/**
 * Where the daemon's events go: the hub's outbox (durable once the link is open), the log, and the CLI
 * backups relayed through the control socket, each watching its own backup's events.
 */
export class DaemonEvents {
  hub: HubClient | undefined;
  readonly #watchers = new Set<(e: OperationEvent) => void>();

  constructor(private readonly log: Logger) {}

  readonly emit = (e: Event): void => {
    if (isBackupEvent(e)) for (const watch of this.#watchers) watch(e);
    const { log, hub } = this;
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
      log.error({ kind: e.kind, err: describeError(err) }, "could not queue an event for the hub"),
    );
  };

  /** The events of one operation, from now on; returns the unsubscribe. */
  watch(operationId: () => string | undefined, onEvent: (e: OperationEvent) => void): () => void {
    const watch = (e: OperationEvent) => {
      if (eventOperationId(e) === operationId()) onEvent(e);
    };
    this.#watchers.add(watch);
    return () => this.#watchers.delete(watch);
  }
}

function isBackupEvent(e: Event): e is OperationEvent {
  return (
    e.kind === "backup.phase" ||
    e.kind === "backup.progress" ||
    e.kind === "blackout" ||
    e.kind === "blackout.ended"
  );
}

function eventOperationId(e: OperationEvent): string {
  return e.kind === "blackout" || e.kind === "blackout.ended" ? e.operationId : e.backupId;
}
