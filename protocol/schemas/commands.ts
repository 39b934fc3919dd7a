import { z } from "zod";
import { COMMAND_ERROR_CODES } from "../error-codes.ts";
import {
  backupMode,
  details,
  id,
  identityState,
  message,
  nodeName,
  shortText,
  snapshotName,
  stackName,
  stackOutcome,
  timestamp,
  vmid,
  volid,
} from "./common.ts";
import { statusBody } from "./status.ts";

const noParams = z.object({});

/**
 * Marks a field that carries a secret: it MUST never be logged, echoed in errors or written to argv.
 * The JSON Schema says it with the standard `writeOnly` annotation alone (meta-data vocabulary of
 * draft 2020-12): a custom keyword such as `x-felhom-secret` is refused by strict validators, and
 * `writeOnly` ("sent, never returned") is what a secret field is. No other field may use `writeOnly`.
 */
export const SECRET_META = { writeOnly: true } as const;

/**
 * The closed set of commands. Each entry: the params the hub sends and the `data` of a successful result.
 * Nothing here can carry a shell command, a path or a guest id other than the agent's own.
 */
export const COMMANDS = {
  "backup.run": {
    params: z.object({ mode: backupMode, reason: shortText.optional() }),
    /** Sent once the backup is started (after the lock); its outcome arrives as backup.* events. */
    data: z.object({ backupId: id, mode: backupMode }),
  },
  "snapshot.create": {
    params: z.object({ name: snapshotName, description: z.string().max(1_000).optional() }),
    /** Sent once started; the outcome arrives as snapshot.created or snapshot.failed. */
    data: z.object({ operationId: id, name: snapshotName }),
  },
  "snapshot.list": {
    params: noParams,
    data: z.object({
      snapshots: z
        .array(
          z.object({
            name: z.string().min(1).max(40),
            description: z.string().max(1_000),
            takenAt: timestamp.nullable(),
            parent: z.string().max(40).nullable(),
          }),
        )
        .max(1_000),
    }),
  },
  "snapshot.delete": {
    params: z.object({ name: snapshotName }),
    data: z.object({ operationId: id, name: snapshotName }),
  },
  "backups.list": {
    params: noParams,
    data: z.object({
      storage: z.string().min(1).max(64),
      backups: z
        .array(
          z.object({
            volid,
            sizeBytes: z.int().min(0),
            createdAt: timestamp,
            notes: z.string().max(1_000).nullable(),
            /** The felhom backup id read from the notes, when the archive is one of ours. */
            backupId: id.nullable(),
            protected: z.boolean(),
          }),
        )
        .max(10_000),
    }),
  },
  "status.get": { params: noParams, data: statusBody },
  "stacks.up": {
    /** Absent: every remembered stack. */
    params: z.object({ projects: z.array(stackName).min(1).max(256).optional() }),
    data: z.object({ stacks: z.array(stackOutcome).max(256) }),
  },
  enroll: {
    params: z.object({
      vmid,
      /** `user@realm!tokenname` */
      tokenId: z
        .string()
        .max(128)
        .regex(/^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]*$/, "must be user@realm!tokenname"),
      tokenSecret: z
        .string()
        .min(1)
        .max(256)
        .meta({ ...SECRET_META, description: "PVE token secret. MUST never be logged or echoed." }),
    }),
    data: z.object({ vmid, node: nodeName, identityState }),
  },
  "config.reload": {
    params: noParams,
    /** Dotted config keys whose value changed. */
    data: z.object({ changedKeys: z.array(z.string().max(128)).max(256) }),
  },
} as const;

export type CommandName = keyof typeof COMMANDS;
export const COMMAND_NAMES = Object.keys(COMMANDS) as [CommandName, ...CommandName[]];

type Spec<N extends CommandName> = (typeof COMMANDS)[N];
type BodySchema = {
  [N in CommandName]: z.ZodObject<{ name: z.ZodLiteral<N>; params: Spec<N>["params"] }>;
}[CommandName];
type OkResultSchema = {
  [N in CommandName]: z.ZodObject<{
    type: z.ZodLiteral<"result">;
    id: typeof id;
    ok: z.ZodLiteral<true>;
    name: z.ZodLiteral<N>;
    data: Spec<N>["data"];
  }>;
}[CommandName];

/** `{name, params}` per command; discriminated on `name`. */
export const commandBody = z.discriminatedUnion(
  "name",
  COMMAND_NAMES.map((name) => z.object({ name: z.literal(name), params: COMMANDS[name].params })) as [
    BodySchema,
    ...BodySchema[],
  ],
);

export const commandMessage = z.object({ type: z.literal("command"), id, command: commandBody });

const okResult = z.discriminatedUnion(
  "name",
  COMMAND_NAMES.map((name) =>
    z.object({
      type: z.literal("result"),
      id,
      ok: z.literal(true),
      /** The command name, so that `data` has one schema per command (hubs in other languages). */
      name: z.literal(name),
      data: COMMANDS[name].data,
    }),
  ) as [OkResultSchema, ...OkResultSchema[]],
);

export const commandError = z.object({
  code: z.enum(COMMAND_ERROR_CODES),
  message,
  retryable: z.boolean(),
  details: details.optional(),
});

const failedResult = z.object({
  type: z.literal("result"),
  id,
  ok: z.literal(false),
  /** Absent only when the rejected command had no readable name. */
  name: z.string().max(64).optional(),
  error: commandError,
});

export const resultMessage = z.discriminatedUnion("ok", [okResult, failedResult]);
