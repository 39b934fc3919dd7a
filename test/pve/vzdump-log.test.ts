import { describe, expect, it } from "vitest";
import { VzdumpLogRecogniser, type VzdumpPhase } from "../../agent/pve/vzdump-log.ts";

/** Feeds every line and returns the phases in order, with the index of the line that completed each. */
function run(lines: string[], ended = true): { phases: VzdumpPhase[]; at: number[]; warnings: number } {
  const r = new VzdumpLogRecogniser();
  const phases: VzdumpPhase[] = [];
  const at: number[] = [];
  lines.forEach((line, i) => {
    for (const p of r.feed(line)) {
      phases.push(p);
      at.push(i);
    }
  });
  if (ended) {
    for (const p of r.end()) {
      phases.push(p);
      at.push(lines.length);
    }
  }
  return { phases, at, warnings: r.warnings };
}
const names = (phases: VzdumpPhase[]) => phases.map((p) => p.phase);

// pve-api-facts.md §4, snapshot mode, running CT, with the optional lines present.
const SNAPSHOT_LOG = [
  "INFO: starting new backup job: vzdump 100 --storage bk --mode snapshot --compress zstd --node pve1",
  "INFO: Starting Backup of VM 100 (lxc)",
  "INFO: Backup started at 2025-01-01 02:00:00",
  "INFO: status = running",
  "INFO: CT Name: myct",
  "INFO: including mount point rootfs ('/') in backup",
  "INFO: backup mode: snapshot",
  "INFO: ionice priority: 7",
  "INFO: create storage snapshot 'vzdump'",
  '  Logical volume "snap_vm-100-disk-0_vzdump" created.',
  "INFO: creating vzdump archive '/mnt/pve/bk/dump/vzdump-lxc-100-2025_01_01-02_00_00.tar.zst'",
  "INFO: Total bytes written: 878131200 (838MiB, 82MiB/s)",
  "INFO: archive file size: 245MB",
  "INFO: adding notes to backup",
  "INFO: prune older backups with retention: keep-daily=7, keep-last=3",
  "INFO: pruned 1 backup(s) not covered by keep-retention policy",
  "INFO: cleanup temporary 'vzdump' snapshot",
  "INFO: Finished Backup of VM 100 (00:00:17)",
  "INFO: Backup finished at 2025-01-01 02:00:17",
  "INFO: Backup job finished successfully",
  "TASK OK",
];

describe("pve vzdump log phase recogniser", () => {
  it("recognises a snapshot-mode backup in order, with snapshot-created on the line after the create step", () => {
    const { phases, at } = run(SNAPSHOT_LOG);
    expect(names(phases)).toEqual([
      "job-started",
      "guest-started",
      "backup-mode",
      "snapshot-requested",
      "snapshot-created",
      "archive-started",
      "bytes-written",
      "archive-size",
      "guest-finished",
      "finished",
      "task-end",
    ]);
    // The unprefixed storage-plugin line (index 9) is what proves the snapshot exists.
    expect(at[names(phases).indexOf("snapshot-created")]).toBe(9);
    expect(phases).toContainEqual({ phase: "snapshot-created", confirmedBy: "next-line" });
    expect(phases).toContainEqual({
      phase: "archive-started",
      path: "/mnt/pve/bk/dump/vzdump-lxc-100-2025_01_01-02_00_00.tar.zst",
      pbs: false,
    });
    expect(phases).toContainEqual({ phase: "bytes-written", bytes: 878131200 });
    expect(phases).toContainEqual({ phase: "archive-size", text: "245MB", approxBytes: 245 * 1024 * 1024 });
    expect(phases).toContainEqual({ phase: "guest-finished", vmid: 100, duration: "00:00:17" });
    expect(phases).toContainEqual({ phase: "finished", ok: true });
  });

  it("does not report the snapshot before a later line has appeared", () => {
    const { phases } = run(SNAPSHOT_LOG.slice(0, 9), false);
    expect(names(phases)).not.toContain("snapshot-created");
  });

  it("reports the snapshot step over when the task ends right after it", () => {
    const { phases } = run(SNAPSHOT_LOG.slice(0, 9), true);
    expect(phases.at(-1)).toEqual({ phase: "snapshot-created", confirmedBy: "task-ended" });
  });

  it("takes PVE's unprefixed 'snapshot create failed' after the create step for a failed snapshot, not a taken one", () => {
    // AbstractConfig.pm snapshot_create: a plain warn, the clean-up's own output, then the guest fails.
    const { phases } = run(
      [
        ...SNAPSHOT_LOG.slice(0, 9),
        "snapshot create failed: starting cleanup",
        '  Logical volume "snap_vm-100-disk-0_vzdump" successfully removed.',
        "ERROR: Backup of VM 100 failed - lvcreate snapshot 'pve/snap_vm-100-disk-0_vzdump' error: no space",
        "INFO: Failed at 2025-01-01 02:00:03",
        "INFO: Backup job finished with errors",
        "TASK ERROR: job errors",
      ],
      true,
    );
    expect(names(phases)).not.toContain("snapshot-created");
    expect(names(phases)).toContain("snapshot-failed");
  });

  it("recognises a stop-mode backup: stopping, restarting and online again", () => {
    const { phases } = run([
      "INFO: starting new backup job: vzdump 100 --mode stop --storage bk",
      "INFO: Starting Backup of VM 100 (lxc)",
      "INFO: Backup started at 2025-01-01 02:00:00",
      "INFO: status = running",
      "INFO: backup mode: stop",
      "INFO: ionice priority: 7",
      "INFO: CT Name: myct",
      "INFO: including mount point rootfs ('/') in backup",
      "INFO: stopping virtual guest",
      "INFO: creating vzdump archive '/mnt/pve/bk/dump/vzdump-lxc-100-2025_01_01-02_00_00.tar.zst'",
      "INFO: Total bytes written: 1000 (1KiB, 1KiB/s)",
      "INFO: archive file size: 1.50GB",
      "INFO: restarting vm",
      "INFO: guest is online again after 12 seconds",
      "INFO: Finished Backup of VM 100 (00:01:02)",
      "INFO: Backup finished at 2025-01-01 02:01:02",
      "INFO: Backup job finished successfully",
      "TASK OK",
    ]);
    expect(names(phases)).toEqual([
      "job-started",
      "guest-started",
      "backup-mode",
      "guest-stopping",
      "archive-started",
      "bytes-written",
      "archive-size",
      "restarting",
      "guest-online",
      "guest-finished",
      "finished",
      "task-end",
    ]);
    expect(phases).toContainEqual({ phase: "backup-mode", mode: "stop" });
    expect(phases).toContainEqual({ phase: "guest-online", afterSeconds: 12 });
    expect(phases).toContainEqual({
      phase: "archive-size",
      text: "1.50GB",
      approxBytes: Math.round(1.5 * 1024 ** 3),
    });
  });

  it("reads PVE's '<1 seconds' online-again quirk as zero seconds", () => {
    expect(run(["INFO: guest is online again after <1 seconds"]).phases).toEqual([
      { phase: "guest-online", afterSeconds: 0 },
    ]);
  });

  it("recognises a per-guest failure and does not claim a snapshot that failed", () => {
    const { phases } = run([
      "INFO: starting new backup job: vzdump 100 --storage bk",
      "INFO: Starting Backup of VM 100 (lxc)",
      "INFO: backup mode: snapshot",
      "INFO: create storage snapshot 'vzdump'",
      "ERROR: Backup of VM 100 failed - snapshot feature is not available",
      "INFO: Failed at 2025-01-01 02:00:03",
      "INFO: Backup job finished with errors",
      "TASK ERROR: job errors",
    ]);
    expect(names(phases)).not.toContain("snapshot-created");
    expect(phases).toContainEqual({
      phase: "guest-failed",
      vmid: 100,
      error: "snapshot feature is not available",
    });
    expect(phases).toContainEqual({ phase: "finished", ok: false });
    expect(phases.at(-1)).toEqual({ phase: "task-end", marker: "ERROR: job errors" });
  });

  it("recognises a fatal job error", () => {
    const { phases } = run(["ERROR: Backup job failed - no such storage", "TASK ERROR: no such storage"]);
    expect(phases[0]).toEqual({ phase: "job-failed", error: "no such storage" });
  });

  it("recognises waiting for the global lock, getting it, and timing out", () => {
    expect(
      names(
        run([
          "INFO: trying to get global lock - waiting...",
          "INFO: got global lock",
          "INFO: starting new backup job: vzdump 100 --storage bk",
        ]).phases,
      ),
    ).toEqual(["waiting-for-global-lock", "got-global-lock", "job-started"]);
    expect(
      run([
        "INFO: trying to get global lock - waiting...",
        "ERROR: can't acquire lock '/var/run/vzdump.lock' - got timeout",
      ]).phases[1],
    ).toEqual({
      phase: "global-lock-timeout",
      text: "can't acquire lock '/var/run/vzdump.lock' - got timeout",
    });
  });

  it("recognises the immediate refusal of lockwait 0 as a global-lock timeout, with no waiting line before it", () => {
    // pve-api-facts.md §9: with lockwait=0 getlock dies at once, so the busy node shows only this line.
    const { phases } = run(["ERROR: can't acquire lock '/var/run/vzdump.lock' (wait = 0)"]);
    expect(phases).toEqual([
      { phase: "global-lock-timeout", text: "can't acquire lock '/var/run/vzdump.lock' (wait = 0)" },
    ]);
  });

  it("recognises a guest failure over the storage's protected-backup limit, and no other failure as one", () => {
    // pve-api-facts.md §1: protected=1 over max-protected-backups fails the guest inside the task.
    const { phases } = run([
      "ERROR: Backup of VM 146 failed - The number of protected backups per guest is limited to 5 on storage 'bk'",
      "INFO: Failed at 2025-01-01 02:00:01",
      "INFO: Backup job finished with errors",
      "TASK ERROR: job errors",
    ]);
    expect(names(phases)).toEqual(["guest-failed", "protected-limit", "finished", "task-end"]);
    expect(phases[1]).toEqual({ phase: "protected-limit", vmid: 146, limit: 5, storage: "bk" });
    const other = run([
      "ERROR: Backup of VM 100 failed - There is a max backup limit of 3 enforced by the target storage or the vzdump parameters. Either increase the limit or delete old backups.",
    ]);
    expect(names(other.phases)).toEqual(["guest-failed"]);
  });

  it("recognises the fallback to suspend mode and the thaw that ends it", () => {
    const { phases } = run([
      "INFO: backup mode: snapshot",
      "INFO: mode failure - some volumes do not support snapshots",
      "INFO: trying 'suspend' mode instead",
      "INFO: backup mode: suspend",
      "INFO: starting first sync /proc/123/root/ to /var/tmp/vzdumptmp123",
      "INFO: first sync finished - transferred 1.2G in 10s",
      "INFO: suspending guest",
      "INFO: starting final sync /proc/123/root/ to /var/tmp/vzdumptmp123",
      "INFO: resuming guest",
      "INFO: creating vzdump archive '/mnt/pve/bk/dump/vzdump-lxc-100-2025_01_01-02_00_00.tar'",
    ]);
    expect(names(phases)).toEqual([
      "backup-mode",
      "suspend",
      "backup-mode",
      "suspend-resumed",
      "archive-started",
    ]);
  });

  it("counts WARN lines only, and accepts the timestamped copy of the log", () => {
    const { phases, warnings } = run([
      "WARN: some files changed during backup",
      "2025-01-01 02:00:01 WARN: second",
      "some plain perl warn text",
      "2025-01-01 02:00:02 INFO: create storage snapshot 'vzdump'",
      "2025-01-01 02:00:03 INFO: creating vzdump archive '/x.tar'",
      "TASK WARNINGS: 2",
    ]);
    expect(warnings).toBe(2);
    expect(names(phases)).toEqual([
      "warning",
      "warning",
      "snapshot-requested",
      "snapshot-created",
      "archive-started",
      "task-end",
    ]);
  });
});

// A PBS storage (VZDump.pm exec_backup_task's PBS branch, LXC.pm `archive`, the client's own lines), with
// a second backed-up volume: the CT is frozen around the snapshots ("suspend vm to make snapshot").
const PBS_LOG = [
  "INFO: starting new backup job: vzdump 101 --storage pbs --mode snapshot --node pve1",
  "INFO: Starting Backup of VM 101 (lxc)",
  "INFO: status = running",
  "INFO: CT Name: web1",
  "INFO: including mount point rootfs ('/') in backup",
  "INFO: excluding bind mount point mp0 ('/mnt/bulk') from backup (not a volume)",
  "INFO: including mount point mp1 ('/mnt/data') in backup",
  "INFO: backup mode: snapshot",
  "INFO: ionice priority: 7",
  "INFO: suspend vm to make snapshot",
  "INFO: create storage snapshot 'vzdump'",
  "INFO: resume vm",
  "INFO: guest is online again after <1 seconds",
  "INFO: creating Proxmox Backup Server archive 'ct/101/2026-12-04T02:30:14Z'",
  "INFO: run: /usr/bin/proxmox-backup-client backup --crypt-mode=none pct.conf:/var/tmp/vzdumptmp1234_101/etc/vzdump/pct.conf root.pxar:/mnt/vzsnap0 --include-dev /mnt/vzsnap0/./ --include-dev /mnt/vzsnap0/./mnt/data --backup-type ct --backup-id 101 --backup-time 1796437814 --repository root@pam@192.0.2.10:store",
  "INFO: Starting backup: ct/101/2026-12-04T02:30:14Z",
  "INFO: Client name: pve1",
  "INFO: Starting backup protocol: Fri Dec  4 03:30:14 2026",
  "INFO: No previous manifest available.",
  "INFO: Upload config file '/var/tmp/vzdumptmp1234_101/etc/vzdump/pct.conf' to 'root@pam@192.0.2.10:8007:store' as pct.conf.blob",
  "INFO: Upload directory '/mnt/vzsnap0' to 'root@pam@192.0.2.10:8007:store' as root.pxar.didx",
  "INFO: root.pxar: had to backup 1.184 GiB of 1.5 GiB (compressed 503.652 MiB) in 14.43s",
  "INFO: root.pxar: average backup speed: 84.033 MiB/s",
  "INFO: Uploaded backup catalog (1.09 MiB)",
  "INFO: Duration: 15.02s",
  "INFO: End Time: Fri Dec  4 03:30:29 2026",
  "INFO: adding notes to backup",
  "INFO: cleanup temporary 'vzdump' snapshot",
  "INFO: Finished Backup of VM 101 (00:00:16)",
  "INFO: Backup job finished successfully",
  "TASK OK",
];

describe("pve vzdump log phase recogniser, PBS storage", () => {
  it("takes the PBS archive line as the archive start and the client's total as the bytes written; the snapshot exists at 'resume vm'", () => {
    const { phases, at } = run(PBS_LOG);
    expect(names(phases)).toEqual([
      "job-started",
      "guest-started",
      "backup-mode",
      "snapshot-requested",
      "snapshot-created",
      "guest-online",
      "archive-started",
      "bytes-written",
      "guest-finished",
      "finished",
      "task-end",
    ]);
    expect(at[names(phases).indexOf("snapshot-created")]).toBe(PBS_LOG.indexOf("INFO: resume vm"));
    expect(phases.find((p) => p.phase === "archive-started")).toEqual({
      phase: "archive-started",
      path: "ct/101/2026-12-04T02:30:14Z",
      pbs: true,
    });
    expect(phases.find((p) => p.phase === "bytes-written")).toEqual({
      phase: "bytes-written",
      bytes: Math.round(1.5 * 1024 ** 3),
    });
  });
});

describe("pve vzdump log phase recogniser, PBS split archive (change-detection-mode data or metadata)", () => {
  // LXC.pm `archive` adds --change-detection-mode; the client then uploads root.mpxar and root.ppxar and prints
  // backup_writer.rs `upload_stream`'s line once per archive (the .didx stripped).
  const split = (first: string, second: string) =>
    PBS_LOG.flatMap((line) =>
      line.startsWith("INFO: root.pxar: had to backup")
        ? [first, "INFO: root.mpxar: average backup speed: 1.5 MiB/s", second]
        : line.startsWith("INFO: root.pxar: average")
          ? ["INFO: root.ppxar: average backup speed: 11.2 MiB/s"]
          : [
              line.replace(
                "root.pxar:/mnt/vzsnap0",
                "root.pxar:/mnt/vzsnap0 --change-detection-mode=metadata",
              ),
            ],
    );
  const meta = "INFO: root.mpxar: had to backup 1.5 MiB of 3 MiB (compressed 312.5 KiB) in 2.01s";
  const payload = "INFO: root.ppxar: had to backup 22.5 MiB of 1.5 GiB (compressed 11.25 MiB) in 2.02s";
  const total = 3 * 1024 ** 2 + Math.round(1.5 * 1024 ** 3);

  it("sums the metadata and payload archives' totals into one bytes-written, in either order", () => {
    for (const [first, second] of [
      [meta, payload],
      [payload, meta],
    ] as const) {
      const log = split(first, second);
      const { phases, at } = run(log);
      expect(phases.filter((p) => p.phase === "bytes-written")).toEqual([
        { phase: "bytes-written", bytes: total },
      ]);
      expect(at[names(phases).indexOf("bytes-written")]).toBe(log.indexOf(second));
    }
  });

  it("reports no bytes when only one of the two archives was uploaded", () => {
    const { phases } = run(split(meta, "ERROR: Backup of VM 101 failed - upload failed"));
    expect(names(phases)).not.toContain("bytes-written");
  });
});
