import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DockerEngine } from "../../agent/docker/docker-engine.ts";
import { discoverStacks } from "../../agent/quiesce/discover-stacks.ts";
import { buildPlan } from "../../agent/quiesce/plan.ts";
import { writeOfflineConfig } from "../support/agent-cli.ts";
import { describeDocker } from "../support/docker.ts";

const repoRoot = new URL("../../", import.meta.url).pathname;
const project = `fil${randomBytes(4).toString("hex")}`;
const image = `felhom-test/labelled-${project}:1`;
let dir: string;

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 180_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

describeDocker("labels baked into a third-party image (real Docker)", { timeout: 240_000 }, () => {
  let composeFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `felhom-${project}-`));
    // An image whose author set quiesce labels: `none` would leave its service running through every
    // backup, and an invalid timeout would fail them all with plan_invalid.
    run(
      "docker",
      ["build", "-q", "-t", image, "-"],
      'FROM local/busybox:1.35\nLABEL felhom.quiesce=none felhom.quiesce.timeout=forever\nCMD ["sleep", "3600"]\n',
    );
    composeFile = join(dir, "compose.yaml");
    await writeFile(
      composeFile,
      [
        "services:",
        "  thirdparty:", // the image's labels only
        `    image: ${image}`,
        "  chosen:", // the operator sets felhom.quiesce=none themself (the image's value) and a timeout
        `    image: ${image}`,
        "    labels:",
        '      felhom.quiesce: "none"',
        "",
      ].join("\n"),
    );
    run("docker-compose", ["-p", project, "-f", composeFile, "up", "-d"]);
  });
  afterAll(async () => {
    spawnSync("docker-compose", ["-p", project, "-f", composeFile, "down", "-t", "1"], { timeout: 120_000 });
    spawnSync("docker", ["rmi", "-f", image], { timeout: 60_000 });
    await rm(dir, { recursive: true, force: true });
  });

  it("counts only the labels set in the compose file; the image's are ignored, shown and warned about", async () => {
    const stacks = await discoverStacks(new DockerEngine(), [project]);
    const [thirdparty, chosen] = ["thirdparty", "chosen"].map(
      (name) => stacks[0]!.services.find((s) => s.name === name)!.containers[0]!,
    );
    expect(thirdparty!.labelsFromImage).toEqual({
      "felhom.quiesce": "none",
      "felhom.quiesce.timeout": "forever",
    });
    expect(thirdparty!.labels["felhom.quiesce"]).toBeUndefined();
    expect(chosen!.labels["felhom.quiesce"]).toBe("none");
    expect(chosen!.labelsFromImage).toEqual({ "felhom.quiesce.timeout": "forever" });

    const plan = buildPlan(stacks);
    expect(plan.ok).toBe(true); // the image's invalid timeout does not fail the backup
    if (!plan.ok) return;
    expect(plan.plan.levels.flat().map((s) => `${s.service}:${s.strategy}`)).toEqual(["thirdparty:stop"]);
    expect(plan.plan.untouched).toEqual([{ project, service: "chosen" }]);

    // `felhom-guest stacks` names the source of each label.
    // Its state_dir is created (dir/state): a missing one is a config error.
    const cfg = await writeOfflineConfig(dir, { lines: ["docker:", `  projects: [${project}]`] });
    const out = run(process.execPath, [
      "--import",
      "tsx",
      join(repoRoot, "agent/cli/main.ts"),
      "--config",
      cfg,
      "stacks",
      "--json",
    ]);
    const listed = JSON.parse(out);
    // (`stacks` lists every stack of the engine, docker.projects or not: other tests' stacks may be there.)
    const mine = listed.stacks.find((st: { project: string }) => st.project === project);
    const services = mine.services as { name: string; strategy: string; labels: unknown[] }[];
    expect(services.find((s) => s.name === "thirdparty")).toMatchObject({
      strategy: "stop",
      labels: [
        { key: "felhom.quiesce", value: "none", source: "image" },
        { key: "felhom.quiesce.timeout", value: "forever", source: "image" },
      ],
    });
    expect(services.find((s) => s.name === "chosen")?.labels).toEqual([
      { key: "felhom.quiesce", value: "none", source: "compose" },
      { key: "felhom.quiesce.timeout", value: "forever", source: "image" },
    ]);
    const warnings = listed.warnings.filter((w: { project: string }) => w.project === project);
    expect(warnings.map((w: { code: string; service: string }) => `${w.code}:${w.service}`)).toEqual(
      expect.arrayContaining(["image_label_ignored:thirdparty", "image_label_ignored:chosen"]),
    );
  });
});
