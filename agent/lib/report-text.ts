import { MAX_LOG_LINE_CHARS } from "@felhom/protocol";
import { redactSecrets } from "./secret.ts";

/**
 * Text that comes from inside a container (a hook's command line from its labels, its output) ends up in
 * error messages, which go to the journal, the logs and the hub. It is bounded here, stripped of control
 * characters (a line of output cannot forge a log line or a terminal escape), and any secret this process
 * holds is replaced by "[redacted]" (a hook that echoes the environment it was given, say).
 */

/** A hook's command line as shown in a message: JSON, at most this many characters. */
export const MAX_COMMAND_CHARS = 200;
/** How many of the last output lines a message quotes, and how long each may be. */
export const TAIL_LINES = 3;
export const MAX_LINE_CHARS = 200;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * A line of text for an event (a warning, a log or progress line): cut to the protocol's limit, or the
 * whole event fails validation and is dropped (the hub would never hear that the backup finished).
 */
export function eventLine(text: string): string {
  return clip(text, MAX_LOG_LINE_CHARS);
}

/** Control characters (newlines, ESC, NUL…) become spaces. */
function printable(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ");
}

/** A command line for a message: redacted, printable, at most MAX_COMMAND_CHARS. */
export function commandForReport(argv: readonly string[]): string {
  return clip(printable(redactSecrets(JSON.stringify(argv))), MAX_COMMAND_CHARS);
}

/** The last TAIL_LINES non-empty lines of output, each at most MAX_LINE_CHARS, joined with " | ". */
export function outputTailForReport(output: string): string {
  return redactSecrets(output)
    .split(/\r?\n/)
    .map((l) => printable(l).trim())
    .filter((l) => l !== "")
    .slice(-TAIL_LINES)
    .map((l) => clip(l, MAX_LINE_CHARS))
    .join(" | ");
}
