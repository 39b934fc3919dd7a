import { readFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import type { LocalFacts } from "./decide-identity.ts";

// Only node's own modules: the CLI's entry imports this before it knows which command runs.

/** The guest's own uptime: lxcfs virtualises /proc/uptime per container, so this is the container's. */
function readUptimeSeconds(): number | undefined {
  try {
    const first = Number.parseFloat(readFileSync("/proc/uptime", "utf8").split(" ")[0] ?? "");
    return Number.isFinite(first) ? first : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What this guest sees of itself: hostname, the MACs of its non-loopback interfaces, its uptime. Only
 * the OS is asked: nothing in the environment can stand in for these facts, which the identity check
 * stands on (tests that run several "guests" on one machine pass their own function into `main`, see
 * test/support/cli-with-local-facts.ts).
 */
export function readLocalFacts(): LocalFacts {
  const macs = new Set<string>();
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (!a.internal && a.mac !== "00:00:00:00:00:00") macs.add(a.mac.toLowerCase());
    }
  }
  return { hostname: hostname(), macs: [...macs], uptimeSeconds: readUptimeSeconds() };
}
