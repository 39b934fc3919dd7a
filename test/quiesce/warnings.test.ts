import { describe, expect, it } from "vitest";
import { groupStacks } from "../../agent/quiesce/stack-facts.ts";
import { stackWarnings } from "../../agent/quiesce/stack-warnings.ts";
import { container, stacksOf } from "./support/builders.ts";

const codes = (w: ReturnType<typeof stackWarnings>) => w.map((x) => `${x.code}:${x.service ?? "-"}`);

describe("stack warnings", () => {
  it("gives no warning for a well-configured stack", () => {
    expect(stackWarnings(stacksOf(container("p", "web")), { volumeSizes: new Map() })).toEqual([]);
  });

  it("warns about a large named volume and says how to keep bulk data out", () => {
    const web = container("p", "web", {
      mounts: [
        {
          type: "volume",
          name: "p_media",
          source: "/var/lib/docker/volumes/p_media/_data",
          destination: "/media",
        },
        { type: "bind", name: undefined, source: "/srv/x", destination: "/x" },
      ],
    });
    const w = stackWarnings(stacksOf(web), { volumeSizes: new Map([["p_media", 5 * 1024 ** 3]]) });
    expect(codes(w)).toEqual(["large_named_volume:web"]);
    expect(w[0]!.message).toContain("backup=0");
    expect(w[0]!.message).toContain("5.0 GiB");
  });

  it("does not warn about a small named volume", () => {
    const web = container("p", "web", {
      mounts: [{ type: "volume", name: "v", source: "/s", destination: "/d" }],
    });
    expect(stackWarnings(stacksOf(web), { volumeSizes: new Map([["v", 1000]]) })).toEqual([]);
  });

  it("warns about a running service without a restart policy, but not about a stopped one", () => {
    const w = stackWarnings(
      stacksOf(
        container("p", "web", { restartPolicy: "no" }),
        container("p", "job", { restartPolicy: "no", state: "exited" }),
      ),
    );
    expect(codes(w)).toEqual(["no_restart_policy:web"]);
  });

  it("warns when the last observed stop came close to the grace period", () => {
    const stacks = stacksOf(container("p", "db", { image: "local/postgres:15" }), container("p", "web"));
    const w = stackWarnings(stacks, { observedStopMs: (_p, s) => (s === "db" ? 9_000 : 200) });
    expect(codes(w)).toEqual(["stop_grace_short:db"]);
    expect(w[0]!.message).toContain("9.0 s");
  });

  it("does not warn about a slow stop when the service has a long enough grace period", () => {
    const stacks = stacksOf(container("p", "db", { stopTimeoutS: 120 }));
    expect(stackWarnings(stacks, { observedStopMs: () => 9_000 })).toEqual([]);
  });

  it.each(["none", "pause"])(
    "warns that a PostgreSQL image with strategy %s is only crash-consistent",
    (strategy) => {
      const w = stackWarnings(
        stacksOf(
          container("p", "db", { image: "postgres:16-alpine", labels: { "felhom.quiesce": strategy } }),
          container("p", "db2", { image: "bitnami/postgresql:16", labels: { "felhom.quiesce": strategy } }),
        ),
      );
      expect(codes(w)).toEqual(["crash_consistent_database:db", "crash_consistent_database:db2"]);
    },
  );

  it("accepts a PostgreSQL image quiesced with stop or an exec dump, and a paused service without healthcheck", () => {
    const w = stackWarnings(
      stacksOf(
        container("p", "db", { image: "local/postgres:15" }),
        container("p", "db2", {
          image: "postgres:16",
          labels: { "felhom.quiesce": "exec", "felhom.quiesce.pre": "pg_dumpall -f /backup/all.sql" },
        }),
        container("p", "cache", { image: "redis:7", labels: { "felhom.quiesce": "pause" } }),
      ),
    );
    expect(w).toEqual([]);
  });

  it("warns when a multi-service stack's dependency order is unknown", () => {
    const w = stackWarnings(groupStacks([container("p", "db"), container("p", "web")], () => undefined));
    expect(codes(w)).toEqual(["depends_on_unknown:-"]);
  });
});
