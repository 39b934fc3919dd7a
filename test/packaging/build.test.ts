import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const out = join(root, ".build-test");

// One file, run in order: packing builds protocol/dist, which the compiled agent below resolves
// @felhom/protocol to (as `npm run build` leaves it). build-deb.sh does not touch protocol/dist.
describe("the protocol package, as a hub installs it", () => {
  let work = "";
  afterAll(() => (work ? rm(work, { recursive: true, force: true }) : undefined));

  it("packs with zod as its only dependency, and imports by name on plain node, types included", {
    timeout: 120_000,
  }, async () => {
    work = await mkdtemp(join(tmpdir(), "felhom-protocol-"));
    const packed = JSON.parse(
      (await run("npm", ["pack", "--json", "--pack-destination", work], { cwd: join(root, "protocol") }))
        .stdout,
    )[0];
    const shipped = (packed.files as { path: string }[]).map((f) => f.path).sort();
    expect(shipped).toEqual(
      expect.arrayContaining([
        "PROTOCOL.md",
        "README.md",
        "package.json",
        "dist/index.js",
        "dist/index.d.ts",
        "schema/agent-to-hub.schema.json",
      ]),
    );
    // The contract and its generated artefacts only: no TypeScript sources, no generator script, no tests.
    expect(shipped.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    expect(
      shipped.filter((f) => !/^(dist|schema)\/|^(PROTOCOL|README)\.md$|^package\.json$/.test(f)),
    ).toEqual([]);

    // Installed as npm would, without a registry: the tarball unpacked under node_modules, zod beside it.
    const modules = join(work, "hub/node_modules");
    const pkgDir = join(modules, "@felhom/protocol");
    await mkdir(pkgDir, { recursive: true });
    await run("tar", ["-xzf", join(work, packed.filename), "-C", pkgDir, "--strip-components=1"]);
    const manifest = JSON.parse(await readFile(join(pkgDir, "package.json"), "utf8"));
    const dependencies = ["dependencies", "peerDependencies", "optionalDependencies", "bundleDependencies"]
      .flatMap((k) => Object.keys(manifest[k] ?? {}))
      .sort();
    expect(dependencies).toEqual(["zod"]);
    expect(manifest.version).toMatch(/^1\./); // the major is the protocol version
    await symlink(join(root, "node_modules/zod"), join(modules, "zod"));
    // A hub on Node has Node's types: the raw frame a parser takes is ws's data (Buffer, ArrayBuffer).
    await mkdir(join(modules, "@types"));
    await symlink(join(root, "node_modules/@types/node"), join(modules, "@types/node"));

    const hub = join(work, "hub");
    await writeFile(
      join(hub, "package.json"),
      JSON.stringify({ name: "a-hub", type: "module", private: true }),
    );
    const ping = JSON.stringify({ type: "ping", id: "p-1", at: "2026-01-01T00:00:00.000Z" });
    const script = `import { parseHubToAgent, PROTOCOL_VERSION } from "@felhom/protocol";
      const r = parseHubToAgent(${JSON.stringify(ping)});
      console.log(JSON.stringify({ version: PROTOCOL_VERSION, r }));`;
    const result = JSON.parse(
      (await run(process.execPath, ["--input-type=module", "-e", script], { cwd: hub })).stdout,
    );
    expect(result).toEqual({ version: 1, r: { ok: true, message: JSON.parse(ping) } });

    // Its declarations type-check a hub's use of it (NodeNext resolution through the package's exports).
    await writeFile(
      join(hub, "hub.ts"),
      `import { type AgentToHubMessage, parseAgentToHub } from "@felhom/protocol";
       const r = parseAgentToHub("{}");
       export const m: AgentToHubMessage | undefined = r.ok ? r.message : undefined;
       // @ts-expect-error: a result's code is a closed set
       export const bad: ReturnType<typeof parseAgentToHub> = { ok: false, error: { code: "nope", message: "" } };`,
    );
    await writeFile(
      join(hub, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          types: ["node"],
        },
        files: ["hub.ts"],
      }),
    );
    await run(join(root, "node_modules/.bin/tsc"), ["-p", hub]);
    expect(await readdir(join(pkgDir, "dist"))).toContain("index.js");
  });
});

/**
 * What the Debian package ships is the tsc build run on plain node (no tsx): the relative `.ts` imports
 * must be rewritten, package.json found, and the CLI must start.
 */
describe("the built agent", () => {
  afterAll(() => rm(out, { recursive: true, force: true }));

  it("compiles with tsc and runs on plain node", { timeout: 120_000 }, async () => {
    // As `npm run build`: the contract first, which the agent's build resolves by name as a hub would.
    await run("npm", ["run", "build", "-w", "@felhom/protocol"], { cwd: root });
    await run("npx", ["tsc", "-p", "tsconfig.build.json", "--outDir", out], { cwd: root });
    const cli = join(out, "agent/cli/main.js");
    const version = (await run(process.execPath, [cli, "version"])).stdout.trim();
    expect(version).toBe(JSON.parse(await readFile(join(root, "package.json"), "utf8")).version);
    const bad = await run(process.execPath, [cli, "--config", "/nonexistent/agent.yaml", "status"]).catch(
      (e) => e,
    );
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/nonexistent\/agent\.yaml/);
    // Neither command loads the contract: the hub session does, by its package name, as the daemon will.
    const session = pathToFileURL(join(out, "agent/hub/hub-session.js")).href;
    await run(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(session)})`], {
      cwd: "/",
    });
  });
});
