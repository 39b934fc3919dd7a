import { describe, expect, it } from "vitest";
import { buildPlan, type QuiescePlan, quiescePlanSchema, resumeLevels } from "../../agent/quiesce/plan.ts";
import { container, stacksOf } from "./support/builders.ts";

function planOf(...args: Parameters<typeof stacksOf>): QuiescePlan {
  const result = buildPlan(stacksOf(...args));
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.plan;
}

const names = (levels: QuiescePlan["levels"]) => levels.map((l) => l.map((s) => s.service).sort());

describe("quiesce plan", () => {
  it("quiesces dependents before their dependencies and resumes in reverse", () => {
    const plan = planOf(
      container("shop", "db"),
      container("shop", "app", { dependsOn: "db:service_healthy:false" }),
      container("shop", "proxy", { dependsOn: "app:service_started:false" }),
    );
    expect(names(plan.levels)).toEqual([["proxy"], ["app"], ["db"]]);
    expect(names(resumeLevels(plan))).toEqual([["db"], ["app"], ["proxy"]]);
  });

  it("puts independent services of one depth in the same level so they run in parallel", () => {
    const plan = planOf(
      container("p", "db"),
      container("p", "cache"),
      container("p", "api", { dependsOn: "db:service_started:false,cache:service_started:false" }),
      container("p", "worker", { dependsOn: "db:service_started:false" }),
      container("p", "web", { dependsOn: "api:service_started:false" }),
    );
    expect(names(plan.levels)).toEqual([["web", "worker"], ["api"], ["cache", "db"]]);
  });

  it("places a service below its deepest dependent when paths differ in length", () => {
    const plan = planOf(
      container("p", "db"),
      container("p", "app", { dependsOn: "db:x:false" }),
      container("p", "proxy", { dependsOn: "app:x:false,db:x:false" }),
    );
    expect(names(plan.levels)).toEqual([["proxy"], ["app"], ["db"]]);
  });

  it("keeps the order through a service with strategy none but leaves it out of the levels", () => {
    const plan = planOf(
      container("p", "db"),
      container("p", "app", { dependsOn: "db:x:false", labels: { "felhom.quiesce": "none" } }),
      container("p", "proxy", { dependsOn: "app:x:false" }),
    );
    expect(names(plan.levels)).toEqual([["proxy"], ["db"]]);
    expect(plan.untouched).toEqual([{ project: "p", service: "app" }]);
  });

  it("plans for a guest that goes down (stop mode): pause becomes stop, none is journalled like exec without hooks, in order", () => {
    const result = buildPlan(
      stacksOf(
        container("p", "db", { labels: { "felhom.quiesce": "pause" } }),
        container("p", "app", { dependsOn: "db:x:false", labels: { "felhom.quiesce": "none" } }),
        container("p", "proxy", { dependsOn: "app:x:false" }),
      ),
      { guestGoesDown: true },
    );
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    const { plan } = result;
    expect(names(plan.levels)).toEqual([["proxy"], ["app"], ["db"]]);
    const byName = new Map(plan.levels.flat().map((s) => [s.service, s]));
    expect(byName.get("db")).toMatchObject({ strategy: "stop" });
    expect(byName.get("app")).toMatchObject({ strategy: "exec", pre: null, post: null });
    expect(byName.get("app")!.containers).toHaveLength(1);
    expect(plan.untouched).toEqual([]);
  });

  it("lists every planned service that must be quiesced first, also through an untouched service", () => {
    const plan = planOf(
      container("p", "db"),
      container("p", "app", { dependsOn: "db:x:false", labels: { "felhom.quiesce": "none" } }),
      container("p", "proxy", { dependsOn: "app:x:false" }),
      container("p", "cron", { dependsOn: "db:x:false" }),
    );
    const byName = Object.fromEntries(plan.levels.flat().map((s) => [s.service, s.dependents]));
    expect(byName).toEqual({ db: ["cron", "proxy"], proxy: [], cron: [] });
  });

  it("merges the levels of independent projects", () => {
    const plan = planOf(
      container("a", "db"),
      container("a", "app", { dependsOn: "db:x:false" }),
      container("b", "web"),
    );
    expect(plan.levels.map((l) => l.map((s) => `${s.project}/${s.service}`).sort())).toEqual([
      ["a/app", "b/web"],
      ["a/db"],
    ]);
  });

  it("acts only on running containers and records the others as left alone", () => {
    const plan = planOf(
      container("p", "app", { number: 1 }),
      container("p", "app", { number: 2, state: "exited" }),
      container("p", "app", { number: 3, state: "paused" }),
    );
    const app = plan.levels[0]![0]!;
    expect(app.containers.map((c) => c.name)).toEqual(["p_app_1"]);
    expect(app.leftAlone.map((c) => [c.name, c.priorState])).toEqual([
      ["p_app_2", "exited"],
      ["p_app_3", "paused"],
    ]);
  });

  it("takes the stop grace period and signal from the container and hook bounds from the label", () => {
    const plan = planOf(
      container("p", "db", {
        stopTimeoutS: 120,
        stopSignal: "SIGINT",
        hasHealthcheck: true,
        labels: { "felhom.quiesce.timeout": "90", "felhom.quiesce.on-error": "continue" },
      }),
      container("p", "web"),
    );
    const [db, web] = plan.levels[0]!;
    expect(db).toMatchObject({
      stopGraceS: 120,
      stopSignal: "SIGINT",
      healthcheck: true,
      timeoutMs: 90_000,
      onError: "continue",
    });
    expect(web).toMatchObject({ stopGraceS: 10, stopSignal: null, timeoutMs: 60_000, onError: "abort" });
  });

  it("uses the default hook timeout given in the options", () => {
    const result = buildPlan(stacksOf(container("p", "web")), { defaultTimeoutS: 5 });
    expect(result.ok && result.plan.levels[0]![0]!.timeoutMs).toBe(5000);
  });

  it("carries the strategy and the hooks of each service", () => {
    const plan = planOf(
      container("p", "cache", { labels: { "felhom.quiesce": "pause" } }),
      container("p", "db", {
        labels: { "felhom.quiesce": "exec", "felhom.quiesce.pre": '["pg_dump","-f","/d"]' },
      }),
    );
    expect(plan.levels[0]!.map((s) => [s.service, s.strategy, s.pre, s.post])).toEqual([
      ["cache", "pause", null, null],
      ["db", "exec", ["pg_dump", "-f", "/d"], null],
    ]);
  });

  it("fails with every label issue, naming the container and the label", () => {
    const result = buildPlan(
      stacksOf(
        container("p", "db", { labels: { "felhom.quiesce": "freeze" } }),
        container("p", "web", { labels: { "felhom.quiesce.timeout": "soon" } }),
      ),
    );
    expect(result.ok).toBe(false);
    expect(!result.ok && result.issues.map((i) => [i.container, i.label])).toEqual([
      ["p_db_1", "felhom.quiesce"],
      ["p_web_1", "felhom.quiesce.timeout"],
    ]);
  });

  it("fails when replicas of one service carry different quiesce labels", () => {
    const result = buildPlan(
      stacksOf(
        container("p", "web", { number: 1, labels: { "felhom.quiesce": "pause" } }),
        container("p", "web", { number: 2, labels: { "felhom.quiesce": "stop" } }),
      ),
    );
    expect(!result.ok && result.issues[0]).toMatchObject({ container: "p_web_2", label: "felhom.quiesce*" });
  });

  it("fails on a dependency cycle", () => {
    const result = buildPlan(
      stacksOf(
        container("p", "a", { dependsOn: "b:x:false" }),
        container("p", "b", { dependsOn: "a:x:false" }),
      ),
    );
    expect(!result.ok && result.issues[0]!.message).toContain("cycle");
  });

  it("produces plain JSON that the journal schema reads back unchanged", () => {
    const plan = planOf(container("p", "db"), container("p", "app", { dependsOn: "db:x:false" }));
    const roundTrip = quiescePlanSchema.parse(JSON.parse(JSON.stringify(plan)));
    expect(roundTrip).toEqual(plan);
  });

  it("is empty for no stacks", () => {
    expect(buildPlan([])).toEqual({ ok: true, plan: { levels: [], untouched: [] } });
  });
});
