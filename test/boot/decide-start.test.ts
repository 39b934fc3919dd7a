import { describe, expect, it } from "vitest";
import type { BackupMarker } from "../../agent/backup/marker.ts";
import { decideStart, type StartFacts, TASK_BOOT_SLACK_S } from "../../agent/boot/decide-start.ts";
import type { Identity } from "../../agent/identity/decide-identity.ts";

/** Every row of the start-up decision table (docs/restore.md), one test each. */
const marker = (mode: "snapshot" | "stop"): BackupMarker => ({
  backupId: "bk-20261127-0800-abcd",
  mode,
  takenAt: "2026-11-27T08:00:00.000Z",
  vmid: 101,
  node: "pve1",
  hostname: "web",
});
const verified = (vmid = 101): Identity => ({ state: "verified", vmid, node: "pve1", hostname: "web" });
const unverified = (signal: Extract<Identity, { state: "unverified" }>["signal"]): Identity => ({
  state: "unverified",
  signal,
  reason: `because ${signal}`,
  hint: "",
  vmid: 101,
  node: "pve1",
});
const facts = (f: Partial<StartFacts>): StartFacts => ({
  marker: undefined,
  journal: undefined,
  record: undefined,
  identity: verified(),
  taskEndedAt: undefined,
  bootedAt: 1_800_000_000,
  ...f,
});
const record = {
  detectedAt: "2026-11-27T09:00:00.000Z",
  fromBackupId: "bk-1",
  takenAt: "2026-11-27T08:00:00.000Z",
  originalVmid: 101,
  signals: ["marker", "uptime"],
  originalUpid: null,
};
const stopJournal = { backupId: "bk-1", finished: false, mode: "stop" as const, upid: "UPID:x", vmid: 101 };

describe("the start-up decision table", () => {
  it("row normal: no marker and a verified identity is a normal start that replays the journal as its own", () => {
    expect(decideStart(facts({}))).toEqual({ kind: "own", row: "normal", clearRecord: false });
  });

  it("row unverified: no marker and a failed identity check resumes stacks locally only, naming the signal", () => {
    expect(decideStart(facts({ identity: unverified("mac-mismatch") }))).toMatchObject({
      kind: "unverified",
      row: "unverified",
      signal: "mac-mismatch",
    });
  });

  it("row no-pve: no marker and PVE unreachable leaves the decision for later", () => {
    expect(
      decideStart(facts({ identity: { state: "error", code: "pve_network_error", message: "down" } })),
    ).toMatchObject({ kind: "undecided", row: "no-pve" });
  });

  it("row own-backup: the original back from its own stop-mode backup (marker, journal with upid, identity and uptime match) is not a restore", () => {
    expect(
      decideStart(
        facts({
          marker: marker("stop"),
          journal: stopJournal,
          // vzdump restarted the guest, then finished the task: the task ended after this boot.
          taskEndedAt: 1_800_000_020,
          bootedAt: 1_800_000_000,
        }),
      ),
    ).toEqual({ kind: "own", row: "own-backup", clearRecord: false });
  });

  it("row own-backup: the original whose agent died during a snapshot-mode backup replays it as its own", () => {
    expect(
      decideStart(facts({ marker: marker("snapshot"), journal: { ...stopJournal, mode: "snapshot" } })),
    ).toMatchObject({ kind: "own", row: "own-backup" });
  });

  it("row own-backup: a stop-mode task still running (no end yet) is the original's", () => {
    expect(
      decideStart(facts({ marker: marker("stop"), journal: stopJournal, taskEndedAt: undefined })),
    ).toMatchObject({ kind: "own", row: "own-backup" });
  });

  it("row copy-task-ended-before-boot: identity checks pass but the stop-mode task ended before this system booted", () => {
    const d = decideStart(
      facts({
        marker: marker("stop"),
        journal: stopJournal,
        taskEndedAt: 1_800_000_000 - TASK_BOOT_SLACK_S - 1,
        bootedAt: 1_800_000_000,
      }),
    );
    expect(d).toMatchObject({
      kind: "restored-copy",
      row: "copy-task-ended-before-boot",
      announce: true,
      originalVmid: 101,
      signals: ["marker", "task-ended-before-boot", "duplicate-mac"],
    });
  });

  it("row copy-task-ended-before-boot does not apply to snapshot mode: the original may have rebooted since", () => {
    expect(
      decideStart(
        facts({
          marker: marker("snapshot"),
          journal: { ...stopJournal, mode: "snapshot" },
          taskEndedAt: 1_000,
          bootedAt: 1_800_000_000,
        }),
      ),
    ).toMatchObject({ kind: "own", row: "own-backup" });
  });

  it("row copy-original-exists: marker + the original running much longer than this system (uptime) is a copy with a duplicate MAC", () => {
    expect(decideStart(facts({ marker: marker("snapshot"), identity: unverified("uptime") }))).toMatchObject({
      kind: "restored-copy",
      row: "copy-original-exists",
      originalExists: true,
      signals: ["marker", "uptime", "duplicate-mac"],
    });
  });

  it("row copy-original-exists: marker + the original stopped while this system runs is a copy", () => {
    expect(
      decideStart(facts({ marker: marker("snapshot"), identity: unverified("guest-stopped") })),
    ).toMatchObject({ kind: "restored-copy", row: "copy-original-exists" });
  });

  it("row copy-original-exists: marker + a reset MAC is a copy without a MAC collision", () => {
    expect(
      decideStart(facts({ marker: marker("snapshot"), identity: unverified("mac-mismatch") })),
    ).toMatchObject({ kind: "restored-copy", signals: ["marker", "mac-mismatch"] });
  });

  it("row copy-original-exists: marker + another hostname is a copy", () => {
    expect(
      decideStart(facts({ marker: marker("snapshot"), identity: unverified("hostname-mismatch") })),
    ).toMatchObject({ kind: "restored-copy", row: "copy-original-exists" });
  });

  it("row copy-original-gone: marker + the token's guest no longer exists is a copy of a destroyed original", () => {
    expect(
      decideStart(facts({ marker: marker("snapshot"), identity: unverified("vmid-missing") })),
    ).toMatchObject({
      kind: "restored-copy",
      row: "copy-original-gone",
      originalExists: false,
      signals: ["marker", "vmid-missing"],
    });
  });

  it("row copy-already-enrolled: marker of vmid 101 but the token verifies as 201 is a copy that already has its own identity", () => {
    expect(decideStart(facts({ marker: marker("snapshot"), identity: verified(201) }))).toEqual({
      kind: "restored-enrolled",
      row: "copy-already-enrolled",
      originalVmid: 101,
      signals: ["marker", "vmid-changed"],
    });
  });

  it("row marker-no-pve: marker and PVE unreachable is undecided, never replayed against PVE", () => {
    expect(
      decideStart(
        facts({ marker: marker("stop"), identity: { state: "error", code: "pve_timeout", message: "t" } }),
      ),
    ).toMatchObject({ kind: "undecided", row: "marker-no-pve" });
  });

  it("row marker-token-scope: marker and a token that sees several guests is undecided", () => {
    expect(
      decideStart(facts({ marker: marker("snapshot"), identity: unverified("token-scope") })),
    ).toMatchObject({ kind: "undecided", row: "marker-token-scope", signal: "token-scope" });
  });

  it("row known-copy: a copy stays a copy on later starts (no marker any more), without announcing again", () => {
    expect(decideStart(facts({ record, identity: verified(101) }))).toMatchObject({
      kind: "restored-copy",
      row: "known-copy",
      announce: false,
      signals: ["marker", "uptime"],
    });
  });

  it("row known-copy-enrolled-by-config: a copy whose token now verifies as another vmid is itself again", () => {
    expect(decideStart(facts({ record, identity: verified(201) }))).toEqual({
      kind: "own",
      row: "known-copy-enrolled-by-config",
      clearRecord: true,
    });
  });
});
