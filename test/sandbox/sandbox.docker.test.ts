import { spawn } from "node:child_process";
import { expect, it } from "vitest";
import { describeDocker } from "../support/docker.ts";

const root = new URL("../../", import.meta.url).pathname;

describeDocker("npm start (the README's main command)", () => {
  it("runs a whole backup cycle and prints the result as JSON with --once --json", {
    timeout: 180_000,
  }, async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/sandbox/main.ts", "--once", "--json"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.resume();
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    expect(code).toBe(0);
    const result = JSON.parse(out);
    expect(result).toMatchObject({
      ok: true,
      kind: "backup.completed",
      exitStatus: "OK",
      consistency: "app",
      volid: expect.stringMatching(/^bk:backup\/vzdump-lxc-101-.*\.tar\.zst$/),
      sizeBytes: expect.any(Number),
    });
    expect(result.sizeBytes).toBeGreaterThan(0);
  });
});
