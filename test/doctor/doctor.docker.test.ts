import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { capturedStdout, exited, spawnAgent, writeAgentConfig } from "../support/agent-cli.ts";
import { describeDocker } from "../support/docker.ts";
import { type GuestHarness, startGuestHarness } from "../support/guest-harness.ts";

let h: GuestHarness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  h = dir = undefined;
});

async function doctor(
  variant: "production" | "token-only" | "over-privileged" | "parent-paths",
  o: { extraConfig?: string[]; protectedArchives?: number; dockerSocket?: string; rootfs?: string } = {},
) {
  h = await startGuestHarness({ variant });
  if (o.rootfs) h.sim.getGuest(101).config.rootfs = o.rootfs;
  dir = await mkdtemp(join(tmpdir(), "felhom-doctor-"));
  // Older protected backups of this guest, written straight into the storage as PVE would have left them.
  const dump = join(h.sim.storages.get("bk")!.path, "dump");
  for (let i = 0; i < (o.protectedArchives ?? 0); i++) {
    const file = join(dump, `vzdump-lxc-101-2026_01_0${i + 1}-02_00_00.tar.zst`);
    await writeFile(file, "x");
    await writeFile(`${file}.protected`, "");
  }
  const config = await writeAgentConfig(h, dir, o.extraConfig);
  if (o.dockerSocket)
    await writeFile(
      config,
      (await readFile(config, "utf8")).replace("docker:\n", `docker:\n  socket: ${o.dockerSocket}\n`),
    );
  const agent = spawnAgent(config, ["doctor", "--json"]);
  const out = capturedStdout(agent);
  const code = await exited(agent);
  return { code, findings: JSON.parse(out()) as { level: string; message: string; hint?: string }[] };
}

describeDocker("felhom-guest doctor (pve sim + real docker)", () => {
  it("passes every check for the production token", async () => {
    const { code, findings } = await doctor("production");
    // The harness's guest root is the simulator's directory under /tmp, where vzdump's standard excludes
    // (/tmp/?*) would leave the demo db's data out of a real guest: the one warning, which does not fail doctor
    expect(findings.filter((f) => f.level !== "ok")).toEqual([
      {
        level: "warn",
        message: expect.stringMatching(
          /^archive coverage: felhom-e2e-\w+\/db: .* vzdump leaves out everything in \/tmp/,
        ),
        hint: expect.stringContaining("stdexcludes"),
      },
    ]);
    expect(findings.map((f) => f.message).join("\n")).toMatch(/identity: CT 101 on node pve1/);
    expect(code).toBe(0);
  });

  it("reports Docker down once, as the Docker engine's error: the archive coverage it prevents is a warning", async () => {
    const { code, findings } = await doctor("production", { dockerSocket: "/nonexistent/docker.sock" });
    expect(code).toBe(1);
    const coverage = findings.filter((f) => f.message.startsWith("archive coverage"));
    expect(coverage).toEqual([
      expect.objectContaining({
        level: "warn",
        message: expect.stringMatching(/^archive coverage: not checked: /),
      }),
    ]);
    expect(findings.filter((f) => f.level === "error").map((f) => f.message.split(":")[0])).not.toContain(
      "archive coverage",
    );
    expect(findings.some((f) => f.level === "error" && f.message.startsWith("Docker engine"))).toBe(true);
  });

  it("explains the privilege-separation trap and exits 1", async () => {
    const { code, findings } = await doctor("token-only");
    expect(code).toBe(1);
    expect(
      findings.some((f) => f.level === "error" && /BOTH the user and the token/.test(f.hint ?? "")),
    ).toBe(true);
  });

  it("warns about an over-privileged token (Administrator on /) without reporting anything missing, and exits 0", async () => {
    const { code, findings } = await doctor("over-privileged");
    expect(findings.some((f) => f.level === "warn" && /more than it needs/.test(f.message))).toBe(true);
    expect(findings.filter((f) => f.level === "error")).toEqual([]);
    expect(code).toBe(0);
  });

  it("accepts the role granted on /vms and /storage, which propagates to the guest and the storage", async () => {
    const { code, findings } = await doctor("parent-paths");
    expect(findings.filter((f) => f.level === "error")).toEqual([]);
    expect(findings.map((f) => f.message)).toContain(
      "the token holds every privilege it needs on /vms/101 and /storage/bk",
    );
    expect(code).toBe(0);
  });

  it("fails when backup.protected is set and the guest already has max_protected_backups protected archives", async () => {
    const { code, findings } = await doctor("production", {
      extraConfig: ["  protected: true", "  max_protected_backups: 3"],
      protectedArchives: 3,
    });
    expect(findings.filter((f) => f.level === "error").map((f) => f.message)).toEqual([
      expect.stringMatching(
        /^protected backups: CT 101 already has 3 protected backups .* allows 3 per guest/,
      ),
    ]);
    expect(code).toBe(1);
  });

  it("says whether the CT can be snapshotted and what the configured policy does about it, with the cost", async () => {
    const ok = await doctor("production");
    expect(ok.findings).toContainEqual({
      level: "ok",
      message: expect.stringMatching(
        /^snapshot: PVE can snapshot every volume of the CT \(rootfs local-lvm:vm-101-disk-0\); snapshot mode/,
      ),
    });
    await h?.close();
    h = undefined;
    const held = await doctor("production", { rootfs: "local:101/vm-101-disk-0.raw,size=8G" });
    expect(held.findings).toContainEqual({
      level: "warn",
      message: expect.stringMatching(
        /^snapshot: the CT cannot be snapshotted: a volume is on a storage without snapshots \(one of: rootfs \(local:101\/vm-101-disk-0\.raw\)\); PVE would fall back to suspend mode\. Policy hold: the stacks stay down .*at most 3600 s/,
      ),
      hint: expect.stringMatching(/pct move-volume/),
    });
    expect(held.code).toBe(0);
  });

  it("fails when the CT cannot be snapshotted and backup.no_snapshot.policy is refuse", async () => {
    const { code, findings } = await doctor("production", {
      rootfs: "local:101/vm-101-disk-0.raw,size=8G",
      extraConfig: ["  no_snapshot: { policy: refuse }"],
    });
    expect(findings.filter((f) => f.level === "error")).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/^snapshot: .*Policy refuse: every backup fails/),
      }),
    ]);
    expect(code).toBe(1);
  });
});
