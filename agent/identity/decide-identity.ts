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
  /** Seconds since this system booted (lxcfs virtualises /proc/uptime per container); undefined if unknown. */
  uptimeSeconds?: number | undefined;
}

/** The candidate guest's config, as PVE has it. */
export interface GuestConfigFacts {
  hostname?: string | undefined;
  /** hwaddr of each netN, lower-case. */
  hwaddrs: string[];
}

/** The candidate's run state, as `status/current` reports it. */
export interface GuestRuntimeFacts {
  running: boolean;
  uptimeSeconds?: number | undefined;
}

/**
 * Why an identity is not verified, as a stable code (the hub's `identity.warning.signal`):
 * the candidate cannot be found (`vmid-missing`), the token sees several (`token-scope`), or the
 * candidate exists but is demonstrably another system (`mac-mismatch`, `hostname-mismatch`,
 * `guest-stopped`, `uptime`).
 */
export type IdentitySignal =
  | "vmid-missing"
  | "token-scope"
  | "mac-mismatch"
  | "hostname-mismatch"
  | "guest-stopped"
  | "uptime";

/**
 * How much longer the candidate may have been up than this system before it cannot be us. Both numbers
 * measure the same container init (lxcfs and PVE's `status/current`), so they agree to the second on a
 * real host; the margin covers reading them at different moments and a slow start.
 */
export const UPTIME_TOLERANCE_S = 120;

export type Identity =
  | { state: "verified"; vmid: number; node: string; hostname: string }
  | {
      state: "unverified";
      signal: IdentitySignal;
      reason: string;
      hint: string;
      vmid?: number;
      node?: string;
    }
  /** Decided at start from the backup marker (agent/restore): a copy, until it is enrolled. */
  | {
      state: "restored-copy";
      reason: string;
      hint: string;
      fromBackupId: string | null;
      vmid?: number;
      node?: string;
    };

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
        signal: "vmid-missing",
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
        signal: "vmid-missing",
        reason: "the token sees no container: its guest no longer exists or it lacks VM.Audit",
        hint: "if this guest was restored from a backup, re-enroll it (felhom-guest enroll); otherwise grant VM.Audit on /vms/<vmid> to both the user and the token",
      },
    };
  }
  return {
    ok: false,
    identity: {
      state: "unverified",
      signal: "token-scope",
      reason: `the token sees ${lxc.length} containers (${lxc.map((g) => g.vmid).join(", ")}): it is not scoped to this guest alone`,
      hint: "grant the role only on /vms/<own vmid>, or set pve.vmid to say which one is this guest",
    },
  };
}

/**
 * Whether the CT config's `hostname` names this system. PVE writes only the part before the first dot to
 * the guest's /etc/hostname (pve-container Setup/Base.pm `set_hostname`; the FQDN goes to /etc/hosts), so
 * a CT configured as `web1.example.com` calls itself `web1`; an admin may also have set the full name
 * inside. By design `web1.a.com` and a local `web1` match whatever the domain: the guest cannot see the
 * domain PVE dropped. Nothing looser: case and any other prefix or suffix still count as different.
 */
export function hostnameMatches(configured: string, local: string): boolean {
  if (configured === local) return true;
  const dot = configured.indexOf(".");
  return dot > 0 && configured.slice(0, dot) === local;
}

/**
 * Step 2: confirm the candidate with the MAC and the hostname, then with its run state: PVE saying the
 * candidate is stopped, or up for much longer than this system, means this system is not it — a
 * restored copy or a clone keeps MAC and hostname (`pct restore` preserves both), so only these tell.
 */
export function confirmCandidate(
  guest: VisibleGuest,
  config: GuestConfigFacts,
  local: LocalFacts,
  runtime?: GuestRuntimeFacts,
): Identity {
  const base = { vmid: guest.vmid, node: guest.node };
  const macMatch = config.hwaddrs.some((mac) => local.macs.includes(mac));
  if (!macMatch) {
    return {
      state: "unverified",
      signal: "mac-mismatch",
      ...base,
      reason: `no interface of this guest has a MAC of CT ${guest.vmid} (${config.hwaddrs.join(", ") || "none configured"}; here: ${local.macs.join(", ") || "none"})`,
      hint: "this may be a copy of another guest: re-enroll it with its own token (felhom-guest enroll)",
    };
  }
  if (config.hostname !== undefined && !hostnameMatches(config.hostname, local.hostname)) {
    return {
      state: "unverified",
      signal: "hostname-mismatch",
      ...base,
      reason: `hostname "${local.hostname}" differs from CT ${guest.vmid}'s "${config.hostname}"`,
      hint: "set the same hostname in the guest and in the CT config (pct set <vmid> -hostname …), or re-enroll a copy",
    };
  }
  const copyHint =
    "this looks like a copy of that guest (pct restore keeps MAC and hostname): re-enroll it with its own token (felhom-guest enroll)";
  if (runtime && !runtime.running) {
    return {
      state: "unverified",
      signal: "guest-stopped",
      ...base,
      reason: `PVE reports CT ${guest.vmid} stopped, yet this system is running: it is not CT ${guest.vmid}`,
      hint: copyHint,
    };
  }
  if (
    runtime?.uptimeSeconds !== undefined &&
    local.uptimeSeconds !== undefined &&
    runtime.uptimeSeconds > local.uptimeSeconds + UPTIME_TOLERANCE_S
  ) {
    return {
      state: "unverified",
      signal: "uptime",
      ...base,
      reason: `CT ${guest.vmid} has been up for ${runtime.uptimeSeconds} s, this system for ${Math.floor(local.uptimeSeconds)} s: it is not CT ${guest.vmid}`,
      hint: copyHint,
    };
  }
  return { state: "verified", ...base, hostname: local.hostname };
}
