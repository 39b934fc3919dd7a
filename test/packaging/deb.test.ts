import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { writeJsonDurable } from "../../agent/state/durable-file.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { bundleAgent } from "../../packaging/bundle.mjs";
import { writeOfflineConfig } from "../support/agent-cli.ts";
import { affected, NEVER_SHIPPED } from "./advisories.ts";

const run = promisify(execFile);
const root = new URL("../../", import.meta.url).pathname;
const unit = "felhom-guest.service";
const hasLintian = existsSync("/usr/bin/lintian");

/**
 * The Debian package as `bash packaging/build-deb.sh` builds it: what it ships, and what its maintainer
 * scripts do. The scripts run for real, against a scratch root ($DPKG_ROOT, which they honour) with
 * systemctl and deb-systemd-invoke replaced by stubs that record their arguments.
 */
describe("the Debian package", () => {
  let work: string;
  let deb: string;
  let files: string[];
  let control: string;
  /** The npm packages the bundle holds, from its own build (esbuild's list of inputs), not from the .deb. */
  let bundled: { name: string; version: string }[];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "felhom-deb-"));
    bundled = await bundleAgent(join(work, "bundle"));
    deb = (await run("bash", ["packaging/build-deb.sh", join(work, "out")], { cwd: root })).stdout.trim();
    files = (await run("dpkg-deb", ["-c", deb], { maxBuffer: 64 * 1024 ** 2 })).stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => line.slice(line.indexOf("./") + 1));
    control = join(work, "control");
    await run("dpkg-deb", ["-e", deb, control]);
  }, 300_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it("ships the bundled agent and only what runs: no node_modules, sources, maps or dotfiles", () => {
    expect(files).toContain("/usr/lib/felhom-guest/main.js");
    expect(files).toContain("/usr/lib/felhom-guest/package.json");
    expect(files).toContain("/usr/lib/systemd/system/felhom-guest.service");
    expect(files.filter((f) => f.startsWith("/lib/"))).toEqual([]);
    const shipped = files.filter((f) => f.startsWith("/usr/lib/felhom-guest/") && !f.endsWith("/"));
    // The code: main.js, its chunks and the package.json naming the version; the npm packages are in them.
    expect(
      shipped.filter(
        (f) => !/^\/usr\/lib\/felhom-guest\/(main\.js|package\.json|chunks\/[\w-]+\.js)$/.test(f),
      ),
    ).toEqual([]);
    expect(shipped.filter((f) => f.includes("/chunks/")).length).toBeGreaterThan(5);
  });

  it("ships the documentation where the agent's hints point: example config, README, docs, changelog, licences, manual page", () => {
    for (const f of [
      "/usr/share/doc/felhom-guest/examples/agent.yaml",
      "/usr/share/doc/felhom-guest/README.md",
      "/usr/share/doc/felhom-guest/restore.md",
      "/usr/share/doc/felhom-guest/changelog.gz",
      "/usr/share/doc/felhom-guest/copyright",
      "/usr/share/man/man1/felhom-guest.1.gz",
    ])
      expect(files).toContain(f);
  });

  it("names every bundled npm package in the copyright file, with its licence", async () => {
    const copyright = (
      await run("sh", [
        "-c",
        `dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/share/doc/felhom-guest/copyright`,
        "-",
        deb,
      ])
    ).stdout;
    expect(bundled.length).toBeGreaterThan(10);
    // The .deb's own list is the bundle's: what the advisory check below reads is what ships.
    const listed = [...copyright.matchAll(/^ ((?:@[^/\s]+\/)?[^@\s]+)@(\S+) \(\S+\)$/gm)].map(
      (m) => `${m[1]}@${m[2]}`,
    );
    expect(listed.sort()).toEqual(bundled.map((p) => `${p.name}@${p.version}`).sort());
    for (const p of bundled)
      expect(copyright).toMatch(new RegExp(`^ ${p.name.replace("/", "\\/")}@${p.version} \\(\\S+\\)$`, "m"));
    expect(copyright).not.toMatch(/^License: *$/m);
    // Every licence the bundle's paragraph names has its text in a stand-alone paragraph.
    const expression = /^License: (proprietary and .*)$/m.exec(copyright)?.[1] ?? "";
    for (const licence of expression.split(" and "))
      expect(copyright).toMatch(new RegExp(`^License: ${licence}\n `, "m"));
  });

  it("bundles no package in a known-vulnerable range and none that is never used, and its modules load", async () => {
    expect(bundled.map((p) => p.name)).toContain("dockerode");
    expect(bundled.flatMap((p) => affected(p).map((a) => `${p.name}@${p.version}: ${a.id}`))).toEqual([]);
    // ssh2 is the stand-in from packaging/no-ssh2 (Felhom's code, outside node_modules), nothing of the real one.
    expect(bundled.filter((p) => NEVER_SHIPPED.includes(p.name))).toEqual([]);
    expect(files.filter((f) => /\.node$|binding\.gyp$/.test(f))).toEqual([]);
  });

  it("stays under 8 MiB installed, recommends a compose, and ships executable maintainer scripts that parse", async () => {
    const kib = Number((await run("dpkg-deb", ["-f", deb, "Installed-Size"])).stdout.trim());
    expect(kib).toBeGreaterThan(1000);
    expect(kib).toBeLessThanOrEqual(8 * 1024);
    expect((await run("dpkg-deb", ["-f", deb, "Recommends"])).stdout).toMatch(
      /docker-compose-v2 \| docker-compose-plugin \| docker-compose/,
    );
    expect((await readdir(control)).sort()).toEqual(["control", "md5sums", "postinst", "postrm", "prerm"]);
    for (const script of ["postinst", "prerm", "postrm"]) {
      expect((await stat(join(control, script))).mode & 0o777).toBe(0o755);
      await run("sh", ["-n", join(control, script)]);
    }
  });

  it("loads every shipped chunk on plain node, and runs version and --help from the installed tree", async () => {
    const tree = join(work, "tree");
    await run("dpkg-deb", ["-x", deb, tree]);
    const lib = join(tree, "usr/lib/felhom-guest");
    // The chunks hold every module the commands import (the Docker adapter's dockerode, and so docker-modem's
    // ssh2 require, which the stand-in must satisfy); main.js runs the CLI when imported.
    const chunks = files.filter((f) => /\/chunks\/.*\.js$/.test(f)).map((f) => join(tree, f));
    await run(process.execPath, [
      "--input-type=module",
      "-e",
      `for (const m of ${JSON.stringify(chunks)}) await import(m);`,
    ]);
    const cli = join(lib, "main.js");
    // zod without generated parsers (agent/lib/zod-jitless.ts) in the bundle too: a command that parses its
    // config (and stops at the missing state dir) with every `new Function` counted.
    const config = await writeOfflineConfig(work, { stateDir: join(work, "missing") });
    const counting =
      'data:text/javascript,import{writeSync}from"node:fs";let n=0;globalThis.Function=new Proxy(Function,{construct(t,a){n++;return Reflect.construct(t,a)}});process.on("exit",()=>writeSync(3,String(n)))';
    const generated = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ["--import", counting, cli, "--config", config, "backup"], {
        stdio: ["ignore", "ignore", "ignore", "pipe"],
      });
      let out = "";
      child.stdio[3]!.on("data", (d: Buffer) => {
        out += d;
      });
      child.once("close", () => resolve(out));
    });
    expect(generated).toBe("0");
    expect((await run(process.execPath, [cli, "version"])).stdout.trim()).toBe(
      (await run("dpkg-deb", ["-f", deb, "Version"])).stdout.trim(),
    );
    expect((await run(process.execPath, [cli, "--help"])).stdout).toMatch(/^felhom-guest /);
  });

  it("builds byte-identical packages from the same tree (SOURCE_DATE_EPOCH)", {
    timeout: 300_000,
  }, async () => {
    const again = (
      await run("bash", ["packaging/build-deb.sh", join(work, "again")], { cwd: root })
    ).stdout.trim();
    expect((await readFile(again)).equals(await readFile(deb))).toBe(true);
  });

  // Debian's own check of the package. CI installs lintian; a developer machine without it skips this.
  it.skipIf(!hasLintian && !process.env.CI)("passes lintian with no errors and no warnings", async () => {
    const r = await run("lintian", ["--tag-display-limit", "0", deb]).catch((e) => e);
    const tags = `${r.stdout}`.split("\n").filter((l) => /^[EW]: /.test(l));
    const count = (level: string) => tags.filter((t) => t.startsWith(level)).length;
    // For the CI log: what lintian said, and the count.
    process.stdout.write(
      `lintian ${deb}:\n${r.stdout}${r.stderr}lintian: ${count("E")} errors, ${count("W")} warnings\n`,
    );
    expect(tags).toEqual([]);
    expect(r.code ?? 0).toBe(0);
  });

  describe("maintainer scripts", () => {
    let scratch: string;
    let log: string;
    const etc = () => join(scratch, "etc/felhom-guest");
    const state = () => join(scratch, "var/lib/felhom-guest");

    beforeEach(async () => {
      scratch = await mkdtemp(join(work, "root-"));
      await mkdir(join(scratch, "run/systemd/system"), { recursive: true });
      const stubs = join(scratch, "stubs");
      await mkdir(stubs);
      log = join(scratch, "calls.log");
      for (const name of ["systemctl", "deb-systemd-invoke"]) {
        await writeFile(join(stubs, name), `#!/bin/sh\necho "${name} $*" >>"${log}"\n`);
        await chmod(join(stubs, name), 0o755);
      }
      // deb-systemd-helper answers debian-installed and was-enabled from a marker: the admin enabled the
      // unit (its links exist) and an earlier install recorded it.
      await writeFile(
        join(stubs, "deb-systemd-helper"),
        `#!/bin/sh\necho "deb-systemd-helper $*" >>"${log}"\ncase "$*" in *debian-installed*|*was-enabled*) [ -e "${join(scratch, "enabled")}" ];; esac\n`,
      );
      await chmod(join(stubs, "deb-systemd-helper"), 0o755);
    });
    const adminEnabled = () => writeFile(join(scratch, "enabled"), "");

    async function script(name: string, ...args: string[]) {
      const env = { PATH: `${join(scratch, "stubs")}:/usr/sbin:/usr/bin:/sbin:/bin`, DPKG_ROOT: scratch };
      return run("sh", ["-e", join(control, name), ...args], { env });
    }
    const calls = async () => (await readFile(log, "utf8").catch(() => "")).split("\n").filter(Boolean);

    it("on a first install, creates root-only config and state directories, and enables and starts nothing", async () => {
      const { stderr } = await script("postinst", "configure", "");
      expect((await stat(etc())).mode & 0o777).toBe(0o700);
      expect((await stat(state())).mode & 0o777).toBe(0o700);
      expect(stderr).toContain("/usr/share/doc/felhom-guest/examples/agent.yaml");
      expect(await calls()).toEqual([
        `deb-systemd-helper debian-installed ${unit}`,
        `deb-systemd-helper update-state ${unit}`,
        "systemctl --system daemon-reload",
      ]);
    });

    it("on an upgrade, restarts the daemon only if it runs when the admin has not enabled it", async () => {
      await script("postinst", "configure", "0.0.9");
      expect(await calls()).toContain(`deb-systemd-invoke try-restart ${unit}`);
    });

    it("on an upgrade or a reinstall after remove, keeps an enabled daemon enabled and (re)starts it", async () => {
      await adminEnabled();
      await script("postinst", "configure", "0.0.9");
      expect(await calls()).toEqual([
        `deb-systemd-helper debian-installed ${unit}`,
        `deb-systemd-helper --quiet was-enabled ${unit}`,
        `deb-systemd-helper enable ${unit}`,
        `deb-systemd-helper update-state ${unit}`,
        "systemctl --system daemon-reload",
        `deb-systemd-invoke restart ${unit}`,
      ]);
    });

    it("touches no service when systemd does not run in the target root", async () => {
      await rm(join(scratch, "run"), { recursive: true });
      await script("postinst", "configure", "0.0.9");
      await script("prerm", "remove");
      expect((await calls()).filter((c) => !c.startsWith("deb-systemd-helper"))).toEqual([]);
    });

    it("stops the daemon on remove without disabling it, and leaves it running through an upgrade's unpack", async () => {
      await script("prerm", "upgrade", "0.2.0");
      expect(await calls()).toEqual([]);
      await script("prerm", "remove");
      expect(await calls()).toEqual([`deb-systemd-invoke stop ${unit}`]);
    });

    it("removes the unit's enablement links on purge", async () => {
      await script("postrm", "purge");
      expect(await calls()).toEqual([`deb-systemd-helper purge ${unit}`]);
    });

    async function installed(finishedAt: string | null) {
      await script("postinst", "configure", "");
      await writeFile(join(etc(), "agent.yaml"), "pve: {}\n", { mode: 0o600 });
      await writeFile(join(etc(), "pve-token.secret"), "secret\n", { mode: 0o600 });
      await writeJsonDurable(statePaths(state()).quiesceJournal, {
        version: 1,
        backupId: "b1",
        finishedAt,
        containers: {},
      });
    }
    const exists = (path: string) =>
      stat(path).then(
        () => true,
        () => false,
      );

    it("keeps the config and the state (with its quiesce journal) on remove", async () => {
      await installed(null);
      await script("postrm", "remove");
      expect(await exists(join(etc(), "agent.yaml"))).toBe(true);
      expect(await exists(statePaths(state()).quiesceJournal)).toBe(true);
    });

    it("deletes the config, its secrets and the state on purge", async () => {
      await installed("2026-11-27T10:00:00.000Z");
      await script("postrm", "purge");
      expect(await exists(etc())).toBe(false);
      expect(await exists(state())).toBe(false);
    });

    it("keeps the state on purge while the quiesce journal is unfinished, and says what to do", async () => {
      await installed(null);
      const { stderr } = await script("postrm", "purge");
      expect(await exists(etc())).toBe(false);
      expect(await exists(statePaths(state()).quiesceJournal)).toBe(true);
      expect(stderr).toMatch(/unfinished.*docker start/);
    });
  });
});
