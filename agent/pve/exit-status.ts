/**
 * What a stopped task's `exitstatus` means (pve-common:src/PVE/UPID.pm `read_status`). Only `ok` and
 * `warnings` are successes; the text of `error` is what followed `TASK ERROR: ` in the log.
 */
export type ExitClass =
  | { kind: "ok" }
  | { kind: "warnings"; count: number }
  | { kind: "unexpected" }
  | { kind: "error"; text: string };

export function classifyExitStatus(exitstatus: string): ExitClass {
  if (exitstatus === "OK") return { kind: "ok" };
  const warnings = /^WARNINGS: (\d+)$/.exec(exitstatus);
  if (warnings) return { kind: "warnings", count: Number(warnings[1]) };
  if (exitstatus === "unexpected status") return { kind: "unexpected" };
  return { kind: "error", text: exitstatus };
}

export function isSuccess(c: ExitClass): boolean {
  return c.kind === "ok" || c.kind === "warnings";
}
