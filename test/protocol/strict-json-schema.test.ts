import { readFileSync } from "node:fs";
import { parseMessage } from "@felhom/protocol";
import { describe, expect, it } from "vitest";
import { messages } from "./examples.ts";
import { describeErrors, directionsOf, strictErrors } from "./strict-validator.ts";

/**
 * The published JSON Schema, checked by an independent validator (Ajv 2020-12, strict) instead of the zod
 * schemas it was generated from: a hub written from PROTOCOL.md and protocol/schema/ alone must be able
 * to compile it and must accept what the agent and the document say is valid.
 */
const doc = readFileSync(new URL("../../protocol/PROTOCOL.md", import.meta.url), "utf8");
const jsonBlocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);

function expectValid(message: { type: string }, label: string): void {
  for (const direction of directionsOf(message.type)) {
    const errors = strictErrors(direction, message);
    if (errors.length > 0) expect.fail(`${label} (${direction}): ${describeErrors(errors)}`);
  }
}

describe("the published JSON Schema under a strict independent validator", () => {
  it.each(messages.map((m) => [m.label, m.message] as const))("accepts the example %s", (label, message) => {
    expectValid(message, label);
  });

  it("accepts every JSON example in PROTOCOL.md", () => {
    expect(jsonBlocks.length).toBeGreaterThan(10);
    for (const block of jsonBlocks) expectValid(JSON.parse(block), block);
  });

  it("rejects each example without one of its required fields, as zod does", () => {
    let checked = 0;
    for (const { label, message } of messages) {
      for (const key of Object.keys(message).filter((k) => k !== "type")) {
        const broken: Record<string, unknown> = { ...message };
        delete broken[key];
        // Optional fields may go; the two validators must agree on which are required.
        const zodAccepts = parseMessage(JSON.stringify(broken)).ok;
        for (const direction of directionsOf(message.type)) {
          expect(strictErrors(direction, broken).length === 0, `${label} without ${key}`).toBe(zodAccepts);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it("rejects a message sent in the wrong direction", () => {
    const hello = messages.find((m) => m.type === "hello")!.message;
    const welcome = messages.find((m) => m.type === "welcome")!.message;
    expect(strictErrors("hub-to-agent", hello)).not.toEqual([]);
    expect(strictErrors("agent-to-hub", welcome)).not.toEqual([]);
  });

  it("tells the validator its draft: every schema file names 2020-12 in $schema", () => {
    for (const file of ["agent-to-hub", "hub-to-agent"]) {
      const schema = JSON.parse(
        readFileSync(new URL(`../../protocol/schema/${file}.schema.json`, import.meta.url), "utf8"),
      );
      expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    }
    expect(doc).toContain("JSON Schema draft 2020-12");
  });
});

describe("PROTOCOL.md and the JSON Schema agree on what the text used to leave open", () => {
  const hubToAgent = JSON.parse(
    readFileSync(new URL("../../protocol/schema/hub-to-agent.schema.json", import.meta.url), "utf8"),
  );
  const welcome = hubToAgent.oneOf.find(
    (s: { properties?: { type?: { const?: string } } }) => s.properties?.type?.const === "welcome",
  );

  it("welcome.heartbeat: required with both fields in the schema, required (no default) in the text", () => {
    expect(welcome.required).toContain("heartbeat");
    expect([...welcome.properties.heartbeat.required].sort()).toEqual(["intervalMs", "timeoutMs"]);
    expect(doc).toContain("`heartbeat` is **required**, with both fields");
    expect(doc).not.toMatch(/heartbeat[^\n]*default \d/);
  });

  it("a welcome without heartbeat is invalid for both validators", () => {
    const { heartbeat: _, ...bare } = messages.find((m) => m.type === "welcome")!.message as Record<
      string,
      unknown
    >;
    expect(strictErrors("hub-to-agent", bare)).not.toEqual([]);
    expect(parseMessage(JSON.stringify(bare)).ok).toBe(false);
  });

  it("states where the agent connects", () => {
    expect(doc).toContain("**The URL is the hub's choice**");
  });
});
