import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";

const root = new URL("../../", import.meta.url).pathname;

describe("npm start without a Docker engine", () => {
  it("says exactly what to do and exits 69", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/sandbox/main.ts", "--once", "--json"], {
      cwd: root,
      env: { ...process.env, DOCKER_HOST: "unix:///nonexistent/docker.sock" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(69);
    expect(err).toMatch(/no Docker engine answers/);
    expect(err).toMatch(/bash test\/docker\/setup\.sh/);
    expect(out).toBe("");
  });
});
