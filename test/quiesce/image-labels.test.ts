import { describe, expect, it } from "vitest";
import { attributeLabels, labelKeysFromComposeFiles } from "../../agent/quiesce/image-labels.ts";
import { buildPlan } from "../../agent/quiesce/plan.ts";
import { stackWarnings } from "../../agent/quiesce/stack-warnings.ts";
import { container, stacksOf } from "./support/builders.ts";

const compose = { "com.docker.compose.project": "p", "com.docker.compose.service": "db" };

describe("which felhom.quiesce* labels count: those set for the container, not its image's", () => {
  it("leaves out a label the container has only from its image", () => {
    const image = { "felhom.quiesce": "none", "felhom.quiesce.timeout": "3600" };
    const r = attributeLabels({ ...compose, ...image }, image, new Set());
    expect(r.labels).toEqual(compose);
    expect(r.fromImage).toEqual(image);
  });

  it("keeps a label whose value differs from the image's: the compose file overrode it", () => {
    const r = attributeLabels(
      { ...compose, "felhom.quiesce": "stop" },
      { "felhom.quiesce": "none" },
      undefined,
    );
    expect(r.labels["felhom.quiesce"]).toBe("stop");
    expect(r.fromImage).toEqual({});
  });

  it("keeps a label equal to the image's when the compose file sets that key itself, else not", () => {
    const labels = { ...compose, "felhom.quiesce": "pause" };
    const image = { "felhom.quiesce": "pause" };
    expect(attributeLabels(labels, image, new Set(["felhom.quiesce"])).fromImage).toEqual({});
    // Compose files unreadable (undefined): it counts as the image's.
    expect(attributeLabels(labels, image, undefined).fromImage).toEqual(image);
  });

  it("reads the keys a service sets from compose files, map or list form, over several -f files", () => {
    const keys = labelKeysFromComposeFiles([
      "services:\n  db:\n    image: postgres\n    labels:\n      felhom.quiesce: stop\n  app: {}\n",
      'services:\n  app:\n    labels:\n      - "felhom.quiesce.timeout=30"\n      - other\n',
    ]);
    expect([...keys.get("db")!]).toEqual(["felhom.quiesce"]);
    expect([...keys.get("app")!].sort()).toEqual(["felhom.quiesce.timeout", "other"]);
  });

  it("plans an image-labelled service with the default, with no plan_invalid, and warns naming the image", () => {
    const c = container("p", "db", {
      image: "vendor/db:1",
      labelsFromImage: { "felhom.quiesce": "none", "felhom.quiesce.timeout": "forever" },
    });
    const stacks = stacksOf(c);
    const plan = buildPlan(stacks);
    expect(plan.ok).toBe(true);
    if (plan.ok) expect(plan.plan.levels.flat().map((s) => s.strategy)).toEqual(["stop"]);
    expect(stackWarnings(stacks)).toContainEqual(
      expect.objectContaining({
        code: "image_label_ignored",
        service: "db",
        message: expect.stringContaining(
          "felhom.quiesce=none, felhom.quiesce.timeout=forever come from its image vendor/db:1",
        ),
      }),
    );
  });
});
