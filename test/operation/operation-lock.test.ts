import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireOperationLock, operationHolder } from "../../agent/operation/operation-lock.ts";
import { statePaths } from "../../agent/state/paths.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "felhom-lock-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const backup = (operationId: string) => ({
  pid: process.pid,
  kind: "backup" as const,
  operationId,
  mode: "snapshot" as const,
});

describe("the operation lock", () => {
  it("keeps a second operation of the same process out while the first holds it", async () => {
    const first = await acquireOperationLock(dir, {
      pid: process.pid,
      kind: "snapshot",
      operationId: "op-snap",
    });
    expect(first.acquired).toBe(true);
    const second = await acquireOperationLock(dir, backup("b-2"));
    expect(second).toEqual({
      acquired: false,
      holder: {
        pid: process.pid,
        kind: "snapshot",
        operationId: "op-snap",
        pidStart: expect.stringMatching(/^\d+$/),
      },
    });
    expect(await operationHolder(dir)).toMatchObject({ operationId: "op-snap", kind: "snapshot" });
    if (first.acquired) await first.release();
    expect(await operationHolder(dir)).toBeUndefined();
    const third = await acquireOperationLock(dir, backup("b-3"));
    expect(third.acquired).toBe(true);
    if (third.acquired) await third.release();
  });

  it("takes over a lock file naming this process's pid that this process does not hold (a predecessor after a reboot)", async () => {
    await writeFile(statePaths(dir).operationLock, JSON.stringify(backup("b-before-reboot")), {
      mode: 0o600,
    });
    expect(await operationHolder(dir)).toBeUndefined();
    const lock = await acquireOperationLock(dir, backup("b-now"));
    expect(lock.acquired).toBe(true);
    expect(await operationHolder(dir)).toMatchObject({ operationId: "b-now" });
    if (lock.acquired) await lock.release();
  });

  it("is refused while another live process holds it, and taken over once that process is gone", async () => {
    const child = spawn("sleep", ["30"]);
    try {
      await writeFile(
        statePaths(dir).operationLock,
        JSON.stringify({ pid: child.pid, backupId: "b-other", mode: "stop" }),
        {
          mode: 0o600,
        },
      );
      const refused = await acquireOperationLock(dir, backup("b-mine"));
      expect(refused).toMatchObject({
        acquired: false,
        holder: { pid: child.pid, kind: "backup", operationId: "b-other", mode: "stop" },
      });
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
    }
    const taken = await acquireOperationLock(dir, backup("b-mine"));
    expect(taken.acquired).toBe(true);
    if (taken.acquired) await taken.release();
  });

  it("takes over a lock whose pid now belongs to another process (power loss, pid reused), and keeps one its holder still runs", async () => {
    const child = spawn("sleep", ["30"]);
    try {
      const stat = await readFile(`/proc/${child.pid}/stat`, "utf8");
      const started = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
      const write = (pidStart: string) =>
        writeFile(
          statePaths(dir).operationLock,
          JSON.stringify({ pid: child.pid, backupId: "b-other", mode: "snapshot", pidStart }),
          { mode: 0o600 },
        );
      await write(started);
      expect(await operationHolder(dir)).toMatchObject({ operationId: "b-other" });
      expect((await acquireOperationLock(dir, backup("b-mine"))).acquired).toBe(false);
      // Same pid, another start time: not the process that took the lock.
      await write(String(Number(started) + 1));
      expect(await operationHolder(dir)).toBeUndefined();
      const taken = await acquireOperationLock(dir, backup("b-mine"));
      expect(taken.acquired).toBe(true);
      if (taken.acquired) await taken.release();
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
    }
  });

  it("writes the fields an agent up to 0.1.0 reads, so that one still running through an upgrade sees the lock held", async () => {
    const lock = await acquireOperationLock(dir, {
      pid: process.pid,
      kind: "stacks-up",
      operationId: "stacks-up-1",
    });
    expect(JSON.parse(await readFile(statePaths(dir).operationLock, "utf8"))).toMatchObject({
      pid: process.pid,
      kind: "stacks-up",
      operationId: "stacks-up-1",
      backupId: "stacks-up-1",
      mode: "snapshot",
    });
    // Read back, a stacks up has no mode: only a backup has one.
    expect(await operationHolder(dir)).toEqual({
      pid: process.pid,
      kind: "stacks-up",
      operationId: "stacks-up-1",
      pidStart: expect.stringMatching(/^\d+$/),
    });
    if (lock.acquired) await lock.release();
  });

  it("writes the holder in full before the lock appears, 0600, and leaves no draft files behind", async () => {
    const lock = await acquireOperationLock(dir, backup("b-1"));
    expect(lock.acquired).toBe(true);
    expect((await stat(statePaths(dir).operationLock)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(["backup.lock"]);
    if (lock.acquired) await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it("lets exactly one of many concurrent requests in this process win, every time", async () => {
    // The race is narrow (without the in-process queue two won in about 1 round in 100): many fresh rounds.
    for (let round = 0; round < 400; round++) {
      const stateDir = await mkdtemp(join(dir, "round-"));
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => acquireOperationLock(stateDir, backup(`b-${round}-${i}`))),
      );
      const winners = results.filter((r) => r.acquired);
      expect(winners).toHaveLength(1);
      for (const w of winners) if (w.acquired) await w.release();
    }
  });
});
