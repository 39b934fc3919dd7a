import { describe, expect, it } from "vitest";
import type { ContainerDetails } from "../../agent/docker/docker-engine.ts";
import { assessArchiveCoverage } from "../../agent/doctor/assess-archive-coverage.ts";
import { ctMountPoints } from "../../agent/pve/mount-points.ts";
import {
  type CoverageFacts,
  coverageText,
  mountCoverage,
  mountPointOf,
  notInArchive,
  type PathFacts,
  pathsToResolve,
  type VolumeFacts,
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

  it("answers per bind mount and volume, skipping tmpfs", () => {
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
        ]),
      ],
      mps,
    );
    expect(coverage.map((c) => [c.destination, c.inArchive, c.mountPoint?.key])).toEqual([
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
    expect(coverage.map((c) => [c.destination, c.source, c.inArchive, c.mountPoint?.key])).toEqual([
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

describe("data a CT mount point does not decide (standard excludes, guest mounts, volume options, symlinks)", () => {
  const mps = ctMountPoints(CONFIG);
  const facts = (
    volumes: Record<string, VolumeFacts> = {},
    paths: Record<string, Partial<PathFacts>> = {},
  ): CoverageFacts => ({
    volumes: new Map(Object.entries(volumes)),
    paths: new Map(Object.entries(paths).map(([p, f]) => [p, { real: p, foreignFs: false, ...f }])),
  });
  const judge = (mounts: ContainerDetails["mounts"], f: CoverageFacts) =>
    mountCoverage([stack("app", mounts)], mps, f).map((c) => [
      c.destination,
      c.inArchive,
      c.cause,
      c.mountPoint?.key,
    ]);
  const bind = (source: string, destination: string, rw = true) => ({
    type: "bind",
    name: undefined,
    source,
    destination,
    rw,
  });
  const vol = (name: string, destination: string) => ({
    type: "volume",
    name,
    source: `/var/lib/docker/volumes/${name}/_data`,
    destination,
    driver: "local",
  });

  it("judges a local volume with o=bind by its device path, not by its _data mountpoint", () => {
    const f = facts({
      bulk: { driver: "local", options: { type: "none", o: "bind", device: "/mnt/bulk/app" } },
    });
    expect(pathsToResolve([stack("app", [vol("bulk", "/data")])], f.volumes)).toEqual(["/mnt/bulk/app"]);
    const coverage = mountCoverage([stack("app", [vol("bulk", "/data")])], mps, f);
    expect(coverage.map((c) => [c.inArchive, c.cause, c.mountPoint?.key, c.realPath])).toEqual([
      [false, "mount point", "mp0", "/mnt/bulk/app"],
    ]);
    expect(coverageText(coverage[0]!)).toContain(
      "(volume bulk at /var/lib/docker/volumes/bulk/_data → /mnt/bulk/app)",
    );
    expect(notInArchive(coverage)).toMatchObject([
      { mountPoint: "mp0", reason: "not a volume", volume: "bulk" },
    ]);
  });

  it("marks an nfs or cifs volume, a block-device volume and another driver's volume as not in the archive; a tmpfs volume holds nothing", () => {
    const f = facts({
      share: { driver: "local", options: { type: "nfs", o: "addr=192.0.2.5,rw", device: ":/export/app" } },
      smb: { driver: "local", options: { type: "cifs", device: "//nas/app", o: "username=x" } },
      disk: { driver: "local", options: { type: "ext4", device: "/dev/sdc1" } },
      scratch: { driver: "local", options: { type: "tmpfs", device: "tmpfs" } },
      plugin: { driver: "rclone", options: {} },
    });
    const mounts = [
      vol("share", "/share"),
      vol("smb", "/smb"),
      vol("disk", "/disk"),
      vol("scratch", "/scratch"),
    ];
    mounts.push({ type: "volume", name: "plugin", source: "", destination: "/remote", driver: "rclone" });
    expect(judge(mounts, f)).toEqual([
      ["/share", false, "mounted volume", undefined],
      ["/smb", false, "mounted volume", undefined],
      ["/disk", false, "mounted volume", undefined],
      ["/remote", false, "volume driver", undefined],
    ]);
    const coverage = mountCoverage([stack("app", mounts)], mps, f);
    expect(coverageText(coverage[0]!)).toBe(
      "p/app: /share (volume share at /var/lib/docker/volumes/share/_data) is NOT in the backup: Docker mounts a nfs file system there at container start, and vzdump archives the directory beneath it, empty",
    );
    expect(coverageText(coverage[3]!)).toContain("volume driver rclone keeps its data outside the guest");
    // protocol v1's notInArchive carries only what a CT mount point leaves out; the rest is in the warnings
    expect(notInArchive(coverage)).toEqual([]);
    expect(assessArchiveCoverage(101, mps, coverage).map((x) => x.level)).toEqual([
      "warn",
      "warn",
      "warn",
      "warn",
    ]);
  });

  it("flags vzdump's standard excludes: anything inside /tmp and /var/tmp, pid files in /var/run", () => {
    expect(
      judge(
        [
          bind("/tmp/uploads", "/u"),
          bind("/var/tmp/", "/vt"),
          bind("/tmpdata", "/t"),
          bind("/srv/www", "/w"),
        ],
        NO_PATHS,
      ),
    ).toEqual([
      ["/u", false, "standard exclude", "rootfs"],
      ["/vt", false, "standard exclude", "rootfs"],
      ["/t", true, "mount point", "rootfs"],
      ["/w", true, "mount point", "rootfs"],
    ]);
  });

  it("flags a source on a file system mounted inside the guest; the CT's own mount points are judged by their rules", () => {
    const f = facts({}, { "/srv/nfs/app": { foreignFs: true }, "/mnt/bulk/x": {}, "/srv/www": {} });
    const coverage = mountCoverage(
      [stack("app", [bind("/srv/nfs/app", "/n"), bind("/mnt/bulk/x", "/b"), bind("/srv/www", "/w")])],
      mps,
      f,
    );
    expect(coverage.map((c) => [c.destination, c.inArchive, c.cause])).toEqual([
      ["/n", false, "guest mount"],
      ["/b", false, "mount point"],
      ["/w", true, "mount point"],
    ]);
    expect(coverageText(coverage[0]!)).toContain("it lies on a file system mounted inside the guest");
  });

  it("resolves symlinks before judging, and says when a source could not be resolved", () => {
    const f = facts({}, { "/srv/app/data": { real: "/mnt/bulk/data" }, "/opt/gone": { real: undefined } });
    const coverage = mountCoverage(
      [stack("app", [bind("/srv/app/data", "/data"), bind("/opt/gone", "/g")])],
      mps,
      f,
    );
    expect(coverage.map((c) => [c.inArchive, c.mountPoint?.key, c.realPath, c.unresolved])).toEqual([
      [false, "mp0", "/mnt/bulk/data", undefined],
      [true, "rootfs", undefined, true],
    ]);
    expect(coverageText(coverage[0]!)).toContain("(/srv/app/data → /mnt/bulk/data) is NOT in the backup");
    expect(coverageText(coverage[1]!)).toContain(
      "(/opt/gone, a path the agent cannot see, judged as written)",
    );
  });

  it("does not judge mounts that hold no application data: runtime paths, and / or Docker's data-root read-only", () => {
    expect(
      judge(
        [
          bind("/", "/host", false),
          bind("/var/lib/docker/", "/var/lib/docker", false),
          bind("/proc", "/host/proc", false),
          bind("/sys", "/sys", false),
          bind("/var/run/docker.sock", "/var/run/docker.sock"),
          bind("/run/udev", "/run/udev"),
          bind("/srv/config", "/config", false),
          bind("/", "/rootfs"),
        ],
        NO_PATHS,
      ),
    ).toEqual([
      ["/config", true, "mount point", "rootfs"],
      ["/rootfs", true, "mount point", "rootfs"],
      // a writable bind of / is judged, with the left-out mount points it shows the container
      ["/rootfs/mnt/bulk", false, "mount point", "mp0"],
      ["/rootfs/mnt/usb", false, "mount point", "mp1"],
      ["/rootfs/srv/data", false, "mount point", "mp2"],
    ]);
  });
});

const NO_PATHS: CoverageFacts = { volumes: new Map(), paths: new Map() };
