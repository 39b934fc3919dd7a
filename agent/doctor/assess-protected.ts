import { countProtected, protectedLimitProblem } from "../backup/protected-limit.ts";
import type { BackupVolume } from "../pve/schemas.ts";
import type { Finding } from "./assess-permissions.ts";

/**
 * With `backup.protected`, how many of PVE's per-guest protected slots are used (`limit` is
 * `backup.max_protected_backups`). Full is an error, since the next backup is refused; one slot left is a
 * warning, since the backup after the next one is. Pure.
 */
export function assessProtectedBackups(
  archives: readonly Pick<BackupVolume, "vmid" | "protected">[],
  vmid: number,
  limit: number,
): Finding {
  const problem = protectedLimitProblem(archives, vmid, limit);
  if (problem) return { level: "error", message: `protected backups: ${problem}` };
  const count = countProtected(archives, vmid);
  const message = `protected backups: ${count} of ${limit} per guest used on the backup storage`;
  if (count === limit - 1) {
    return {
      level: "warn",
      message: `${message}; the next backup takes the last one and the one after is refused`,
      hint: "unprotect or delete old protected backups, or raise the storage's max-protected-backups and backup.max_protected_backups, or set backup.protected: false",
    };
  }
  return { level: "ok", message };
}
