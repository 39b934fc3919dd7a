import { ensureDockerPlatform } from "./support/docker-platform.ts";

/**
 * Before any test file: a fresh Debian machine (as root) gets its Docker engine and local images here, so
 * that `npm test` alone is the whole story. Elsewhere the Docker suites skip, unless FELHOM_REQUIRE_DOCKER=1
 * (CI), where a missing platform fails the run with the command that fixes it.
 */
export default async function setup(): Promise<void> {
  const problem = await ensureDockerPlatform((line) => process.stderr.write(`[felhom tests] ${line}\n`));
  if (!problem) return;
  if (process.env.FELHOM_REQUIRE_DOCKER === "1") throw new Error(`FELHOM_REQUIRE_DOCKER=1 but ${problem}`);
  process.stderr.write(`[felhom tests] ${problem}; the Docker suites are skipped\n`);
}
