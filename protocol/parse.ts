import type { z } from "zod";
import type { FrameErrorCode } from "./error-codes.ts";
import { checkDepth, findForbiddenKey, frameText, type RawFrame } from "./frame-guard.ts";
import {
  AGENT_TO_HUB_TYPES,
  type AgentToHubMessage,
  HUB_TO_AGENT_TYPES,
  type HubToAgentMessage,
  MESSAGE_SCHEMAS,
  type Message,
  type MessageType,
} from "./messages.ts";
import { COMMAND_NAMES } from "./schemas/commands.ts";
import { id as idSchema } from "./schemas/common.ts";
import { EVENT_KINDS } from "./schemas/events.ts";

/** What is known about a rejected frame; enough to build an `error` reply or a failed `result`. */
export type FrameRef = { type?: string; id?: string; seq?: number; name?: string };

export type ParseError = { code: FrameErrorCode; message: string; ref?: FrameRef };

export type ParseResult<M> = { ok: true; message: M } | { ok: false; error: ParseError };

const commandNames = new Set<string>(COMMAND_NAMES);
const eventKinds = new Set<string>(EVENT_KINDS);
const allTypes = new Set<string>(Object.keys(MESSAGE_SCHEMAS));

/** Parses a frame of either direction. Never throws. */
export function parseMessage(raw: RawFrame, isBinary?: boolean): ParseResult<Message> {
  return parseFor(allTypes, "", raw, isBinary) as ParseResult<Message>;
}

/** For the agent: accepts only what a hub may send. Never throws. */
export function parseHubToAgent(raw: RawFrame, isBinary?: boolean): ParseResult<HubToAgentMessage> {
  return parseFor(new Set(HUB_TO_AGENT_TYPES), "the agent", raw, isBinary) as ParseResult<HubToAgentMessage>;
}

/** For the hub: accepts only what an agent may send. Never throws. */
export function parseAgentToHub(raw: RawFrame, isBinary?: boolean): ParseResult<AgentToHubMessage> {
  return parseFor(new Set(AGENT_TO_HUB_TYPES), "the hub", raw, isBinary) as ParseResult<AgentToHubMessage>;
}

function fail(code: FrameErrorCode, message: string, ref?: FrameRef): { ok: false; error: ParseError } {
  return {
    ok: false,
    error: ref && Object.keys(ref).length > 0 ? { code, message, ref } : { code, message },
  };
}

function parseFor(
  accepted: ReadonlySet<string>,
  receiver: string,
  raw: RawFrame,
  isBinary: boolean | undefined,
): ParseResult<unknown> {
  const text = frameText(raw, isBinary);
  if (typeof text !== "string") return fail(text.code, text.message);
  const deep = checkDepth(text);
  if (deep) return fail(deep.code, deep.message);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return fail("invalid_json", describeJsonError(err, text));
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail("not_an_object", `a frame must be a JSON object, got ${describe(value)}`);
  }
  const frame = value as Record<string, unknown>;
  const ref = refOf(frame);
  const polluted = findForbiddenKey(frame);
  if (polluted) return fail(polluted.code, polluted.message, ref);

  const type = frame.type;
  if (typeof type !== "string" || !allTypes.has(type)) {
    const shown = typeof type === "string" ? JSON.stringify(type.slice(0, 64)) : describe(type);
    return fail("unknown_message_type", `unknown message type: "type" is ${shown}`, ref);
  }
  if (!accepted.has(type)) {
    return fail("wrong_direction", `"${type}" is never sent to ${receiver}`, ref);
  }
  if (type === "command" && ref.name !== undefined && !commandNames.has(ref.name)) {
    return fail("unknown_command", `command "${ref.name}": unknown command name`, ref);
  }
  const kind = (frame.event as Record<string, unknown> | undefined)?.kind;
  if (type === "event" && typeof kind === "string" && !eventKinds.has(kind)) {
    return fail("unknown_event_kind", `event "${kind}": unknown event kind`, ref);
  }
  const parsed = MESSAGE_SCHEMAS[type as MessageType].safeParse(frame);
  if (!parsed.success) {
    return fail("invalid_message", describeIssues(labelOf(type, frame), parsed.error, frame), ref);
  }
  return { ok: true, message: parsed.data };
}

/**
 * Says where a frame stopped being JSON, never what it contains: JSON.parse's messages quote the bad
 * token and, on "Unexpected token", about ten characters around it — part of a secret in a malformed
 * frame would reach the log and the error reply. Only a position Node states at the very end of its
 * message (so not one quoted from the frame) and the frame's length are kept.
 */
function describeJsonError(err: unknown, text: string): string {
  const message = err instanceof Error ? err.message : "";
  const at = /at position (\d+)(?: \(line \d+ column \d+\))?$/.exec(message);
  const position = at && Number(at[1]) <= text.length ? ` at position ${at[1]}` : "";
  return `the frame is not JSON${position} (${text.length} characters)`;
}

function refOf(frame: Record<string, unknown>): FrameRef {
  const ref: FrameRef = {};
  if (typeof frame.type === "string" && frame.type.length <= 64) ref.type = frame.type;
  if (idSchema.safeParse(frame.id).success) ref.id = frame.id as string;
  if (Number.isSafeInteger(frame.seq) && (frame.seq as number) > 0) ref.seq = frame.seq as number;
  const command = frame.command;
  if (typeof command === "object" && command !== null) {
    const name = (command as Record<string, unknown>).name;
    if (typeof name === "string" && name.length <= 64) ref.name = name;
  }
  return ref;
}

function labelOf(type: string, frame: Record<string, unknown>): string {
  if (type === "command") {
    const name = (frame.command as Record<string, unknown> | undefined)?.name;
    if (typeof name === "string") return `command "${name}"`;
  }
  if (type === "result" && typeof frame.name === "string") return `result "${frame.name.slice(0, 64)}"`;
  if (type === "event") {
    const kind = (frame.event as Record<string, unknown> | undefined)?.kind;
    if (typeof kind === "string") return `event "${kind}"`;
  }
  return `"${type}"`;
}

/**
 * `<label>: <path>: <zod's expectation>, got <actual>`. The actual value is shown only for numbers,
 * booleans and null; strings by length, so a secret that fails validation is never echoed into a log.
 */
export function describeIssues(label: string, error: z.ZodError, input: unknown): string {
  const lines = error.issues.slice(0, 5).map((issue) => {
    const path = issue.path.length === 0 ? "(root)" : formatPath(issue.path);
    const value = valueAt(input, issue.path);
    // zod's invalid_type message already ends in "received <type>"; add the value where it is safe to.
    const actual =
      issue.code !== "invalid_type"
        ? `, got ${describe(value)}`
        : typeof value === "number" || typeof value === "boolean"
          ? ` ${value}`
          : "";
    return `${path}: ${issue.message}${actual}`;
  });
  const more = error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : "";
  return `${label}: ${lines.join("; ")}${more}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join("");
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let here = input;
  for (const key of path) {
    if (typeof here !== "object" || here === null || !Object.hasOwn(here, key)) return undefined;
    here = (here as Record<PropertyKey, unknown>)[key];
  }
  return here;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `array (${value.length} items)`;
  if (typeof value === "string") return `string (${value.length} chars)`;
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${String(value)}`;
  return typeof value;
}
