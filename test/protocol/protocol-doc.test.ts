import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  BACKUP_PHASES,
  CLOSE_CODES,
  COMMAND_ERROR_CODES,
  COMMAND_ERRORS,
  COMMAND_NAMES,
  EVENT_KINDS,
  FRAME_ERROR_CODES,
  MESSAGE_TYPES,
  parseMessage,
  SUBPROTOCOL,
} from "../../protocol/index.ts";

const doc = readFileSync(new URL("../../protocol/PROTOCOL.md", import.meta.url), "utf8");
const jsonBlocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("PROTOCOL.md agrees with the schemas", () => {
  it.each(MESSAGE_TYPES)("has a section for the message type %s with a Direction line", (type) => {
    const section = doc.split(`\n### \`${type}\`\n`)[1];
    expect(section, `no "### \`${type}\`" section`).toBeDefined();
    expect(section!.split("\n### ")[0]).toMatch(/Direction: \*\*/);
  });

  it.each(COMMAND_NAMES)("documents the command %s in the command table", (name) => {
    expect(doc).toContain(`| \`${name}\` |`);
  });

  it.each(EVENT_KINDS)("documents the event kind %s in the event table", (kind) => {
    expect(doc).toContain(`| \`${kind}\` |`);
  });

  it.each(BACKUP_PHASES)("documents the backup phase %s", (phase) => {
    expect(doc).toContain(`| \`${phase}\` |`);
  });

  it.each(Object.entries(CLOSE_CODES))(
    "lists the close code %s with its number and reconnect rule",
    (name, c) => {
      expect(doc).toMatch(
        new RegExp(`\\| \`${c.code}\` \\| ${name} \\| [^\\n]* \\| ${c.reconnect ? "yes" : "no"}`),
      );
    },
  );

  it.each(FRAME_ERROR_CODES)("lists the frame error code %s", (code) => {
    expect(doc).toContain(`| \`${code}\` |`);
  });

  it.each(COMMAND_ERROR_CODES)(
    "lists the command error code %s with its retryable default and details",
    (code) => {
      const { retryable, details } = COMMAND_ERRORS[code];
      const keys = details.length === 0 ? "–" : details.map((d) => `\`${d}\``).join(", ");
      expect(doc).toContain(`| \`${code}\` | ${retryable ? "yes" : "no"} | ${keys} |`);
    },
  );

  it("names the subprotocol", () => {
    expect(doc).toContain(`**\`${SUBPROTOCOL}\`**`);
  });

  it("has an example for every message type, and every JSON example is a valid message", () => {
    expect(jsonBlocks.length).toBeGreaterThan(0);
    const types = new Set<string>();
    for (const block of jsonBlocks) {
      const parsed = parseMessage(block);
      if (!parsed.ok) expect.fail(`${parsed.error.message}\n${block}`);
      types.add(parsed.message.type);
    }
    expect([...types].sort()).toEqual([...MESSAGE_TYPES].sort());
  });
});
