import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url).pathname;

/**
 * How many functions zod generates while parsing a few protocol messages, in a fresh process, after the
 * given imports (zod's settings are global to the process, so not in vitest's own).
 */
function functionsGenerated(imports: string[]): number {
  const script = `
    let generated = 0;
    globalThis.Function = new Proxy(Function, { construct(target, args) { generated++; return Reflect.construct(target, args); } });
    ${imports.map((m) => `await import(${JSON.stringify(m)});`).join("\n")}
    const { parseHubToAgent } = await import("@felhom/protocol");
    for (let i = 0; i < 3; i++) parseHubToAgent(JSON.stringify({ type: "welcome", agentId: "a" + i, protocol: 1 }));
    const { configSchema } = await import("./agent/config/schema.ts");
    configSchema.safeParse({ pve: { url: "https://pve:8006" } });
    console.log(generated);
  `;
  return Number(
    execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: root,
      encoding: "utf8",
    }).trim(),
  );
}

describe("the agent's zod", () => {
  it("parses without generated functions once the CLI has imported lib/zod-jitless.ts", () => {
    expect(functionsGenerated(["./agent/lib/zod-jitless.ts"])).toBe(0);
  });

  it("generates them otherwise (what that import turns off)", () => {
    expect(functionsGenerated([])).toBeGreaterThan(0);
  });
});
