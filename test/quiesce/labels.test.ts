import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY, parseHookCommand, parsePolicy } from "../../agent/quiesce/labels.ts";

describe("quiesce labels", () => {
  it("gives the stop strategy with on-error abort when no label is set", () => {
    expect(parsePolicy("c1", {})).toEqual({ policy: DEFAULT_POLICY, issues: [] });
    expect(DEFAULT_POLICY.strategy).toBe("stop");
    expect(DEFAULT_POLICY.onError).toBe("abort");
  });

  it("reads every label into the policy", () => {
    const { policy, issues } = parsePolicy("c1", {
      "felhom.quiesce": "pause",
      "felhom.quiesce.timeout": "30",
      "felhom.quiesce.on-error": "continue",
      "felhom.quiesce.pre": '["redis-cli", "SAVE"]',
      "felhom.quiesce.post": "echo done > /tmp/x",
    });
    expect(issues).toEqual([]);
    expect(policy).toEqual({
      strategy: "pause",
      timeoutS: 30,
      onError: "continue",
      pre: ["redis-cli", "SAVE"],
      post: ["sh", "-c", "echo done > /tmp/x"],
    });
  });

  it("accepts a timeout with a trailing s and fractional seconds", () => {
    expect(parsePolicy("c1", { "felhom.quiesce.timeout": "2.5s" }).policy.timeoutS).toBe(2.5);
  });

  it.each([
    ["felhom.quiesce", "freeze", "not one of"],
    ["felhom.quiesce.timeout", "0", "number of seconds"],
    ["felhom.quiesce.timeout", "-3", "number of seconds"],
    ["felhom.quiesce.timeout", "ten", "number of seconds"],
    ["felhom.quiesce.timeout", "7200", "number of seconds"],
    ["felhom.quiesce.on-error", "ignore", "not one of"],
    ["felhom.quiesce.pre", "[not json", "not a valid JSON array"],
    ["felhom.quiesce.pre", "[1, 2]", "JSON array of strings"],
    ["felhom.quiesce.post", "[]", "JSON array of strings"],
    ["felhom.quiesce.post", "   ", "empty"],
    ["felhom.quiesce.on_error", "continue", "unknown label"],
  ])("reports label %s=%j as an issue naming the container and the label", (label, value, fragment) => {
    const { issues } = parsePolicy("shop_db_1", { [label]: value });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ container: "shop_db_1", label });
    expect(issues[0]!.message).toContain(fragment);
  });

  it("rejects hooks on a service whose strategy is none", () => {
    const { issues } = parsePolicy("c1", { "felhom.quiesce": "none", "felhom.quiesce.pre": "true" });
    expect(issues.map((i) => i.label)).toEqual(["felhom.quiesce"]);
    expect(issues[0]!.message).toContain("cannot have");
  });

  it("rejects the exec strategy without any hook", () => {
    const { issues } = parsePolicy("c1", { "felhom.quiesce": "exec" });
    expect(issues[0]!.message).toContain("needs a felhom.quiesce.pre");
  });

  it("ignores labels of other tools that merely share a prefix", () => {
    expect(parsePolicy("c1", { "felhom.other": "x", "felhom.quiescent": "y" }).issues).toEqual([]);
  });

  it("runs a plain string hook through sh -c and a JSON array without a shell", () => {
    expect(parseHookCommand("pg_dump -f /x && sync")).toEqual({
      argv: ["sh", "-c", "pg_dump -f /x && sync"],
    });
    expect(parseHookCommand(' ["psql", "-c", "CHECKPOINT"] ')).toEqual({
      argv: ["psql", "-c", "CHECKPOINT"],
    });
  });
});
