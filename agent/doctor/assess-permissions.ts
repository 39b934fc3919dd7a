/**
 * What the token may really do (GET /access/permissions, already intersected for a privsep token),
 * judged against the role of product-brief §1. Pure.
 */
export const REQUIRED = {
  vm: ["VM.Audit", "VM.Backup", "VM.Snapshot"],
  storage: ["Datastore.AllocateSpace", "Datastore.Audit"],
} as const;

/** Privileges the agent never needs; holding them makes a leaked token worse than it has to be. */
const EXCESS = [
  "VM.Allocate",
  "VM.Config.Disk",
  "VM.PowerMgmt",
  "VM.Console",
  "Datastore.Allocate",
  "Sys.Modify",
  "Sys.PowerMgmt",
  "Sys.Console",
  "Permissions.Modify",
  "User.Modify",
];

export interface Finding {
  level: "ok" | "warn" | "error";
  message: string;
  hint?: string;
}

export function assessPermissions(
  perms: Record<string, Record<string, number>>,
  vmid: number,
  storage: string,
  visibleGuests: number,
): Finding[] {
  const findings: Finding[] = [];
  const has = (path: string, priv: string) => perms[path]?.[priv] !== undefined;
  const missing = [
    ...REQUIRED.vm.filter((p) => !has(`/vms/${vmid}`, p)).map((p) => `${p} on /vms/${vmid}`),
    ...REQUIRED.storage
      .filter((p) => !has(`/storage/${storage}`, p))
      .map((p) => `${p} on /storage/${storage}`),
  ];
  if (missing.length === 0) {
    findings.push({
      level: "ok",
      message: `the token holds every privilege it needs on /vms/${vmid} and /storage/${storage}`,
    });
  } else {
    const nothing =
      Object.keys(perms[`/vms/${vmid}`] ?? {}).length === 0 &&
      Object.keys(perms[`/storage/${storage}`] ?? {}).length === 0;
    findings.push({
      level: "error",
      message: `the token lacks ${missing.join(", ")}`,
      hint: nothing
        ? "the token has no privilege at all there: the privilege-separation trap — a role granted to the token only is intersected with the user's (empty) privileges. Grant the role to BOTH the user and the token"
        : "grant the FelhomGuest role (README: 'The token') on both paths, to the user and to the token",
    });
  }
  const excess = Object.entries(perms).flatMap(([path, privs]) =>
    EXCESS.filter((p) => privs[p] !== undefined).map((p) => `${p} on ${path}`),
  );
  if (excess.length > 0) {
    findings.push({
      level: "warn",
      message: `the token can do more than it needs: ${excess.slice(0, 8).join(", ")}${excess.length > 8 ? ", …" : ""}`,
      hint: "a leaked token should only be able to back up this one guest; grant only the FelhomGuest role",
    });
  }
  if (visibleGuests > 1) {
    findings.push({
      level: "warn",
      message: `the token sees ${visibleGuests} guests; it should see only this one`,
      hint: "grant VM.Audit only on /vms/<own vmid> (not on /vms or /)",
    });
  }
  return findings;
}

/** Without a vmid to check against: does the token hold VM.Audit on any guest at all? */
export function assessUnscopedPermissions(perms: Record<string, Record<string, number>>): Finding {
  // A grant on `/` or `/vms` reaches the guests only if it propagates (the value is that flag).
  const guests = Object.entries(perms).filter(([path, privs]) =>
    path.startsWith("/vms/")
      ? privs["VM.Audit"] !== undefined
      : (path === "/" || path === "/vms") && privs["VM.Audit"] === 1,
  );
  if (guests.length > 0)
    return { level: "ok", message: `the token may audit ${guests.map(([p]) => p).join(", ")}` };
  return {
    level: "error",
    message: "the token may not see any guest (no VM.Audit on any /vms/<vmid>)",
    hint: "if the FelhomGuest role is granted to the token only, PVE intersects it with the user's (empty) privileges: grant it to BOTH the user and the token",
  };
}
