import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Docker and simulator tests start real processes and containers; a 2-core machine needs slack.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: "forks",
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
