import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { buildJsonSchemas } from "../json-schema.ts";

/** `npm run schema` writes protocol/schema/*.json; `npm run schema -- --check` fails if they are stale. */
const check = process.argv.includes("--check");
const dir = fileURLToPath(new URL("../schema/", import.meta.url));
let stale = 0;
for (const [file, text] of Object.entries(buildJsonSchemas())) {
  const path = `${dir}${file}`;
  if (check) {
    const current = await readFile(path, "utf8").catch(() => "");
    if (current !== text) {
      stale++;
      console.error(`${path} is stale: run \`npm run schema\``);
    }
  } else {
    await writeFile(path, text);
    console.log(`wrote ${path}`);
  }
}
if (stale > 0) process.exitCode = 1;
