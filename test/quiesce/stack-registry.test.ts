import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StackRegistry } from "../../agent/quiesce/stack-registry.ts";
import { container, stacksOf } from "./support/builders.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "felhom-registry-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe("stack registry", () => {
  it("remembers a stack whose containers are gone, with its paths and edges, across a reload", async () => {
    const path = join(dir, "stacks.json");
    const first = await StackRegistry.load(path);
    await first.recordDiscovered(
      stacksOf(container("shop", "db"), container("shop", "app", { dependsOn: "db:service_healthy:false" })),
      new Date("2026-11-01T00:00:00Z"),
    );
    await first.recordDiscovered(stacksOf(container("blog", "web")), new Date("2026-11-02T00:00:00Z"));

    const reloaded = await StackRegistry.load(path);
    expect(reloaded.stacks.map((s) => s.project)).toEqual(["blog", "shop"]);
    expect(reloaded.stack("shop")).toMatchObject({
      workingDir: "/srv/shop",
      configFiles: ["/srv/shop/compose.yaml"],
      composeVersion: "2.29.1",
      lastSeen: "2026-11-01T00:00:00.000Z",
      services: { app: { dependsOn: ["db"] }, db: { dependsOn: [] } },
    });
  });

  it("keeps observed stop durations when the stack is discovered again", async () => {
    const path = join(dir, "stacks.json");
    const registry = await StackRegistry.load(path);
    await registry.recordDiscovered(stacksOf(container("shop", "db")));
    await registry.recordStopDurations({ "shop/db": 4200, "gone/x": 1 });
    await registry.recordDiscovered(stacksOf(container("shop", "db")));
    expect((await StackRegistry.load(path)).observedStopMs("shop", "db")).toBe(4200);
  });

  it("lists stacks in code-unit order, not ICU's (no collator in the daemon: README, idle resident set)", async () => {
    const registry = await StackRegistry.load(join(dir, "stacks.json"));
    // ICU's root collation puts "_" before "-" and "a" before "B"; code units put them the other way round.
    const names = ["web_2", "web-1", "a", "B"];
    await registry.recordDiscovered(stacksOf(...names.map((p) => container(p, "app"))));
    expect(registry.stacks.map((s) => s.project)).toEqual(["B", "a", "web-1", "web_2"]);
    expect(stacksOf(...names.map((p) => container(p, "app"))).map((s) => s.project)).toEqual([
      "B",
      "a",
      "web-1",
      "web_2",
    ]);
  });
});
