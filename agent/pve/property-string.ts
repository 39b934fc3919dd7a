import { AgentError } from "../lib/errors.ts";

/**
 * Parses a PVE property string (`name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01`). A value may be
 * double-quoted with backslash escapes (newer PVE quotes values holding commas). A bare item without `=`
 * belongs to `defaultKey` (e.g. the volume of `rootfs`).
 */
export function parsePropertyString(text: string, defaultKey?: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    const comma = text.indexOf(",", i);
    let key: string | undefined;
    if (eq !== -1 && (comma === -1 || eq < comma)) {
      key = text.slice(i, eq).trim();
      i = eq + 1;
    }
    let value = "";
    if (text[i] === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\" && i + 1 < text.length) i++;
        value += text[i];
        i++;
      }
      i++; // closing quote
      const next = text.indexOf(",", i);
      i = next === -1 ? text.length : next + 1;
    } else {
      const next = text.indexOf(",", i);
      value = text.slice(i, next === -1 ? text.length : next);
      i = next === -1 ? text.length : next + 1;
    }
    const name = key ?? defaultKey;
    if (name === undefined) {
      throw new AgentError("pve_property_string_invalid", `item '${value}' has no key in '${text}'`);
    }
    out[name] = value;
  }
  return out;
}

/** An LXC `netN` entry; `hwaddr` upper-cased so it compares with a MAC read inside the guest. */
export interface LxcNet {
  name?: string;
  hwaddr?: string;
  bridge?: string;
  ip?: string;
  ip6?: string;
  type?: string;
  raw: Record<string, string>;
}

export function parseLxcNet(text: string): LxcNet {
  const raw = parsePropertyString(text, "name");
  const net: LxcNet = { raw };
  if (raw.name !== undefined) net.name = raw.name;
  if (raw.hwaddr !== undefined) net.hwaddr = raw.hwaddr.toUpperCase();
  if (raw.bridge !== undefined) net.bridge = raw.bridge;
  if (raw.ip !== undefined) net.ip = raw.ip;
  if (raw.ip6 !== undefined) net.ip6 = raw.ip6;
  if (raw.type !== undefined) net.type = raw.type;
  return net;
}

/** pve-storage `$prune_backups_format`. */
export const PRUNE_KEYS = [
  "keep-all",
  "keep-last",
  "keep-hourly",
  "keep-daily",
  "keep-weekly",
  "keep-monthly",
  "keep-yearly",
] as const;

export type PrunePolicy = Partial<Record<(typeof PRUNE_KEYS)[number], number>>;

/**
 * A retention policy as PVE's `prune-backups` property string, keys in PVE's order. Refuses what PVE
 * would refuse (negative or fractional counts, keep-all next to other keys) and the empty policy: PVE
 * reads "nothing set" as keep-all, which would silently prune nothing.
 */
export function prunePolicyToPropertyString(policy: PrunePolicy): string {
  const parts: string[] = [];
  for (const key of PRUNE_KEYS) {
    const value = policy[key];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 0) {
      throw new AgentError(
        "pve_prune_policy_invalid",
        `${key} must be a non-negative integer, got ${value}`,
        {
          hint: "fix the retention section of the configuration",
        },
      );
    }
    parts.push(`${key}=${value}`);
  }
  const unknown = Object.keys(policy).filter((k) => !(PRUNE_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new AgentError("pve_prune_policy_invalid", `unknown retention keys: ${unknown.join(", ")}`, {
      hint: `use only ${PRUNE_KEYS.join(", ")}`,
    });
  }
  if (policy["keep-all"] !== undefined && parts.length > 1) {
    throw new AgentError("pve_prune_policy_invalid", "keep-all cannot be combined with other keep options", {
      hint: "remove keep-all or the other keep-* keys",
    });
  }
  if (parts.length === 0) {
    throw new AgentError("pve_prune_policy_invalid", "the retention policy sets no keep-* option", {
      hint: "set at least one keep-* count, or leave retention out to keep every backup",
    });
  }
  return parts.join(",");
}
