import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

const repoRoot = new URL("../../", import.meta.url).pathname;
const SECRET = "5e3c1a2b-0000-4000-8000-feedfacecafe";
let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** `felhom-guest secret FILE` at a real terminal: util-linux script(1) gives the CLI a pty. */
function atTerminal(file: string): { child: ChildProcess; output: () => string } {
  const cli = `${process.execPath} --import tsx agent/cli/main.ts secret ${file}`;
  const child = spawn("script", ["-qec", cli, "/dev/null"], {
    cwd: repoRoot,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr!.on("data", (c: Buffer) => {
    out += c.toString();
  });
  return { child, output: () => out };
}

const exitOf = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

describe("secrets kept out of shell history", { timeout: 60_000 }, () => {
  it("`felhom-guest secret FILE` prompts at a terminal without echoing, and writes the file 0600", async () => {
    dir = await mkdtemp(join(tmpdir(), "felhom-secret-"));
    const file = join(dir, "pve-token.secret");
    const { child, output } = atTerminal(file);
    const exited = exitOf(child);
    await expect.poll(output, { timeout: 30_000 }).toContain("(not shown): ");
    child.stdin!.write(`${SECRET}\r`);
    expect(await exited).toBe(0);
    expect(await readFile(file, "utf8")).toBe(`${SECRET}\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(output()).not.toContain(SECRET);
  });

  it("aborts on Ctrl-C at the prompt and writes nothing", async () => {
    dir = await mkdtemp(join(tmpdir(), "felhom-secret-"));
    const file = join(dir, "pve-token.secret");
    const { child, output } = atTerminal(file);
    const exited = exitOf(child);
    await expect.poll(output, { timeout: 30_000 }).toContain("(not shown): ");
    child.stdin!.write("half-typed\u0003");
    expect(await exited).not.toBe(0);
    await expect(stat(file)).rejects.toThrow();
    expect(output()).not.toContain("half-typed");
  });

  it("reads the secret from stdin when it is not a terminal (< FILE)", async () => {
    dir = await mkdtemp(join(tmpdir(), "felhom-secret-"));
    const file = join(dir, "hub.credential");
    const child = spawn(process.execPath, ["--import", "tsx", "agent/cli/main.ts", "secret", file], {
      cwd: repoRoot,
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin.end(`${SECRET}\n`);
    expect(await exitOf(child)).toBe(0);
    expect(await readFile(file, "utf8")).toBe(`${SECRET}\n`);
  });
});

describe("the documentation", () => {
  it("never has an operator type a secret into a here-string (it would land in the shell's history)", async () => {
    for (const doc of ["README.md", "docs/restore.md"]) {
      const text = await readFile(join(repoRoot, doc), "utf8");
      const commands = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!).join("");
      expect(commands, doc).toContain("felhom-guest");
      expect(commands, doc).not.toContain("<<<");
    }
  });
});
