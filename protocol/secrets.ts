import type { Message } from "./messages.ts";

/**
 * Where secrets travel: fields marked with SECRET_META in the schemas. Every such field is listed here
 * (a test derives the marked fields from the JSON Schema and compares), so `redactSecrets` cannot miss one.
 */
export const SECRET_FIELDS = [
  { type: "command", name: "enroll", path: ["command", "params", "tokenSecret"] },
] as const;

export const REDACTED = "[redacted]";

/** A copy of the message that is safe to log: every secret field reads "[redacted]". */
export function redactSecrets<M extends Message>(msg: M): M {
  let copy: M = msg;
  for (const field of SECRET_FIELDS) {
    const frame = msg as { type: string; command?: { name?: string } };
    if (frame.type !== field.type || frame.command?.name !== field.name) continue;
    copy = structuredClone(copy);
    let here = copy as Record<string, unknown>;
    for (const key of field.path.slice(0, -1)) here = here[key] as Record<string, unknown>;
    const last = field.path[field.path.length - 1]!;
    if (last in here) here[last] = REDACTED;
  }
  return copy;
}
