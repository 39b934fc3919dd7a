import { join } from "node:path";

/**
 * Every entry of the state dir (`state_dir`, /var/lib/felhom-guest by default), named once: what it holds
 * and which module keeps it. The README's "State" section lists the same. Nothing else in the agent
 * spells a file name inside the state dir.
 */
export function statePaths(stateDir: string) {
  return {
    /** The containers an operation quiesced, from before the first is touched until all are back (quiesce/journal.ts). */
    quiesceJournal: join(stateDir, "quiesce-journal.json"),
    /** The stacks seen and their measured stop durations (quiesce/stack-registry.ts). */
    stackRegistry: join(stateDir, "stacks.json"),
    /** Written while a backup's stacks are down: a restored copy boots with it (backup/marker.ts). */
    backupMarker: join(stateDir, "backup-marker.json"),
    /** The last backup's outcome, for `status` and the hub (backup/last-backup.ts). */
    lastBackup: join(stateDir, "last-backup.json"),
    /** Consecutive failures and the last attempt, for metrics.textfile (metrics/textfile.ts). */
    backupHealth: join(stateDir, "backup-health.json"),
    /** How far the schedule got, for a slot missed while the agent was stopped (schedule/scheduler.ts). */
    schedule: join(stateDir, "schedule.json"),
    /**
     * One operation at a time, across processes (operation/operation-lock.ts). Named as agents up to 0.1.0
     * named it, so that both see one lock through an upgrade.
     */
    operationLock: join(stateDir, "backup.lock"),
    /** One daemon per state dir, flock(2) (app/daemon-lock.ts). */
    daemonLock: join(stateDir, "daemon.lock"),
    /** The daemon's root-only socket for the CLI's `backup` (app/control-socket.ts). */
    controlSocket: join(stateDir, "control.sock"),
    /** This agent's id towards the hub (app/agent-id.ts). */
    agentId: join(stateDir, "agent-id.json"),
    /** The enrollment: the vmid and token id the hub gave (identity/enrollment-record.ts). */
    enrollment: join(stateDir, "enrollment.json"),
    /** The enrolled token's secret, 0600 in a 0700 dir (identity/enrollment.ts). */
    enrollmentSecret: join(stateDir, "enrollment", "pve-token.secret"),
    /** Set when this system found itself a restored copy, until it is enrolled (restore/restore-record.ts). */
    restoredCopy: join(stateDir, "restored-copy.json"),
    /** Events not yet acknowledged by the hub: a log and its ack point (hub/outbox.ts). */
    hubOutbox: join(stateDir, "hub-outbox"),
    /** Hub commands seen, so that a redelivered one is answered, not run twice (hub/command-store.ts). */
    hubCommands: join(stateDir, "hub-commands.json"),
  };
}
