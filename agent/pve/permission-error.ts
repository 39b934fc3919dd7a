/**
 * What a PVE permission failure names. PVE puts it in the reason phrase (and, since
 * libpve-http-server-perl 5.2.0, in `message`), and a forked task that failed a check ends with the same
 * text behind a `403 ` prefix: `403 Permission check failed (/vms/101, VM.Backup)`.
 * `any` is true for a check_any failure (`A|B`: holding one of them would do). The bare form (an `or`
 * rule) names nothing.
 */
export interface PermissionFailure {
  path?: string;
  privileges: string[];
  any: boolean;
}

const PERMISSION_RE = /^(?:403 )?Permission check failed(?: \((\/[^,()]*), ([^()]+)\))?\s*$/;

export function parsePermissionFailure(text: string): PermissionFailure | undefined {
  const m = PERMISSION_RE.exec(text.trim());
  if (!m) return undefined;
  if (m[1] === undefined) return { privileges: [], any: false };
  const privileges = m[2]!.split("|").map((p) => p.trim());
  return { path: m[1], privileges, any: privileges.length > 1 };
}

/** What to tell the operator: the privsep intersection is the trap every first install falls into. */
export function permissionHint(failure: PermissionFailure | undefined): string {
  if (!failure?.path) {
    return "check the token's effective privileges with `felhom-guest doctor`; with privilege separation the user AND the token must both hold them";
  }
  const what = failure.any ? `one of ${failure.privileges.join(", ")}` : failure.privileges.join(", ");
  return `grant ${what} on ${failure.path} to BOTH the user and the token (privilege separation intersects them)`;
}
