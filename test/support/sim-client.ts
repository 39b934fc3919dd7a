import { parseConfig } from "../../agent/config/load.ts";
import type { AgentConfig } from "../../agent/config/schema.ts";
import { Secret } from "../../agent/lib/secret.ts";
import { silentLogger } from "../../agent/log/logger.ts";
import { PveClient } from "../../agent/pve/client.ts";
import type { PveConnection } from "../../agent/pve/transport.ts";
import type { PveSimulator } from "../pve-sim/simulator.ts";

/** The agent's real client, talking to the simulator with one of its tokens, pinned to its certificate. */
export function simClient(
  sim: PveSimulator,
  token: { tokenId: string; secret: string },
  more: Partial<PveConnection> = {},
): PveClient {
  return new PveClient(
    {
      baseUrl: sim.url,
      tokenId: token.tokenId,
      secret: new Secret(token.secret),
      tls: { fingerprint: sim.fingerprint },
      ...more,
    },
    silentLogger(),
  );
}

/**
 * The `backup` section of a valid config for a guest of the simulator, backing up to its storage `bk`;
 * `lines` are more keys of that section (YAML, unindented).
 */
export function simBackupConfig(...lines: string[]): AgentConfig["backup"] {
  return parseConfig(
    [
      "pve:",
      "  url: https://127.0.0.1:8006",
      "  token_id: agent-101@pve!backup",
      "  token_secret_file: /x",
      "  tls:",
      "    insecure: true",
      "backup:",
      "  storage: bk",
      ...lines.map((l) => `  ${l}`),
    ].join("\n"),
  ).backup;
}
