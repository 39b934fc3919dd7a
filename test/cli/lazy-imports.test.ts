import { readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url).pathname;

/**
 * The modules the CLI's entry loads before it knows which command runs: the closure of agent/cli/main.ts
 * over its static value imports and re-exports (type-only ones are erased; `import()` is what loads lazily).
 */
function staticClosure(entry: string): { local: string[]; packages: string[] } {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^;]*?\sfrom\s+)?"([^"]+)";/gms)) {
      const [, typeOnly, spec] = m;
      if (typeOnly || spec === undefined) continue;
      if (spec.startsWith(".")) visit(join(dirname(file), spec));
      else if (!spec.startsWith("node:")) packages.add(spec);
    }
  };
  visit(join(root, entry));
  return { local: [...seen].map((f) => relative(root, f)).sort(), packages: [...packages].sort() };
}

describe("the CLI's start-up", () => {
  it("loads no command's code, no npm package and neither the daemon lock nor the secret prompt up front", () => {
    const { local, packages } = staticClosure("agent/cli/main.ts");
    expect(packages).toEqual([]);
    expect(local).toContain("agent/cli/commands/index.ts");
    const heavy = local.filter(
      (f) =>
        /^agent\/(app|backup|docker|hub|log|pve|quiesce|restore|schedule|metrics|doctor)\//.test(f) ||
        /^agent\/cli\/(secret-input|output)\.ts$/.test(f) ||
        (/^agent\/cli\/commands\//.test(f) && !/\/(index|command)\.ts$/.test(f)) ||
        f === "agent/config/load.ts" ||
        f === "agent/identity/identity-service.ts",
    );
    expect(heavy).toEqual([]);
  });

  it("sees the imports it must (a check of the check)", () => {
    const { local, packages } = staticClosure("agent/cli/commands/secret.ts");
    expect(local).toContain("agent/cli/secret-input.ts");
    expect(staticClosure("agent/app/daemon.ts").local).toContain("agent/app/daemon-lock.ts");
    expect(staticClosure("agent/config/load.ts").packages).toEqual(expect.arrayContaining(["yaml", "zod"]));
    // Through app/context.ts to the Docker adapter (node-cron, which this line named, now loads on first use).
    expect(staticClosure("agent/cli/commands/status.ts").packages).toContain("dockerode");
    expect(packages).toEqual([]);
  });
});
