import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { z } from "zod";
import { configSchema } from "../../agent/config/schema.ts";

/** Every key path of an object schema, through optional/default/prefault wrappers ("backup.retention.keep_last"). */
function schemaKeys(schema: z.core.$ZodType, prefix = ""): string[] {
  const def = schema._zod.def as {
    type: string;
    innerType?: z.core.$ZodType;
    shape?: Record<string, z.core.$ZodType>;
  };
  if (def.innerType && ["optional", "nullable", "default", "prefault"].includes(def.type)) {
    return schemaKeys(def.innerType, prefix);
  }
  if (def.type !== "object" || !def.shape) return [];
  return Object.entries(def.shape).flatMap(([key, inner]) => {
    const path = prefix + key;
    return [path, ...schemaKeys(inner, `${path}.`)];
  });
}

function documentKeys(value: unknown, prefix = ""): string[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([key, inner]) => [
    prefix + key,
    ...documentKeys(inner, `${prefix + key}.`),
  ]);
}

describe("packaging/agent.example.yaml", () => {
  it("shows every key of the config schema, set or commented out in place", async () => {
    const keys = schemaKeys(configSchema);
    const names = new Set(keys.map((k) => k.split(".").at(-1)));
    const text = await readFile(new URL("../../packaging/agent.example.yaml", import.meta.url), "utf8");
    // A commented key is `# name: value` at its own indentation (or, under a commented section, `#   name:`
    // with its indentation after the `#`); prose comments are left alone.
    const uncommented = text
      .split("\n")
      .map((line) => {
        const m = /^(\s*)# (\s*)([a-z_]+):( .*)?$/.exec(line);
        return m && names.has(m[3]) ? `${m[1]}${m[2]}${m[3]}:${m[4] ?? ""}` : line;
      })
      .join("\n");
    const shown = new Set(documentKeys(parse(uncommented)));
    expect(keys.length).toBeGreaterThan(30);
    expect(keys.filter((k) => !shown.has(k))).toEqual([]);
  });
});
