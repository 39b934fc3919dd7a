import { readFileSync } from "node:fs";
import {
  BACKUP_PHASES,
  CLOSE_CODES,
  COMMAND_ERROR_CODES,
  COMMAND_ERRORS,
  COMMAND_NAMES,
  EVENT_KINDS,
  FRAME_ERROR_CODES,
  MAX_HUB_SEQ,
  MESSAGE_TYPES,
  parseMessage,
  SUBPROTOCOL,
} from "@felhom/protocol";
import { describe, expect, it } from "vitest";

const doc = readFileSync(new URL("../../protocol/PROTOCOL.md", import.meta.url), "utf8");
/** A table row starting with these cells; tolerant of the column padding the formatter adds. */
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const row = (...cells: string[]) =>
  new RegExp(`\\|\\s*${cells.map(escapeRegExp).join("\\s*\\|\\s*")}\\s*\\|`);
const jsonBlocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("PROTOCOL.md agrees with the schemas", () => {
  it.each(MESSAGE_TYPES)("has a section for the message type %s with a Direction line", (type) => {
    const section = doc.split(`\n### \`${type}\`\n`)[1];
    expect(section, `no "### \`${type}\`" section`).toBeDefined();
    expect(section!.split("\n### ")[0]).toMatch(/Direction: \*\*/);
  });

  it.each(COMMAND_NAMES)("documents the command %s in the command table", (name) => {
    expect(doc).toMatch(row(`\`${name}\``));
  });

  it.each(EVENT_KINDS)("documents the event kind %s in the event table", (kind) => {
    expect(doc).toMatch(row(`\`${kind}\``));
  });

  it.each(BACKUP_PHASES)("documents the backup phase %s", (phase) => {
    expect(doc).toMatch(row(`\`${phase}\``));
  });

  it("lists the backup phases in the order the agent sends them", () => {
    const table = doc.split("**Backup phases**")[1]!.split("\n\n")[1]!;
    const listed = [...table.matchAll(/^\| `([a-z-]+)`/gm)].map((m) => m[1]);
    expect(listed).toEqual([...BACKUP_PHASES]);
  });

  it.each(Object.entries(CLOSE_CODES))(
    "lists the close code %s with its number and reconnect rule",
    (name, c) => {
      const line = doc.split("\n").find((l) => row(`\`${c.code}\``, name).test(l));
      expect(line, `no table row for ${c.code}`).toBeDefined();
      expect(
        line!
          .split("|")
          .at(-2)!
          .trim()
          .startsWith(c.reconnect ? "yes" : "no"),
      ).toBe(true);
    },
  );

  it.each(FRAME_ERROR_CODES)("lists the frame error code %s", (code) => {
    expect(doc).toMatch(row(`\`${code}\``));
  });

  it.each(COMMAND_ERROR_CODES)(
    "lists the command error code %s with its retryable default and details",
    (code) => {
      const { retryable, details } = COMMAND_ERRORS[code];
      const keys = details.length === 0 ? "–" : details.map((d) => `\`${d}\``).join(", ");
      expect(doc).toMatch(row(`\`${code}\``, retryable ? "yes" : "no", keys));
    },
  );

  it("states the bound of the hub's positions with its value", () => {
    expect(MAX_HUB_SEQ).toBe(2 ** 48);
    expect(doc).toContain(
      `\`MAX_HUB_SEQ\` = 2^48 (${MAX_HUB_SEQ.toLocaleString("en-US").replaceAll(",", " ")})`,
    );
  });

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
