import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { QuiesceJournal } from "../../agent/quiesce/journal.ts";
import { resumeFromJournal } from "../../agent/quiesce/resume-from-journal.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { describeDocker } from "../support/docker.ts";
import { startStack, type TestStack } from "./support/stack.ts";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "support", "quiesce-child.ts");
let stack: TestStack | undefined;
let child: ReturnType<typeof spawn> | undefined;

afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  child = undefined;
  const s = stack;
  stack = undefined;
  if (!s) return;
  try {
    const now = await s.containers();
    expect([...now.values()].map((c) => `${c.service}:${c.state}`).sort()).toEqual([
      "app:running",
      "db:running",
      "proxy:running",
    ]);
  } finally {
    await s.down();
  }
});

describeDocker("an agent killed while stacks are quiesced", () => {
  it("leaves a journal from which a fresh process resumes every quiesced container and says so", async () => {
    const s = await startStack("version: '2.4'\nservices: {}\n");
    stack = s;
    const proc = spawn(process.execPath, ["--import", "tsx", CHILD, s.stateDir, s.project], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let stderr = "";
    proc.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.on("data", (c: Buffer) => {
        if (c.toString().includes("QUIESCED")) resolve();
      });
      proc.on("exit", (code) => reject(new Error(`child exited with ${code} before quiescing: ${stderr}`)));
    });
    proc.kill("SIGKILL");
    await new Promise((r) => proc.once("exit", r));

    const down = await s.containers();
    expect([...down.values()].map((c) => c.state)).toEqual(["exited", "exited", "exited"]);
    expect((await QuiesceJournal.open(statePaths(s.stateDir).quiesceJournal))?.finished).toBe(false);

    const report = await resumeFromJournal(statePaths(s.stateDir).quiesceJournal, new DockerEngine());
    expect(report?.trigger).toBe("journal");
    expect(report?.backupId).toBe("b-crash");
    expect(report?.failures).toEqual([]);
    expect(report?.resumed.map((r) => r.service)).toEqual(["db", "app", "proxy"]);
    expect((await QuiesceJournal.open(statePaths(s.stateDir).quiesceJournal))?.finished).toBe(true);
    expect(
      await resumeFromJournal(statePaths(s.stateDir).quiesceJournal, new DockerEngine()),
    ).toBeUndefined();
  });
});
