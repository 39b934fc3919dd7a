import { randomBytes } from "node:crypto";

/**
 * A backup id: sortable by time, unique across the fleet's guests without coordination, and safe inside a
 * vzdump notes-template (letters, digits and dashes only).
 */
export function newBackupId(now = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `bk-${stamp}-${randomBytes(3).toString("hex")}`;
}

export const BACKUP_ID_PATTERN = /^bk-\d{8}T\d{6}Z-[0-9a-f]{6}$/;
