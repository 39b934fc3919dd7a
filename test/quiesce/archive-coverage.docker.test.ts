import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EVENTS } from "@felhom/protocol";
import { afterEach, expect, it } from "vitest";
import { newBackupId } from "../../agent/backup/backup-id.ts";
import { runBackup } from "../../agent/backup/backup-run.ts";
import { outcomeEvent } from "../../agent/backup/outcome-event.ts";
import { capturedStdout, exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { docker } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";
import { inProcessReboot } from "../support/guest-reboot.ts";

let h: GuestHarness | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await h?.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  h = undefined;
});

async function cli(config: string, ...args: string[]) {
  const agent = spawnAgent(config, args);
  const out = capturedStdout(agent);
  return { code: await exited(agent), out: out() };
}

/**
 * Here the guest's file system is this machine's: the CT config declares a real temp dir as a bind mount
 * point (mp0) and the project's named volume directory as a volume mount point without backup=1 (mp1),
 * and a service keeps its data in both. The demo db's data lies on the root file system.
 */
describeDocker("data outside the archive (pve sim + real docker)", () => {
  it("names the bind mount and the backup=0 volume as not in the backup: in doctor, in `stacks`, and in the backup result and event; vzdump logs both exclusions", {
    timeout: 180_000,
  }, async () => {
    const bulk = await mkdtemp(join(tmpdir(), "felhom-bulk-"));
    dirs.push(bulk);
    await mkdir(join(bulk, "files"));
    h = await startGuestHarness({
      extraCompose: `  files:
    image: local/busybox:1.35
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    volumes:
      - ${bulk}/files:/data
      - cache:/cache
    restart: unless-stopped
volumes:
  cache: {}
`,
    });
    // a named volume lives under the engine's data-root (/var/lib/docker unless configured otherwise)
    const volumeDir = `${await docker("info", "-f", "{{.DockerRootDir}}")}/volumes/${h.project}_cache`;
    Object.assign(h.sim.getGuest(101).config, {
      mp0: `/srv/bulk,mp=${bulk}`,
      mp1: `local-lvm:vm-101-disk-1,mp=${volumeDir},size=4G`,
    });

    dirs.push(await mkdtemp(join(tmpdir(), "felhom-cov-")));
    const config = await writeAgentConfig(h, dirs.at(-1)!);

    // doctor: one warning per mount outside the archive, with the reason and what to do
    const doctor = await cli(config, "doctor", "--json");
    const coverage = (JSON.parse(doctor.out) as { level: string; message: string; hint?: string }[]).filter(
      (f) => f.message.startsWith("archive coverage"),
    );
    // The harness's guest root is the simulator's directory under /tmp, so the demo db's data lies where
    // vzdump's standard excludes (/tmp/?*) would leave it out of a real guest: reported, but only in words
    expect(coverage).toHaveLength(3); // in the order Docker lists the mounts, which varies
    expect(coverage).toEqual(
      expect.arrayContaining([
        {
          level: "warn",
          message: expect.stringMatching(
            /^archive coverage: felhom-e2e-\w+\/db: \/var\/lib\/postgresql\/data \(\/tmp\/.*\/pgdata\) is NOT in the backup: vzdump leaves out everything in \/tmp and \/var\/tmp/,
          ),
          hint: expect.stringContaining("stdexcludes"),
        },
        {
          level: "warn",
          message: `archive coverage: ${h.project}/files: /data (${bulk}/files) is NOT in the backup: it lies on bind mount point mp0 ('${bulk}'), which vzdump never backs up; restored on another host, it is gone`,
          hint: expect.stringContaining("never in a vzdump backup"),
        },
        {
          level: "warn",
          message: `archive coverage: ${h.project}/files: /cache (volume ${h.project}_cache at ${volumeDir}/_data) is NOT in the backup: it lies on volume mount point mp1 ('${volumeDir}'), which has no backup=1; restored on another host, it is gone`,
          hint: expect.stringContaining("pct set 101 -mp1"),
        },
      ]),
    );

    // stacks: yes or no per mount
    const stacks = await cli(config, "stacks", "--json");
    expect(stacks.code).toBe(0);
    const listed = JSON.parse(stacks.out) as {
      stacks: {
        services: {
          name: string;
          mounts: { destination: string; inArchive: boolean; cause: string; mountPoint: string }[];
        }[];
      }[];
      archiveCheck: { known: boolean };
    };
    expect(listed.archiveCheck).toEqual({ known: true });
    const mounts = Object.fromEntries(listed.stacks[0]!.services.map((s) => [s.name, s.mounts]));
    expect(mounts.db).toEqual([
      expect.objectContaining({
        destination: "/var/lib/postgresql/data",
        inArchive: false,
        cause: "standard exclude",
        mountPoint: "rootfs",
      }),
    ]);
    expect(mounts.files?.map((m) => [m.destination, m.inArchive, m.mountPoint]).sort()).toEqual([
      ["/cache", false, "mp1"],
      ["/data", false, "mp0"],
    ]);

    // the backup: warnings and the structured list, in a backup.completed the protocol accepts
    const outcome = await runBackup(h.deps(), {
      backupId: newBackupId(),
      mode: "snapshot",
      trigger: { source: "cli" },
    });
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    expect(outcome.result.notInArchive).toHaveLength(2);
    expect(outcome.result.notInArchive).toEqual(
      expect.arrayContaining([
        {
          project: h.project,
          service: "files",
          destination: "/data",
          source: `${bulk}/files`,
          mountPoint: "mp0",
          mountPath: bulk,
          reason: "not a volume",
        },
        {
          project: h.project,
          service: "files",
          destination: "/cache",
          source: `${volumeDir}/_data`,
          volume: `${h.project}_cache`,
          mountPoint: "mp1",
          mountPath: volumeDir,
          reason: "disabled",
        },
      ]),
    );
    expect(outcome.result.warnings.filter((w) => w.includes("is NOT in the backup"))).toHaveLength(3);
    const { kind, ...body } = outcomeEvent(outcome) as { kind: string };
    expect(kind).toBe("backup.completed");
    expect(EVENTS["backup.completed"].safeParse(body).success).toBe(true);
    const log = h.sim.tasks.get(outcome.result.upid)!.lines;
    expect(log).toContain(`INFO: excluding bind mount point mp0 ('${bulk}') from backup (not a volume)`);
    expect(log).toContain(`INFO: excluding volume mount point mp1 ('${volumeDir}') from backup (disabled)`);
  });

  it("reports it for a stop-mode backup too, from the run that finishes it after the boot", {
    timeout: 150_000,
  }, async () => {
    const bulk = await mkdtemp(join(tmpdir(), "felhom-bulk-"));
    dirs.push(bulk);
    const reboot = inProcessReboot(() => h!);
    h = await startGuestHarness({
      extraCompose: `  files:
    image: local/busybox:1.35
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    volumes:
      - ${bulk}:/data
    restart: unless-stopped
`,
      ...reboot.hooks,
    });
    h.sim.getGuest(101).config.mp0 = `/srv/bulk,mp=${bulk}`;
    const stopId = newBackupId();
    const outcome = await reboot.stopModeBackup(stopId);
    expect(outcome).toMatchObject({
      ok: true,
      result: {
        backupId: stopId,
        mode: "stop",
        notInArchive: [{ service: "files", destination: "/data", mountPoint: "mp0", reason: "not a volume" }],
      },
    });
    // the bind mount point, and the demo db's data in the harness's /tmp (the standard excludes)
    expect(
      outcome?.ok && outcome.result.warnings.filter((w) => w.includes("is NOT in the backup")),
    ).toHaveLength(2);
  });
});
