import { readFileSync } from "node:fs";
import { Ajv2020, type ErrorObject } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

/**
 * The published JSON Schema as a hub in another language would use it: read from protocol/schema/*.json
 * (not built from the zod schemas), compiled by an independent validator in its strictest mode: Ajv's
 * draft 2020-12 class, `strict: true` (unknown keywords, ignored keywords, loose types and unknown formats
 * are compile errors), every format checked. Nothing is registered on top: a keyword only this project
 * knows would fail the compile, as it would for such a hub.
 */
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const schemaDir = new URL("../../protocol/schema/", import.meta.url);

export type Direction = "agent-to-hub" | "hub-to-agent";

function compile(direction: Direction) {
  const ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: true });
  addFormats(ajv);
  return ajv.compile(JSON.parse(readFileSync(new URL(`${direction}.schema.json`, schemaDir), "utf8")));
}

const validators = { "agent-to-hub": compile("agent-to-hub"), "hub-to-agent": compile("hub-to-agent") };

/** The Ajv errors of `message` against the published schema of `direction` (empty: valid). */
export function strictErrors(direction: Direction, message: unknown): ErrorObject[] {
  const validate = validators[direction];
  return validate(message) ? [] : [...(validate.errors ?? [])];
}

/** Which direction(s) a message type travels (PROTOCOL.md, Message directions). */
export function directionsOf(type: string): Direction[] {
  if (type === "hello" || type === "result" || type === "event") return ["agent-to-hub"];
  if (type === "welcome" || type === "command" || type === "ack") return ["hub-to-agent"];
  return ["agent-to-hub", "hub-to-agent"];
}

/** One line per problem, for a failure message that says where the frame and the schema disagree. */
export function describeErrors(errors: ErrorObject[]): string {
  return errors.map((e) => `${e.instancePath || "/"} ${e.message ?? e.keyword}`).join("; ");
}

/**
 * Every recorded frame checked against the published schema of its direction ("in": agent → hub, "out":
 * hub → agent). Returns one line per frame that fails, naming it; `skip` leaves out frames a test sent as
 * deliberate garbage.
 */
export function invalidFrames(
  frames: ReadonlyArray<{ direction: "in" | "out"; text: string }>,
  skip: (text: string) => boolean = () => false,
): string[] {
  const problems: string[] = [];
  for (const [i, frame] of frames.entries()) {
    if (skip(frame.text)) continue;
    const direction: Direction = frame.direction === "in" ? "agent-to-hub" : "hub-to-agent";
    let message: unknown;
    try {
      message = JSON.parse(frame.text);
    } catch {
      problems.push(`frame ${i} (${direction}) is not JSON: ${frame.text.slice(0, 80)}`);
      continue;
    }
    const errors = strictErrors(direction, message);
    if (errors.length > 0)
      problems.push(`frame ${i} (${direction}) ${frame.text.slice(0, 200)}: ${describeErrors(errors)}`);
  }
  return problems;
}
