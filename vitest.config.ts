import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  // The contract by its package name is its sources here, as tsconfig.json's `paths` says for tsc and tsx.
  // Only the bare name: its sub-path exports (the JSON Schemas) resolve as the package declares them.
  resolve: {
    alias: [
      {
        find: /^@felhom\/protocol$/,
        replacement: fileURLToPath(new URL("protocol/index.ts", import.meta.url)),
      },
    ],
  },
  test: {
    // Docker and simulator tests start real processes and containers; a 2-core machine needs slack.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: "forks",
    // Installs the Docker platform on a fresh Debian machine (root) before anything runs.
    globalSetup: ["test/global-setup.ts"],
    // In CI a JSON report as well, from which .ci/run prints the plain "N passed, N failed" closing line.
    ...(process.env.FELHOM_TEST_REPORT
      ? { reporters: ["default", "json"], outputFile: { json: process.env.FELHOM_TEST_REPORT } }
      : {}),
    // Tests against the one shared Docker engine must not fight over it: files run one at a time
    // inside the "docker" project below, everything else in parallel.
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/**/*.test.ts"], exclude: ["test/**/*.docker.test.ts"] },
      },
      {
        extends: true,
        test: { name: "docker", include: ["test/**/*.docker.test.ts"], fileParallelism: false },
      },
    ],
  },
});
