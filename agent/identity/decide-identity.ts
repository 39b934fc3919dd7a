/**
 * Who am I, decided from what can be seen (pure; the I/O is in identity-service.ts). The agent may write to
 * PVE (backup, snapshot, delete, prune) only when the result is `verified`: the token is scoped to one
 * guest, and a guest the token can see is only ours if its network identity and name are ours too.
 */

export interface VisibleGuest {
  vmid: number;
  node: string;
  type: "lxc" | "qemu";
}

/** What the guest sees of itself. */
export interface LocalFacts {
  hostname: string;
  /** MACs of the guest's own interfaces, lower-case, loopback excluded. */
  macs: string[];
}

/** The candidate guest's config, as PVE has it. */
export interface GuestConfigFacts {
  hostname?: string | undefined;
  /** hwaddr of each netN, lower-case. */
  hwaddrs: string[];
}

export type Identity =
  | { state: "verified"; vmid: number; node: string; hostname: string }
  | { state: "unverified"; reason: string; hint: string; vmid?: number; node?: string };

/** Step 1: pick the candidate vmid from what the token sees. */
export function pickCandidate(
  visible: VisibleGuest[],
  configuredVmid: number | undefined,
): { ok: true; guest: VisibleGuest } | { ok: false; identity: Identity } {
  const lxc = visible.filter((g) => g.type === "lxc");
  if (configuredVmid !== undefined) {
    const guest = lxc.find((g) => g.vmid === configuredVmid);
    if (guest) return { ok: true, guest };
    return {
      ok: false,
      identity: {
        state: "unverified",
        reason: `the token cannot see the configured guest ${configuredVmid} (it sees ${lxc.map((g) => g.vmid).join(", ") || "no guest"})`,
        hint: "check pve.vmid, or grant VM.Audit on /vms/<vmid> to both the user and the token; a restored copy must be re-enrolled",
      },
    };
  }
  if (lxc.length === 1) return { ok: true, guest: lxc[0]! };
  if (lxc.length === 0) {
    return {
      ok: false,
      identity: {
        state: "unverified",
        reason: "the token sees no container: its guest no longer exists or it lacks VM.Audit",
        hint: "if this guest was restored from a backup, re-enroll it (felhom-guest enroll); otherwise grant VM.Audit on /vms/<vmid> to both the user and the token",
      },
    };
  }
  return {
    ok: false,
    identity: {
      state: "unverified",
      reason: `the token sees ${lxc.length} containers (${lxc.map((g) => g.vmid).join(", ")}): it is not scoped to this guest alone`,
      hint: "grant the role only on /vms/<own vmid>, or set pve.vmid to say which one is this guest",
    },
  };
}

/** Step 2: confirm the candidate with the MAC and the hostname. */
export function confirmCandidate(guest: VisibleGuest, config: GuestConfigFacts, local: LocalFacts): Identity {
  const base = { vmid: guest.vmid, node: guest.node };
  const macMatch = config.hwaddrs.some((mac) => local.macs.includes(mac));
  if (!macMatch) {
    return {
      state: "unverified",
      ...base,
      reason: `no interface of this guest has a MAC of CT ${guest.vmid} (${config.hwaddrs.join(", ") || "none configured"}; here: ${local.macs.join(", ") || "none"})`,
      hint: "this may be a copy of another guest: re-enroll it with its own token (felhom-guest enroll)",
    };
  }
  if (config.hostname !== undefined && config.hostname !== local.hostname) {
    return {
      state: "unverified",
      ...base,
      reason: `hostname "${local.hostname}" differs from CT ${guest.vmid}'s "${config.hostname}"`,
      hint: "set the same hostname in the guest and in the CT config (pct set <vmid> -hostname …), or re-enroll a copy",
    };
  }
  return { state: "verified", ...base, hostname: local.hostname };
}
