import { expect } from "vitest";
import { ConfigError, parseConfig } from "../../agent/config/load.ts";

/** The smallest valid config; tests append keys to it (the last section is `backup`). */
export const minimalConfig = `
pve:
  url: https://127.0.0.1:8006
  token_id: agent-101@pve!backup
  token_secret_file: /etc/felhom-guest/pve.secret
  tls: { insecure: true }
backup:
  storage: backup
`;

/** The issues a config is refused with; fails the test when it is accepted. */
export function configIssues(text: string): { key: string; problem: string }[] {
  try {
    parseConfig(text, "agent.yaml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error("expected the config to be rejected");
}
