import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config/load.ts";
import { applyEnrollment } from "../../agent/identity/enrollment-record.ts";
import { trustProblem } from "../../agent/lib/file-trust.ts";
import { writeJsonDurable } from "../../agent/state/durable-file.ts";
import { statePaths } from "../../agent/state/paths.ts";
import { minimalConfig } from "./support.ts";

const rootDir = { uid: 0, mode: 0o40700 };
const ROOT_ONLY = [0];

describe("trustProblem: who may control the files that control the token", () => {
  it("accepts a root config readable by all and a root secret readable by root alone", () => {
    expect(trustProblem("config", "/etc/f/agent.yaml", { uid: 0, mode: 0o100644 }, rootDir, ROOT_ONLY)).toBe(
      undefined,
    );
    expect(trustProblem("secret", "/etc/f/pve.secret", { uid: 0, mode: 0o100600 }, rootDir, ROOT_ONLY)).toBe(
      undefined,
    );
  });

  it("refuses a config others can write, with the chmod", () => {
    expect(
      trustProblem("config", "/etc/f/agent.yaml", { uid: 0, mode: 0o100666 }, rootDir, ROOT_ONLY),
    ).toEqual({
      problem: "has mode 0666; it must not be writable by group or others",
      fix: "chmod go-w /etc/f/agent.yaml",
    });
    expect(
      trustProblem("config", "/etc/f/agent.yaml", { uid: 0, mode: 0o100664 }, rootDir, ROOT_ONLY)?.fix,
    ).toBe("chmod go-w /etc/f/agent.yaml");
  });

  it("refuses a 0600 secret owned by nobody, and a secret group can read, with the exact commands", () => {
    expect(
      trustProblem("secret", "/etc/f/pve.secret", { uid: 65534, mode: 0o100600 }, rootDir, ROOT_ONLY),
    ).toEqual({ problem: "is owned by uid 65534, not root", fix: "chown root:root /etc/f/pve.secret" });
    expect(
      trustProblem("secret", "/etc/f/pve.secret", { uid: 1000, mode: 0o100640 }, rootDir, ROOT_ONLY)?.fix,
    ).toBe("chown root:root /etc/f/pve.secret && chmod 600 /etc/f/pve.secret");
  });

  it("refuses a file in a directory someone else owns or may write, unless the directory is sticky", () => {
    const file = { uid: 0, mode: 0o100600 };
    expect(trustProblem("secret", "/srv/x/s", file, { uid: 0, mode: 0o40777 }, ROOT_ONLY)?.fix).toBe(
      "chmod go-w /srv/x",
    );
    expect(trustProblem("secret", "/srv/x/s", file, { uid: 1000, mode: 0o40700 }, ROOT_ONLY)?.fix).toBe(
      "chown root:root /srv/x",
    );
    expect(trustProblem("secret", "/tmp/s", file, { uid: 0, mode: 0o41777 }, ROOT_ONLY)).toBe(undefined);
  });

  it("trusts the agent's own user besides root when it does not run as root", () => {
    expect(
      trustProblem(
        "secret",
        "/home/dev/s",
        { uid: 1000, mode: 0o100600 },
        { uid: 1000, mode: 0o40755 },
        [0, 1000],
      ),
    ).toBe(undefined);
  });
});

describe("the enrollment file, which overrides the token as agent.yaml would", () => {
  it("is refused when others can write it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "felhom-enrollment-"));
    try {
      const stateDir = join(dir, "state");
      await mkdir(stateDir, { mode: 0o700 });
      const config = parseConfig(`${minimalConfig}state_dir: ${stateDir}\n`);
      const path = statePaths(stateDir).enrollment;
      await writeJsonDurable(path, {
        vmid: 201,
        tokenId: "agent-201@pve!backup",
        tokenSecretFile: join(stateDir, "enrollment", "pve-token.secret"),
        enrolledAt: "2026-12-04T00:00:00.000Z",
      });
      expect((await applyEnrollment(config)).pve.vmid).toBe(201);
      await chmod(path, 0o666);
      await expect(applyEnrollment(config)).rejects.toMatchObject({
        code: "file_unsafe",
        hint: `run: chmod go-w ${path}`,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
