import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { QuiesceJournal } from "../../agent/quiesce/journal.ts";
import { buildPlan, type QuiescePlan } from "../../agent/quiesce/plan.ts";
import { container, stacksOf } from "./support/builders.ts";

let dir: string;
let path: string;
let plan: QuiescePlan;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "felhom-journal-"));
  path = join(dir, "state", "quiesce-journal.json");
  const result = buildPlan(
    stacksOf(
      container("p", "db"),
      container("p", "app", { dependsOn: "db:x:false" }),
      container("p", "old", { state: "exited" }),
    ),
  );
  if (!result.ok) throw new Error("plan");
  plan = result.plan;
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe("quiesce journal", () => {
  it("is on disk with the plan and every running container pending before create returns", async () => {
    await QuiesceJournal.create(path, { backupId: "b1", plan });
    const onDisk = JSON.parse(await readFile(path, "utf8"));
    expect(onDisk.backupId).toBe("b1");
    expect(onDisk.finishedAt).toBeNull();
    expect(onDisk.plan).toEqual(plan);
    expect(
      Object.values(onDisk.containers)
        .map((c) => (c as { name: string; status: string }).name)
        .sort(),
    ).toEqual(["p_app_1", "p_db_1"]);
    expect(
      Object.values(onDisk.containers).every((c) => (c as { status: string }).status === "pending"),
    ).toBe(true);
  });

  it("refuses a new journal while the previous one is unfinished, and accepts one after finish", async () => {
    const first = await QuiesceJournal.create(path, { backupId: "b1", plan });
    await expect(QuiesceJournal.create(path, { backupId: "b2", plan })).rejects.toMatchObject({
      code: "journal_unfinished",
    });
    await first.finish();
    const second = await QuiesceJournal.create(path, { backupId: "b2", plan });
    expect(second.data.backupId).toBe("b2");
  });

  it("merges the backup section so the backup flow can add its own fields", async () => {
    const j = await QuiesceJournal.create(path, { backupId: "b1", plan });
    await j.update({ backup: { phase: "vzdump", upid: "UPID:pve:1" } });
    await j.update({ backup: { phase: "resume" } });
    const reopened = await QuiesceJournal.open(path);
    expect(reopened?.data.backup).toEqual({ phase: "resume", upid: "UPID:pve:1" });
  });

  it("keeps every one of many concurrent container updates", async () => {
    const j = await QuiesceJournal.create(path, { backupId: "b1", plan });
    const ids = Object.keys(j.data.containers);
    await Promise.all(
      ids.flatMap((id) => [
        j.updateContainer(id, { status: "quiescing" }),
        j.updateContainer(id, { pre: "ok" }),
        j.updateContainer(id, { status: "quiesced" }),
      ]),
    );
    const reopened = await QuiesceJournal.open(path);
    for (const id of ids) expect(reopened?.entry(id)).toMatchObject({ status: "quiesced", pre: "ok" });
  });

  it("reports no journal when none was ever written", async () => {
    expect(await QuiesceJournal.open(join(dir, "none.json"))).toBeUndefined();
  });
});
