import { hostname, networkInterfaces } from "node:os";
import { AgentError } from "../lib/errors.ts";
import type { PveClient } from "../pve/client.ts";
import { confirmCandidate, type Identity, type LocalFacts, pickCandidate } from "./decide-identity.ts";

export type VerifiedIdentity = Extract<Identity, { state: "verified" }>;

/** What this guest sees of itself: its hostname and the MACs of its non-loopback interfaces. */
export function readLocalFacts(): LocalFacts {
  const macs = new Set<string>();
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (!a.internal && a.mac !== "00:00:00:00:00:00") macs.add(a.mac.toLowerCase());
    }
  }
  return { hostname: hostname(), macs: [...macs] };
}

/**
 * Resolves the identity afresh: which guest the token sees and on which node (re-discovered on every
 * operation, because a guest can be migrated), confirmed by MAC and hostname.
 */
export async function resolveIdentity(
  pve: Pick<PveClient, "clusterVms" | "lxcConfig">,
  options: { configuredVmid?: number | undefined; local: LocalFacts },
): Promise<Identity> {
  const visible = await pve.clusterVms();
  const picked = pickCandidate(
    visible.map((g) => ({ vmid: g.vmid, node: g.node, type: g.type === "qemu" ? "qemu" : "lxc" })),
    options.configuredVmid,
  );
  if (!picked.ok) return picked.identity;
  const config = await pve.lxcConfig(picked.guest.node, picked.guest.vmid);
  const hwaddrs = Object.values(config.nets)
    .map((n) => n.hwaddr?.toLowerCase())
    .filter((m): m is string => m !== undefined);
  return confirmCandidate(picked.guest, { hostname: config.hostname, hwaddrs }, options.local);
}

export class IdentityUnverifiedError extends AgentError {
  constructor(identity: Extract<Identity, { state: "unverified" }>) {
    super("identity_unverified", `refusing to write to PVE: identity not verified: ${identity.reason}`, {
      hint: identity.hint,
    });
  }
}

/** The guard in front of every PVE write (backup, snapshot, delete, prune): verified, or an error saying why. */
export function requireVerified(identity: Identity): VerifiedIdentity {
  if (identity.state !== "verified") throw new IdentityUnverifiedError(identity);
  return identity;
}
