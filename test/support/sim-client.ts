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
