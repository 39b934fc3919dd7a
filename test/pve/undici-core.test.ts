import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url).pathname;

/** The undici files a fresh node process has loaded after importing `module` (relative to the repo). */
function undiciFilesLoadedBy(module: string): string[] {
  const script = `
    import { createRequire } from "node:module";
    await import(${JSON.stringify(`./${module}`)});
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify(loaded.filter((f) => f.includes("/node_modules/undici/"))));
  `;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: root,
    encoding: "utf8",
  });
  return (JSON.parse(out) as string[]).map((f) => f.slice(f.indexOf("node_modules/undici/")));
}

describe("the PVE client's undici", () => {
  // The behaviour (pool, pinned connector, request) is tested against the simulator in client.pve.test.ts;
  // this is what an idle daemon holds in memory: undici's index would load all of it (about 7 MiB more RSS).
  it("loads the pool, the connector and the request API by their own files, not undici's index", () => {
    const files = undiciFilesLoadedBy("agent/pve/client.ts");
    expect(files).toEqual(
      expect.arrayContaining([
        "node_modules/undici/lib/dispatcher/pool.js",
        "node_modules/undici/lib/core/connect.js",
        "node_modules/undici/lib/api/api-request.js",
      ]),
    );
    expect(files).not.toContain("node_modules/undici/index.js");
    expect(files.filter((f) => /\/lib\/(web|mock|cache)\//.test(f))).toEqual([]);
  });
});
