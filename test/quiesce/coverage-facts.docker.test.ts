import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, expect, it } from "vitest";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { ctMountPoints } from "../../agent/pve/mount-points.ts";
import { coverageText } from "../../agent/quiesce/archive-coverage.ts";
import { coverageFacts, judgedCoverage } from "../../agent/quiesce/coverage-facts.ts";
import type { StackFacts } from "../../agent/quiesce/stack-facts.ts";
import { docker } from "../support/compose.ts";
import { describeDocker } from "../support/docker.ts";

const run = promisify(execFile);
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/**
 * What the engine and the file system really report: a `local` volume with o=bind, one with type=nfs (never
 * mounted: the container is only created, the answer comes from `docker volume inspect`), a bind through a
 * symlink, and a tmpfs mounted inside the "guest" under a directory.
 */
describeDocker("archive coverage from real volume options and paths (real docker)", () => {
  it("judges an o=bind volume by its device, an nfs volume as not in the archive, a symlinked bind by its target", {
    timeout: 60_000,
  }, async () => {
    const tag = Math.random().toString(16).slice(2, 8);
    const bulk = await mkdtemp(join(tmpdir(), "felhom-cov-bulk-"));
    const other = await mkdtemp(join(tmpdir(), "felhom-cov-link-"));
    cleanups.push(
      () => rm(bulk, { recursive: true, force: true }),
      () => rm(other, { recursive: true, force: true }),
    );
    await mkdir(join(bulk, "app"));
    await mkdir(join(bulk, "photos"));
    await symlink(join(bulk, "photos"), join(other, "photos"));
    const bindVol = `felhom-cov-bind-${tag}`;
    const nfsVol = `felhom-cov-nfs-${tag}`;
    await docker(
      "volume",
      "create",
      "--opt",
      "type=none",
      "--opt",
      "o=bind",
      "--opt",
      `device=${bulk}/app`,
      bindVol,
    );
    cleanups.push(() => docker("volume", "rm", "-f", bindVol));
    await docker(
      "volume",
      "create",
      "--opt",
      "type=nfs",
      "--opt",
      "o=addr=192.0.2.1,ro",
      "--opt",
      "device=:/export",
      nfsVol,
    );
    cleanups.push(() => docker("volume", "rm", "-f", nfsVol));
    const id = await docker(
      "create",
      "--name",
      `felhom-cov-${tag}`,
      "-v",
      `${bindVol}:/data`,
      "-v",
      `${nfsVol}:/share`,
      "-v",
      `${other}/photos:/photos`,
      "local/busybox:1.35",
      "true",
    );
    cleanups.push(() => docker("rm", "-f", id));

    const engine = new DockerEngine();
    const stacks = [
      { project: "p", services: [{ name: "s", dependsOn: [], containers: [await engine.inspect(id)] }] },
    ] as unknown as StackFacts[];
    // the CT: rootfs, and mp0 a bind mount point at the bulk directory (never in a vzdump backup)
    const mps = ctMountPoints({ rootfs: "local-lvm:vm-101-disk-0,size=8G", mp0: `/srv/bulk,mp=${bulk}` });
    const coverage = await judgedCoverage(engine, stacks, mps);
    const by = (d: string) => coverage.find((c) => c.destination === d)!;
    expect(by("/data")).toMatchObject({
      inArchive: false,
      cause: "mount point",
      realPath: `${bulk}/app`,
      mountPoint: { key: "mp0" },
    });
    expect(by("/data").source).toMatch(/\/volumes\/felhom-cov-bind-\w+\/_data$/);
    expect(by("/share")).toMatchObject({ inArchive: false, cause: "mounted volume", volumeKind: "nfs" });
    expect(by("/photos")).toMatchObject({
      inArchive: false,
      source: `${other}/photos`,
      realPath: `${bulk}/photos`,
      mountPoint: { key: "mp0" },
    });
    expect(coverageText(by("/photos"))).toContain(`(${other}/photos → ${bulk}/photos) is NOT in the backup`);
  });

  it("sees a file system mounted inside the guest below a mount point, and none on a plain directory", {
    timeout: 30_000,
  }, async () => {
    const root = await mkdtemp(join(tmpdir(), "felhom-cov-mnt-"));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    await mkdir(join(root, "nfs"));
    await mkdir(join(root, "plain", "app"), { recursive: true });
    await run("mount", ["-t", "tmpfs", "-o", "size=1m", "felhom-cov", join(root, "nfs")]);
    cleanups.push(() => run("umount", [join(root, "nfs")]));
    await mkdir(join(root, "nfs", "app"));
    const bind = (source: string, destination: string) => ({
      type: "bind",
      name: undefined,
      source,
      destination,
    });
    const stacks = [
      {
        project: "p",
        services: [
          {
            name: "s",
            containers: [{ mounts: [bind(`${root}/nfs/app`, "/n"), bind(`${root}/plain/app`, "/p")] }],
          },
        ],
      },
    ] as unknown as StackFacts[];
    const mps = ctMountPoints({
      rootfs: "local-lvm:vm-101-disk-0,size=8G",
      mp0: `local-lvm:vm-101-disk-1,mp=${root},backup=1`,
    });
    const facts = await coverageFacts(new DockerEngine(), stacks, mps);
    expect(facts.paths.get(`${root}/nfs/app`)).toEqual({ real: `${root}/nfs/app`, foreignFs: true });
    expect(facts.paths.get(`${root}/plain/app`)).toEqual({ real: `${root}/plain/app`, foreignFs: false });
  });
});
