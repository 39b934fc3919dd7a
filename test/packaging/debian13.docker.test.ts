import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
const MIRROR = process.env.FELHOM_DEBIAN_MIRROR ?? "http://deb.debian.org/debian";
const hasDebootstrap = existsSync("/usr/sbin/debootstrap");

/**
 * The package as an admin installs it: a Debian 13 (trixie) root made by debootstrap, the built .deb
 * installed with apt (which brings Debian 13's own nodejs), and the agent run inside that root: --help,
 * version, doctor and one backup against the PVE simulator and the real engine (its socket bound into the
 * root; the network is the host's, so the simulator is on loopback), then apt purge. CI installs
 * debootstrap; without it (or without root) this fails under CI and is skipped elsewhere.
 */
describeDocker("the package in a Debian 13 root (debootstrap + apt + the real agent)", () => {
  const needs = hasDebootstrap && process.getuid?.() === 0;
  let work: string;
  let root: string;
  let h: GuestHarness | undefined;
  /** Mount points inside the root, unmounted in reverse before anything is deleted. */
  const mounts: string[] = [];
  const inRoot = (...args: string[]) =>
    run("chroot", [root, ...args], {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", DEBIAN_FRONTEND: "noninteractive" },
      maxBuffer: 64 * 1024 ** 2,
    });
  const cli = (...args: string[]) => inRoot("felhom-guest", ...args).catch((e) => e);
  const mount = async (target: string, ...args: string[]) => {
    await run("mount", [...args, target]);
    mounts.push(target);
  };

  beforeAll(async () => {
    if (!needs) return;
    work = await mkdtemp(join(tmpdir(), "felhom-debian13-"));
    root = join(work, "root");
    const deb = (
      await run("bash", ["packaging/build-deb.sh", join(work, "out")], { cwd: repo })
    ).stdout.trim();
    await run("debootstrap", ["--variant=minbase", "trixie", root, MIRROR], { maxBuffer: 64 * 1024 ** 2 });
    await mount(join(root, "proc"), "-t", "proc", "proc");
    await copyFile("/etc/resolv.conf", join(root, "etc/resolv.conf"));
    // No service starts inside the root (docker-cli and compose have none; this is belt and braces).
    await writeFile(join(root, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", { mode: 0o755 });
    await copyFile(deb, join(root, "tmp/felhom-guest.deb"));
    await inRoot("apt-get", "update");
    // The package with what it depends on (nodejs, from trixie) and, of what it recommends, the compose
    // CLI doctor checks; the engine is the host's, through its socket.
    await inRoot(
      "apt-get",
      "install",
      "-y",
      "--no-install-recommends",
      "/tmp/felhom-guest.deb",
      "docker-cli",
      "docker-compose",
    );
  }, 900_000);

  afterAll(async () => {
    await h?.close();
    if (!work) return;
    for (const target of mounts.reverse()) await run("umount", ["-l", target]).catch(() => undefined);
    // Never delete through a mount: only when nothing is mounted under the root any more.
    const mounted = (await readFile("/proc/self/mounts", "utf8"))
      .split("\n")
      .some((l) => l.includes(` ${work}`));
    if (!mounted) await rm(work, { recursive: true, force: true });
    else console.error(`left ${work} in place: something is still mounted under it`);
  }, 120_000);

  it.runIf(needs || process.env.CI)("installs with apt, on Debian 13's own nodejs", async () => {
    expect(needs).toBe(true); // under CI: debootstrap and root are required, not optional
    expect((await inRoot("dpkg-query", "-s", "felhom-guest")).stdout).toMatch(
      /^Status: install ok installed$/m,
    );
    expect((await inRoot("dpkg-query", "-s", "nodejs")).stdout).toMatch(/^Version: 20\./m);
    expect((await inRoot("sh", "-c", ". /etc/os-release; echo $VERSION_ID")).stdout.trim()).toBe("13");
  });

  it.runIf(needs)("answers --help and version from the installed package", async () => {
    const help = await cli("--help");
    expect(help.stdout).toMatch(/^felhom-guest \S+: app-consistent self-backups/);
    const version = await cli("version");
    expect(version.stdout.trim()).toBe(
      JSON.parse(await readFile(join(repo, "package.json"), "utf8")).version,
    );
  });

  it.runIf(needs)(
    "runs doctor and one backup against the PVE simulator and the real engine",
    { timeout: 300_000 },
    async () => {
      h = await startGuestHarness();
      // The agent's state dir is the simulated guest's, so the marker lands inside the archive as on a real guest.
      await mount(join(root, "var/lib/felhom-guest"), "--bind", h.stateDir);
      await writeFile(join(root, "run/docker.sock"), "");
      await mount(join(root, "run/docker.sock"), "--bind", "/var/run/docker.sock");
      await writeFile(join(root, "etc/felhom-guest/pve-token.secret"), h.self.secret, { mode: 0o600 });
      await writeFile(
        join(root, "etc/felhom-guest/agent.yaml"),
        [
          "pve:",
          `  url: ${h.sim.url}`,
          `  token_id: "${h.self.tokenId}"`,
          "  token_secret_file: /etc/felhom-guest/pve-token.secret",
          `  tls: { fingerprint: "${h.sim.fingerprint}" }`,
          "backup:",
          "  storage: bk",
          "docker:",
          `  projects: [${h.project}]`,
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
      const doctor = await cli("doctor", "--json");
      const findings = JSON.parse(doctor.stdout) as { level: string; message: string }[];
      expect(findings.filter((f) => f.level === "error")).toEqual([]);
      expect(findings.map((f) => f.message).join("\n")).toMatch(/compose: docker compose/);
      expect(doctor.code ?? 0).toBe(0);

      const backup = await cli("backup", "--json");
      expect(JSON.parse(backup.stdout)).toMatchObject({
        ok: true,
        kind: "backup.completed",
        consistency: "app",
      });
      expect(backup.code ?? 0).toBe(0);
      expect(h.sim.vzdumpRuns.length).toBe(1);
    },
  );

  it.runIf(needs)(
    "keeps the admin's enablement through remove and reinstall; purge leaves nothing of the agent behind",
    async () => {
      // The simulated guest's state dir goes back to the harness; purge deletes the root's own.
      await run("umount", [join(root, "var/lib/felhom-guest")]);
      mounts.splice(mounts.indexOf(join(root, "var/lib/felhom-guest")), 1);
      // What `systemctl enable felhom-guest` leaves (no systemd runs in this root): the [Install] link.
      const link = join(root, "etc/systemd/system/multi-user.target.wants/felhom-guest.service");
      await mkdir(dirname(link), { recursive: true });
      await symlink("/usr/lib/systemd/system/felhom-guest.service", link);
      await inRoot("apt-get", "remove", "-y", "felhom-guest");
      expect(existsSync(join(root, "etc/felhom-guest/agent.yaml"))).toBe(true);
      expect(await readlink(link)).toBe("/usr/lib/systemd/system/felhom-guest.service");
      await inRoot("apt-get", "install", "-y", "--no-install-recommends", "/tmp/felhom-guest.deb");
      // The link resolves again inside the root: enabled, as before the remove.
      await inRoot("test", "-e", "/etc/systemd/system/multi-user.target.wants/felhom-guest.service");
      await inRoot("apt-get", "purge", "-y", "felhom-guest");
      for (const gone of [
        "etc/felhom-guest",
        "var/lib/felhom-guest",
        "usr/lib/felhom-guest",
        "usr/lib/systemd/system/felhom-guest.service",
        "usr/bin/felhom-guest",
        "usr/share/doc/felhom-guest",
      ])
        expect(existsSync(join(root, gone)), gone).toBe(false);
      await expect(readlink(link)).rejects.toThrow(); // the enablement link too
      // The agent's runtime, Debian's nodejs, is not the package's to remove.
      expect((await inRoot("node", "--version")).stdout).toMatch(/^v20\./);
    },
  );
});
