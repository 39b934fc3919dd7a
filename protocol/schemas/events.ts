import { z } from "zod";
import {
  backupMode,
  consistency,
  id,
  identityState,
  logLine,
  logTail,
  message,
  openCode,
  quiesceStrategy,
  seq,
  serviceName,
  snapshotName,
  stackName,
  stackOutcome,
  timestamp,
  upid,
  vmid,
  volid,
} from "./common.ts";
import { statusBody } from "./status.ts";

/**
 * The steps of a backup (product brief §3), in snapshot-mode order. Stop mode runs lock … quiesce,
 * submit, then the guest goes down; after the boot it reports follow, verify, resume, retention, report.
 */
export const BACKUP_PHASES = [
  "lock",
  "preflight",
  "announce",
  "journal",
  "quiesce",
  "marker",
  "submit",
  "snapshot-wait",
  "resume",
  "follow",
  "verify",
  "retention",
  "report",
] as const;
export const backupPhase = z.enum(BACKUP_PHASES);

const trigger = z.object({
  source: z.enum(["schedule", "hub", "cli", "journal-replay"]),
  /** The hub command id, when source is "hub". */
  commandId: id.optional(),
});

const serviceDowntime = z.object({
  project: stackName,
  service: serviceName,
  strategy: quiesceStrategy,
  downtimeMs: z.int().min(0),
  /**
   * Where the downtime went (additive; absent from agents before it). The parts follow each other and add
   * up to `downtimeMs` (to rounding): `quiesceMs` this service down → the vzdump POST sent (the stops and
   * hooks of the services quiesced after it included); `pveMs` the POST → the last task-log read without
   * the snapshot line (PVE's part, a lower bound); `noticeMs` that read → the agent resuming on the read
   * that returned the line (the agent's part, an upper bound: the line's own time is not in the log);
   * `resumeMs` the resume's start → this service back (the services it depends on, health waits
   * included). `noticeMs` is absent when no log line released the stacks (deadline, task end, failure):
   * `pveMs` then runs to the resume. After a restart (a stop-mode backup, a journal replayed at start)
   * only `resumeMs` is known: the run that quiesced is gone.
   */
  breakdown: z
    .object({
      quiesceMs: z.int().min(0).optional(),
      pveMs: z.int().min(0).optional(),
      noticeMs: z.int().min(0).optional(),
      resumeMs: z.int().min(0),
    })
    .optional(),
});

/**
 * A service's data that vzdump leaves out of the archive: it lies on a CT mount point that is a bind (or
 * device) mount point ("not a volume") or a volume without backup=1 ("disabled").
 */
export const notInArchive = z.object({
  project: stackName,
  service: serviceName,
  /** The path inside the container. */
  destination: z.string().min(1).max(4_096),
  /** Where the data lives in the guest: a bind mount's source, a volume's mountpoint. */
  source: z.string().min(1).max(4_096),
  /** The volume's name, for a Docker volume. */
  volume: z.string().min(1).max(255).optional(),
  /** The CT mount point (`mp0`, ...) and its path in the guest. */
  mountPoint: z.string().regex(/^mp\d{1,3}$/),
  mountPath: z.string().min(1).max(4_096),
  reason: z.enum(["not a volume", "disabled"]),
});

const blackoutReason = z.enum(["stop-mode", "snapshot-freeze"]);

/** vzdump's modes (pve-manager PVE/VZDump.pm): what PVE really ran. */
const pveMode = z.enum(["snapshot", "suspend", "stop"]);

/** Why an operation failed: an agent error code (open set, informative) and a sentence. */
const failure = { code: openCode, message };

/** The closed set of event kinds; each entry is the event body without `kind`. */
export const EVENTS = {
  "backup.phase": z.object({ backupId: id, mode: backupMode, phase: backupPhase, trigger }),
  "backup.progress": z.object({
    backupId: id,
    phase: backupPhase,
    bytes: z.int().min(0).optional(),
    totalBytes: z.int().min(0).optional(),
    percent: z.number().min(0).max(100).optional(),
    /** A line of the vzdump task log. */
    line: logLine.optional(),
  }),
  "backup.completed": z.object({
    backupId: id,
    mode: backupMode,
    /**
     * The mode PVE ran (vzdump's `backup mode: X`): `suspend` when a snapshot-mode backup met a volume that
     * cannot be snapshotted. Absent from agents before it, and when the task log never said.
     */
    pveMode: pveMode.optional(),
    upid,
    volid,
    sizeBytes: z.int().min(0),
    totalMs: z.int().min(0),
    downtime: z.array(serviceDowntime).max(1_024),
    /** vzdump's `exitstatus`: "OK" or "WARNINGS: <n>". */
    exitStatus: z.string().max(256),
    warnings: z.array(logLine).max(100),
    /** "app" when every service with a strategy other than none was stopped or flushed; otherwise "crash". */
    consistency,
    /** false is an alarm even on a good archive: a container this backup quiesced did not start again. */
    stacksResumed: z.boolean(),
    /** The archives retention removed after this backup (absent when none was configured). */
    pruned: z.array(volid).max(1_024).optional(),
    /** Container data this archive does not hold (absent when all of it is in, or the CT config was unreadable). */
    notInArchive: z.array(notInArchive).max(1_024).optional(),
  }),
  "backup.failed": z.object({
    backupId: id,
    mode: backupMode,
    /** As in backup.completed; absent when the task never got that far. */
    pveMode: pveMode.optional(),
    phase: backupPhase,
    ...failure,
    /** vzdump's `exitstatus` when the task stopped; null when it never ran or never stopped. */
    exitStatus: z.string().max(1_000).nullable(),
    upid: upid.nullable(),
    logTail,
    /** true when every stack this backup quiesced runs again (also when nothing was quiesced). */
    stacksResumed: z.boolean(),
    /**
     * Present only when the agent will try this backup again (a scheduled backup refused by a busy node,
     * `vzdump_lock_busy`): this failure is not the slot's result, a later backup.completed/failed is. Absent:
     * this failure is final.
     */
    retry: z
      .object({
        /** The attempt that failed, 1 for the first. */
        attempt: z.int().min(1).max(100),
        /** Attempts still to come (at least 1). */
        retriesLeft: z.int().min(1).max(100),
        /** When the next attempt starts, in seconds from this event. */
        inSeconds: z.int().min(0).max(86_400),
      })
      .optional(),
  }),
  "snapshot.created": z.object({
    operationId: id,
    name: snapshotName,
    upid,
    downtime: z.array(serviceDowntime).max(1_024),
    consistency,
    /** As in backup.completed: false means a container did not start again. */
    stacksResumed: z.boolean(),
  }),
  "snapshot.deleted": z.object({ operationId: id, name: snapshotName, upid }),
  "snapshot.failed": z.object({
    operationId: id,
    action: z.enum(["create", "delete"]),
    name: snapshotName,
    ...failure,
    upid: upid.nullable(),
    logTail,
    stacksResumed: z.boolean(),
  }),
  "restore.detected": z.object({
    /** The backup the copy was made from, when the marker names it. */
    fromBackupId: id.nullable(),
    takenAt: timestamp.nullable(),
    /** The signals that decided it (open set: "marker", "mac-mismatch", "uptime", …). */
    signals: z.array(openCode).max(32),
    stacks: z.array(stackOutcome).max(256),
  }),
  "identity.warning": z.object({
    state: identityState,
    /** Open set: "mac-mismatch", "hostname-mismatch", "vmid-missing", "duplicate-mac", "token-scope", … */
    signal: openCode,
    message,
    vmid: vmid.nullable(),
  }),
  blackout: z.object({
    reason: blackoutReason,
    /** The agent will be unreachable for at most about this long, starting now. */
    expectedSeconds: z.int().min(1).max(86_400),
    /** The backup id or snapshot operation id that causes it. */
    operationId: id,
  }),
  /**
   * The operation that announced the blackout is over (before its outcome event): the hub's liveness
   * checks apply again from now, whatever was left of `expectedSeconds`.
   */
  "blackout.ended": z.object({ reason: blackoutReason, operationId: id }),
  status: statusBody,
  gap: z.object({
    /** The first and last seq of the events that will never be sent; they count as received. */
    fromSeq: seq,
    toSeq: seq,
    count: z.int().min(1),
    /** Kinds of the lost events, as far as known (empty when the agent no longer has them). */
    kinds: z.array(z.string().max(64)).max(32),
    reason: z.enum(["outbox-overflow", "already-acked"]),
  }),
} as const;

export type EventKind = keyof typeof EVENTS;
export const EVENT_KINDS = Object.keys(EVENTS) as [EventKind, ...EventKind[]];

type KindShape<K extends EventKind> = (typeof EVENTS)[K] extends z.ZodObject<infer S> ? S : never;
type EventBodySchema = {
  [K in EventKind]: z.ZodObject<z.util.Extend<KindShape<K>, { kind: z.ZodLiteral<K> }>>;
}[EventKind];

/** `{kind, …}` per kind; discriminated on `kind`. */
export const eventBody = z.discriminatedUnion(
  "kind",
  EVENT_KINDS.map((kind) => EVENTS[kind].extend({ kind: z.literal(kind) })) as unknown as [
    EventBodySchema,
    ...EventBodySchema[],
  ],
);

export const eventMessage = z
  .object({
    type: z.literal("event"),
    seq,
    /** When the event happened (not when it was sent: events may be replayed after a reconnect). */
    at: timestamp,
    event: eventBody,
  })
  .superRefine(({ seq, event }, ctx) => {
    // Rules JSON Schema cannot state; PROTOCOL.md says them in words.
    if (event.kind !== "gap") return;
    if (event.fromSeq > event.toSeq) {
      ctx.addIssue({ code: "custom", path: ["event", "toSeq"], message: "toSeq must be >= fromSeq" });
    } else if (event.count > event.toSeq - event.fromSeq + 1) {
      ctx.addIssue({
        code: "custom",
        path: ["event", "count"],
        message: "count must be <= toSeq - fromSeq + 1",
      });
    }
    if (event.toSeq >= seq) {
      ctx.addIssue({
        code: "custom",
        path: ["event", "toSeq"],
        message: "a gap covers only seqs below its own",
      });
    }
  });
