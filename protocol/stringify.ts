import type { z } from "zod";
import { findForbiddenKey } from "./frame-guard.ts";
import { MAX_FRAME_BYTES } from "./limits.ts";
import { MESSAGE_SCHEMAS, type Message, type MessageType } from "./messages.ts";
import { describeIssues } from "./parse.ts";

/** Thrown by `stringifyMessage`: our own code built a frame the peer would reject. A bug, never input. */
export class ProtocolEncodeError extends Error {
  readonly code: "invalid_message" | "frame_too_large" | "forbidden_key";
  readonly issues: readonly z.core.$ZodIssue[];

  constructor(code: ProtocolEncodeError["code"], message: string, issues: readonly z.core.$ZodIssue[] = []) {
    super(message);
    this.name = "ProtocolEncodeError";
    this.code = code;
    this.issues = issues;
  }
}

/**
 * Validates, then serialises. What goes on the wire is the schema's output, so fields the schema does not
 * know never leave (the same rule the receiver applies: unknown fields are dropped).
 */
export function stringifyMessage(msg: Message): string {
  const type = (msg as { type?: unknown }).type;
  const schema = typeof type === "string" ? MESSAGE_SCHEMAS[type as MessageType] : undefined;
  if (schema === undefined) {
    throw new ProtocolEncodeError("invalid_message", `cannot send a message of type ${JSON.stringify(type)}`);
  }
  const parsed = schema.safeParse(msg);
  if (!parsed.success) {
    throw new ProtocolEncodeError(
      "invalid_message",
      describeIssues(`"${type}"`, parsed.error, msg),
      parsed.error.issues,
    );
  }
  const polluted = findForbiddenKey(parsed.data);
  if (polluted) throw new ProtocolEncodeError("forbidden_key", polluted.message);
  const text = JSON.stringify(parsed.data);
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_FRAME_BYTES) {
    throw new ProtocolEncodeError(
      "frame_too_large",
      `"${type}" serialises to ${bytes} bytes; the limit is ${MAX_FRAME_BYTES}`,
    );
  }
  return text;
}
