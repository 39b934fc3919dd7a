import { AgentError, describeError } from "../lib/errors.ts";
import type { PveClient } from "../pve/client.ts";
import { PveHttpError, PvePermissionError, PveServerError } from "../pve/errors.ts";
import { confirmCandidate, type Identity, type LocalFacts, pickCandidate } from "./decide-identity.ts";

export type VerifiedIdentity = Extract<Identity, { state: "verified" }>;

// The facts live in a module of their own, which the CLI's entry imports without this one's PVE errors.
export { readLocalFacts } from "./local-facts.ts";

/**
 * Resolves the identity afresh: which guest the token sees and on which node (re-discovered on every
 * operation, because a guest can be migrated), confirmed by MAC and hostname, and by the candidate's
 * run state against this system's (a restored copy keeps MAC and hostname).
 */
export async function resolveIdentity(
  pve: Pick<PveClient, "clusterVms" | "lxcConfig" | "lxcStatus">,
  options: { configuredVmid?: number | undefined; local: LocalFacts },
): Promise<Identity> {
  const visible = await pve.clusterVms();
  const picked = pickCandidate(
    visible.map((g) => ({ vmid: g.vmid, node: g.node, type: g.type === "qemu" ? "qemu" : "lxc" })),
    options.configuredVmid,
  );
  if (!picked.ok) return picked.identity;
  const { node, vmid } = picked.guest;
  let config: Awaited<ReturnType<PveClient["lxcConfig"]>>;
  let status: Awaited<ReturnType<PveClient["lxcStatus"]>>;
  try {
    [config, status] = await Promise.all([pve.lxcConfig(node, vmid), pve.lxcStatus(node, vmid)]);
  } catch (err) {
    if (!guestGone(err)) throw err;
    return {
      state: "unverified",
      signal: "vmid-missing",
      vmid,
      node,
      reason: `CT ${vmid} went away while it was being checked (${describeError(err)})`,
      hint: "if this guest was restored from a backup, re-enroll it (felhom-guest enroll)",
    };
  }
  const hwaddrs = Object.values(config.nets)
    .map((n) => n.hwaddr?.toLowerCase())
    .filter((m): m is string => m !== undefined);
  return confirmCandidate(picked.guest, { hostname: config.hostname, hwaddrs }, options.local, {
    running: status.status === "running",
    uptimeSeconds: status.uptime,
  });
}

/**
 * The guest the token saw is gone by the next call: 403 (its ACL purged with it), 404, or PVE's
 * "Configuration file '…/<vmid>.conf' does not exist" (a 500 from load_config).
 */
export function guestGone(err: unknown): boolean {
  if (err instanceof PvePermissionError) return true;
  if (err instanceof PveHttpError && err.status === 404) return true;
  return err instanceof PveServerError && /Configuration file .* does not exist/.test(err.message);
}

export class IdentityUnverifiedError extends AgentError {
  constructor(identity: Exclude<Identity, { state: "verified" }>) {
    super(
      "identity_unverified",
      identity.state === "restored-copy"
        ? `refusing to write to PVE: this guest is a restored copy: ${identity.reason}`
        : `refusing to write to PVE: identity not verified: ${identity.reason}`,
      { hint: identity.hint },
    );
  }
}

/** The guard in front of every PVE write (backup, snapshot, delete, prune): verified, or an error saying why. */
export function requireVerified(identity: Identity): VerifiedIdentity {
  if (identity.state !== "verified") throw new IdentityUnverifiedError(identity);
  return identity;
}
