import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../agent/config/load.ts";

const withBackup = (extra: string) => `
pve:
  url: https://127.0.0.1:8006
  token_id: agent-101@pve!backup
  token_secret_file: /etc/felhom-guest/pve.secret
  tls: { insecure: true }
backup:
  storage: backup
${extra}`;

function problemsOf(text: string): { key: string; problem: string }[] {
  try {
    parseConfig(text, "agent.yaml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error("expected the config to be rejected");
}

describe("config backup.max_protected_backups", () => {
  it("defaults to 5, PVE's limit for a token without Datastore.Allocate when the storage sets none", () => {
    expect(parseConfig(withBackup("")).backup.max_protected_backups).toBe(5);
  });

  it("takes a raised storage limit", () => {
    expect(parseConfig(withBackup("  max_protected_backups: 20\n")).backup.max_protected_backups).toBe(20);
  });

  it("refuses zero and fractions, naming the key", () => {
    for (const bad of ["0", "2.5", "-1"]) {
      expect(problemsOf(withBackup(`  max_protected_backups: ${bad}\n`)).map((i) => i.key)).toEqual([
        "backup.max_protected_backups",
      ]);
    }
  });
});
