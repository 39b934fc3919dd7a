import { COMMAND_ERRORS } from "./error-codes.ts";
import type { AgentToHubMessage, ErrorMessage } from "./messages.ts";
import type { ParseError } from "./parse.ts";

/**
 * The answer to a frame `parseMessage` rejected, or null when there must be none:
 * - never an answer to an `error` frame (two peers must not bounce errors at each other forever);
 * - a rejected `command` with a readable id gets a failed `result` (unknown_command / invalid_params),
 *   so that every command id the hub sent gets exactly one final result;
 * - anything else gets an `error` frame naming what is known about the frame.
 */
export function replyToRejectedFrame(error: ParseError): AgentToHubMessage | ErrorMessage | null {
  const ref = error.ref ?? {};
  if (ref.type === "error") return null;
  if (ref.type === "command" && ref.id !== undefined) {
    if (error.code === "unknown_command" || error.code === "invalid_message") {
      const code = error.code === "unknown_command" ? "unknown_command" : "invalid_params";
      return {
        type: "result",
        id: ref.id,
        ok: false,
        ...(ref.name === undefined ? {} : { name: ref.name }),
        error: { code, message: clip(error.message), retryable: COMMAND_ERRORS[code].retryable },
      };
    }
  }
  const { type, id, seq } = ref;
  const errorRef = {
    ...(type === undefined ? {} : { type }),
    ...(id === undefined ? {} : { id }),
    ...(seq === undefined ? {} : { seq }),
  };
  return {
    type: "error",
    code: error.code,
    message: clip(error.message),
    ...(Object.keys(errorRef).length === 0 ? {} : { ref: errorRef }),
  };
}

function clip(text: string): string {
  return text.length <= 2_000 ? text : `${text.slice(0, 1_997)}...`;
}
