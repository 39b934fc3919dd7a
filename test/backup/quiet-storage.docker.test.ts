import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { BackupService } from "../../agent/backup/backup-service.ts";
import type { BackupOutcome } from "../../agent/backup/backup-types.ts";
import { selfScopedGuest } from "../pve-sim/fixtures.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { simClient } from "../support/sim-client.ts";

let h: GuestHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describeDocker("a scheduled backup and another guest's archive (pve sim + real docker)", () => {
  it("waits while another guest's archive grows the backup storage, then goes without a refusal", async () => {
    // The simulator's storage status is df of the storage's directory, as PVE's (routes-storage.ts): the
    // other guest's archive, 60 MB that do not compress at 20 MB/s, grows it for about three seconds.
    const g = await startGuestHarness({ archiveBytesPerSecond: 20e6 });
    h = g;
    const other = await selfScopedGuest(g.sim, { vmid: 102, hostname: "other", hwaddr: "bc:24:11:0a:0b:99" });
    await mkdir(join(other.guest.rootDir, "data"), { recursive: true });
    await writeFile(join(other.guest.rootDir, "data/blob"), randomBytes(60 * 1024 * 1024));
    const otherPve = simClient(g.sim, other);
    const lock = g.sim.nodeLock(g.sim.opts.node);
    const submitted = await otherPve.vzdump(g.self.guest.node, {
      vmid: 102,
      storage: "bk",
      mode: "snapshot",
      compress: "zstd",
      lockwait: 0,
    });
    expect(submitted.kind).toBe("task");
    const otherRun = () => g.sim.vzdumpRuns.find((r) => r.vmid === 102);
    await expect.poll(() => otherRun()?.archiveStartedAt, { timeout: 30_000, interval: 50 }).toBeDefined();

    const outcomes: BackupOutcome[] = [];
    const service = new BackupService({
      ...g.deps(),
      backup: { ...g.backupConfig, busy_retry: { attempts: 3, delay_seconds: 600 } },
      quietStorage: { sampleMs: 300, recheckMs: 400, budgetMs: 120_000 },
      onOutcome: (o) => outcomes.push(o),
    });
    const ticket = await service.request({
      mode: "snapshot",
      trigger: { source: "schedule" },
      retryWhenBusy: true,
    });
    expect(ticket.started).toBe(true);
    expect(await ticket.done).toMatchObject({ ok: true, result: { exitStatus: "OK" } });
    await ticket.settled;
    // Never refused: it quiesced only once the other archive had stopped growing the storage.
    expect(lock.refusals).toEqual([]);
    expect(outcomes).toHaveLength(1);
    const mine = lock.holds.find((x) => x.owner.includes(`:${g.self.guest.vmid}:`));
    expect(mine?.from).toBeGreaterThanOrEqual(otherRun()!.archiveFinishedAt!);
    await otherPve.close();
    service.stop();
  });
});
