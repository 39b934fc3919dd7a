import { describe, expect, it } from "vitest";
import { changedKeys, needsRestart } from "../../agent/config/diff.ts";

describe("config diff for a reload", () => {
  it("names every changed leaf with its dotted key, and added or removed sections", () => {
    const a = {
      backup: { storage: "bk", retention: { keep_last: 3 } },
      schedule: { cron: "0 2 * * *" },
      docker: { projects: ["a"] },
    };
    const b = {
      backup: { storage: "bk", retention: { keep_last: 5 } },
      docker: { projects: ["a", "b"] },
      hub: { url: "wss://x" },
    };
    expect(changedKeys(a, b)).toEqual(["backup.retention.keep_last", "docker.projects", "hub", "schedule"]);
    expect(changedKeys(a, structuredClone(a))).toEqual([]);
  });

  it("says which keys need a restart", () => {
    expect(needsRestart(["backup.mode", "hub.url", "state_dir", "pve.url"])).toEqual([
      "hub.url",
      "state_dir",
    ]);
  });
});
