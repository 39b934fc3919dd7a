import type { EventOf } from "@felhom/protocol";
import type { BackupOutcome } from "../backup/backup-types.ts";
import type { OperationEvent } from "../operation/operation-deps.ts";

/** Human output goes to stdout; with --json only the final JSON document does. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const tty = process.stdout.isTTY === true;
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[22m` : s);
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[22m` : s);

/** Live progress of a backup for a person: one line per phase, the task log dimmed beneath it. */
export function printBackupEvent(e: OperationEvent): void {
  if (e.kind === "backup.phase") process.stdout.write(`${bold(`▸ ${e.phase}`)}\n`);
  else if (e.kind === "blackout")
    process.stdout.write(dim(`  stacks may be unreachable for up to ${e.expectedSeconds} s (${e.reason})\n`));
  else if (e.kind === "backup.progress" && e.line) process.stdout.write(dim(`  ${e.line}\n`));
}

const seconds = (ms: number) => (ms / 1000).toFixed(2);

/**
 * One service's downtime and where it went (README "Where the downtime goes"):
 * `shop/db 3.45 s = quiesce 0.40 + PVE 2.10 + notice ≤0.25 + resume 0.70`.
 */
export function describeDowntime(d: EventOf<"backup.completed">["downtime"][number]): string {
  const b = d.breakdown;
  const parts = [
    b?.quiesceMs !== undefined ? `quiesce ${seconds(b.quiesceMs)}` : undefined,
    b?.pveMs !== undefined ? `PVE ${seconds(b.pveMs)}` : undefined,
    b?.noticeMs !== undefined ? `notice ≤${seconds(b.noticeMs)}` : undefined,
    b ? `resume ${seconds(b.resumeMs)}` : undefined,
  ].filter((p) => p !== undefined);
  return `${d.project}/${d.service} ${seconds(d.downtimeMs)} s${parts.length ? ` = ${parts.join(" + ")}` : ""}`;
}

/** The mode asked for, and the one PVE ran where it differs (a CT that cannot be snapshotted: suspend). */
export function modeText(mode: string, pveMode: string | undefined): string {
  return pveMode && pveMode !== mode ? `${mode} requested, PVE ran ${pveMode}` : mode;
}

export function describeOutcome(o: BackupOutcome): string {
  if (o.ok) {
    const r = o.result;
    const down = r.downtime.map(describeDowntime).join("\n           ");
    return [
      `backup ${r.backupId} ${r.exitStatus === "OK" ? "completed" : `completed with ${r.exitStatus}`} (${r.consistency}-consistent)`,
      `  mode     ${modeText(r.mode, r.pveMode)}`,
      `  archive  ${r.volid} (${(r.sizeBytes / 1024 / 1024).toFixed(1)} MiB)`,
      `  total    ${(r.totalMs / 1000).toFixed(1)} s`,
      `  downtime ${down || "none"}`,
      ...(r.stacksResumed
        ? []
        : ["  stacks   NOT all resumed: check `felhom-guest stacks` (see the warnings)"]),
      ...r.warnings.map((w) => `  warning  ${w}`),
    ].join("\n");
  }
  const f = o.failure;
  return [
    `backup ${f.backupId} FAILED in phase ${f.phase}: ${f.message}`,
    `  stacks   ${f.stacksResumed ? "running again" : "NOT all resumed: check `felhom-guest stacks`"}`,
    ...(f.exitStatus ? [`  task     ${f.upid} → ${f.exitStatus}`] : []),
    ...f.logTail.slice(-5).map((l) => `  log      ${l}`),
  ].join("\n");
}
