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
  it("waits while another guest's archive grows the backup storage, and asks PVE only once it stopped", async () => {
    // The simulator's storage status is df of the storage's directory, as PVE's (routes-storage.ts): the
    // other guest's archive, 150 MB that do not compress at 30 MB/s, grows it for about five seconds. That
    // directory is on this machine's shared disk, whose other writers and deleters move its `used` by tens of
    // MB a second: looks a second apart (30 MB of growth each) keep them from hiding the archive.
    const g = await startGuestHarness({ archiveBytesPerSecond: 30e6 });
    h = g;
    const other = await selfScopedGuest(g.sim, { vmid: 102, hostname: "other", hwaddr: "bc:24:11:0a:0b:99" });
    await mkdir(join(other.guest.rootDir, "data"), { recursive: true });
    await writeFile(join(other.guest.rootDir, "data/blob"), randomBytes(150 * 1024 * 1024));
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
      backup: { ...g.backupConfig, busy_retry: { attempts: 3, delay_seconds: 2 } },
      quietStorage: { sampleMs: 1_000, recheckMs: 400, holdOffMs: 1_000, budgetMs: 120_000 },
      onOutcome: (o) => outcomes.push(o),
    });
    const ticket = await service.request({
      mode: "snapshot",
      trigger: { source: "schedule" },
      retryWhenBusy: true,
    });
    expect(ticket.started).toBe(true);
    await ticket.settled;
    // Its first attempt reached PVE only after the other archive had stopped growing the storage (without the
    // look: at once, refused, while the other guest held the lock). The other task still holds the lock for
    // its end (snapshot removal, the log) after its archive, so a refusal in that moment is possible, and the
    // retry then takes the backup.
    const vmid = `:${g.self.guest.vmid}:`;
    const firstAsk = Math.min(
      ...lock.holds.filter((x) => x.owner.includes(vmid)).map((x) => x.from),
      ...lock.refusals.filter((x) => x.owner.includes(vmid)).map((x) => x.at),
    );
    expect(firstAsk).toBeGreaterThanOrEqual(otherRun()!.archiveFinishedAt!);
    const last = outcomes.at(-1);
    expect(last?.ok ? "ok" : `${last?.failure.code}: ${last?.failure.message}`).toBe("ok");
    await otherPve.close();
    service.stop();
  });
});
