import { describe, expect, it } from "vitest";
import { assessSnapshot, type SnapshotSettings } from "../../agent/doctor/assess-snapshot.ts";
import type { CtMountPoint } from "../../agent/pve/mount-points.ts";

const rootfs: CtMountPoint = {
  key: "rootfs",
  volume: "local:101/vm-101-disk-0.raw",
  path: "/",
  type: "volume",
  inBackup: true,
  reason: "rootfs",
};
const bind: CtMountPoint = {
  key: "mp0",
  volume: "/srv/bulk",
  path: "/mnt/bulk",
  type: "bind",
  inBackup: false,
  reason: "not a volume",
};
const cfg: SnapshotSettings = {
  mode: "snapshot",
  policy: "hold",
  maxDowntimeSeconds: 300,
  maxHoldSeconds: 3600,
};
const no = { can: "no", volumes: ["rootfs (local:101/vm-101-disk-0.raw)"] } as const;

describe("doctor: can the CT be snapshotted, and what the policy does", () => {
  it("names each policy's cost on a CT that cannot snapshot; refuse is an error", () => {
    expect(assessSnapshot(no, [rootfs], cfg)).toMatchObject({
      level: "warn",
      message: expect.stringMatching(
        /whole root file system \(\/var\/lib\/docker included\).*at most 3600 s/,
      ),
    });
    expect(assessSnapshot(no, [rootfs], { ...cfg, policy: "stop" }).message).toMatch(
      /stop mode: the whole guest \(this agent too\) is down for the whole archive/,
    );
    expect(assessSnapshot(no, [rootfs], { ...cfg, policy: "crash" }).message).toMatch(
      /nothing is quiesced.*crash-consistent/,
    );
    expect(assessSnapshot(no, [rootfs], { ...cfg, policy: "refuse" }).level).toBe("error");
    // stop mode needs no snapshot at all
    expect(assessSnapshot(no, [rootfs], { ...cfg, mode: "stop" }).level).toBe("ok");
  });

  it("an unsure answer lists the mount points and says what a fallback would do", () => {
    const f = assessSnapshot(
      { can: "unknown", why: "PVE says a volume of the CT cannot be snapshotted, but it also judges mp0" },
      [rootfs, bind],
      { ...cfg, policy: "crash" },
    );
    expect(f.level).toBe("warn");
    expect(f.message).toContain("mp0 /srv/bulk not in the backup (not a volume)");
    expect(f.message).toMatch(/come back at once and the backup is crash-consistent/);
    // a bind mount never snapshots and backup=0 is how bulk data stays out: not advice to move or drop them
    expect(f.hint).not.toMatch(/move|drop/);
    expect(f.hint).toMatch(/learns from PVE's task log.*resumes the stacks at once/);
    const held = assessSnapshot(
      { can: "unknown", why: "PVE says a volume of the CT cannot be snapshotted, but it also judges mp0" },
      [rootfs, bind],
      cfg,
    );
    expect(held.hint).toMatch(/holds the stacks down through it \(at most 3600 s\)/);
  });
});
