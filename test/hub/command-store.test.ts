import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CommandStore, type CommandStoreOptions } from "../../agent/hub/command-store.ts";

type R = { ok: boolean; note: string };
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function storePath(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "felhom-commands-"));
  dirs.push(d);
  return join(d, "commands.json");
}

function open(path: string, over: Partial<CommandStoreOptions<R>> = {}) {
  return CommandStore.open<R>({
    path,
    retentionMs: 86_400_000,
    minKeep: 3,
    maxEntries: 100,
    interrupted: (id, name) => ({ ok: false, note: `interrupted ${name} ${id}` }),
    ...over,
  });
}

describe("the command store", () => {
  it("reports a new id once, then running, then the stored result", async () => {
    const store = await open(await storePath());
    expect(await store.begin("c1", "backup.run")).toEqual({ state: "new" });
    expect(await store.begin("c1", "backup.run")).toMatchObject({ state: "running", name: "backup.run" });
    await store.finish("c1", { ok: true, note: "first" });
    expect(await store.begin("c1", "backup.run")).toEqual({
      state: "done",
      result: { ok: true, note: "first" },
    });
  });

  it("treats two simultaneous arrivals of one id as one new and one running", async () => {
    const store = await open(await storePath());
    const [a, b] = await Promise.all([store.begin("c1", "status.get"), store.begin("c1", "status.get")]);
    expect([a.state, b.state].sort()).toEqual(["new", "running"]);
  });

  it("keeps results across a reopen and turns a command that was running into an interrupted failure", async () => {
    const path = await storePath();
    const store = await open(path);
    await store.begin("done-1", "status.get");
    await store.finish("done-1", { ok: true, note: "kept" });
    await store.begin("running-1", "backup.run");
    const again = await open(path);
    expect(await again.begin("done-1", "status.get")).toEqual({
      state: "done",
      result: { ok: true, note: "kept" },
    });
    expect(await again.begin("running-1", "backup.run")).toEqual({
      state: "done",
      result: { ok: false, note: "interrupted backup.run running-1" },
    });
  });

  it("expires old results but always keeps the newest few and every running command", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const path = await storePath();
    const store = await open(path, { retentionMs: 1_000, minKeep: 2, now: () => new Date(now) });
    await store.begin("old-running", "backup.run");
    for (const id of ["a", "b", "c", "d"]) {
      await store.begin(id, "status.get");
      await store.finish(id, { ok: true, note: id });
    }
    now += 10_000;
    await store.begin("e", "status.get");
    expect((await store.begin("d", "status.get")).state).toBe("done");
    expect((await store.begin("c", "status.get")).state).toBe("done");
    expect((await store.begin("old-running", "backup.run")).state).toBe("running");
    expect(await store.begin("a", "status.get")).toEqual({ state: "new" });
  });

  it("caps the number of stored results even when they are young", async () => {
    const store = await open(await storePath(), { minKeep: 1, maxEntries: 5 });
    for (let i = 0; i < 20; i++) {
      await store.begin(`c${i}`, "status.get");
      await store.finish(`c${i}`, { ok: true, note: "" });
    }
    expect(store.size).toBeLessThanOrEqual(6);
    expect((await store.begin("c19", "status.get")).state).toBe("done");
  });
});
