import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { composeUp, composeUpArgv, detectCompose } from "../../agent/docker/compose-cli.ts";

const v2 = { kind: "v2" as const, argv: ["docker", "compose"], version: "2.29.1", env: {} };
const v1 = { kind: "v1" as const, argv: ["docker-compose"], version: "1.29.2", env: {} };

describe("compose up argv", () => {
  it("passes the project name and every config file, resolving v1's relative paths against the working dir", () => {
    expect(
      composeUpArgv(v1, {
        project: "shop",
        workingDir: "/srv/shop",
        configFiles: ["docker-compose.yml", "/etc/x.yml"],
      }),
    ).toEqual([
      "docker-compose",
      "-p",
      "shop",
      "-f",
      "/srv/shop/docker-compose.yml",
      "-f",
      "/etc/x.yml",
      "up",
      "-d",
    ]);
  });

  it("limits up to a subset of services with the v2 plugin", () => {
    expect(
      composeUpArgv(v2, { project: "p", workingDir: "/w", configFiles: ["/w/c.yaml"] }, ["db", "app"]),
    ).toEqual(["docker", "compose", "-p", "p", "-f", "/w/c.yaml", "up", "-d", "db", "app"]);
  });

  it("passes the env files the stack was started with, before the subcommand", () => {
    expect(
      composeUpArgv(v2, {
        project: "p",
        workingDir: "/w",
        configFiles: ["/w/a.yml", "/w/b.yml"],
        environmentFiles: ["/w/prod.env"],
      }),
    ).toEqual([
      "docker",
      "compose",
      "-p",
      "p",
      "-f",
      "/w/a.yml",
      "-f",
      "/w/b.yml",
      "--env-file",
      "/w/prod.env",
      "up",
      "-d",
    ]);
  });

  it("refuses a service name that would be read as an option", () => {
    expect(() => composeUpArgv(v2, { project: "p", workingDir: "/w", configFiles: [] }, ["--build"])).toThrow(
      /invalid compose service name/,
    );
  });
});

describe("compose up timeout", () => {
  // The test's own timeout is the guard: without the group kill the call lasts as long as the child (120 s).
  it("ends a tool whose child keeps the output open: the whole process group goes at the timeout", {
    timeout: 20_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "felhom-compose-"));
    try {
      // Like `docker compose` whose plugin outlives the front end and holds its pipes.
      const tool = join(dir, "fake-compose");
      await writeFile(tool, "#!/bin/sh\nsleep 120 &\nsleep 120\n", { mode: 0o755 });
      const fake = { kind: "v1" as const, argv: [tool], version: "1.29.2", env: {} };
      await expect(
        composeUp(fake, { project: "p", workingDir: dir, configFiles: [] }, { timeoutMs: 300 }),
      ).rejects.toMatchObject({ message: expect.stringMatching(/did not finish within 300 ms/) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("compose talks to the agent's engine", () => {
  it("gets DOCKER_HOST for docker.socket, when detecting the tool and when bringing a stack up", async () => {
    const dir = await mkdtemp(join(tmpdir(), "felhom-compose-"));
    try {
      // A stand-in `docker` whose compose plugin says which engine it was pointed at.
      const docker = join(dir, "docker");
      await writeFile(
        docker,
        '#!/bin/sh\nif [ "$2" = version ]; then [ -n "$DOCKER_HOST" ] && echo 2.26.1; exit 0; fi\necho "engine=$DOCKER_HOST"\n',
        { mode: 0o755 },
      );
      const tool = await detectCompose({ dockerBin: docker, dockerSocket: "/run/guest-docker.sock" });
      expect(tool).toMatchObject({ kind: "v2", env: { DOCKER_HOST: "unix:///run/guest-docker.sock" } });
      const up = await composeUp(tool, { project: "p", workingDir: dir, configFiles: [] });
      expect(up.output.trim()).toBe("engine=unix:///run/guest-docker.sock");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
