import Docker from "dockerode";
import { describe } from "vitest";

/**
 * Docker-backed suites call `describeDocker` instead of `describe`. Without a reachable engine they are
 * skipped on a developer's machine, but CI sets FELHOM_REQUIRE_DOCKER=1 and then a missing engine fails
 * the run instead of passing it silently.
 */
export const dockerRequired = process.env.FELHOM_REQUIRE_DOCKER === "1";

async function probe(): Promise<string | undefined> {
  try {
    await new Docker().ping();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const unreachable = await probe();

if (unreachable && dockerRequired) {
  throw new Error(
    `FELHOM_REQUIRE_DOCKER=1 but no Docker engine answers (${unreachable}); run test/docker/setup.sh first`,
  );
}

export const dockerAvailable = unreachable === undefined;

export const describeDocker: typeof describe = (
  dockerAvailable ? describe : describe.skip
) as typeof describe;
