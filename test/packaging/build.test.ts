import { execFile } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const out = join(root, ".build-test");

/**
 * What the Debian package ships is the tsc build run on plain node (no tsx): the relative `.ts` imports
 * must be rewritten, package.json found, and the CLI must start.
 */
describe("the built agent", () => {
  afterAll(() => rm(out, { recursive: true, force: true }));

  it("compiles with tsc and runs on plain node", { timeout: 120_000 }, async () => {
    await run("npx", ["tsc", "-p", "tsconfig.build.json", "--outDir", out], { cwd: root });
    const cli = join(out, "agent/cli/main.js");
    const version = (await run(process.execPath, [cli, "version"])).stdout.trim();
    expect(version).toBe(JSON.parse(await readFile(join(root, "package.json"), "utf8")).version);
    const bad = await run(process.execPath, [cli, "--config", "/nonexistent/agent.yaml", "status"]).catch(
      (e) => e,
    );
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/nonexistent\/agent\.yaml/);
  });
});
