import type { Guest, Storage } from "./cluster-model.ts";
import type { PveSimulator } from "./simulator.ts";

/** The role of product-brief §1. */
export const FELHOM_GUEST_PRIVS = [
  "VM.Audit",
  "VM.Snapshot",
  "VM.Backup",
  "Datastore.AllocateSpace",
  "Datastore.Audit",
] as const;

export type SelfScopedVariant =
  /** role on /vms/<vmid> and /storage/<storage> for BOTH the user and the token (the production setup) */
  | "production"
  /** role granted to the token only: the privsep intersection is empty, every call 403s */
  | "token-only"
  /** like production but the role lacks VM.Backup: vzdump POST 200 + UPID, task ends 403 */
  | "missing-vm-backup"
  /** Administrator on / for user and token: can touch every guest (the agent must still only touch itself) */
  | "over-privileged"
  /** the role on /vms and /storage (propagating) for user and token: nothing names /vms/<vmid> itself */
  | "parent-paths";

export interface SelfScopedGuest {
  tokenId: string;
  secret: string;
  userid: string;
  /** `PVEAPIToken=<tokenId>=<secret>`, ready for the Authorization header. */
  authorization: string;
  guest: Guest;
  storage: Storage;
  role: string;
}

/**
 * The production setup of product-brief §1: user agent-<vmid>@pve, privsep token "backup", role FelhomGuest
 * granted on /vms/<vmid> and /storage/<storage>. Creates the guest and the storage when they do not exist.
 */
export async function selfScopedGuest(
  sim: PveSimulator,
  o: {
    vmid: number;
    storage?: string;
    node?: string;
    hostname?: string;
    hwaddr?: string;
    running?: boolean;
    uptime?: number;
    variant?: SelfScopedVariant;
    tokenName?: string;
    /** storage.cfg prune-backups of a storage created here */
    pruneBackups?: string;
    /** the type of a storage created here. @default "dir" */
    storageType?: "dir" | "pbs";
  },
): Promise<SelfScopedGuest> {
  const storageId = o.storage ?? "bk";
  const storage =
    sim.storages.get(storageId) ??
    (await sim.addStorage({
      id: storageId,
      ...(o.storageType ? { type: o.storageType } : {}),
      ...(o.pruneBackups ? { pruneBackups: o.pruneBackups } : {}),
    }));
  const guest =
    sim.guests.get(o.vmid) ??
    (await sim.addGuest({
      vmid: o.vmid,
      ...(o.node ? { node: o.node } : {}),
      ...(o.hostname ? { hostname: o.hostname } : {}),
      ...(o.hwaddr ? { hwaddr: o.hwaddr } : {}),
      ...(o.running !== undefined ? { running: o.running } : {}),
      ...(o.uptime !== undefined ? { uptime: o.uptime } : {}),
    }));
  const variant = o.variant ?? "production";
  const userid = `agent-${o.vmid}@pve`;
  if (!sim.access.users.has(userid)) sim.addUser(userid);
  const { tokenId, secret } = sim.addToken(userid, o.tokenName ?? "backup", { privsep: true });
  let role = "FelhomGuest";
  if (variant === "missing-vm-backup") {
    role = "FelhomGuestNoBackup";
    sim.addRole(
      role,
      FELHOM_GUEST_PRIVS.filter((p) => p !== "VM.Backup"),
    );
  } else sim.addRole(role, FELHOM_GUEST_PRIVS);
  if (variant === "over-privileged") {
    role = "Administrator";
    sim.setAcl({ path: "/", role, user: userid });
    sim.setAcl({ path: "/", role, token: tokenId });
  } else if (variant === "parent-paths") {
    for (const path of ["/vms", "/storage"]) {
      sim.setAcl({ path, role, user: userid });
      sim.setAcl({ path, role, token: tokenId });
    }
  } else {
    for (const path of [`/vms/${o.vmid}`, `/storage/${storageId}`]) {
      if (variant !== "token-only") sim.setAcl({ path, role, user: userid });
      sim.setAcl({ path, role, token: tokenId });
    }
  }
  return { tokenId, secret, userid, authorization: `PVEAPIToken=${tokenId}=${secret}`, guest, storage, role };
}
