import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../protocol");

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Every module specifier: static imports/exports (also `import type`) and dynamic import(). */
function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\b[^'";]*?\bfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1]!);
  return found;
}

/** The generator script is tooling run by npm, not part of the contract; it may use node: built-ins. */
const tooling = new Set([join(root, "scripts/generate-json-schema.ts")]);

function offending(file: string): string[] {
  return specifiers(readFileSync(file, "utf8")).filter((spec) => {
    if (spec === "zod") return false;
    if (tooling.has(file) && spec.startsWith("node:")) return false;
    if (!spec.startsWith(".")) return true;
    const target = resolve(dirname(file), spec);
    return relative(root, target).startsWith("..");
  });
}

describe("the protocol/ boundary", () => {
  const files = tsFiles(root);

  it("finds the protocol sources", () => {
    expect(files.map((f) => relative(root, f))).toContain("index.ts");
  });

  it.each(files.map((f) => [relative(root, f), f]))(
    "%s imports nothing but zod and files inside protocol/",
    (_, file) => {
      expect(offending(file)).toEqual([]);
    },
  );

  it("the checker itself catches an import of the agent, of a package and of node: built-ins", () => {
    const source = `import { x } from "../agent/lib/errors.ts";\nimport type { Y } from "ws";\nexport * from "node:fs";\nconst z = await import("../../test/x.ts");`;
    expect(specifiers(source)).toEqual(["../agent/lib/errors.ts", "ws", "node:fs", "../../test/x.ts"]);
  });
});
