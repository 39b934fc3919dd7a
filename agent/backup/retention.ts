import type { AgentConfig } from "../config/schema.ts";
import type { PrunePolicy } from "../pve/property-string.ts";

/** The config's retention (snake_case keys) as PVE's prune-backups policy; undefined when not configured. */
export function retentionPolicy(retention: AgentConfig["backup"]["retention"]): PrunePolicy | undefined {
  if (!retention) return undefined;
  const policy: PrunePolicy = {};
  for (const [key, value] of Object.entries(retention)) {
    if (value !== undefined) policy[key.replace(/_/g, "-") as keyof PrunePolicy] = value;
  }
  return policy;
}
