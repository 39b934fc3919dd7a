import { describe, expect, it } from "vitest";
import type { ContainerDetails } from "../../agent/docker/docker-engine.ts";
import { assessArchiveCoverage } from "../../agent/doctor/assess-archive-coverage.ts";
import { ctMountPoints } from "../../agent/pve/mount-points.ts";
import {
  coverageText,
  mountCoverage,
  mountPointOf,
  notInArchive,
} from "../../agent/quiesce/archive-coverage.ts";
import type { StackFacts } from "../../agent/quiesce/stack-facts.ts";

// A CT config as GET /nodes/{node}/lxc/{vmid}/config returns it, keys in no particular order.
const CONFIG = {
  hostname: "files",
  mp10: "local-lvm:vm-101-disk-3,mp=/srv/data/nested,backup=1,size=2G",
  mp2: "local-lvm:vm-101-disk-2,mp=/srv/data/,backup=0,size=4G",
  mp1: "/dev/sdb1,mp=/mnt/usb",
  mp0: "/mnt/pve/bulk/101,mp=/mnt/bulk",
  mp3: "volume=local-lvm:vm-101-disk-4,mp=/var/lib/docker,backup=1,size=20G",
  rootfs: "local-lvm:vm-101-disk-0,size=8G",
  unused0: "local-lvm:vm-101-disk-9",
};

describe("CT mount points as vzdump judges them (LXC/Config.pm mountpoint_backup_enabled)", () => {
  it("walks rootfs then mpN in numeric order; bind and device are 'not a volume', a volume needs backup=1", () => {
    expect(ctMountPoints(CONFIG)).toEqual([
      {
        key: "rootfs",
        volume: "local-lvm:vm-101-disk-0",
        path: "/",
        type: "volume",
        inBackup: true,
        reason: "rootfs",
      },
      {
        key: "mp0",
        volume: "/mnt/pve/bulk/101",
        path: "/mnt/bulk",
        type: "bind",
        inBackup: false,
        reason: "not a volume",
      },
      {
        key: "mp1",
        volume: "/dev/sdb1",
        path: "/mnt/usb",
        type: "device",
        inBackup: false,
        reason: "not a volume",
      },
      {
        key: "mp2",
        volume: "local-lvm:vm-101-disk-2",
        path: "/srv/data",
        type: "volume",
        inBackup: false,
        reason: "disabled",
      },
      {
        key: "mp3",
        volume: "local-lvm:vm-101-disk-4",
        path: "/var/lib/docker",
        type: "volume",
        inBackup: true,
        reason: "enabled",
      },
      {
        key: "mp10",
        volume: "local-lvm:vm-101-disk-3",
        path: "/srv/data/nested",
        type: "volume",
        inBackup: true,
        reason: "enabled",
      },
    ]);
  });

  it("leaves out a volume mount point without the backup key (the schema has no default)", () => {
    expect(ctMountPoints({ mp0: "local-lvm:vm-101-disk-1,mp=/data,size=1G" })[0]).toMatchObject({
      inBackup: false,
      reason: "disabled",
    });
  });
});

const container = (mounts: ContainerDetails["mounts"]) =>
  ({ name: "c1", mounts }) as unknown as ContainerDetails;
const stack = (service: string, mounts: ContainerDetails["mounts"]): StackFacts =>
  ({
    project: "p",
    services: [{ name: service, dependsOn: [], containers: [container(mounts)] }],
  }) as unknown as StackFacts;

describe("which container data is in the archive", () => {
  const mps = ctMountPoints(CONFIG);

  it("puts a path on the deepest mount point that holds it, segment by segment", () => {
    expect(mountPointOf("/srv/data/nested/db", mps)?.key).toBe("mp10");
    expect(mountPointOf("/srv/data/x", mps)?.key).toBe("mp2");
    expect(mountPointOf("/srv/database", mps)?.key).toBe("rootfs");
    expect(mountPointOf("/mnt/bulk", mps)?.key).toBe("mp0");
    expect(mountPointOf("/mnt/bulk/../other", mps)?.key).toBe("rootfs");
  });

  it("answers per bind mount and volume, skipping tmpfs and volumes without a source in the guest", () => {
    const coverage = mountCoverage(
      [
        stack("db", [
          { type: "bind", name: undefined, source: "/srv/data/pg", destination: "/var/lib/postgresql/data" },
          {
            type: "volume",
            name: "p_media",
            source: "/var/lib/docker/volumes/p_media/_data",
            destination: "/media",
          },
          { type: "bind", name: undefined, source: "/mnt/bulk/photos", destination: "/photos" },
          { type: "tmpfs", name: undefined, source: "", destination: "/run" },
          { type: "volume", name: "nfs", source: "", destination: "/nfs" },
        ]),
      ],
      mps,
    );
    expect(coverage.map((c) => [c.destination, c.inArchive, c.mountPoint.key])).toEqual([
      ["/var/lib/postgresql/data", false, "mp2"],
      ["/media", true, "mp3"],
      ["/photos", false, "mp0"],
    ]);
    expect(coverageText(coverage[0]!)).toBe(
      "p/db: /var/lib/postgresql/data (/srv/data/pg) is NOT in the backup: it lies on volume mount point mp2 ('/srv/data'), which has no backup=1; restored on another host, it is gone",
    );
    expect(coverageText(coverage[1]!)).toBe(
      "p/db: /media (volume p_media at /var/lib/docker/volumes/p_media/_data) is in the backup: it lies on mount point mp3 ('/var/lib/docker'), which has backup=1",
    );
    expect(notInArchive(coverage).map((n) => [n.destination, n.mountPoint, n.reason])).toEqual([
      ["/var/lib/postgresql/data", "mp2", "disabled"],
      ["/photos", "mp0", "not a volume"],
    ]);
    const findings = assessArchiveCoverage(101, mps, coverage);
    expect(findings.map((f) => f.level)).toEqual(["warn", "warn"]);
    expect(findings[0]!.hint).toContain("pct set 101 -mp2");
  });

  it("answers for a left-out mount point below a mount's source on its own: the container sees it, the archive lacks it", () => {
    const coverage = mountCoverage(
      [stack("app", [{ type: "bind", name: undefined, source: "/srv/", destination: "/app/srv" }])],
      mps,
    );
    expect(coverage.map((c) => [c.destination, c.source, c.inArchive, c.mountPoint.key])).toEqual([
      ["/app/srv", "/srv/", true, "rootfs"],
      ["/app/srv/data", "/srv/data", false, "mp2"],
    ]);
  });

  it("says all is in, and which mount points vzdump skips, when no stack uses them", () => {
    const coverage = mountCoverage(
      [stack("web", [{ type: "bind", name: undefined, source: "/srv/www", destination: "/www" }])],
      mps,
    );
    expect(assessArchiveCoverage(101, mps, coverage)).toEqual([
      {
        level: "ok",
        message:
          "archive coverage: all 1 bind mounts and volumes of the stacks are in the backup; vzdump skips mp0 '/mnt/bulk' (not a volume), mp1 '/mnt/usb' (not a volume), mp2 '/srv/data' (disabled), which no stack uses",
      },
    ]);
  });
});
