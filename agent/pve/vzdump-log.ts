/**
 * Phases recognised in a vzdump task log (pve-manager:PVE/VZDump.pm, pve-container:src/PVE/VZDump/LXC.pm).
 * `snapshot-created` is the one the backup flow waits for: services may resume once it is seen.
 * `suspend-resumed` plays that role when PVE fell back from snapshot to suspend mode (the final sync is
 * done and the guest thawed).
 */
export type VzdumpPhase =
  | { phase: "waiting-for-global-lock" }
  | { phase: "got-global-lock" }
  | { phase: "global-lock-timeout"; text: string }
  | { phase: "job-started"; command: string }
  | { phase: "guest-started"; vmid: number }
  | { phase: "backup-mode"; mode: string }
  | { phase: "guest-stopping" }
  | { phase: "suspend" }
  | { phase: "suspend-resumed" }
  | { phase: "snapshot-requested" }
  /** `confirmedBy` says whether a later log line proved the snapshot step done, or the task ended first. */
  | { phase: "snapshot-created"; confirmedBy: "next-line" | "task-ended" }
  /** The storage snapshot could not be taken: PVE cleans up and fails the guest's backup. */
  | { phase: "snapshot-failed" }
  /** `path` is the archive file, or on a Proxmox Backup Server (`pbs`) the snapshot `ct/<vmid>/<time>Z`. */
  | { phase: "archive-started"; path: string; pbs: boolean }
  | { phase: "bytes-written"; bytes: number }
  | { phase: "archive-size"; text: string; approxBytes: number }
  | { phase: "restarting" }
  | { phase: "guest-online"; afterSeconds: number }
  | { phase: "guest-finished"; vmid: number; duration: string }
  | { phase: "guest-failed"; vmid: number; error: string }
  /**
   * Follows the `guest-failed` of the same line when the cause is the storage's max-protected-backups:
   * this guest already has `limit` protected archives there, and no retention run can free a slot.
   */
  | { phase: "protected-limit"; vmid: number; limit: number; storage: string }
  | { phase: "job-failed"; error: string }
  | { phase: "finished"; ok: boolean }
  | { phase: "warning"; text: string }
  | { phase: "task-end"; marker: string };

// The copy in /var/log/vzdump carries a timestamp; the task log does not. Accept both.
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} /;
// VZDump.pm exec_backup_task, for protected=1 over the storage's max-protected-backups.
const PROTECTED_LIMIT_RE =
  /^The number of protected backups per guest is limited to (\d+) on storage '([^']*)'/;
// pve-guest-common AbstractConfig.pm `snapshot_create`: `warn "snapshot create failed: starting cleanup\n"`.
const SNAPSHOT_FAILED_RE = /^snapshot create failed: starting cleanup$/;
// The PBS client's line once an archive of the root is uploaded (proxmox-backup pbs-client
// backup_writer.rs `upload_stream`): "<archive>: had to backup <new> of <total> (compressed <c>) in <s>s",
// <archive> without its .didx; <total> plays tar's total. With a change-detection mode `data` or
// `metadata` (pve-container LXC.pm `archive` passes --change-detection-mode, e.g. from /etc/vzdump.conf)
// the root is two archives, root.mpxar (metadata) and root.ppxar (payload), one line each.
const PBS_ROOT_UPLOADED_RE = /^root\.([mp]?)pxar: had to backup \S+ \S+ of ([\d.]+) (B|KiB|MiB|GiB|TiB|PiB) /;
const UNITS: Record<string, number> = { KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
// proxmox-human-byte's binary units, as the PBS client prints sizes
const BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/**
 * Feed it task-log lines in order; each call returns the phases that line completes. Pure and
 * synchronous: the task follower owns the I/O. Call `end()` once the task has stopped.
 */
export class VzdumpLogRecogniser {
  #snapshotPending = false;
  #warnings = 0;
  /** Totals of a split root archive seen so far, by `m`/`p`: the bytes are their sum, once both are in. */
  #splitRoot = new Map<string, number>();

  /** The number of `WARN:` lines, which is what PVE counts for `TASK WARNINGS: n`. */
  get warnings(): number {
    return this.#warnings;
  }

  feed(rawLine: string): VzdumpPhase[] {
    const line = rawLine.replace(TIMESTAMP_RE, "");
    const out: VzdumpPhase[] = [];
    const failure = /^ERROR: Backup of VM (\d+) failed - (.*)$/.exec(line);
    if (this.#snapshotPending) {
      this.#snapshotPending = false;
      // A failure right after the create step means there is no snapshot; the failure says so. So does
      // AbstractConfig.pm `snapshot_create`'s plain `warn` (unprefixed) before it cleans up and dies.
      if (SNAPSHOT_FAILED_RE.test(line)) out.push({ phase: "snapshot-failed" });
      else if (!failure) out.push({ phase: "snapshot-created", confirmedBy: "next-line" });
    }
    const phase = recogniseLine(line, failure) ?? this.#pbsRootUploaded(line);
    if (phase) {
      if (phase.phase === "warning") this.#warnings++;
      if (phase.phase === "snapshot-requested") this.#snapshotPending = true;
      out.push(phase);
    }
    const limit = failure && PROTECTED_LIMIT_RE.exec(failure[2]!);
    if (limit) {
      out.push({
        phase: "protected-limit",
        vmid: Number(failure[1]),
        limit: Number(limit[1]),
        storage: limit[2]!,
      });
    }
    return out;
  }

  #pbsRootUploaded(line: string): VzdumpPhase | undefined {
    const m = line.startsWith("INFO: ") ? PBS_ROOT_UPLOADED_RE.exec(line.slice(6)) : null;
    if (!m) return undefined;
    const bytes = Math.round(Number(m[2]) * 1024 ** BINARY_UNITS.indexOf(m[3]!));
    if (!m[1]) return { phase: "bytes-written", bytes };
    this.#splitRoot.set(m[1], bytes);
    if (this.#splitRoot.size < 2) return undefined;
    const total = [...this.#splitRoot.values()].reduce((a, b) => a + b, 0);
    this.#splitRoot.clear();
    return { phase: "bytes-written", bytes: total };
  }

  /** The task has stopped: a pending snapshot step is over, whatever its outcome. */
  end(): VzdumpPhase[] {
    if (!this.#snapshotPending) return [];
    this.#snapshotPending = false;
    return [{ phase: "snapshot-created", confirmedBy: "task-ended" }];
  }
}

type Rule = [RegExp, (m: RegExpExecArray) => VzdumpPhase];

// Matched against the message after `INFO: `.
const INFO_RULES: Rule[] = [
  [/^trying to get global lock - waiting\.\.\.$/, () => ({ phase: "waiting-for-global-lock" })],
  [/^got global lock$/, () => ({ phase: "got-global-lock" })],
  [/^starting new backup job: (.*)$/, (m) => ({ phase: "job-started", command: m[1]! })],
  [/^Starting Backup of VM (\d+) /, (m) => ({ phase: "guest-started", vmid: Number(m[1]) })],
  [/^backup mode: (\S+)$/, (m) => ({ phase: "backup-mode", mode: m[1]! })],
  [/^stopping virtual guest$/, () => ({ phase: "guest-stopping" })],
  [/^trying 'suspend' mode instead$/, () => ({ phase: "suspend" })],
  [/^resuming guest$/, () => ({ phase: "suspend-resumed" })],
  [/^create storage snapshot 'vzdump'$/, () => ({ phase: "snapshot-requested" })],
  // VZDump.pm exec_backup_task: "creating $archive_txt archive '$task->{target}'"; on a PBS storage the
  // target is the snapshot path (ct/<vmid>/<time>Z) and there is no tar totals line, nor an archive size
  [
    /^creating (vzdump|Proxmox Backup Server) archive '(.*)'$/,
    (m) => ({ phase: "archive-started", path: m[2]!, pbs: m[1] !== "vzdump" }),
  ],
  [/^Total bytes written: (\d+)/, (m) => ({ phase: "bytes-written", bytes: Number(m[1]) })],
  [
    /^archive file size: ([\d.]+)(KB|MB|GB|TB)$/,
    (m) => ({
      phase: "archive-size",
      text: `${m[1]}${m[2]}`,
      approxBytes: Math.round(Number(m[1]) * UNITS[m[2]!]!),
    }),
  ],
  [/^restarting vm$/, () => ({ phase: "restarting" })],
  // PVE prints "<1" for a restart that took less than a second ($log_vm_online_again); that reads as 0.
  [
    /^guest is online again after (<1|\d+) seconds$/,
    (m) => ({ phase: "guest-online", afterSeconds: m[1] === "<1" ? 0 : Number(m[1]) }),
  ],
  [
    /^Finished Backup of VM (\d+) \(([^)]*)\)$/,
    (m) => ({ phase: "guest-finished", vmid: Number(m[1]), duration: m[2]! }),
  ],
  [/^Backup job finished successfully$/, () => ({ phase: "finished", ok: true })],
  [/^Backup job finished with errors$/, () => ({ phase: "finished", ok: false })],
];

const OTHER_RULES: Rule[] = [
  [/^WARN: (.*)$/, (m) => ({ phase: "warning", text: m[1]! })],
  [/^TASK (.*)$/, (m) => ({ phase: "task-end", marker: m[1]! })],
  [/^ERROR: Backup job failed - (.*)$/, (m) => ({ phase: "job-failed", error: m[1]! })],
  // Waited `lockwait` minutes (" - got timeout"), or, with lockwait=0, refused at once without the
  // "waiting..." line before it (" (wait = 0)", VZDump.pm getlock). Both mean another backup holds the node.
  [
    /^ERROR: (can't acquire lock '[^']*' (?:- .*|\(wait = \d+\)))$/,
    (m) => ({ phase: "global-lock-timeout", text: m[1]! }),
  ],
];

function firstMatch(rules: Rule[], text: string): VzdumpPhase | undefined {
  for (const [re, make] of rules) {
    const m = re.exec(text);
    if (m) return make(m);
  }
  return undefined;
}

function recogniseLine(line: string, failure: RegExpExecArray | null): VzdumpPhase | undefined {
  if (failure) return { phase: "guest-failed", vmid: Number(failure[1]), error: failure[2]! };
  if (line.startsWith("INFO: ")) return firstMatch(INFO_RULES, line.slice(6));
  return firstMatch(OTHER_RULES, line);
}
