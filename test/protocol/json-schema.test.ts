import { readFileSync } from "node:fs";
import { buildJsonSchemas, SECRET_FIELDS } from "@felhom/protocol";
import { describe, expect, it } from "vitest";

const schemaDir = new URL("../../protocol/schema/", import.meta.url);

describe("the committed JSON Schema", () => {
  for (const [file, fresh] of Object.entries(buildJsonSchemas())) {
    it(`protocol/schema/${file} matches the zod schemas`, () => {
      const committed = readFileSync(new URL(file, schemaDir), "utf8");
      if (committed !== fresh) {
        expect.fail(
          `protocol/schema/${file} is stale: the zod schemas changed. Run \`npm run schema\` and commit it.`,
        );
      }
    });
  }

  it("marks exactly the fields listed in SECRET_FIELDS as secret (writeOnly)", () => {
    const marked: string[] = [];
    const walk = (node: unknown, path: string[]): void => {
      if (typeof node !== "object" || node === null) return;
      if ((node as Record<string, unknown>).writeOnly === true) marked.push(path.at(-1)!);
      for (const [key, value] of Object.entries(node)) walk(value, [...path, key]);
    };
    walk(JSON.parse(buildJsonSchemas()["hub-to-agent.schema.json"]), []);
    walk(JSON.parse(buildJsonSchemas()["agent-to-hub.schema.json"]), []);
    expect(marked.sort()).toEqual(SECRET_FIELDS.map((f) => f.path.at(-1)).sort());
  });
});
