// Bundles the agent as the package ships it: agent/cli/main.ts with everything it imports (its own code, the
// protocol, and the npm packages it runs) into OUT_DIR/main.js and the chunks the CLI loads per command, as
// minified ES modules for Node 20, beside a package.json that names the agent's version and "type": "module".
// Writes the npm packages the bundle holds (name, version, directory) to PACKAGES_JSON: the licences
// (copyright.mjs) and the package test's advisory check read them.
//
//   node packaging/bundle.mjs [--sourcemap] OUT_DIR [PACKAGES_JSON]
//
// --sourcemap writes a map beside each file, for reading a bug report's stack trace against the bundle of the
// same commit (`node --enable-source-maps OUT_DIR/main.js …` or any source-map tool); the package ships none.
//
// Why a bundle (measured, README "The daemon's idle resident set"): V8 keeps the source of every loaded
// module for the functions it has not compiled yet; minified and without the files' unused parts, the idle
// daemon holds about 3.5 MiB less (1.31x -> 1.24x a bare node), and the package ships 1 file per command
// instead of 800. Names are kept (`keepNames`): an error's stack and a class's name read as in the sources.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Bundles into `outdir`; returns the npm packages the bundle holds, sorted by name. */
export async function bundleAgent(outdir, { sourcemap = false } = {}) {
  const result = await build({
    absWorkingDir: root,
    entryPoints: { main: "agent/cli/main.ts" },
    // The protocol from its sources, not from protocol/dist (which only `npm run build` refreshes).
    alias: { "@felhom/protocol": "./protocol/index.ts" },
    outdir,
    bundle: true,
    platform: "node",
    target: "node20.19",
    format: "esm",
    // The CLI imports a command's code only when it runs (`version` loads almost nothing): one chunk each.
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    minify: true,
    keepNames: true,
    sourcemap,
    // The licences are in /usr/share/doc/felhom-guest/copyright, whole (copyright.mjs).
    legalComments: "none",
    // The CommonJS packages (dockerode, pino, undici, ws) require Node's modules at run time: an ES module
    // has no `require` of its own.
    banner: {
      js: 'import{createRequire as __felhomRequire}from"node:module";const require=__felhomRequire(import.meta.url);',
    },
    // ws's optional native helpers: ws falls back to JavaScript when they are absent, as they are here.
    external: ["bufferutil", "utf-8-validate"],
    plugins: [zodEnglishOnly],
    metafile: true,
    logLevel: "warning",
  });
  const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
  // agent/version.ts reads the version from the first package.json named felhom-guest above the code.
  writeFileSync(
    join(outdir, "package.json"),
    `${JSON.stringify({ name: "felhom-guest", version, private: true, type: "module" }, null, 2)}\n`,
  );
  return packagesIn(result.metafile);
}

/**
 * zod's messages in English only: `z.locales` re-exports its 64 languages, which the bundle would hold (267 of
 * zod's 470 KiB) although the agent never switches language (0.6 MiB of the daemon's RSS in a probe).
 * English stays zod's default (classic/schemas.js imports locales/en.js itself).
 */
const zodEnglishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /\/node_modules\/zod\/v4\/(classic|core|mini)\//.test(args.importer)
        ? { path: join(dirname(args.importer), "../locales/en.js"), namespace: "zod-locales" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "zod-locales" }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: root,
    }));
  },
};

/** The agent's own code: its sources, the protocol's, and the ssh2 stand-in (packaging/no-ssh2). */
const OWN = /^(agent|protocol|packaging\/no-ssh2)\//;

/**
 * Every npm package one of the bundle's inputs comes from (nested node_modules included). An input that is
 * neither the agent's own code nor under node_modules (an override or a `file:` dependency resolved through a
 * link) stops the build: it would ship without a licence and without the package test's advisory check.
 */
function packagesIn(metafile) {
  const dirs = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    if (input.startsWith("zod-locales:")) continue; // the stub above, zod's own file
    const parts = input.split("/");
    const at = parts.lastIndexOf("node_modules");
    if (at < 0) {
      if (OWN.test(input)) continue;
      throw new Error(
        `bundle: ${input} is neither the agent's code nor from node_modules; name its package in packaging/bundle.mjs`,
      );
    }
    const name = parts[at + 1].startsWith("@") ? parts.slice(at + 1, at + 3) : [parts[at + 1]];
    dirs.add(join(root, ...parts.slice(0, at + 1), ...name));
  }
  const packages = [...dirs].map((dir) => {
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    return { name: pkg.name, version: pkg.version, dir: relative(root, dir).split(sep).join("/") };
  });
  return packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const sourcemap = args[0] === "--sourcemap";
  const [outdir, packagesJson] = sourcemap ? args.slice(1) : args;
  if (!outdir) {
    process.stderr.write("usage: node packaging/bundle.mjs [--sourcemap] OUT_DIR [PACKAGES_JSON]\n");
    process.exit(64);
  }
  const packages = await bundleAgent(outdir, { sourcemap });
  if (packagesJson) writeFileSync(packagesJson, `${JSON.stringify(packages, null, 2)}\n`);
}
