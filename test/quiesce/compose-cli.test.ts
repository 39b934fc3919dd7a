import { describe, expect, it } from "vitest";
import { composeUpArgv } from "../../agent/docker/compose-cli.ts";

const v2 = { kind: "v2" as const, argv: ["docker", "compose"], version: "2.29.1" };
const v1 = { kind: "v1" as const, argv: ["docker-compose"], version: "1.29.2" };

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

  it("refuses a service name that would be read as an option", () => {
    expect(() => composeUpArgv(v2, { project: "p", workingDir: "/w", configFiles: [] }, ["--build"])).toThrow(
      /invalid compose service name/,
    );
  });
});
