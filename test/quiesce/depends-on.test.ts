import { describe, expect, it } from "vitest";
import { dependsOnFromComposeFiles, parseDependsOnLabel } from "../../agent/quiesce/depends-on.ts";
import { groupStacks } from "../../agent/quiesce/stack-facts.ts";
import { container } from "./support/builders.ts";

describe("depends_on parsing", () => {
  it("reads service names from the compose v2 label with conditions and restart flags", () => {
    expect(parseDependsOnLabel("db:service_healthy:false,cache:service_started:true")).toEqual([
      "db",
      "cache",
    ]);
  });

  it("reads the older two-field v2 label and tolerates spaces, duplicates and an empty value", () => {
    expect(parseDependsOnLabel(" db:service_started , db:service_started,")).toEqual(["db"]);
    expect(parseDependsOnLabel("")).toEqual([]);
  });

  it("reads depends_on in list form and map form, and links, from a v1 compose file", () => {
    const deps = dependsOnFromComposeFiles([
      `
version: "2.4"
services:
  db: { image: postgres }
  app:
    image: app
    depends_on: [db]
  proxy:
    image: nginx
    depends_on:
      app:
        condition: service_healthy
    links: ["cache:redis"]
  cache: { image: redis }
`,
    ]);
    expect(Object.fromEntries(deps)).toEqual({ db: [], app: ["db"], proxy: ["app", "cache"], cache: [] });
  });

  it("reads the implicit edges compose v1 orders by too: network_mode, ipc and pid of a service, volumes_from", () => {
    const deps = dependsOnFromComposeFiles([
      `
services:
  vpn: { image: wireguard }
  app: { image: app, network_mode: "service:vpn" }
  sidecar: { image: s, ipc: "service:app", pid: "service:vpn" }
  data: { image: busybox }
  backup: { image: b, volumes_from: ["data:ro", "container:elsewhere"] }
  host: { image: h, network_mode: host }
`,
    ]);
    expect(Object.fromEntries(deps)).toEqual({
      vpn: [],
      app: ["vpn"],
      sidecar: ["app", "vpn"],
      data: [],
      backup: ["data"],
      host: [],
    });
  });

  it("merges edges over several -f files the way compose merges overrides", () => {
    const deps = dependsOnFromComposeFiles([
      "services:\n  app:\n    depends_on: [db]\n  db: {}\n",
      "services:\n  app:\n    depends_on: [cache]\n  cache: {}\n",
    ]);
    expect(deps.get("app")?.sort()).toEqual(["cache", "db"]);
  });

  it("follows YAML merge keys, as compose files use them for shared service settings", () => {
    const deps = dependsOnFromComposeFiles([
      "x-base: &base\n  depends_on: [db]\nservices:\n  db: {}\n  app:\n    <<: *base\n    image: app\n",
    ]);
    expect(deps.get("app")).toEqual(["db"]);
  });

  it("returns no edges for a file without services", () => {
    expect(dependsOnFromComposeFiles(["version: '3'\n"]).size).toBe(0);
  });
});

describe("stack grouping", () => {
  it("groups containers by project and service, skipping one-off run containers", () => {
    const stacks = groupStacks(
      [
        container("shop", "db"),
        container("shop", "app", { dependsOn: "db:service_started:false" }),
        container("shop", "app", { number: 2, dependsOn: "db:service_started:false" }),
        container("shop", "app", { number: 3, labels: { "com.docker.compose.oneoff": "True" } }),
        container("blog", "web"),
      ],
      () => undefined,
    );
    expect(stacks.map((s) => s.project)).toEqual(["blog", "shop"]);
    const shop = stacks[1]!;
    expect(shop.dependsOnSource).toBe("label");
    expect(shop.services.map((s) => [s.name, s.dependsOn, s.containers.length])).toEqual([
      ["app", ["db"], 2],
      ["db", [], 1],
    ]);
    expect(shop.workingDir).toBe("/srv/shop");
    expect(shop.configFiles).toEqual(["/srv/shop/compose.yaml"]);
  });

  it("uses the compose-file edges when only v1 labels exist, and drops edges to services without containers", () => {
    const v1 = { "com.docker.compose.version": "1.29.2" };
    const stacks = groupStacks(
      [container("old", "db", { labels: v1 }), container("old", "app", { labels: v1 })],
      (project) =>
        project === "old"
          ? new Map([
              ["app", ["db", "gone"]],
              ["db", []],
            ])
          : undefined,
    );
    expect(stacks[0]!.dependsOnSource).toBe("compose-file");
    expect(stacks[0]!.services.find((s) => s.name === "app")!.dependsOn).toEqual(["db"]);
  });

  it("marks the order unknown when a v1 stack's compose files cannot be read", () => {
    const stacks = groupStacks([container("old", "db"), container("old", "app")], () => undefined);
    expect(stacks[0]!.dependsOnSource).toBe("unknown");
  });

  it("splits the comma-separated config files label", () => {
    const stacks = groupStacks(
      [container("p", "a", { labels: { "com.docker.compose.project.config_files": "a.yml, b.yml" } })],
      () => undefined,
    );
    expect(stacks[0]!.configFiles).toEqual(["a.yml", "b.yml"]);
  });
});
