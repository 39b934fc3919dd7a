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
    // The other guest's archive, 150 MB that do not compress at 30 MB/s, grows the storage for about five
    // seconds. Its `used` is the sizes of its files here, not a df (the simulator's storageUsedFrom): the
    // directory is on this machine's shared disk, whose other writers and deleters move a df by tens of MB a
    // second and made this test flaky; the archive's growth is what the look must see.
    const g = await startGuestHarness({ archiveBytesPerSecond: 30e6, storageUsedFrom: "files" });
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
    // The scheduled backup starts only once the archive has been seen growing the storage (not in the
    // hand-over window before its first bytes, which the hold-off covers and a unit test shows).
    const used = async () => (await otherPve.storageStatus(g.self.guest.node, "bk")).used ?? 0;
    const baseline = await used();
    await expect.poll(used, { timeout: 30_000, interval: 100 }).toBeGreaterThan(baseline + 10e6);

    const outcomes: BackupOutcome[] = [];
    let busyChecks = 0;
    const log = g.deps().log;
    const info = log.info.bind(log);
    log.info = ((obj: object, msg?: string) => {
      if (msg?.startsWith("the backup storage is growing")) busyChecks++;
      info(obj, msg);
    }) as typeof log.info;
    const service = new BackupService({
      ...g.deps({ log }),
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
    // It looked: at least one check saw the growth, and after the last growth a quiet check and the one that
    // confirmed it (four status reads of its own at least, all before its first ask).
    expect(busyChecks).toBeGreaterThanOrEqual(1);
    const ownLooks = g.sim.requests.filter(
      (r) => r.tokenId === g.self.tokenId && r.path.endsWith("/storage/bk/status") && r.at < firstAsk,
    );
    expect(ownLooks.length).toBeGreaterThanOrEqual(6);
    const last = outcomes.at(-1);
    expect(last?.ok ? "ok" : `${last?.failure.code}: ${last?.failure.message}`).toBe("ok");
    await otherPve.close();
    service.stop();
  });
});
