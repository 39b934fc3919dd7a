import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The agent's version, from package.json: one source of truth for the CLI, the hub handshake and status.
 * Found by walking up, because the file sits one level deeper when built into dist/.
 */
function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "felhom-guest" && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return "0.0.0-unknown";
}

export const AGENT_VERSION = readVersion();
