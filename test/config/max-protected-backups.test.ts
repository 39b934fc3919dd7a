import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.ts";
import { configIssues, minimalConfig } from "./support.ts";

const withBackup = (extra: string) => `${minimalConfig}${extra}`;

describe("config backup.max_protected_backups", () => {
  it("defaults to 5, PVE's limit for a token without Datastore.Allocate when the storage sets none", () => {
    expect(parseConfig(withBackup("")).backup.max_protected_backups).toBe(5);
  });

  it("takes a raised storage limit", () => {
    expect(parseConfig(withBackup("  max_protected_backups: 20\n")).backup.max_protected_backups).toBe(20);
  });

  it("refuses zero and fractions, naming the key", () => {
    for (const bad of ["0", "2.5", "-1"]) {
      expect(configIssues(withBackup(`  max_protected_backups: ${bad}\n`)).map((i) => i.key)).toEqual([
        "backup.max_protected_backups",
      ]);
    }
  });
});
